//! The optimisation loop every trainer shares (`seqlab train`, `seqlab audio train`,
//! `seqlab diffusion train`): the trainers differ only in their model, the loss of a batch,
//! the validation loss and what a checkpoint holds, which they pass in as closures.
//!
//! Step `s` (0-based) draws batch `s` of the sampler, takes `loss_of(s, batch)`, stops with an
//! error naming the step on a non-finite loss or gradient norm, clips the gradient to
//! `grad_clip` (global norm), and takes an AdamW step at `lr_at(s)` (linear warmup + cosine).
//! After the step it validates every `eval_every` steps and at the end, appends a
//! [`MetricRow`] to `metrics.jsonl` every `log_every` steps (and with every validation), and
//! every `checkpoint_every` steps and at the end calls `save` and redraws `loss.png`. The
//! order of these operations is fixed, so a resumed run repeats an uninterrupted one bit for bit.

use crate::config::LoopConfig;
use crate::error::TrainError;
use crate::metrics::{MetricRow, MetricsHistory, MetricsLog};
use crate::optim::{clip_grad_norm, AdamW};
use crate::plot::write_plot;
use candle_core::{DType, Tensor, Var};
use seqlab_data::{Batch, BatchSampler, SamplerState};
use std::path::PathBuf;
use std::time::Instant;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Prepared dataset directory (`seqlab prepare`).
    pub data: PathBuf,
    /// Run directory (metrics, plot, checkpoint).
    pub run_dir: PathBuf,
    /// Continue from `RUN_DIR/checkpoint`.
    pub resume: bool,
    /// A fresh run (not `resume`) into a directory that already holds a run removes that run
    /// first instead of refusing ([`crate::claim_run_dir`]).
    pub overwrite: bool,
    /// Stop (with a checkpoint) after this many steps, without changing the schedule.
    pub stop_at: Option<u64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
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
    /// The config changes this resume made (recorded in `config_changes.jsonl`; set by the
    /// trainer).
    pub config_changes: Vec<crate::config::ConfigChange>,
}

/// Where a run starts: its first step and the metric rows kept from the checkpoint resumed.
#[derive(Debug, Clone, Default)]
pub struct LoopStart {
    /// Steps already taken (0 for a fresh run).
    pub step: u64,
    /// Rows of `metrics.jsonl` up to `step` ([`MetricsHistory::read`]); written back byte for
    /// byte first.
    pub earlier: MetricsHistory,
}

/// Runs steps `start.step..min(stop_at, max_steps)` of `cfg` over `sampler` (positioned at
/// `start.step`), updating `params` with `opt`. `loss_of(step, batch)` is the scalar loss to
/// minimise, `validate()` the validation loss, and `save(step, sampler_state, opt)` writes a
/// checkpoint. `loss_name` labels the loss in the progress bar.
#[allow(clippy::too_many_arguments)]
pub fn run_steps<E: From<TrainError>>(
    cfg: &LoopConfig,
    opts: &TrainOptions,
    start: LoopStart,
    params: &[(String, Var)],
    opt: &mut AdamW,
    sampler: &mut BatchSampler,
    loss_name: &str,
    mut loss_of: impl FnMut(u64, &Batch) -> Result<Tensor, E>,
    mut validate: impl FnMut() -> Result<f64, E>,
    mut save: impl FnMut(u64, SamplerState, &AdamW) -> Result<(), E>,
) -> Result<TrainSummary, E> {
    let run = &opts.run_dir;
    // Rewrite the metrics file with the kept history (nothing on a fresh run).
    let mut metrics = MetricsLog::create(run, &start.earlier)?;

    let end = opts.stop_at.unwrap_or(cfg.max_steps).min(cfg.max_steps);
    let bar = seqlab_data::step_bar(opts.progress, end.saturating_sub(start.step));
    let t0 = Instant::now();
    let mut summary = TrainSummary {
        steps: start.step,
        metrics: Vec::new(),
        val_loss: None,
        seconds: 0.0,
        config_changes: Vec::new(),
    };
    let mut step = start.step;
    while step < end {
        let ts = Instant::now();
        let batch = sampler.next_batch();
        let loss = loss_of(step, &batch)?;
        let loss_v = loss
            .to_dtype(DType::F64)
            .and_then(|l| l.to_scalar::<f64>())
            .map_err(TrainError::from)?;
        if !loss_v.is_finite() {
            return Err(TrainError::LossNotFinite {
                value: loss_v,
                step: step + 1,
            }
            .into());
        }
        let mut grads = loss.backward().map_err(TrainError::from)?;
        let norm = clip_grad_norm(params, &mut grads, cfg.grad_clip)?;
        if !norm.is_finite() {
            return Err(TrainError::GradNormNotFinite {
                value: norm,
                step: step + 1,
            }
            .into());
        }
        let lr = cfg.lr_at(step);
        opt.step(params, &grads, lr)?;
        step += 1;
        let tps = cfg.tokens_per_step as f64 / ts.elapsed().as_secs_f64().max(1e-9);
        let eval_now = (cfg.eval_every > 0 && step.is_multiple_of(cfg.eval_every)) || step == end;
        let val = if eval_now {
            let v = validate()?;
            summary.val_loss = Some(v);
            Some(v)
        } else {
            None
        };
        if step.is_multiple_of(cfg.log_every) || val.is_some() || step == end {
            let row = MetricRow {
                step,
                lr,
                train_loss: loss_v,
                grad_norm: norm,
                tokens_per_s: tps,
                val_loss: val,
            };
            metrics.append(&row)?;
            summary.metrics.push(row);
        }
        bar.set_message(format!(
            "{loss_name} {loss_v:.4}{} | {tps:.0} tok/s",
            val.map(|v| format!(" val {v:.4}")).unwrap_or_default()
        ));
        bar.inc(1);
        if (cfg.checkpoint_every > 0 && step.is_multiple_of(cfg.checkpoint_every)) || step == end {
            save(step, sampler.state(), opt)?;
            write_plot(run, start.earlier.rows.iter().chain(&summary.metrics))?;
        }
    }
    bar.finish_and_clear();
    summary.steps = step;
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
}
