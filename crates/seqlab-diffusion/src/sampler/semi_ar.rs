//! Semi-autoregressive generation of sequences longer than the denoiser's context (MDLM §4.3,
//! `_semi_ar_sampler`; block diffusion in bd3lms): the first `window` tokens are generated as
//! one sequence; then, repeatedly, the last `window − stride` generated tokens are kept fixed
//! as a prefix, `stride` `[MASK]` tokens are appended, and the window is sampled again as an
//! infill — so block k is generated conditioned on (the end of) blocks < k.

use super::{
    ancestral::sample_ancestral, first_hitting::sample_first_hitting, AncestralConfig, FhsConfig,
    NoiseSchedule, SamplerStats, Samples,
};
use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use rand::Rng;
use std::time::Instant;

/// The sampler used inside each window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InnerSampler {
    /// The ancestral sampler.
    Ancestral(AncestralConfig),
    /// The first-hitting sampler.
    FirstHitting(FhsConfig),
}

/// Settings of semi-autoregressive generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemiArConfig {
    /// Tokens the denoiser sees at once.
    pub window: usize,
    /// New tokens per block after the first window (1 ≤ stride < window).
    pub stride: usize,
    /// Total length of each generated row (≥ window).
    pub total_len: usize,
    /// Sampler inside each window.
    pub inner: InnerSampler,
}

fn run_inner<D: Denoiser + ?Sized, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    init: &[u32],
    batch: usize,
    inner: &InnerSampler,
    rng: &mut R,
) -> Result<Samples> {
    match inner {
        InnerSampler::Ancestral(c) => sample_ancestral(den, sched, init, batch, c, rng),
        InnerSampler::FirstHitting(c) => sample_first_hitting(den, sched, init, batch, c, rng),
    }
}

/// Generates `batch` rows of `cfg.total_len` tokens block by block (module docs). `prefix`
/// (≤ window tokens) starts every row: its tokens are fixed, except `[MASK]` entries, which are
/// generated (an infill template for the first window).
pub fn sample_semi_ar<D: Denoiser + ?Sized, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    prefix: &[u32],
    batch: usize,
    cfg: &SemiArConfig,
    rng: &mut R,
) -> Result<Samples> {
    let (w, k) = (cfg.window, cfg.stride);
    if w == 0 || k == 0 || k >= w || cfg.total_len < w || prefix.len() > w || batch == 0 {
        return Err(DiffusionError::Config(format!(
            "semi-AR: need 1 ≤ stride < window ≤ total length, prefix ≤ window and batch ≥ 1; \
             got window {w}, stride {k}, total {}, prefix {}, batch {batch}",
            cfg.total_len,
            prefix.len()
        )));
    }
    let start = Instant::now();
    let mask = den.mask_id();
    let mut stats = SamplerStats::default();
    let mut first = prefix.to_vec();
    first.resize(w, mask);
    let s = run_inner(den, sched, &first.repeat(batch), batch, &cfg.inner, rng)?;
    let mut out: Vec<Vec<u32>> = (0..batch).map(|r| s.row(r).to_vec()).collect();
    add(&mut stats, &s.stats);
    while out[0].len() < cfg.total_len {
        let mut init = Vec::with_capacity(batch * w);
        for row in &out {
            init.extend_from_slice(&row[row.len() - (w - k)..]);
            init.extend(std::iter::repeat_n(mask, k));
        }
        let s = run_inner(den, sched, &init, batch, &cfg.inner, rng)?;
        add(&mut stats, &s.stats);
        let take = k.min(cfg.total_len - out[0].len());
        for (r, row) in out.iter_mut().enumerate() {
            row.extend_from_slice(&s.row(r)[w - k..w - k + take]);
        }
    }
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(Samples {
        tokens: out.concat(),
        batch,
        len: cfg.total_len,
        stats,
    })
}

fn add(total: &mut SamplerStats, s: &SamplerStats) {
    total.network_calls += s.network_calls;
    total.batch_calls += s.batch_calls;
    total.steps += s.steps;
}
