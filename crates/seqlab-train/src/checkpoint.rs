//! Training checkpoints, for any model: `RUN_DIR/checkpoint/` holds the model's own files
//! (written by the trainer), `tokenizer.json` (copied from the data directory),
//! `optimizer.safetensors` (AdamW moments `m.<param>` / `v.<param>`) and `trainer_state.json`
//! ([`TrainerState`]: step, seed, sampler state, optimizer step count, the trainer's config).
//!
//! Crash safety: a new checkpoint is written completely into `checkpoint.tmp/` (each file
//! atomically, the state file last), then `checkpoint/` is renamed to `checkpoint.old/`,
//! `checkpoint.tmp/` to `checkpoint/`, and `checkpoint.old/` removed. At every instant one
//! complete checkpoint exists: [`find_checkpoint`] takes `checkpoint/` and falls back to
//! `checkpoint.old/` (a crash between the two renames).

use crate::error::{Result, TrainError};
use crate::optim::{AdamSlot, AdamW};
use candle_core::{DType, Device, Tensor};
use seqlab_data::SamplerState;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Directory name of the current checkpoint in a run directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// State file name.
pub const STATE_FILE: &str = "trainer_state.json";
/// Optimizer moments file name.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// `trainer_state.json`: where the run is, and the configuration `C` it was started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState<C> {
    /// Optimizer steps completed.
    pub step: u64,
    /// The run's seed (initialisation and batch order).
    pub seed: u64,
    /// The batch sampler's state (next batch index).
    pub sampler: SamplerState,
    /// AdamW's step count t.
    pub adam_t: u64,
    /// The training configuration the run used.
    pub config: C,
}

/// Writes a checkpoint into `run_dir/checkpoint/` (see the module docs): `save` writes the
/// model files into the new checkpoint directory, `state_json` becomes `trainer_state.json`
/// (written last), the AdamW moments of `opt` `optimizer.safetensors` (f32, host copies), and
/// `tokenizer`, when given, is copied to `tokenizer.json`.
pub fn write_checkpoint_with<E: From<TrainError>>(
    run_dir: &Path,
    save: impl FnOnce(&Path) -> std::result::Result<(), E>,
    opt: &AdamW,
    state_json: &[u8],
    tokenizer: Option<&Path>,
) -> std::result::Result<(), E> {
    let tmp = run_dir.join("checkpoint.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::file("remove", &tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::file("create", &tmp, e))?;
    save(&tmp)?;
    write_checkpoint_rest(run_dir, &tmp, opt, state_json, tokenizer)?;
    Ok(())
}

/// Everything of [`write_checkpoint_with`] after the model's files.
fn write_checkpoint_rest(
    run_dir: &Path,
    tmp: &Path,
    opt: &AdamW,
    state_json: &[u8],
    tokenizer: Option<&Path>,
) -> Result<()> {
    if let Some(tok) = tokenizer {
        let bytes = std::fs::read(tok).map_err(|e| TrainError::file("read", tok, e))?;
        seqlab_io::write_atomic(tmp.join("tokenizer.json"), &bytes)?;
    }
    let mut moments = HashMap::new();
    for s in &opt.slots {
        let host = |t: &Tensor| t.to_dtype(DType::F32)?.to_device(&Device::Cpu);
        moments.insert(format!("m.{}", s.name), host(&s.m)?);
        moments.insert(format!("v.{}", s.name), host(&s.v)?);
    }
    seqlab_tensor::save_atomic(tmp.join(OPTIMIZER_FILE), &moments)?;
    seqlab_io::write_atomic(tmp.join(STATE_FILE), state_json)?;

    let cur = run_dir.join(CHECKPOINT_DIR);
    let old = run_dir.join("checkpoint.old");
    if cur.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| TrainError::file("remove", &old, e))?;
        }
        std::fs::rename(&cur, &old).map_err(|e| TrainError::file("rename", &cur, e))?;
    }
    std::fs::rename(tmp, &cur).map_err(|e| TrainError::file("rename", tmp, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::file("remove", &old, e))?;
    }
    Ok(())
}

/// The complete checkpoint of a run directory, if any (`checkpoint/`, else `checkpoint.old/`).
pub fn find_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    [CHECKPOINT_DIR, "checkpoint.old"]
        .iter()
        .map(|d| run_dir.join(d))
        .find(|d| d.join(STATE_FILE).is_file())
}

