//! Training checkpoints: `RUN_DIR/checkpoint/` holds `model.safetensors`, `config.json`,
//! `tokenizer.json` (copied from the data directory), `optimizer.safetensors` (AdamW moments
//! `m.<param>` / `v.<param>`) and `trainer_state.json` (step, seed, sampler state, optimizer
//! step count).
//!
//! Crash safety: a new checkpoint is written completely into `checkpoint.tmp/` (each file
//! atomically, the state file last), then `checkpoint/` is renamed to `checkpoint.old/`,
//! `checkpoint.tmp/` to `checkpoint/`, and `checkpoint.old/` removed. At every instant one
//! complete checkpoint exists: [`find_checkpoint`] takes `checkpoint/` and falls back to
//! `checkpoint.old/` (a crash between the two renames).

use crate::error::{LmError, Result};
use crate::train::config::TrainConfig;
use crate::train::model::TrainModel;
use crate::train::optim::{AdamSlot, AdamW};
use candle_core::{DType, Device, Tensor};
use seqlab_data::SamplerState;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Directory name of the current checkpoint in a run directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// State file name.
pub const STATE_FILE: &str = "trainer_state.json";
/// Optimizer moments file name.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    /// The run's seed (initialisation and batch order).
    pub seed: u64,
    /// The batch sampler's state (next batch index).
    pub sampler: SamplerState,
    /// AdamW's step count t.
    pub adam_t: u64,
    /// The training configuration the run used.
    pub config: TrainConfig,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> LmError {
    LmError::Train(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes a checkpoint of `model`, `opt` and `state` into `run_dir/checkpoint/` (see module docs).
pub fn write_checkpoint(
    run_dir: &Path,
    model: &TrainModel,
    opt: &AdamW,
    state: &TrainerState,
    tokenizer: Option<&Path>,
) -> Result<()> {
    let json = serde_json::to_string_pretty(state).expect("state serialises");
    write_checkpoint_with(
        run_dir,
        |dir| model.save(dir),
        opt,
        json.as_bytes(),
        tokenizer,
    )
}

/// The crash-safe checkpoint writer behind [`write_checkpoint`], for any model: `save` writes
/// the model files into the new checkpoint directory, `state_json` becomes
/// `trainer_state.json` (written last), the AdamW moments `optimizer.safetensors`.
pub fn write_checkpoint_with(
    run_dir: &Path,
    save: impl FnOnce(&Path) -> Result<()>,
    opt: &AdamW,
    state_json: &[u8],
    tokenizer: Option<&Path>,
) -> Result<()> {
    let tmp = run_dir.join("checkpoint.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_err("remove", &tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    save(&tmp)?;
    if let Some(tok) = tokenizer {
        let bytes = std::fs::read(tok).map_err(|e| io_err("read", tok, e))?;
        seqlab_io::write_atomic(tmp.join("tokenizer.json"), &bytes)
            .map_err(|e| LmError::Train(e.to_string()))?;
    }
    let mut moments = HashMap::new();
    for s in &opt.slots {
        let host = |t: &Tensor| t.to_dtype(DType::F32)?.to_device(&Device::Cpu);
        moments.insert(format!("m.{}", s.name), host(&s.m)?);
        moments.insert(format!("v.{}", s.name), host(&s.v)?);
    }
    seqlab_tensor::save_atomic(tmp.join(OPTIMIZER_FILE), &moments)?;
    seqlab_io::write_atomic(tmp.join(STATE_FILE), state_json)
        .map_err(|e| LmError::Train(e.to_string()))?;

    let cur = run_dir.join(CHECKPOINT_DIR);
    let old = run_dir.join("checkpoint.old");
    if cur.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io_err("remove", &old, e))?;
        }
        std::fs::rename(&cur, &old).map_err(|e| io_err("rename", &cur, e))?;
    }
    std::fs::rename(&tmp, &cur).map_err(|e| io_err("rename", &tmp, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io_err("remove", &old, e))?;
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

/// Reads a checkpoint: model, trainer state and the optimizer (moments restored exactly).
/// The model family is the one the state's config names (Mamba for checkpoints written before
/// the `model` key existed).
pub fn read_checkpoint(dir: &Path, weight_decay: f64) -> Result<(TrainModel, AdamW, TrainerState)> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_err("read", &path, e))?;
    let state: TrainerState = serde_json::from_str(&text)
        .map_err(|e| LmError::Train(format!("bad trainer state {}: {e}", path.display())))?;
    let model = TrainModel::load(state.config.model, dir)?;
    let mut opt = AdamW::new(model.params(), weight_decay, model.decay_fn())?;
    read_optimizer_moments(dir, &mut opt)?;
    opt.t = state.adam_t;
    Ok((model, opt, state))
}

/// Restores the AdamW moments `m.<param>` / `v.<param>` of every slot of `opt` exactly from
/// `dir/optimizer.safetensors` (the step count `t` is the caller's, from its state file).
pub fn read_optimizer_moments(dir: &Path, opt: &mut AdamW) -> Result<()> {
    let moments = seqlab_tensor::load(dir.join(OPTIMIZER_FILE), &Device::Cpu)?;
    for AdamSlot { name, m, v, .. } in opt.slots.iter_mut() {
        let get = |k: String| {
            moments.get(&k).cloned().ok_or_else(|| {
                LmError::Train(format!(
                    "optimizer state of `{name}` missing in {}",
                    dir.display()
                ))
            })
        };
        *m = get(format!("m.{name}"))?;
        *v = get(format!("v.{name}"))?;
    }
    Ok(())
}
