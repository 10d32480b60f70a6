//! The validation NELBO bound of a masked diffusion model (MDLM §3.3, eq. 10–11) and the
//! perplexity bound exp(NELBO).
//!
//! For the absorbing process with α_0 = 1 and α_1 = 0 the NELBO of a sequence x_0 of L tokens
//! has no prior or reconstruction term and is invariant to the schedule; written in the masking
//! fraction s = 1 − α ∈ (0, 1] (the log-linear schedule with ε = 0) it is
//!
//! ```text
//! NELBO(x_0) = ∫_0^1 (1/s) E_{x_s} [ Σ_{ℓ : x_s^ℓ = [MASK]} −log x_θ(x_s, t(s))[x_0^ℓ] ] ds  ≥ −log p_θ(x_0)
//! ```
//!
//! (x_s masks each token with probability s; t(s) is the training schedule's time with
//! 1 − α_t = s, which only matters for a time-conditioned model). The integral is estimated by
//! **stratified sampling**: per window, K points s_k = (k + u)/K, k = 0 … K−1, with one
//! u ~ U(0, 1) per window, and one mask draw per point. The estimate is unbiased for every K
//! (so the bound stays a bound in expectation) and its variance falls like 1/K² in the smooth
//! part of the integrand. The result is reported per token, with the standard error over windows.

use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use crate::loss::{mask_tokens, nelbo_loss, scalar};
use crate::schedule::NoiseSchedule;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab_data::{SequentialBatches, SplitView};

/// How to estimate the bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NelboOptions {
    /// Stratified points K per window.
    pub t_points: usize,
    /// Windows per forward pass.
    pub batch_size: usize,
    /// Tokens per window.
    pub seq_len: usize,
    /// At most this many batches of windows (None: the whole split).
    pub max_batches: Option<usize>,
    /// Seed of the strata offsets and masks.
    pub seed: u64,
    /// The training schedule (maps s to the time a time-conditioned model is given).
    pub schedule: NoiseSchedule,
}

/// The bound on a split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct NelboReport {
    /// NELBO bound, nats per token.
    pub nelbo: f64,
    /// Standard error of `nelbo` over windows.
    pub std_err: f64,
    /// Perplexity bound exp(NELBO).
    pub ppl_bound: f64,
    /// Tokens scored.
    pub tokens: usize,
    /// Windows scored.
    pub windows: usize,
    /// Stratified points per window.
    pub t_points: usize,
}

/// Estimates the NELBO bound of `model` on the windows of `view` (see the module docs).
pub fn nelbo_bound(
    model: &dyn Denoiser,
    view: &SplitView,
    opts: &NelboOptions,
) -> Result<NelboReport> {
    if opts.t_points == 0 {
        return Err(DiffusionError::Config("t_points must be ≥ 1".into()));
    }
    let mask_id = model.mask_id();
    let k = opts.t_points;
    let eval_sched = NoiseSchedule::LogLinear { eps: 0.0 };
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut per_window: Vec<f64> = Vec::new();
    let batches = SequentialBatches::new(view.clone(), opts.batch_size, opts.seq_len)?;
    let take = opts.max_batches.unwrap_or(usize::MAX);
    for batch in batches.take(take) {
        let (b, l) = (batch.batch_size, batch.seq_len);
        let x0 = &batch.inputs;
        if let Some(&m) = x0.iter().find(|&&x| x >= mask_id) {
            return Err(DiffusionError::Mismatch(format!(
                "token {m} of the data is not below the model's mask id {mask_id} (another tokenizer?)"
            )));
        }
        let offsets: Vec<f64> = (0..b)
            .map(|_| rng.random_range(f64::EPSILON..1.0))
            .collect();
        let mut sums = vec![0f64; b];
        for kk in 0..k {
            // s ∈ (0, 1): the masking fraction; the loss weight of the ε = 0 log-linear
            // schedule at time s is −1/s.
            let s: Vec<f64> = offsets.iter().map(|u| (kk as f64 + u) / k as f64).collect();
            let xt = mask_tokens(x0, &s, &eval_sched, mask_id, &mut rng)?;
            let t_model: Vec<f64> = s
                .iter()
                .map(|&si| opts.schedule.time_at_alpha(1.0 - si))
                .collect();
            let logits = model.logits(&xt, b, &t_model)?;
            for r in 0..b {
                let rows = r * l..(r + 1) * l;
                let lr = logits.narrow(0, r, 1)?;
                // nelbo_loss normalises by the row's L tokens: × L gives the row's sum.
                let v = scalar(&nelbo_loss(
                    &lr,
                    &x0[rows.clone()],
                    &xt[rows],
                    &s[r..r + 1],
                    &eval_sched,
                    mask_id,
                )?)? * l as f64;
                sums[r] += v / k as f64;
            }
        }
        per_window.extend(sums.iter().map(|s| s / l as f64));
    }
    if per_window.is_empty() {
        return Err(DiffusionError::Input(
            "the split holds no full window".into(),
        ));
    }
    let n = per_window.len() as f64;
    let mean = per_window.iter().sum::<f64>() / n;
    let var = if per_window.len() > 1 {
        per_window.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Ok(NelboReport {
        nelbo: mean,
        std_err: (var / n).sqrt(),
        ppl_bound: mean.exp(),
        tokens: per_window.len() * opts.seq_len,
        windows: per_window.len(),
        t_points: k,
    })
}
