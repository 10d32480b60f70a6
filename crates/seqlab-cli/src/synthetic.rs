//! `seqlab synthetic train|eval`: the synthetic long-range tasks of the Mamba paper (§4.1.1).
//!
//! - `seqlab synthetic train --task selective-copy|induction --backbone mamba|s4d|s4legs|transformer
//!   [--seq-len L] [--n-tokens K] [--vocab V] [--d-model D] [--layers N] [--d-state S]
//!   [--steps T] [--batch B] [--lr LR] [--seed S] [--eval-examples E] [--eval-every N]
//!   [--json OUT] [--save DIR]` trains a fresh backbone with the loss on the answer positions
//!   only and prints the token accuracy on fresh examples (and chance); `--json` writes the full
//!   report (sizes, parameters, accuracy curve, time), `--save` the model and its task.
//! - `seqlab synthetic eval --model DIR [--examples E] [--seed S] [--json OUT]` re-measures a
//!   saved model's accuracy (by default on the evaluation stream of its training seed).

use crate::flag_context::with_flag;
use anyhow::Context;
use seqlab_data::{SyntheticSpec, SyntheticTask};
use seqlab_lm::s4lm::SsmName;
use seqlab_lm::synthetic_train::{
    evaluate_synthetic, load_synthetic, save_synthetic, train_synthetic, SyntheticRun,
};
use seqlab_lm::train::ModelKind;
use seqlab_lm::{LmError, TrainConfig};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Train or evaluate a backbone on a synthetic task.
#[derive(Debug, clap::Args)]
pub struct SyntheticArgs {
    #[command(subcommand)]
    command: SyntheticCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SyntheticCommand {
    /// Train a fresh model on a task and report its answer-token accuracy.
    Train(SyntheticTrainArgs),
    /// Measure a saved model's accuracy on fresh examples of its task.
    Eval(SyntheticEvalArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TaskArg {
    /// Selective copying: data tokens at random positions among blanks, copied at the end.
    SelectiveCopy,
    /// Induction heads: after the final trigger, the token that followed the first one.
    Induction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackboneArg {
    /// Mamba (selective SSM).
    Mamba,
    /// The S4 LM with S4D-Lin (diagonal, time-invariant).
    S4d,
    /// The S4 LM with S4-LegS (DPLR, time-invariant).
    S4legs,
    /// The Transformer (RoPE, SwiGLU).
    Transformer,
}

#[derive(Debug, clap::Args)]
struct SyntheticTrainArgs {
    /// The task.
    #[arg(long, value_enum)]
    task: TaskArg,
    /// The sequence model.
    #[arg(long, value_enum)]
    backbone: BackboneArg,
    /// Selective copy: length of the data + blank region (then K markers follow);
    /// induction: total length.
    #[arg(long, default_value_t = 64)]
    seq_len: usize,
    /// Selective copy: data tokens to copy.
    #[arg(long, default_value_t = 8)]
    n_tokens: usize,
    /// Vocabulary, special tokens included.
    #[arg(long, default_value_t = 16)]
    vocab: usize,
    /// Model width.
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    /// Layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// SSM state size N (Mamba, S4).
    #[arg(long, default_value_t = 16)]
    d_state: usize,
    /// Transformer heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Peak learning rate (warmup 10% of the steps, cosine to lr/10).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    /// Seed of the initialisation and the example stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fresh examples for the final accuracy.
    #[arg(long, default_value_t = 512)]
    eval_examples: usize,
    /// Also evaluate every this many steps (0 = only at the end); each point goes to stderr.
    #[arg(long, default_value_t = 0)]
    eval_every: u64,
    /// Write the report as JSON.
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// Save the trained model and its task here (for `seqlab synthetic eval`).
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
struct SyntheticEvalArgs {
    /// A directory written by `seqlab synthetic train --save`.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Fresh examples.
    #[arg(long, default_value_t = 512)]
    examples: usize,
    /// Seed of the evaluation stream (default: the training seed's).
    #[arg(long)]
    seed: Option<u64>,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Write the result as JSON.
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
}

/// Runs `seqlab synthetic`.
pub fn run(args: SyntheticArgs) -> anyhow::Result<()> {
    match args.command {
        SyntheticCommand::Train(a) => train(a),
        SyntheticCommand::Eval(a) => eval(a),
    }
}

fn write_json(path: &PathBuf, value: serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&value).expect("a JSON value serialises");
    std::fs::write(path, format!("{text}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

fn train(a: SyntheticTrainArgs) -> anyhow::Result<()> {
    let spec = SyntheticSpec {
        task: match a.task {
            TaskArg::SelectiveCopy => SyntheticTask::SelectiveCopy,
            TaskArg::Induction => SyntheticTask::Induction,
        },
        seq_len: a.seq_len,
        n_tokens: a.n_tokens,
        vocab: a.vocab,
    };
    spec.validate()?;
    if a.steps == 0 || a.batch == 0 {
        anyhow::bail!("--steps and --batch must be ≥ 1");
    }
    let (model, ssm) = match a.backbone {
        BackboneArg::Mamba => (ModelKind::Mamba, SsmName::S4d),
        BackboneArg::S4d => (ModelKind::S4, SsmName::S4d),
        BackboneArg::S4legs => (ModelKind::S4, SsmName::S4legs),
        BackboneArg::Transformer => (ModelKind::Transformer, SsmName::S4d),
    };
    let cfg = TrainConfig {
        model,
        ssm,
        d_model: a.d_model,
        n_layer: a.layers,
        d_state: a.d_state,
        n_head: a.heads,
        batch_size: a.batch,
        seq_len: spec.total_len(),
        lr: a.lr,
        min_lr: a.lr / 10.0,
        warmup_steps: (a.steps / 10).max(1),
        max_steps: a.steps,
        weight_decay: a.weight_decay,
        seed: a.seed,
        ..TrainConfig::default()
    };
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let run = SyntheticRun {
        spec,
        model: cfg,
        eval_examples: a.eval_examples,
        eval_every: a.eval_every,
    };
    let bar = seqlab_data::step_bar(!a.quiet && std::io::stderr().is_terminal(), a.steps);
    let (trained, report) = train_synthetic(&run, |step, loss, acc| {
        bar.set_message(format!("answer loss {loss:.4}"));
        bar.inc(1);
        if let Some(acc) = acc {
            bar.suspend(|| eprintln!("step {step}: answer loss {loss:.4}, accuracy {acc:.4}"));
        }
    })?;
    bar.finish_and_clear();
    println!(
        "{} {}: accuracy {:.4} on {} answer tokens (chance {:.4}), {} params, d {} × {} layers, \
         {} steps × {} examples, final answer loss {:.4}, {:.0} s",
        report.task,
        report.backbone,
        report.accuracy,
        report.eval_tokens,
        report.chance,
        report.params,
        report.d_model,
        report.n_layer,
        report.steps,
        report.batch_size,
        report.final_train_loss,
        report.seconds
    );
    if let Some(path) = &a.json {
        write_json(path, serde_json::to_value(&report)?)?;
    }
    if let Some(dir) = &a.save {
        save_synthetic(dir, &trained, &spec, a.seed)?;
    }
    Ok(())
}

fn eval(a: SyntheticEvalArgs) -> anyhow::Result<()> {
    let (model, task) = load_synthetic(&a.model).map_err(|e| match e {
        LmError::FileNotFound { .. } => with_flag(
            anyhow::anyhow!("{e}; save a model with `seqlab synthetic train --save DIR`"),
            "--model",
        ),
        e => with_flag(e, "--model"),
    })?;
    let spec = task.spec()?;
    let seed = a.seed.unwrap_or(task.seed);
    let (acc, n) = evaluate_synthetic(&model, &spec, seed, a.examples, a.batch)?;
    println!(
        "{} {}: accuracy {acc:.4} on {n} answer tokens (chance {:.4})",
        task.task,
        task.model.name(),
        spec.chance_accuracy()
    );
    if let Some(path) = &a.json {
        write_json(
            path,
            serde_json::json!({
                "task": task.task, "model": task.model.name(), "seed": seed,
                "accuracy": acc, "eval_tokens": n, "chance": spec.chance_accuracy(),
            }),
        )?;
    }
    Ok(())
}
