//! `seqlab diffusion train --backbone transformer|mamba --data DIR -o RUN [--config CFG.json]
//! [--steps N] [--stop-after N] [--schedule NAME] [--resume | --overwrite]`: trains a masked diffusion LM
//! (`seqlab_diffusion::train`) and writes `RUN/metrics.jsonl`, `RUN/loss.png` and
//! `RUN/checkpoint/` (a denoiser directory the samplers and `seqlab diffusion nelbo` load).

use crate::flag_context::{print_config_changes, with_flag};
use anyhow::Context;
use seqlab_diffusion::{DiffusionConfig, NoiseSchedule};
use seqlab_lm::train::ModelKind;
use seqlab_lm::TrainOptions;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Train a masked diffusion language model.
///
/// A run directory belongs to one process at a time; a new run into one that holds a run is
/// refused unless --overwrite is given. --resume continues with the config stored in the
/// checkpoint; a --config (or --steps, --schedule, --backbone) may change only max_steps,
/// checkpoint_every, eval_every and log_every, each change printed and appended to
/// RUN_DIR/config_changes.jsonl; any other difference is an error naming the key.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Bidirectional backbone; overrides the config's `model` key (default: the config's, else
    /// transformer).
    #[arg(long, value_enum)]
    backbone: Option<BackboneArg>,
    /// Configuration JSON: every `seqlab train` key (d_model, n_layer, n_head, d_state, …,
    /// batch_size, seq_len, lr, min_lr, warmup_steps, max_steps, eval_every, checkpoint_every,
    /// seed, …) plus schedule ("loglinear" | "linear" | "geometric" | "cosine"), t_eps, bidir
    /// ("sum" | "concat"), share_weights, time_conditioning.
    #[arg(long, value_name = "CFG.json")]
    config: Option<PathBuf>,
    /// Prepared dataset directory (`seqlab prepare text`).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Run directory for metrics, the loss plot and the checkpoint.
    #[arg(short = 'o', long = "out", value_name = "RUN_DIR")]
    out: PathBuf,
    /// Continue from RUN_DIR/checkpoint (bit-for-bit the same losses as an uninterrupted run),
    /// with the run's stored config (see above for what may change).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start a new run in RUN_DIR even though it holds one, deleting the old run.
    #[arg(long)]
    overwrite: bool,
    /// Override the config's max_steps (the schedule's length).
    #[arg(long, value_name = "N", alias = "max-steps")]
    steps: Option<u64>,
    /// Stop (with a checkpoint) after this many steps without changing the schedule.
    #[arg(long, value_name = "N")]
    stop_after: Option<u64>,
    /// Override the config's noise schedule (with MDLM's default parameters).
    #[arg(long, value_enum)]
    schedule: Option<ScheduleArg>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The backbones `--backbone` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackboneArg {
    /// Bidirectional Transformer (RoPE, SwiGLU / GELU, no attention mask).
    Transformer,
    /// Bidirectional Mamba (forward + reversed scan per block).
    Mamba,
}

/// The noise schedules `--schedule` accepts (`seqlab_diffusion::schedule::SCHEDULE_NAMES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ScheduleArg {
    /// α_t = 1 − (1 − ε) t (MDLM's default).
    Loglinear,
    /// σ(t) = σ_min + t (σ_max − σ_min), α_t = e^{−σ(t)}.
    Linear,
    /// σ(t) = σ_min^{1−t} σ_max^t, α_t = e^{−σ(t)}.
    Geometric,
    /// α_t = ε + (1 − ε) cos(π t / 2).
    Cosine,
}

impl ScheduleArg {
    /// The schedule's name, one of `SCHEDULE_NAMES`.
    fn name(self) -> &'static str {
        match self {
            ScheduleArg::Loglinear => "loglinear",
            ScheduleArg::Linear => "linear",
            ScheduleArg::Geometric => "geometric",
            ScheduleArg::Cosine => "cosine",
        }
    }
}

/// Runs `seqlab diffusion train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            DiffusionConfig::from_json_str(&text)
                .map_err(|e| anyhow::anyhow!("bad config {}: {e}", path.display()))?
        }
        // A resume continues with the run's own config, never the defaults.
        None if args.resume => seqlab_diffusion::train::stored_config(&args.out)
            .map_err(|e| with_flag(e, "--resume"))?,
        None => DiffusionConfig::default(),
    };
    if let Some(b) = args.backbone {
        cfg.lm.model = match b {
            BackboneArg::Transformer => ModelKind::Transformer,
            BackboneArg::Mamba => ModelKind::Mamba,
        };
    }
    if let Some(n) = args.steps {
        cfg.lm.max_steps = n;
    }
    if let Some(s) = args.schedule {
        cfg.diffusion.schedule = NoiseSchedule::from_name(s.name())?;
    }
    cfg.validate()?;
    let opts = TrainOptions {
        data: args.data,
        run_dir: args.out.clone(),
        resume: args.resume,
        overwrite: args.overwrite,
        stop_at: args.stop_after,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };
    let s = seqlab_diffusion::train::train(&cfg, &opts)?;
    print_config_changes(&opts.run_dir, &s.config_changes);
    let last = s.metrics.last();
    eprintln!(
        "trained {} steps in {:.1} s: train NELBO {}, val NELBO {} nats/token; checkpoint {}",
        s.steps,
        s.seconds,
        last.map_or("-".into(), |r| format!("{:.4}", r.train_loss)),
        s.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
        args.out.join("checkpoint").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn schedule_choices_are_the_library_schedules() {
        let names: Vec<&str> = ScheduleArg::value_variants()
            .iter()
            .map(|s| s.name())
            .collect();
        assert_eq!(names, seqlab_diffusion::schedule::SCHEDULE_NAMES);
        for s in ScheduleArg::value_variants() {
            let spelled = s.to_possible_value().expect("not skipped");
            assert_eq!(spelled.get_name(), s.name());
            assert_eq!(NoiseSchedule::from_name(s.name()).unwrap().name(), s.name());
        }
    }
}
