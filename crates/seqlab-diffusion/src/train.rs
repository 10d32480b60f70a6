//! Training a masked diffusion LM (`seqlab diffusion train`) in the step loop of
//! `seqlab train` ([`run_steps`]): the same seeded batch sampler over the token shards, AdamW
//! with decoupled weight decay, linear warmup + cosine learning rate, global-norm clipping,
//! `metrics.jsonl` rows ([`seqlab_train::MetricRow`]; `train_loss` / `val_loss` are NELBO
//! estimates in nats/token), the loss plot, crash-safe checkpoints
//! ([`write_checkpoint_with`]) and bit-exact `--resume`.
//!
//! The loss of step s is [`crate::loss::diffusion_loss`] on the clean batch `batch_at(s)`
//! (antithetic t, independent masks) with the diffusion randomness drawn from an RNG seeded by
//! (seed, s) alone, so a resumed run draws the same t and masks as an uninterrupted one.
//! Validation: the same loss, over the first `eval_batches` evaluation batches of the val split
//! with a fixed RNG (the same t and masks at every evaluation, so values are comparable).

use crate::backbone::{AnyDenoiser, DiffusionConfig};
use crate::error::{DiffusionError, Result};
use crate::loss::{diffusion_loss, scalar};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_data::{Split, SplitView, TokenDataset};
use seqlab_train::{
    checkpoint_to_resume, read_optimizer, read_trainer_state, run_steps, write_checkpoint_with,
    AdamW, ConfigChange, LoopStart, MetricsHistory, TrainOptions, TrainSummary, TrainerState,
    METRICS_FILE,
};
use std::path::Path;

/// `trainer_state.json` of a diffusion checkpoint: step, seed, sampler state, AdamW's step
/// count and the configuration ([`DiffusionConfig::to_value`]).
pub type DiffusionTrainerState = TrainerState<serde_json::Value>;

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
    for batch in cfg.lm.eval_batches(view)?.take(max_batches) {
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
        return Err(DiffusionError::Input(
            "the validation split holds no full window".into(),
        ));
    }
    Ok(sum / count as f64)
}

/// Reads a diffusion checkpoint directory: the model, AdamW (moments restored exactly) and the
/// trainer state.
pub fn read_checkpoint(
    dir: &Path,
    weight_decay: f64,
) -> Result<(AnyDenoiser, AdamW, DiffusionTrainerState)> {
    let state: DiffusionTrainerState = read_trainer_state(dir)?;
    let model = AnyDenoiser::load(dir)?;
    let opt = read_optimizer(
        dir,
        model.params(),
        weight_decay,
        model.decay_fn(),
        state.adam_t,
    )?;
    Ok((model, opt, state))
}

/// The config of the diffusion run in `run_dir`: the one its checkpoint was trained with
/// (verified and read under the run's lock, see [`seqlab_train::read_run_state`]). A resume without a config file continues with it.
pub fn stored_config(run_dir: &Path) -> Result<DiffusionConfig> {
    let state: DiffusionTrainerState = seqlab_train::read_run_state(run_dir)?;
    DiffusionConfig::from_value(state.config)
}

/// The keys a diffusion resume may change: the schedule's length and the cadence of
/// checkpoints, validation and metrics rows (docs/training.md#resume).
pub const RESUME_CHANGEABLE: [&str; 4] =
    ["max_steps", "checkpoint_every", "eval_every", "log_every"];

/// The changes resuming the run of `state` with `cfg` makes: the differences from the
/// checkpoint's config, each in a key that may change, or the error naming the first key that
/// may not (docs/training.md#resume); and the schedule must not end before the checkpoint.
fn check_resume_config(
    state: &DiffusionTrainerState,
    cfg: &DiffusionConfig,
) -> Result<Vec<ConfigChange>> {
    if state.seed != cfg.lm.seed {
        return Err(DiffusionError::Mismatch(format!(
            "the checkpoint was trained with seed {}, the config says {}",
            state.seed, cfg.lm.seed
        )));
    }
    // Through the config type, so keys an older checkpoint lacks compare as their defaults.
    let stored = DiffusionConfig::from_value(state.config.clone())?.to_value();
    let changes =
        seqlab_train::config_changes(&stored, &cfg.to_value(), &RESUME_CHANGEABLE, state.step)?;
    if cfg.lm.max_steps < state.step {
        return Err(seqlab_train::TrainError::ScheduleEndsBeforeCheckpoint {
            max_steps: cfg.lm.max_steps,
            step: state.step,
        }
        .into());
    }
    Ok(changes)
}

