//! Training checkpoints, for any model: `RUN_DIR/checkpoint/` holds the model's own files
//! (written by the trainer), `tokenizer.json` (copied from the data directory),
//! `optimizer.safetensors` (AdamW moments `m.<param>` / `v.<param>`) and `trainer_state.json`
//! ([`TrainerState`]: step, seed, sampler state, optimizer step count, the trainer's config).
//!
//! Integrity: `manifest.json` ([`crate::manifest`]), written after every other file, holds each
//! file's size and CRC-32 and the step; [`read_trainer_state`] verifies it and checks that the
//! state is one a trainer can have written (step ≥ 1, within the config's `max_steps`, AdamW's
//! step count and the sampler's position equal to the step, the manifest's step the same).
//!
//! Crash safety: a new checkpoint is written completely into `checkpoint.tmp/` (each file
//! atomically, the state file and then the manifest last), then `checkpoint/` is renamed to `checkpoint.old/`,
//! `checkpoint.tmp/` to `checkpoint/`, and `checkpoint.old/` removed. At every instant one
//! complete checkpoint exists: [`find_checkpoint`] takes `checkpoint/` and falls back to
//! `checkpoint.old/` (a crash between the two renames).

use crate::error::{Result, TrainError};
use crate::manifest::{verify_manifest, write_manifest};
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
/// (written after the model files), then `manifest.json` over all of them, the AdamW moments of `opt` `optimizer.safetensors` (f32, host copies), and
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
    let step = serde_json::from_slice::<serde_json::Value>(state_json)
        .ok()
        .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
        .ok_or_else(|| TrainError::BadState {
            path: tmp.join(STATE_FILE),
            reason: "the state to write has no `step`".into(),
        })?;
    write_manifest(tmp, step)?;

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

/// Reads `dir/trainer_state.json` with the trainer's config type `C`, after verifying the
/// checkpoint's manifest (every file's size and CRC-32; a checkpoint without a manifest, from
/// before manifests existed, is read unverified), and checks that the state is plausible: a
/// checkpoint is written only after a step, so `step ≥ 1`; `step ≤` the config's `max_steps`;
/// AdamW takes one step per training step, so `adam_t = step`; the sampler is at batch `step` of
/// the run's seed; and the manifest was written for the same step.
pub fn read_trainer_state<C: DeserializeOwned>(dir: &Path) -> Result<TrainerState<C>> {
    let manifest = verify_manifest(dir)?;
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file("read", &path, e))?;
    let bad = |reason: String| TrainError::BadState {
        path: path.clone(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let max_steps = value
        .get("config")
        .and_then(|c| c.get("max_steps"))
        .and_then(serde_json::Value::as_u64);
    let state: TrainerState<C> = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    let implausible = |reason: String| {
        Err(TrainError::ImplausibleState {
            path: path.clone(),
            reason,
        })
    };
    if state.step == 0 {
        return implausible("step 0, but a checkpoint is written only after a step".into());
    }
    if let Some(max) = max_steps.filter(|&m| state.step > m) {
        return implausible(format!(
            "step {} is beyond the config's max_steps {max}",
            state.step
        ));
    }
    if state.adam_t != state.step {
        return implausible(format!(
            "AdamW's step count adam_t = {} differs from step = {} (one AdamW step per step)",
            state.adam_t, state.step
        ));
    }
    if state.sampler.step != state.step || state.sampler.seed != state.seed {
        return implausible(format!(
            "the batch sampler is at batch {} of seed {}, the run at step {} of seed {}",
            state.sampler.step, state.sampler.seed, state.step, state.seed
        ));
    }
    if let Some(m) = manifest.filter(|m| m.step != state.step) {
        return implausible(format!(
            "step {}, but its manifest was written for step {}",
            state.step, m.step
        ));
    }
    Ok(state)
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
        let manifest = verify_manifest(&dir).unwrap().unwrap();
        assert_eq!(manifest.step, 1);
        assert_eq!(
            manifest.files.keys().collect::<Vec<_>>(),
            vec!["model.txt", OPTIMIZER_FILE, STATE_FILE]
        );
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
        // Implausible states are refused, naming what is wrong.
        for (edit, want) in [
            (r#""step": 0"#, "step 0"),
            (
                r#""adam_t": 9223372036854775808"#,
                "adam_t = 9223372036854775808",
            ),
            (r#""step": 999"#, "max_steps"),
        ] {
            let mut v = serde_json::to_value(&state).unwrap();
            let (key, val) = edit.split_once(": ").unwrap();
            v[key.trim_matches('"')] = serde_json::from_str(val).unwrap();
            v["config"] = serde_json::json!({"max_steps": 5});
            let bad = tempfile::tempdir().unwrap();
            std::fs::write(bad.path().join(STATE_FILE), v.to_string()).unwrap();
            let e = read_trainer_state::<serde_json::Value>(bad.path())
                .unwrap_err()
                .to_string();
            assert!(e.contains("implausible") && e.contains(want), "{edit}: {e}");
        }
        let other = vec![("u".to_string(), p[0].1.clone())];
        let mut wrong = AdamW::new(&other, 0.1, |_| true).unwrap();
        let e = read_optimizer_moments(&dir, &mut wrong).unwrap_err();
        assert!(e.to_string().contains("`u` missing"), "{e}");
    }
}
