//! Training a masked diffusion LM (`seqlab diffusion train`) with the loop pieces of
//! `seqlab train` (`seqlab_lm::train`): the same seeded [`BatchSampler`] over the token shards,
//! AdamW with decoupled weight decay, linear warmup + cosine learning rate, global-norm
//! clipping, `metrics.jsonl` rows ([`MetricRow`]; `train_loss` / `val_loss` are NELBO
//! estimates in nats/token), the loss plot, crash-safe checkpoints
//! ([`write_checkpoint_with`]) and bit-exact `--resume`.
//!
//! The loss of step s is [`crate::loss::diffusion_loss`] on the clean batch `batch_at(s)`
//! (antithetic t, independent masks) with the diffusion randomness drawn from an RNG seeded by
//! (seed, s) alone, so a resumed run draws the same t and masks as an uninterrupted one.
//! Validation: the same loss, over the first `eval_batches` sequential windows of the val split
//! with a fixed RNG (the same t and masks at every evaluation, so values are comparable).

use crate::backbone::{AnyDenoiser, DiffusionConfig};
use crate::error::{DiffusionError, Result};
use crate::loss::{diffusion_loss, scalar};
use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_data::{BatchSampler, SamplerState, SequentialBatches, Split, SplitView, TokenDataset};
use seqlab_lm::train::{
    clip_grad_norm, find_checkpoint, lr_at, read_metrics, read_optimizer_moments,
    write_checkpoint_with, write_plot, AdamW, MetricRow, METRICS_FILE,
};
use seqlab_lm::{TrainOptions, TrainSummary};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// `trainer_state.json` of a diffusion checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffusionTrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    /// The run's seed.
    pub seed: u64,
    /// The batch sampler's state.
    pub sampler: SamplerState,
    /// AdamW's step count.
    pub adam_t: u64,
    /// The configuration ([`DiffusionConfig::to_value`]).
    pub config: serde_json::Value,
}

fn err(msg: String) -> DiffusionError {
    DiffusionError::Invalid(msg)
}