/// Trains (or resumes) the masked diffusion LM of `cfg` on `opts.data`, writing into
/// `opts.run_dir`: `metrics.jsonl`, `loss.png`, `train_config.json` and `checkpoint/` (a
/// loadable denoiser directory with `tokenizer.json`, plus the optimizer and trainer state).
pub fn train(cfg: &DiffusionConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    cfg.validate()?;
    if !opts.data.is_dir() {
        return Err(DiffusionError::Io(format!(
            "data directory {} does not exist",
            opts.data.display()
        )));
    }
    let ds = TokenDataset::open(&opts.data)?;
    let train_view = ds.split(Split::Train)?;
    let val_view = ds.split(Split::Val)?;
    let vocab = ds.vocab_size();
    // The denoiser's vocabulary is the data's plus the mask id.
    cfg.lm
        .check_fits(vocab + 1)
        .map_err(DiffusionError::Config)?;
    let run = &opts.run_dir;
    std::fs::create_dir_all(run).map_err(|e| {
        DiffusionError::Io(format!(
            "cannot create run directory {}: {e}",
            run.display()
        ))
    })?;
    // Held until this function returns (or the process dies).
    let _lock = seqlab_train::claim_run_dir(opts)?;
    let lm = &cfg.lm;

    let (model, mut opt, start, earlier, changes) = if opts.resume {
        let dir = checkpoint_to_resume(run)?;
        let (model, opt, state) = read_checkpoint(&dir, lm.weight_decay)?;
        if !model.config().same_model(cfg) {
            return Err(DiffusionError::Mismatch(
                "the checkpoint's model differs from the config's (backbone, sizes, bidir, time conditioning)"
                    .into(),
            ));
        }
        use crate::denoiser::Denoiser;
        if model.vocab_size() != vocab + 1 {
            return Err(DiffusionError::Mismatch(format!(
                "the checkpoint's vocabulary ({} with [MASK]) does not match the data's ({vocab} + 1)",
                model.vocab_size()
            )));
        }
        let changes = check_resume_config(&state, cfg)?;
        let earlier = MetricsHistory::read(&run.join(METRICS_FILE), state.step)?;
        (model, opt, state.step, earlier, changes)
    } else {
        let model = AnyDenoiser::init(cfg, vocab)?;
        let opt = AdamW::new(model.params(), lm.weight_decay, model.decay_fn())?;
        (model, opt, 0, MetricsHistory::default(), Vec::new())
    };
    let mut sampler = lm.train_batches(&train_view, start)?;
    // The run is about to start: record what the resume changed and the config it runs with.
    seqlab_train::record_config_changes(run, &changes)?;
    let cfg_json = serde_json::to_string_pretty(&cfg.to_value()).expect("config serialises");
    seqlab_io::write_atomic(run.join("train_config.json"), cfg_json.as_bytes())
        .map_err(|e| DiffusionError::Io(format!("run directory is not writable: {e}")))?;

    let tokenizer = ds.tokenizer_path().filter(|p| p.is_file());
    let start = LoopStart {
        step: start,
        earlier,
    };
    let mut summary = run_steps(
        &lm.loop_config(),
        opts,
        start,
        model.params(),
        &mut opt,
        &mut sampler,
        "nelbo",
        |step, batch| {
            let mut rng = step_rng(lm.seed, step);
            let (loss, _) = diffusion_loss(
                &model,
                &batch.inputs,
                lm.batch_size,
                &cfg.diffusion.schedule,
                cfg.diffusion.t_eps,
                &mut rng,
            )?;
            Ok(loss)
        },
        || evaluate(&model, &val_view, cfg, lm.eval_batches),
        |step, sampler, opt| {
            let state = DiffusionTrainerState {
                step,
                seed: lm.seed,
                sampler,
                adam_t: opt.t,
                config: cfg.to_value(),
            };
            let json = serde_json::to_string_pretty(&state).expect("state serialises");
            write_checkpoint_with(
                run,
                |dir| model.save(dir),
                opt,
                json.as_bytes(),
                tokenizer.as_deref(),
            )
        },
    )?;
    summary.config_changes = changes;
    Ok(summary)
}