/// The checkpoint a resumed run continues from: [`find_checkpoint`], or
/// [`TrainError::NoCheckpoint`].
pub fn checkpoint_to_resume(run_dir: &Path) -> Result<PathBuf> {
    find_checkpoint(run_dir).ok_or_else(|| TrainError::NoCheckpoint {
        run: run_dir.to_path_buf(),
    })
}

/// Reads `dir/trainer_state.json` with the trainer's config type `C`.
pub fn read_trainer_state<C: DeserializeOwned>(dir: &Path) -> Result<TrainerState<C>> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file("read", &path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::BadState {
        path,
        reason: e.to_string(),
    })
}

/// The AdamW of a resumed run: slots for `params` with their decay groups, the moments read
/// back exactly from `dir/optimizer.safetensors` ([`read_optimizer_moments`]) and the step count
/// `adam_t` of the trainer state.
pub fn read_optimizer(
    dir: &Path,
    params: &[(String, candle_core::Var)],
    weight_decay: f64,
    decay: impl Fn(&str) -> bool,
    adam_t: u64,
) -> Result<AdamW> {
    let mut opt = AdamW::new(params, weight_decay, decay)?;
    read_optimizer_moments(dir, &mut opt)?;
    opt.t = adam_t;
    Ok(opt)
}

/// Restores the AdamW moments `m.<param>` / `v.<param>` of every slot of `opt` exactly from
/// `dir/optimizer.safetensors` (the step count `t` is the caller's, from its state file).
pub fn read_optimizer_moments(dir: &Path, opt: &mut AdamW) -> Result<()> {
    let moments = seqlab_tensor::load(dir.join(OPTIMIZER_FILE), &Device::Cpu)?;
    for AdamSlot { name, m, v, .. } in opt.slots.iter_mut() {
        let get = |k: String| {
            moments
                .get(&k)
                .cloned()
                .ok_or_else(|| TrainError::MissingMoments {
                    name: name.clone(),
                    dir: dir.to_path_buf(),
                })
        };
        *m = get(format!("m.{name}"))?;
        *v = get(format!("v.{name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn params() -> Vec<(String, Var)> {
        let w = Var::from_vec(vec![1f32, -2.0, 3.0], 3, &Device::Cpu).unwrap();
        vec![("w".to_string(), w)]
    }

    #[test]
    fn checkpoint_round_trips_state_and_moments_and_replaces_the_old_one() {
        let run = tempfile::tempdir().unwrap();
        let p = params();
        let mut opt = AdamW::new(&p, 0.1, |_| true).unwrap();
        let loss = p[0].1.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&p, &loss.backward().unwrap(), 0.01).unwrap();
        let state = TrainerState {
            step: 1,
            seed: 7,
            sampler: SamplerState { seed: 7, step: 1 },
            adam_t: opt.t,
            config: "cfg".to_string(),
        };
        assert!(matches!(
            checkpoint_to_resume(run.path()),
            Err(TrainError::NoCheckpoint { .. })
        ));
        for _ in 0..2 {
            let json = serde_json::to_vec(&state).unwrap();
            write_checkpoint_with::<TrainError>(
                run.path(),
                |dir| {
                    std::fs::write(dir.join("model.txt"), "m")
                        .map_err(|e| TrainError::file("write", dir, e))
                },
                &opt,
                &json,
                None,
            )
            .unwrap();
        }
        let dir = checkpoint_to_resume(run.path()).unwrap();
        assert_eq!(dir, run.path().join(CHECKPOINT_DIR));
        assert!(dir.join("model.txt").is_file());
        assert!(!run.path().join("checkpoint.old").exists());
        assert!(!run.path().join("checkpoint.tmp").exists());
        assert_eq!(read_trainer_state::<String>(&dir).unwrap(), state);
        let mut fresh = AdamW::new(&p, 0.1, |_| true).unwrap();
        read_optimizer_moments(&dir, &mut fresh).unwrap();
        for (a, b) in fresh.slots.iter().zip(&opt.slots) {
            let (am, bm) = (a.m.to_vec1::<f32>().unwrap(), b.m.to_vec1::<f32>().unwrap());
            let (av, bv) = (a.v.to_vec1::<f32>().unwrap(), b.v.to_vec1::<f32>().unwrap());
            assert_eq!((am, av), (bm, bv));
        }
        let other = vec![("u".to_string(), p[0].1.clone())];
        let mut wrong = AdamW::new(&other, 0.1, |_| true).unwrap();
        let e = read_optimizer_moments(&dir, &mut wrong).unwrap_err();
        assert!(e.to_string().contains("`u` missing"), "{e}");
    }
}
