//! Training a Mamba, Transformer, S4 or SaShiMi LM on a prepared token dataset (`seqlab train`).
//!
//! - [`config`]: the JSON configuration ([`TrainConfig`]; `model` picks the family);
//! - [`model`]: [`TrainModel`], the trainable families behind one enum, with their weight-decay
//!   groups (none on `A_log`, `D`, norms, biases);
//! - [`checkpoint`]: the LM's checkpoint (model files + [`TrainerState`]) and exact resume.
//!
//! The model-independent machinery comes from seqlab-train and is re-exported here: the step
//! loop ([`run_steps`]), AdamW with the warmup + cosine schedule and global-norm clipping,
//! crash-safe checkpoint directories, `metrics.jsonl` and the loss-curve PNG.
//!
//! [`train`] runs the loop with the cross-entropy of the next token: batch `t` is
//! [`TrainConfig::train_batches`]`.batch_at(t)` (a pure function of (seed, t)), the model's
//! forward and backward passes reduce in a fixed order, and the checkpoint holds the weights,
//! both AdamW moments and the step, so a run resumed from a checkpoint continues with
//! bit-identical losses. Every `log_every` steps one JSON line goes to `RUN_DIR/metrics.jsonl`
//! (`step`, `lr`, `train_loss`, `grad_norm`, `tokens_per_s`, and `val_loss` when validation
//! ran); the curve is redrawn into `RUN_DIR/loss.png` at every checkpoint. A non-finite loss
//! stops the run with an error naming the step.

pub mod checkpoint;
pub mod config;
pub mod model;

pub use checkpoint::{read_checkpoint, write_checkpoint, TrainerState};
pub use config::{MlpName, ModelKind, TrainConfig};
pub use model::TrainModel;
pub use seqlab_train::{
    checkpoint_to_resume, clip_grad_norm, find_checkpoint, global_norm, lr_at, read_metrics,
    read_optimizer_moments, run_steps, write_checkpoint_with, write_plot, AdamW, ConfigChange,
    LoopConfig, LoopStart, MetricRow, MetricsHistory, TrainOptions, TrainSummary,
    CONFIG_CHANGES_FILE, METRICS_FILE, PLOT_FILE,
};

use crate::error::{LmError, Result};
use crate::mamba::train_model::{cross_entropy, window_seq_idx};
use candle_core::{DType, Device};
use seqlab_data::{Split, SplitView, TokenDataset};
use std::path::Path;

/// Validation loss: mean cross-entropy over the first `cfg.eval_batches` of
/// [`TrainConfig::eval_batches`] of `view` (summed per token in f64).
pub fn evaluate(model: &TrainModel, view: &SplitView, cfg: &TrainConfig) -> Result<f64> {
    let mut sum = 0f64;
    let mut count = 0usize;
    for batch in cfg.eval_batches(view)?.take(cfg.eval_batches) {
        let seq = cfg
            .packed
            .then(|| window_seq_idx(view.doc_starts(), &batch.starts, batch.seq_len));
        let logits = model.forward(&batch.inputs, batch.batch_size, seq.as_deref())?;
        let loss = cross_entropy(&logits, &batch.targets)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        sum += loss * batch.targets.len() as f64;
        count += batch.targets.len();
    }
    if count == 0 {
        return Err(LmError::Mismatch(
            "the validation split holds no full window".into(),
        ));
    }
    Ok(sum / count as f64)
}

/// The config of the run in `run_dir`: the one its checkpoint was trained with (verified and
/// read under the run's lock, see [`seqlab_train::read_run_state`]). A resume without a config file continues with it.
pub fn stored_config(run_dir: &Path) -> Result<TrainConfig> {
    let state: TrainerState = seqlab_train::read_run_state(run_dir)?;
    Ok(state.config)
}

