//! The LM's training checkpoint: `RUN_DIR/checkpoint/` holds the model's `model.safetensors`
//! and `config.json` beside what every trainer writes (seqlab-train's crash-safe checkpoint
//! directory: `tokenizer.json`, `optimizer.safetensors`, `trainer_state.json`). The state's
//! config is the run's [`TrainConfig`], which names the model family to load.

use crate::error::Result;
use crate::train::config::TrainConfig;
use crate::train::model::TrainModel;
use seqlab_train::{read_optimizer, read_trainer_state, write_checkpoint_with, AdamW};
use std::path::Path;

pub use seqlab_train::{CHECKPOINT_DIR, OPTIMIZER_FILE, STATE_FILE};

/// `trainer_state.json` of an LM run (step, seed, sampler state, AdamW's t, the config).
pub type TrainerState = seqlab_train::TrainerState<TrainConfig>;

/// Writes a checkpoint of `model`, `opt` and `state` into `run_dir/checkpoint/`
/// ([`write_checkpoint_with`]).
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

/// Reads a checkpoint: model, trainer state and the optimizer (moments restored exactly).
/// The model family is the one the state's config names (Mamba for checkpoints written before
/// the `model` key existed).
pub fn read_checkpoint(dir: &Path, weight_decay: f64) -> Result<(TrainModel, AdamW, TrainerState)> {
    let state: TrainerState = read_trainer_state(dir)?;
    let model = TrainModel::load(state.config.model, dir)?;
    let opt = read_optimizer(
        dir,
        model.params(),
        weight_decay,
        model.decay_fn(),
        state.adam_t,
    )?;
    Ok((model, opt, state))
}
