//! Training a Mamba or Transformer LM on a prepared token dataset (`seqlab train`).
//!
//! - [`config`]: the JSON configuration ([`TrainConfig`]; `model` picks the family);
//! - [`model`]: [`TrainModel`], the trainable families behind one enum;
//! - [`optim`]: AdamW with decoupled weight decay (none on `A_log`, `D`, norms, biases), linear
//!   warmup + cosine schedule, global-norm clipping;
//! - [`checkpoint`]: atomic checkpoints and exact resume;
//! - [`plot`]: the loss-curve PNG.
//!
//! [`train`] runs the loop: batch `t` is `BatchSampler::batch_at(t)` (a pure function of
//! (seed, t)), the model's forward and backward passes reduce in a fixed order, and the
//! checkpoint holds the weights, both AdamW moments and the step, so a run resumed from a
//! checkpoint continues with bit-identical losses. Every `log_every` steps one JSON line goes to
//! `RUN_DIR/metrics.jsonl` (`step`, `lr`, `train_loss`, `grad_norm`, `tokens_per_s`, and
//! `val_loss` when validation ran); the curve is redrawn into `RUN_DIR/loss.png` at every
//! checkpoint. A non-finite loss stops the run with an error naming the step.

pub mod checkpoint;
pub mod config;
pub mod model;
pub mod optim;
pub mod plot;

pub use checkpoint::{
    find_checkpoint, read_checkpoint, read_optimizer_moments, write_checkpoint,
    write_checkpoint_with, TrainerState,
};
pub use config::{MlpName, ModelKind, TrainConfig};
pub use model::TrainModel;
pub use optim::{clip_grad_norm, global_norm, lr_at, AdamW};

use crate::error::{LmError, Result};
use crate::mamba::train_model::{cross_entropy, window_seq_idx};
use candle_core::{DType, Device};
use indicatif::{ProgressBar, ProgressStyle};
use seqlab_data::{BatchSampler, SamplerState, SequentialBatches, Split, SplitView, TokenDataset};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// Validation loss: mean cross-entropy over the first `max_batches` [`SequentialBatches`]
/// of `view` (summed per token in f64).
pub fn evaluate(
    model: &TrainModel,
    view: &SplitView,
    batch_size: usize,
    seq_len: usize,
    max_batches: usize,
    packed: bool,
) -> Result<f64> {
    let mut sum = 0f64;
    let mut count = 0usize;
    for batch in SequentialBatches::new(view.clone(), batch_size, seq_len)?.take(max_batches) {
        let seq = packed.then(|| window_seq_idx(view.doc_starts(), &batch.starts, batch.seq_len));
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
    // Rewrite the metrics file with the kept history (nothing on a fresh run).
    let mut text = String::new();
    for row in &earlier {
        text.push_str(&serde_json::to_string(row).expect("row serialises"));
        text.push('\n');
    }
    seqlab_io::write_atomic(&metrics_path, text.as_bytes())
        .map_err(|e| train_err(e.to_string()))?;
    let mut metrics_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| train_err(format!("cannot open {}: {e}", metrics_path.display())))?;

    let end = opts.stop_at.unwrap_or(cfg.max_steps).min(cfg.max_steps);
    let mut sampler = BatchSampler::from_state(
        train_view.clone(),
        cfg.batch_size,
        cfg.seq_len,
        SamplerState {
            seed: cfg.seed,
            step: start,
        },
    )?;
    let tokenizer = ds.tokenizer_path().filter(|p| p.is_file());
    let bar = if opts.progress {
        let b = ProgressBar::new(end.saturating_sub(start));
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed}<{eta}] {msg}")
                .expect("valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let t0 = Instant::now();
    let mut summary = TrainSummary {
        steps: start,
        metrics: Vec::new(),
        val_loss: None,
        seconds: 0.0,
    };
    let mut step = start;
    while step < end {
        let ts = Instant::now();
        let batch = sampler.next_batch();
        let seq = cfg
            .packed
            .then(|| window_seq_idx(train_view.doc_starts(), &batch.starts, cfg.seq_len));
        let logits = model.forward(&batch.inputs, cfg.batch_size, seq.as_deref())?;
        let loss = cross_entropy(&logits, &batch.targets)?;
        let loss_v = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !loss_v.is_finite() {
            return Err(train_err(format!(
                "training diverged: the loss is {loss_v} at step {} (lower the learning rate)",
                step + 1
            )));
        }
        let mut grads = loss.backward()?;
        let norm = clip_grad_norm(model.params(), &mut grads, cfg.grad_clip)?;
        if !norm.is_finite() {
            return Err(train_err(format!(
                "training diverged: the gradient norm is {norm} at step {}",
                step + 1
            )));
        }
        let lr = lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps);
        opt.step(model.params(), &grads, lr)?;
        step += 1;
        let tps = (cfg.batch_size * cfg.seq_len) as f64 / ts.elapsed().as_secs_f64().max(1e-9);
        let eval_now = (cfg.eval_every > 0 && step % cfg.eval_every == 0) || step == end;
        let val = if eval_now {
            let v = evaluate(
                &model,
                &val_view,
                cfg.batch_size,
                cfg.seq_len,
                cfg.eval_batches,
                cfg.packed,
            )?;
            summary.val_loss = Some(v);
            Some(v)
        } else {
            None
        };
        if step % cfg.log_every == 0 || val.is_some() || step == end {
            let row = MetricRow {
                step,
                lr,
                train_loss: loss_v,
                grad_norm: norm,
                tokens_per_s: tps,
                val_loss: val,
            };
            writeln!(
                metrics_file,
                "{}",
                serde_json::to_string(&row).expect("row serialises")
            )
            .map_err(|e| train_err(format!("cannot write {}: {e}", metrics_path.display())))?;
            summary.metrics.push(row);
        }
        bar.set_message(format!(
            "loss {loss_v:.4}{} | {tps:.0} tok/s",
            val.map(|v| format!(" val {v:.4}")).unwrap_or_default()
        ));
        bar.inc(1);
        if (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) || step == end {
            let state = TrainerState {
                step,
                seed: cfg.seed,
                sampler: sampler.state(),
                adam_t: opt.t,
                config: cfg.clone(),
            };
            write_checkpoint(run, &model, &opt, &state, tokenizer.as_deref())?;
            write_plot(run, earlier.iter().chain(&summary.metrics))?;
        }
    }
    bar.finish_and_clear();
    summary.steps = step;
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
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