/// The RNG of the diffusion draws (t, masks) of step `step`: a pure function of (seed, step).
pub fn step_rng(seed: u64, step: u64) -> StdRng {
    // SplitMix64 finaliser of the pair, so neighbouring steps get unrelated streams.
    let mut z = seed ^ step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// Validation NELBO estimate: the training loss over the first `max_batches` sequential windows
/// of `view`, weighted by tokens, with the fixed RNG `step_rng(seed, u64::MAX)`.
pub fn evaluate(
    model: &AnyDenoiser,
    view: &SplitView,
    cfg: &DiffusionConfig,
    max_batches: usize,
) -> Result<f64> {
    let mut rng = step_rng(cfg.lm.seed, u64::MAX);
    let (mut sum, mut count) = (0f64, 0usize);
    for batch in
        SequentialBatches::new(view.clone(), cfg.lm.batch_size, cfg.lm.seq_len)?.take(max_batches)
    {
        let (loss, _) = diffusion_loss(
            model,
            &batch.inputs,
            batch.batch_size,
            &cfg.diffusion.schedule,
            cfg.diffusion.t_eps,
            &mut rng,
        )?;
        sum += scalar(&loss)? * batch.inputs.len() as f64;
        count += batch.inputs.len();
    }
    if count == 0 {
        return Err(err("the validation split holds no full window".into()));
    }
    Ok(sum / count as f64)
}

/// Reads a diffusion checkpoint directory: the model, AdamW (moments restored exactly) and the
/// trainer state.
pub fn read_checkpoint(
    dir: &Path,
    weight_decay: f64,
) -> Result<(AnyDenoiser, AdamW, DiffusionTrainerState)> {
    let path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    let state: DiffusionTrainerState = serde_json::from_str(&text)
        .map_err(|e| err(format!("bad trainer state {}: {e}", path.display())))?;
    let model = AnyDenoiser::load(dir)?;
    let mut opt = AdamW::new(model.params(), weight_decay, model.decay_fn())?;
    read_optimizer_moments(dir, &mut opt)?;
    opt.t = state.adam_t;
    Ok((model, opt, state))
}

/// Trains (or resumes) the masked diffusion LM of `cfg` on `opts.data`, writing into
/// `opts.run_dir`: `metrics.jsonl`, `loss.png`, `train_config.json` and `checkpoint/` (a
/// loadable denoiser directory with `tokenizer.json`, plus the optimizer and trainer state).
pub fn train(cfg: &DiffusionConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    cfg.validate()?;
    if !opts.data.is_dir() {
        return Err(err(format!(
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
        err(format!(
            "cannot create run directory {}: {e}",
            run.display()
        ))
    })?;
    let cfg_json = serde_json::to_string_pretty(&cfg.to_value()).expect("config serialises");
    seqlab_io::write_atomic(run.join("train_config.json"), cfg_json.as_bytes())
        .map_err(|e| err(format!("run directory is not writable: {e}")))?;
    let lm = &cfg.lm;

    let metrics_path = run.join(METRICS_FILE);
    let (model, mut opt, start, earlier) = if opts.resume {
        let dir = find_checkpoint(run).ok_or_else(|| {
            err(format!(
                "--resume: no checkpoint in {} (expected {}/checkpoint/trainer_state.json)",
                run.display(),
                run.display()
            ))
        })?;
        let (model, opt, state) = read_checkpoint(&dir, lm.weight_decay)?;
        if !model.config().same_model(cfg) {
            return Err(err(
                "the checkpoint's model differs from the config's (backbone, sizes, bidir, time conditioning)"
                    .into(),
            ));
        }
        use crate::denoiser::Denoiser;
        if model.vocab_size() != vocab + 1 {
            return Err(err(format!(
                "the checkpoint's vocabulary ({} with [MASK]) does not match the data's ({vocab} + 1)",
                model.vocab_size()
            )));
        }
        if state.seed != lm.seed {
            return Err(err(format!(
                "the checkpoint was trained with seed {}, the config says {}",
                state.seed, lm.seed
            )));
        }
        let earlier = read_metrics(&metrics_path, state.step)?;
        (model, opt, state.step, earlier)
    } else {
        let model = AnyDenoiser::init(cfg, vocab)?;
        let opt = AdamW::new(model.params(), lm.weight_decay, model.decay_fn())?;
        (model, opt, 0, Vec::new())
    };
    let mut text = String::new();
    for row in &earlier {
        text.push_str(&serde_json::to_string(row).expect("row serialises"));
        text.push('\n');
    }
    seqlab_io::write_atomic(&metrics_path, text.as_bytes()).map_err(|e| err(e.to_string()))?;
    let mut metrics_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| err(format!("cannot open {}: {e}", metrics_path.display())))?;

    let end = opts.stop_at.unwrap_or(lm.max_steps).min(lm.max_steps);
    let mut sampler = BatchSampler::from_state(
        train_view.clone(),
        lm.batch_size,
        lm.seq_len,
        SamplerState {
            seed: lm.seed,
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
        let mut rng = step_rng(lm.seed, step);
        let (loss, _) = diffusion_loss(
            &model,
            &batch.inputs,
            lm.batch_size,
            &cfg.diffusion.schedule,
            cfg.diffusion.t_eps,
            &mut rng,
        )?;
        let loss_v = scalar(&loss)?;
        if !loss_v.is_finite() {
            return Err(err(format!(
                "training diverged: the loss is {loss_v} at step {} (lower the learning rate)",
                step + 1
            )));
        }
        let mut grads = Tensor::backward(&loss)?;
        let norm = clip_grad_norm(model.params(), &mut grads, lm.grad_clip)?;
        if !norm.is_finite() {
            return Err(err(format!(
                "training diverged: the gradient norm is {norm} at step {}",
                step + 1
            )));
        }
        let lr = lr_at(step, lm.lr, lm.min_lr, lm.warmup_steps, lm.max_steps);
        opt.step(model.params(), &grads, lr)?;
        step += 1;
        let tps = (lm.batch_size * lm.seq_len) as f64 / ts.elapsed().as_secs_f64().max(1e-9);
        let eval_now = (lm.eval_every > 0 && step.is_multiple_of(lm.eval_every)) || step == end;
        let val = if eval_now {
            let v = evaluate(&model, &val_view, cfg, lm.eval_batches)?;
            summary.val_loss = Some(v);
            Some(v)
        } else {
            None
        };
        if step.is_multiple_of(lm.log_every) || val.is_some() || step == end {
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
            .map_err(|e| err(format!("cannot write {}: {e}", metrics_path.display())))?;
            summary.metrics.push(row);
        }
        bar.set_message(format!(
            "nelbo {loss_v:.4}{} | {tps:.0} tok/s",
            val.map(|v| format!(" val {v:.4}")).unwrap_or_default()
        ));
        bar.inc(1);
        if (lm.checkpoint_every > 0 && step.is_multiple_of(lm.checkpoint_every)) || step == end {
            let state = DiffusionTrainerState {
                step,
                seed: lm.seed,
                sampler: sampler.state(),
                adam_t: opt.t,
                config: cfg.to_value(),
            };
            let json = serde_json::to_string_pretty(&state).expect("state serialises");
            write_checkpoint_with(
                run,
                |dir| {
                    model
                        .save(dir)
                        .map_err(|e| seqlab_lm::LmError::Train(e.to_string()))
                },
                &opt,
                json.as_bytes(),
                tokenizer.as_deref(),
            )?;
            write_plot(run, earlier.iter().chain(&summary.metrics))?;
        }
    }
    bar.finish_and_clear();
    summary.steps = step;
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
}
