//! The `seqlab` command-line tool: one binary for data preparation, tokenizers, training,
//! generation, evaluation, audio, synthetic tasks, diffusion and speculative decoding; each
//! command is a thin layer over the library crates (docs/architecture.md).
//!
//! Every command returns `anyhow::Result`; [`main`] prints a failure as one line on stderr and
//! exits with status 1 (clap's own usage errors exit with 2). A write to a closed pipe ends the
//! process quietly by `SIGPIPE`; a panic (a bug) is one `error: internal error …` line and
//! status 101 ([`panic_guard`]).

mod audio;
mod audio_stats;
mod bounds;
mod diffusion;
mod eval;
mod flag_context;
mod generate;
mod info;
mod panic_guard;
mod prepare;
mod sampling_args;
mod speculate;
mod split_arg;
mod synthetic;
mod tokenizer_cmd;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// seqlab: state-space models, discrete diffusion LMs and speculative decoding, in Rust.
#[derive(Debug, Parser)]
#[command(
    name = "seqlab",
    version,
    about,
    long_about = "seqlab: state-space models (S4, S4D, Mamba), discrete diffusion language models \
                  and big-little speculative decoding, in Rust, on CPU and GPU.",
    after_help = "Run `seqlab <COMMAND> --help` for the options of one command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Turn text files or a WAV folder into memory-mapped token shards.
    Prepare(prepare::PrepareArgs),
    /// Train, inspect and apply tokenizers.
    Tokenizer(tokenizer_cmd::TokenizerArgs),
    /// Show the build, the compute devices and check a `--device` choice.
    Info(info::InfoArgs),
    /// Generate text with any model seqlab loads: a Mamba, Transformer, S4 or SaShiMi directory,
    /// or a GGUF file (parallel prefill, then recurrent / KV-cache steps).
    Generate(generate::GenerateArgs),
    /// Train a Mamba, Transformer or S4 LM on a prepared dataset (AdamW, warmup + cosine,
    /// checkpoints, --resume).
    Train(train::TrainArgs),
    /// Evaluate any model seqlab loads (perplexity on a prepared dataset).
    Eval(eval::EvalArgs),
    /// Big-little decoding (BiLD, lossless speculative sampling): speedup vs the big model alone.
    Speculate(speculate::SpeculateArgs),
    /// Audio with SaShiMi (or an S4 LM): train on a prepared mu-law dataset, generate WAVs (+ spectrograms).
    Audio(audio::AudioArgs),
    /// Synthetic long-range tasks (selective copying, induction heads) for any backbone.
    Synthetic(synthetic::SyntheticArgs),
    /// Masked diffusion language models (MDLM): train, NELBO bound, sample, evaluate the
    /// samplers, train EDLM's energy head.
    Diffusion(diffusion::DiffusionArgs),
}

/// Parse the command line, run the command, and turn any error into one line and exit code 1.
pub fn main() -> ExitCode {
    panic_guard::install();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Prepare(args) => prepare::run(args),
        Command::Tokenizer(args) => tokenizer_cmd::run(args),
        Command::Info(args) => info::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Speculate(args) => speculate::run(args),
        Command::Audio(args) => audio::run(args),
        Command::Diffusion(args) => diffusion::run(args),
        Command::Synthetic(args) => synthetic::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` joins the context chain on one line: "cannot read x: No such file".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
