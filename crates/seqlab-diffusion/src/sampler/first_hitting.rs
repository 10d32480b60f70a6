//! The first-hitting sampler (FHS; Zheng et al. 2024, "Masked diffusion models are secretly
//! time-agnostic masked models and exploit inaccurate categorical sampling").
//!
//! With n masked tokens at time t, each still masked independently until its own unmask time;
//! the first of the n to unmask does so at s with 1 − α_s = (1 − α_t)·u^{1/n}, u ~ U(0, 1)
//! (the minimum of n i.i.d. unmask times). For the log-linear α this is s = t·u^{1/n}; for any
//! other schedule s is found by inverting α ([`first_hitting_time`]). At s exactly one masked
//! position, chosen uniformly, unmasks to a token drawn from x_θ(x_t, s) — one network call per
//! generated token, and no step that changes nothing. Every row of a batch keeps its own clock
//! and masked count; each batched call covers the rows that still have masks.

use super::{
    check_init, denoise_positions, draw_token, Draw, NoiseSchedule, SamplerStats, Samples,
};
use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use rand::Rng;
use std::time::Instant;

/// Settings of the first-hitting sampler.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct FhsConfig {
    /// How tokens are drawn.
    pub draw: Draw,
}

/// The next unmask time s ≤ t given n ≥ 1 masked tokens at t and a uniform `u` ∈ (0, 1):
/// 1 − α_s = (1 − α_t)·u^{1/n} (module docs), turned into s by the schedule's inverse
/// ([`NoiseSchedule::time_at_alpha`]); for the log-linear α, s = t·u^{1/n}.
pub fn first_hitting_time(sched: &NoiseSchedule, t: f64, n: usize, u: f64) -> Result<f64> {
    if n == 0 || !(0.0..=1.0).contains(&t) || !(u > 0.0 && u < 1.0) {
        return Err(DiffusionError::Input(format!(
            "first-hitting time: need n ≥ 1, t in [0, 1], u in (0, 1); got n = {n}, t = {t}, u = {u}"
        )));
    }
    let mask_s = sched.mask_prob(t) * (u.ln() / n as f64).exp();
    Ok(sched.time_at_alpha(1.0 - mask_s).min(t))
}

/// Samples `batch` rows with the first-hitting sampler from `init` (`[MASK]` where to generate).
/// Every row's clock starts at t = 1.
pub fn sample_first_hitting<D: Denoiser + ?Sized, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    init: &[u32],
    batch: usize,
    cfg: &FhsConfig,
    rng: &mut R,
) -> Result<Samples> {
    sched.validate()?;
    let len = check_init(den, init, batch)?;
    let mask = den.mask_id();
    let start = Instant::now();
    let mut stats = SamplerStats::default();
    let mut x = init.to_vec();
    let mut clock = vec![1.0f64; batch];
    loop {
        let masked: Vec<Vec<usize>> = (0..batch)
            .map(|r| {
                (0..len)
                    .filter(|&i| x[r * len + i] == mask)
                    .collect::<Vec<_>>()
            })
            .collect();
        let active: Vec<usize> = (0..batch).filter(|&r| !masked[r].is_empty()).collect();
        if active.is_empty() {
            break;
        }
        let mut times = Vec::with_capacity(active.len());
        for &r in &active {
            let u = loop {
                let u: f64 = rng.random();
                if u > 0.0 {
                    break u;
                }
            };
            clock[r] = first_hitting_time(sched, clock[r], masked[r].len(), u)?;
            times.push(clock[r]);
        }
        // The position that unmasks is uniform among the masked ones; only its row of x_θ is
        // needed.
        let positions: Vec<usize> = active
            .iter()
            .map(|&r| masked[r][rng.random_range(0..masked[r].len())])
            .collect();
        let lps = denoise_positions(den, &x, len, &active, &times, &positions, &mut stats)?;
        for ((&r, &pos), lp) in active.iter().zip(&positions).zip(&lps) {
            let tok = draw_token(lp, cfg.draw, rng)?;
            if tok == mask {
                return Err(DiffusionError::Input(
                    "first-hitting sampler: the denoiser's SUBS output drew [MASK]".into(),
                ));
            }
            x[r * len + pos] = tok;
        }
        stats.steps += 1;
    }
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(Samples {
        tokens: x,
        batch,
        len,
        stats,
    })
}
