//! Training a Mamba or Transformer LM on a prepared token dataset (`seqlab train`).
//!
//! - [`config`]: the JSON configuration ([`TrainConfig`]; `model` picks the family);
//! - [`model`]: [`TrainModel`], the trainable families behind one enum;
//! - [`optim`]: AdamW with decoupled weight decay (none on `A_log`, `D`, norms, biases), linear
//!   warmup + cosine schedule, global-norm clipping;
//! - [`checkpoint`]: atomic checkpoints and exact resume;
//! - [`plot`]: the loss-curve PNG;
//! - [`step_loop`]: the optimisation loop, shared with the diffusion trainer.
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
pub mod optim;
pub mod plot;
pub mod step_loop;

pub use checkpoint::{
    find_checkpoint, read_checkpoint, read_optimizer_moments, write_checkpoint,
    write_checkpoint_with, TrainerState,
};
pub use config::{MlpName, ModelKind, TrainConfig};
pub use model::TrainModel;
pub use optim::{clip_grad_norm, global_norm, lr_at, AdamW};
pub use step_loop::{run_steps, LoopStart};

use crate::error::{LmError, Result};
use crate::mamba::train_model::{cross_entropy, window_seq_idx};
use candle_core::{DType, Device};
use seqlab_data::{Split, SplitView, TokenDataset};
use std::path::{Path, PathBuf};

/// Metrics file name in the run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Loss-curve file name in the run directory.
pub const PLOT_FILE: &str = "loss.png";

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Prepared dataset directory (`seqlab prepare`).
    pub data: PathBuf,
    /// Run directory (metrics, plot, checkpoint).
    pub run_dir: PathBuf,
    /// Continue from `RUN_DIR/checkpoint`.
    pub resume: bool,
    /// Stop (with a checkpoint) after this many steps, without changing the schedule.
    pub stop_at: Option<u64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricRow {
    /// Optimizer steps completed.
    pub step: u64,
    /// Learning rate of that step.
    pub lr: f64,
    /// Mean train cross-entropy (nats/token) of that step's batch.
    pub train_loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Training throughput of the step.
    pub tokens_per_s: f64,
    /// Validation loss, when computed at this step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Steps completed (total, including before a resume).
    pub steps: u64,
    /// Metrics of the steps run by this call.
    pub metrics: Vec<MetricRow>,
    /// Last validation loss.
    pub val_loss: Option<f64>,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
}

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
        return Err(LmError::Train(
            "the validation split holds no full window".into(),
        ));
    }
    Ok(sum / count as f64)
}

fn train_err(msg: String) -> LmError {
    LmError::Train(msg)
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
        .map_err(|e| train_err(format!("bad training config: {e}")))?;
    if !opts.data.is_dir() {
        return Err(train_err(format!(
            "data directory {} does not exist",
            opts.data.display()
        )));
    }
    let ds = TokenDataset::open(&opts.data)?;
    let train_view = ds.split(Split::Train)?;
    let val_view = ds.split(Split::Val)?;
    let vocab = ds.vocab_size();
    let run = &opts.run_dir;
    std::fs::create_dir_all(run).map_err(|e| {
        train_err(format!(
            "cannot create run directory {}: {e}",
            run.display()
        ))
    })?;
    let cfg_json = serde_json::to_string_pretty(cfg).expect("config serialises");
    seqlab_io::write_atomic(run.join("train_config.json"), cfg_json.as_bytes())
        .map_err(|e| train_err(format!("run directory is not writable: {e}")))?;

    let metrics_path = run.join(METRICS_FILE);
    let (model, mut opt, start, earlier) = if opts.resume {
        let dir = find_checkpoint(run).ok_or_else(|| {
            train_err(format!(
                "--resume: no checkpoint in {} (expected {}/checkpoint/trainer_state.json)",
                run.display(),
                run.display()
            ))
        })?;
        let (model, opt, state) = read_checkpoint(&dir, cfg.weight_decay)?;
        model.check_matches(cfg, vocab)?;
        let (model, opt) = (model.to_device(device)?, opt.to_device(device)?);
        if state.seed != cfg.seed {
            return Err(train_err(format!(
                "the checkpoint was trained with seed {}, the config says {}",
                state.seed, cfg.seed
            )));
        }
        let earlier = read_metrics(&metrics_path, state.step)?;
        (model, opt, state.step, earlier)
    } else {
        let model = TrainModel::init(cfg, vocab, DType::F32)?.to_device(device)?;
        let opt = AdamW::new(model.params(), cfg.weight_decay, model.decay_fn())?;
        (model, opt, 0, Vec::new())
    };
    let mut sampler = cfg.train_batches(&train_view, start)?;
    let tokenizer = ds.tokenizer_path().filter(|p| p.is_file());
    let start = LoopStart {
        step: start,
        earlier,
    };
    run_steps(
        cfg,
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
    )
}

/// Rows of an existing metrics file with `step ≤ upto` (the rest were written after the
/// checkpoint being resumed).
pub fn read_metrics(path: &Path, upto: u64) -> Result<Vec<MetricRow>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<MetricRow>(l).ok())
        .filter(|r| r.step <= upto)
        .collect())
}

/// The loss curve of `rows` (the kept rows of a resumed run, then this call's) as `loss.png`.
pub fn write_plot<'a>(run: &Path, rows: impl Iterator<Item = &'a MetricRow>) -> Result<()> {
    let points: Vec<plot::CurvePoint> = rows
        .map(|r| plot::CurvePoint {
            step: r.step,
            train: r.train_loss,
            val: r.val_loss,
        })
        .collect();
    let png = plot::loss_curve_png(&points).map_err(|e| train_err(format!("plot: {e}")))?;
    seqlab_io::write_atomic(run.join(PLOT_FILE), &png).map_err(|e| train_err(e.to_string()))
}
