//! `seqlab train [--model mamba|transformer|s4] --config CFG.json --data DIR -o RUN_DIR
//! [--resume | --overwrite] [--max-steps N] [--stop-after N]`:
//! trains a Mamba, Transformer or S4 LM on a prepared dataset (see `seqlab_lm::train`). Writes
//! `RUN_DIR/metrics.jsonl`, `RUN_DIR/loss.png` and `RUN_DIR/checkpoint/` (loadable by
//! `seqlab generate --model RUN_DIR/checkpoint`), and prints a one-line summary.

use crate::flag_context::{print_config_changes, with_flag};
use anyhow::Context;
use seqlab_lm::train::ModelKind;
use seqlab_lm::{TrainConfig, TrainOptions};
use std::io::IsTerminal;
use std::path::PathBuf;

/// What `seqlab train --help` says of run directories and resuming (after the options).
const RUN_RULES: &str = "\
Run directories: a run directory belongs to one process at a time (RUN_DIR/run.lock names the
holder). A new run into a directory that holds one (a checkpoint or metrics.jsonl) is refused
unless --overwrite is given.

Resume: the config stored in the run's checkpoint is the truth. --resume without --config
continues with it; a --config (or --max-steps, --model) may change only max_steps (the
schedule's length), checkpoint_every, eval_every and log_every, plus seq_len for the S4D models
(s4, sashimi with ssm \"s4d\"). Each change is appended to RUN_DIR/config_changes.jsonl and
printed; any other difference is an error naming the key and both values. metrics.jsonl keeps
its rows up to the checkpoint's step byte for byte and drops the later ones. Checkpoints carry a
manifest of CRC-32 checksums, verified on resume and on load.";

/// Train a language model (the run-directory and resume rules: [`RUN_RULES`]).
#[derive(Debug, clap::Args)]
#[command(after_long_help = RUN_RULES)]
pub struct TrainArgs {
    /// Model family; overrides the config's `model` key (default: the config's, else mamba).
    #[arg(long, value_enum)]
    model: Option<ModelArg>,
    /// Training configuration JSON: model ("mamba" | "transformer" | "s4"), d_model, n_layer;
    /// S4: d_state, ssm ("s4d" | "s4legs");
    /// Mamba: d_state, d_conv, expand; Transformer: n_head, n_kv_head (0 = n_head), d_ff
    /// (0 = auto), mlp ("swiglu" | "gelu"), rope_theta; batch_size, seq_len, lr, min_lr,
    /// warmup_steps, max_steps, weight_decay, grad_clip, eval_every, eval_batches,
    /// checkpoint_every, log_every, seed, packed (all optional). With --resume: the run's stored
    /// config is the default, and only the keys named under "Resume" below may differ from it.
    #[arg(long, value_name = "CFG.json")]
    config: Option<PathBuf>,
    /// Prepared dataset directory (`seqlab prepare text`).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Run directory for metrics, the loss plot and the checkpoint.
    #[arg(short = 'o', long = "out", value_name = "RUN_DIR")]
    out: PathBuf,
    /// Continue from RUN_DIR/checkpoint (bit-for-bit the same losses as an uninterrupted run),
    /// with the run's stored config (see "Resume" below for what may change).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start a new run in RUN_DIR even though it holds one, deleting the old run's checkpoint,
    /// metrics and plot.
    #[arg(long)]
    overwrite: bool,
    /// Override the config's max_steps (the schedule's length).
    #[arg(long, value_name = "N")]
    max_steps: Option<u64>,
    /// Stop (with a checkpoint) after this many steps without changing the schedule; continue
    /// later with --resume.
    #[arg(long, value_name = "N")]
    stop_after: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Compute device: `cpu`, `cuda` or `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: seqlab_tensor::DeviceChoice,
}

/// The model families `--model` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModelArg {
    /// The Mamba LM.
    Mamba,
    /// The Transformer LM (RoPE, SwiGLU / GELU, grouped-query attention).
    Transformer,
    /// The S4 / S4D LM (config key `ssm`: "s4d" | "s4legs").
    S4,
}

/// Runs `seqlab train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let choice = args.device;
    let device = seqlab_tensor::select_device(choice).map_err(|e| with_flag(e, "--device"))?;
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            TrainConfig::from_json_str(&text)
                .map_err(|e| anyhow::anyhow!("bad config {}: {e}", path.display()))?
        }
        // A resume continues with the run's own config, never the defaults.
        None if args.resume => {
            seqlab_lm::train::stored_config(&args.out).map_err(|e| with_flag(e, "--resume"))?
        }
        None => TrainConfig::default(),
    };
    if let Some(m) = args.model {
        cfg.model = match m {
            ModelArg::Mamba => ModelKind::Mamba,
            ModelArg::Transformer => ModelKind::Transformer,
            ModelArg::S4 => ModelKind::S4,
        };
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("--model {}: {e}", cfg.model.name()))?;
    }
    if let Some(n) = args.max_steps {
        cfg.max_steps = n;
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("--max-steps: {e}"))?;
    }
    let opts = TrainOptions {
        data: args.data,
        run_dir: args.out.clone(),
        resume: args.resume,
        overwrite: args.overwrite,
        stop_at: args.stop_after,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };
    let s = seqlab_lm::train_on(&cfg, &opts, &device)?;
    print_config_changes(&opts.run_dir, &s.config_changes);
    let last = s.metrics.last();
    eprintln!(
        "trained {} steps on {} in {:.1} s: train loss {}, val loss {}; checkpoint {}",
        s.steps,
        choice,
        s.seconds,
        last.map_or("-".into(), |r| format!("{:.4}", r.train_loss)),
        s.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
        args.out.join("checkpoint").display()
    );
    Ok(())
}