/// The changes resuming the run of `state` with `cfg` makes: the differences from the
/// checkpoint's config, each in a key that may change, or the error naming the first key that
/// may not (docs/training.md#resume); and the schedule must not end before the checkpoint.
fn check_resume_config(state: &TrainerState, cfg: &TrainConfig) -> Result<Vec<ConfigChange>> {
    if state.seed != cfg.seed {
        return Err(LmError::Mismatch(format!(
            "the checkpoint was trained with seed {}, the config says {}",
            state.seed, cfg.seed
        )));
    }
    let value = |c: &TrainConfig| serde_json::to_value(c).expect("config serialises");
    let changes = seqlab_train::config_changes(
        &value(&state.config),
        &value(cfg),
        &state.config.resume_changeable(),
        state.step,
    )?;
    if cfg.max_steps < state.step {
        return Err(seqlab_train::TrainError::ScheduleEndsBeforeCheckpoint {
            max_steps: cfg.max_steps,
            step: state.step,
        }
        .into());
    }
    Ok(changes)
}

/// Trains (or resumes) the LM `cfg.model` names with `cfg` on `opts.data`, writing into `opts.run_dir`.
pub fn train(cfg: &TrainConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    train_on(cfg, opts, &Device::Cpu)
}

/// [`train`] with the model, its gradients and the optimizer state on `device` (e.g. a CUDA
/// GPU). The model is initialised on the CPU and copied, so a run starts from the same weights
/// on every device; checkpoints are written from host copies and resume onto any device.
pub fn train_on(cfg: &TrainConfig, opts: &TrainOptions, device: &Device) -> Result<TrainSummary> {
    cfg.validate()
        .map_err(|e| LmError::InvalidConfig(format!("bad training config: {e}")))?;
    if !opts.data.is_dir() {
        return Err(LmError::DataDirNotFound {
            path: opts.data.clone(),
        });
    }
    let ds = TokenDataset::open(&opts.data)?;
    let train_view = ds.split(Split::Train)?;
    let val_view = ds.split(Split::Val)?;
    let vocab = ds.vocab_size();
    cfg.check_fits(vocab).map_err(LmError::InvalidConfig)?;
    let run = &opts.run_dir;
    std::fs::create_dir_all(run).map_err(|source| LmError::RunDir {
        path: run.to_path_buf(),
        source,
    })?;
    // Held until this function returns (or the process dies).
    let _lock = seqlab_train::claim_run_dir(opts)?;

    let (model, mut opt, start, earlier, changes) = if opts.resume {
        let dir = checkpoint_to_resume(run)?;
        let (model, opt, state) = read_checkpoint(&dir, cfg.weight_decay)?;
        model.check_matches(cfg, vocab)?;
        let changes = check_resume_config(&state, cfg)?;
        let earlier = MetricsHistory::read(&run.join(METRICS_FILE), state.step)?;
        let (model, opt) = (model.to_device(device)?, opt.to_device(device)?);
        (model, opt, state.step, earlier, changes)
    } else {
        let model = TrainModel::init(cfg, vocab, DType::F32)?.to_device(device)?;
        let opt = AdamW::new(model.params(), cfg.weight_decay, model.decay_fn())?;
        (model, opt, 0, MetricsHistory::default(), Vec::new())
    };
    let mut sampler = cfg.train_batches(&train_view, start)?;
    // The run is about to start: record what the resume changed and the config it runs with.
    seqlab_train::record_config_changes(run, &changes)?;
    let cfg_json = serde_json::to_string_pretty(cfg).expect("config serialises");
    seqlab_io::write_atomic(run.join("train_config.json"), cfg_json.as_bytes())?;

    let tokenizer = ds.tokenizer_path().filter(|p| p.is_file());
    let start = LoopStart {
        step: start,
        earlier,
    };
    let mut summary = run_steps(
        &cfg.loop_config(),
        opts,
        start,
        model.params(),
        &mut opt,
        &mut sampler,
        "loss",
        |_, batch| {
            let seq = cfg
                .packed
                .then(|| window_seq_idx(train_view.doc_starts(), &batch.starts, cfg.seq_len));
            let logits = model.forward(&batch.inputs, cfg.batch_size, seq.as_deref())?;
            cross_entropy(&logits, &batch.targets)
        },
        || evaluate(&model, &val_view, cfg),
        |step, sampler, opt| {
            let state = TrainerState {
                step,
                seed: cfg.seed,
                sampler,
                adam_t: opt.t,
                config: cfg.clone(),
            };
            write_checkpoint(run, &model, opt, &state, tokenizer.as_deref())
        },
    )?;
    summary.config_changes = changes;
    Ok(summary)
}
