//! `seqlab eval ppl`: token-level perplexity of any model (Mamba, Transformer, GGUF) on a
//! prepared dataset's validation split, with a progress bar and tokens/s.
//!
//! Output: one human line on stdout, or with `--json` one JSON object
//! `{"model":…,"data":…,"split":…,"predictions":…,"windows":…,"nll":…,"perplexity":…,
//! "bits_per_token":…,"seconds":…,"tokens_per_s":…}`.

use crate::flag_context::with_flag;
use crate::split_arg::SplitArg;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use seqlab_data::TokenDataset;
use seqlab_lm::{load_lm, perplexity, CausalLm};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Evaluate a model.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    what: EvalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EvalCommand {
    /// Token-level perplexity on a prepared dataset (`seqlab prepare text`).
    Ppl(PplArgs),
}

/// `seqlab eval ppl` flags.
#[derive(Debug, clap::Args)]
struct PplArgs {
    /// Model: a directory (config.json + model.safetensors) or a .gguf file.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Prepared dataset directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Which split to score.
    #[arg(long, value_enum, default_value_t = SplitArg::Val)]
    split: SplitArg,
    /// Tokens per window (each window starts from the empty state; at most 1,048,576).
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_SEQUENCE_TOKENS))]
    window: usize,
    /// Score only the first N tokens of the split.
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `seqlab eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    match args.what {
        EvalCommand::Ppl(a) => ppl(a),
    }
}

fn ppl(args: PplArgs) -> anyhow::Result<()> {
    if args.window < 2 {
        bail!("--window must be at least 2, got {}", args.window);
    }
    let ds = TokenDataset::open(&args.data).map_err(|e| with_flag(e, "--data"))?;
    let lm = load_lm(&args.model).map_err(|e| with_flag(e, "--model"))?;
    let model_vocab = lm.model.vocab_size();
    if ds.vocab_size() > model_vocab {
        bail!(
            "mismatched vocabularies: the dataset {} has {} ids but the model {} only {}",
            args.data.display(),
            ds.vocab_size(),
            args.model.display(),
            model_vocab
        );
    }
    if let (Some(tok_path), Some(model_tok)) = (ds.tokenizer_path(), lm.tokenizer.as_ref()) {
        let data_tok = seqlab_tokenizer::load(&tok_path)?;
        if let Err(diff) = seqlab_tokenizer::same_vocabulary(data_tok.as_ref(), model_tok.as_ref())
        {
            bail!(
                "mismatched tokenizers: the dataset {} was made with {} ({} ids), which encodes text differently from the model's ({} ids): {diff}",
                args.data.display(),
                tok_path.display(),
                data_tok.vocab_size(),
                model_tok.vocab_size()
            );
        }
    }
    let view = ds.split(args.split.split())?;
    let total = args.max_tokens.map_or(view.len(), |m| m.min(view.len()));
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} scoring [{bar:30}] {pos}/{len} tokens {per_sec} eta {eta}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let report = perplexity(&lm.model, &view, args.window, args.max_tokens, |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["model"] = args.model.display().to_string().into();
        v["data"] = args.data.display().to_string().into();
        v["split"] = args.split.name().into();
        println!("{v}");
    } else {
        println!(
            "{} on {} ({}): perplexity {:.3} ({:.4} bits/token) over {} predictions in {} windows; {:.1} tokens/s",
            args.model.display(),
            args.data.display(),
            args.split.name(),
            report.perplexity,
            report.bits_per_token,
            report.predictions,
            report.windows,
            report.tokens_per_s
        );
    }
    Ok(())
}
