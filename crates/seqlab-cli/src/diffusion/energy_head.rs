//! `seqlab diffusion energy-head --model MDLM_DIR --data DIR -o HEAD_DIR [--steps N] [--batch B]
//! [--lr LR] [--window L] [--d-embed E] [--d-hidden H] [--eval-windows N] [--seed S] [--quiet]`:
//! trains EDLM's NCE energy head (Xu et al. 2024 §3.3; `seqlab_diffusion::energy_head`) with the
//! denoiser frozen — real windows of the prepared train split against the denoiser's own samples
//! x_0^neg ~ p_θ(· | x_t) — then scores it on held-out val windows (NCE loss and the accuracy of
//! "real iff E_φ < 0").
//!
//! Writes `HEAD_DIR/energy_head.json` + `energy_head.safetensors` (atomically; what
//! `seqlab diffusion sample|eval --energy-head HEAD_DIR` load) and `HEAD_DIR/metrics.json`
//! `{"losses":[…],"first_loss":…,"final_loss":…,"heldout":{"loss":…,"accuracy":…,"rows":…},…}`
//! where `final_loss` is the mean over the last tenth of the steps (at least one).

use super::load::{load_denoiser, tokenizer_of};
use crate::flag_context::with_flag;
use anyhow::{bail, Context};
use seqlab_data::{Split, SplitView, TokenDataset};
use seqlab_diffusion::energy_head::{
    nce_eval, train_energy_head_with, EnergyHeadConfig, EnergyTrainConfig,
};
use seqlab_diffusion::Denoiser;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Train EDLM's NCE energy head against a frozen denoiser.
#[derive(Debug, clap::Args)]
pub struct EnergyHeadArgs {
    /// The frozen denoiser: a model directory, or a run directory (its `checkpoint/`).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Prepared dataset directory (same tokenizer as the denoiser): real windows come from its
    /// train split, the held-out ones from its val split.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Output directory of the head and metrics.json.
    #[arg(short = 'o', long = "out", value_name = "HEAD_DIR")]
    out: PathBuf,
    /// Optimiser steps.
    #[arg(long, value_name = "N", default_value_t = 200)]
    steps: usize,
    /// Real windows per step (and as many negatives).
    #[arg(long, value_name = "B", default_value_t = 16)]
    batch: usize,
    /// AdamW learning rate (constant).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Tokens per window (default: the denoiser's training length).
    #[arg(long, value_name = "L")]
    window: Option<usize>,
    /// Embedding width of each of x_t and x_0.
    #[arg(long, value_name = "E", default_value_t = 32)]
    d_embed: usize,
    /// Hidden width.
    #[arg(long, value_name = "H", default_value_t = 64)]
    d_hidden: usize,
    /// At most this many real training windows (evenly spaced over the train split).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_windows: usize,
    /// Held-out val windows for the accuracy.
    #[arg(long, value_name = "N", default_value_t = 64)]
    eval_windows: usize,
    /// Seed of the initialisation, t, masks and negatives.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Up to `max` non-overlapping windows of `len` tokens, evenly spaced over `view`, each checked
/// to lie below the denoiser's `[MASK]` id.
fn windows(view: &SplitView, len: usize, max: usize, mask: u32) -> anyhow::Result<Vec<Vec<u32>>> {
    let avail = view.len() / len;
    let n = avail.min(max);
    let stride = avail.checked_div(n).unwrap_or(1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = i * stride * len;
        let w = view.get(start..start + len)?;
        if let Some(&bad) = w.iter().find(|&&t| t >= mask) {
            bail!(
                "token {bad} of the {:?} split is not below the denoiser's mask id {mask} \
                 (another tokenizer?)",
                view.split()
            );
        }
        out.push(w);
    }
    Ok(out)
}

/// The dataset was made with the denoiser's tokenizer, when both name one
/// (`seqlab_tokenizer::same_vocabulary`): real windows in another vocabulary would train the
/// head to tell tokenizers apart, not real text from samples.
fn check_data_tokenizer(ds: &TokenDataset, data: &Path, den_dir: &Path) -> anyhow::Result<()> {
    let (Some(tok_path), Some(den_tok)) = (ds.tokenizer_path(), tokenizer_of(den_dir)?) else {
        return Ok(());
    };
    if !tok_path.is_file() {
        return Ok(());
    }
    let data_tok = seqlab_tokenizer::load(&tok_path).map_err(|e| with_flag(e, "--data"))?;
    if let Err(diff) = seqlab_tokenizer::same_vocabulary(data_tok.as_ref(), den_tok.as_ref()) {
        bail!(
            "mismatched tokenizers: the dataset {} was made with {}, the denoiser {} has another \
             vocabulary ({diff})",
            data.display(),
            tok_path.display(),
            den_dir.display()
        );
    }
    Ok(())
}

/// Runs `seqlab diffusion energy-head`.
pub fn run(args: EnergyHeadArgs) -> anyhow::Result<()> {
    let (dir, den) = load_denoiser(&args.model)?;
    let sched = den.config().diffusion.schedule;
    let len = args.window.unwrap_or(den.config().lm.seq_len);
    if len == 0 || args.max_windows == 0 || args.eval_windows == 0 {
        bail!("--window, --max-windows and --eval-windows must be ≥ 1");
    }
    let cfg = EnergyTrainConfig {
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        seed: args.seed,
        ..EnergyTrainConfig::default()
    };
    if cfg.steps == 0 || cfg.batch == 0 || !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        bail!("--steps and --batch must be ≥ 1 and --lr a positive number");
    }
    let head_cfg = EnergyHeadConfig {
        vocab: den.vocab_size(),
        d_embed: args.d_embed,
        d_hidden: args.d_hidden,
    };
    if head_cfg.d_embed == 0 || head_cfg.d_hidden == 0 {
        bail!("--d-embed and --d-hidden must be ≥ 1");
    }
    let ds = TokenDataset::open(&args.data).map_err(|e| with_flag(e, "--data"))?;
    let mask = den.mask_id();
    let real = windows(&ds.split(Split::Train)?, len, args.max_windows, mask)?;
    let held = windows(&ds.split(Split::Val)?, len, args.eval_windows, mask)?;
    // Ids in range can still mean other text: the same vocabulary, id by id.
    check_data_tokenizer(&ds, &args.data, &dir)?;
    if real.is_empty() || held.is_empty() {
        bail!(
            "{} needs at least one window of {len} tokens in both its train and val splits \
             (have {} and {}); lower --window",
            args.data.display(),
            real.len(),
            held.len()
        );
    }
    let bar = seqlab_data::step_bar(
        !args.quiet && std::io::stderr().is_terminal(),
        cfg.steps as u64,
    );
    let t0 = Instant::now();
    let (head, losses) = train_energy_head_with(&den, &sched, &real, head_cfg, &cfg, |_, loss| {
        bar.set_message(format!("NCE loss {loss:.4}"));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let train_s = t0.elapsed().as_secs_f64();
    let eval = nce_eval(
        &head,
        &den,
        &sched,
        &held,
        cfg.batch,
        cfg.t_eps,
        args.seed ^ 0xE7A1,
    )?;
    if losses.iter().any(|l| !l.is_finite()) {
        bail!("the NCE loss diverged (non-finite); lower --lr");
    }
    head.save(&args.out)?;
    let tail = (losses.len() / 10).max(1);
    let final_loss = losses[losses.len() - tail..].iter().sum::<f64>() / tail as f64;
    let metrics = serde_json::json!({
        "model": dir.display().to_string(),
        "data": args.data.display().to_string(),
        "head": head_cfg,
        "steps": cfg.steps,
        "batch": cfg.batch,
        "lr": cfg.lr,
        "t_eps": cfg.t_eps,
        "seed": cfg.seed,
        "window": len,
        "train_windows": real.len(),
        "first_loss": losses[0],
        "final_loss": final_loss,
        "losses": losses,
        "heldout": eval,
        "seconds": train_s,
    });
    let path = args.out.join("metrics.json");
    seqlab_io::write_atomic(&path, format!("{metrics:#}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "NCE loss {:.4} -> {final_loss:.4} (mean of the last {tail} of {} steps, {train_s:.1} s); \
         held-out: NCE loss {:.4}, accuracy {:.4} (real vs generated, {} + {} windows of {len}); \
         head {}",
        losses[0],
        cfg.steps,
        eval.loss,
        eval.accuracy,
        eval.rows,
        eval.rows,
        args.out.display()
    );
    Ok(())
}
