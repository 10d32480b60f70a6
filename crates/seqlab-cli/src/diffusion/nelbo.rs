//! `seqlab diffusion nelbo --model DIR --data DIR [--split val] [--t-points K]`: the NELBO
//! bound (nats/token) of a masked diffusion model on a prepared split and the perplexity bound
//! exp(NELBO), estimated with K stratified points in t per window
//! (`seqlab_diffusion::nelbo`). `--json` prints one object
//! `{"model":…,"data":…,"split":…,"nelbo":…,"std_err":…,"ppl_bound":…,"tokens":…,"windows":…,
//! "t_points":…,"seconds":…}`.

use super::load::load_denoiser;
use crate::flag_context::with_flag;
use crate::split_arg::SplitArg;
use anyhow::bail;
use seqlab_data::TokenDataset;
use seqlab_diffusion::{nelbo_bound, NelboOptions};
use std::path::PathBuf;
use std::time::Instant;

/// NELBO bound of a diffusion model.
#[derive(Debug, clap::Args)]
pub struct NelboArgs {
    /// A denoiser directory, or a run directory (its `checkpoint/` is used).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Prepared dataset directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Which split to score.
    #[arg(long, value_enum, default_value_t = SplitArg::Val)]
    split: SplitArg,
    /// Stratified t points per window (each is one forward pass).
    #[arg(long, value_name = "K", default_value_t = 8)]
    t_points: usize,
    /// Tokens per window (default: the model's training seq_len).
    #[arg(long, value_name = "N")]
    window: Option<usize>,
    /// Windows per forward pass.
    #[arg(long, value_name = "N", default_value_t = 8)]
    batch_size: usize,
    /// Score at most this many batches of windows.
    #[arg(long, value_name = "N")]
    max_batches: Option<usize>,
    /// Seed of the t strata and masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `seqlab diffusion nelbo`.
pub fn run(args: NelboArgs) -> anyhow::Result<()> {
    let (dir, model) = load_denoiser(&args.model)?;
    if args.batch_size == 0 || args.t_points == 0 {
        bail!("--batch-size and --t-points must be ≥ 1");
    }
    let ds = TokenDataset::open(&args.data).map_err(|e| with_flag(e, "--data"))?;
    let view = ds.split(args.split.split())?;
    let seq_len = args.window.unwrap_or(model.config().lm.seq_len);
    if seq_len == 0 {
        bail!("--window must be ≥ 1");
    }
    let opts = NelboOptions {
        t_points: args.t_points,
        batch_size: args.batch_size,
        seq_len,
        max_batches: args.max_batches,
        seed: args.seed,
        schedule: model.config().diffusion.schedule,
    };
    let t0 = Instant::now();
    let r = nelbo_bound(&model, &view, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    if args.json {
        let v = serde_json::json!({
            "model": dir.display().to_string(),
            "data": args.data.display().to_string(),
            "split": args.split.name(),
            "nelbo": r.nelbo,
            "std_err": r.std_err,
            "ppl_bound": r.ppl_bound,
            "tokens": r.tokens,
            "windows": r.windows,
            "t_points": r.t_points,
            "seconds": secs,
        });
        println!("{v}");
    } else {
        println!(
            "NELBO {:.4} ± {:.4} nats/token, perplexity bound {:.2} ({} tokens in {} windows of {seq_len}, {} stratified t points each, {secs:.1} s)",
            r.nelbo, r.std_err, r.ppl_bound, r.tokens, r.windows, r.t_points
        );
    }
    Ok(())
}
