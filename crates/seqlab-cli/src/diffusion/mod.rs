//! `seqlab diffusion …`: masked discrete diffusion language models (MDLM; `seqlab_diffusion`).
//!
//! - `train`: train a bidirectional denoiser (Transformer or bidirectional Mamba) with the
//!   continuous-time NELBO on prepared token shards (the `seqlab train` loop's features);
//! - `nelbo`: the validation NELBO bound (nats/token) and the perplexity bound exp(NELBO);
//! - `sample`: generate text (ancestral / first-hitting / EDLM, infilling, semi-AR blocks);
//! - `energy-head`: train EDLM's NCE energy head with the denoiser frozen (real windows vs the
//!   denoiser's samples), the second energy source of `sample`/`eval` (`--energy-head`);
//! - `eval`: the samplers' gen-PPL under an AR model, entropy, network calls, speed, plot.
//!
//! Each subcommand lives in its own file with its `clap::Args` struct and a `run` function; add
//! a variant to [`DiffusionCommand`] and an arm to [`run`] per subcommand.

mod energy_head;
mod eval;
mod load;
mod nelbo;
mod sample;
mod train;

/// Masked diffusion language models.
#[derive(Debug, clap::Args)]
pub struct DiffusionArgs {
    #[command(subcommand)]
    command: DiffusionCommand,
}

/// The `seqlab diffusion` subcommands.
#[derive(Debug, clap::Subcommand)]
enum DiffusionCommand {
    /// Train a masked diffusion LM (bidirectional Transformer or Mamba) with the MDLM NELBO.
    Train(train::TrainArgs),
    /// Validation NELBO bound (nats/token) and perplexity bound of a trained denoiser.
    Nelbo(nelbo::NelboArgs),
    /// Generate text: ancestral (with the no-change cache), first-hitting or EDLM sampling,
    /// infilling, semi-autoregressive blocks.
    Sample(sample::SampleArgs),
    /// Samplers' gen-PPL under an AR model, entropy, network calls and speed (+ plot).
    Eval(eval::EvalArgs),
    /// Train EDLM's NCE energy head against the frozen denoiser (real vs generated windows).
    EnergyHead(energy_head::EnergyHeadArgs),
}

/// Runs `seqlab diffusion <SUBCOMMAND>`.
pub fn run(args: DiffusionArgs) -> anyhow::Result<()> {
    match args.command {
        DiffusionCommand::Train(a) => train::run(a),
        DiffusionCommand::Nelbo(a) => nelbo::run(a),
        DiffusionCommand::Sample(a) => sample::run(a),
        DiffusionCommand::Eval(a) => eval::run(a),
        DiffusionCommand::EnergyHead(a) => energy_head::run(a),
    }
}
