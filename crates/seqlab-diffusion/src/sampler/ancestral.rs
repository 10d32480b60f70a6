//! The ancestral sampler of MDLM (Sahoo et al. 2024, §3.3 / `_ddpm_caching_update`) with the
//! no-change cache.
//!
//! Time grid `t_i = 1 − i·(1 − t_min)/T`, i = 0..T (the reference's `linspace(1, 1e-5, T+1)`).
//! The step from t to s < t, per position:
//! - unmasked positions are copied (carry-over);
//! - a masked position stays masked with probability (1 − α_s)/(1 − α_t), and otherwise
//!   unmasks to a token v drawn from x_θ(x_t)_v — i.e. P(v) = x_θ,v·(α_s − α_t)/(1 − α_t),
//!   P(stay) = (1 − α_s)/(1 − α_t).
//!
//! After the last step, positions still masked get argmax x_θ (the reference's final noise
//! removal). Cache: MDLM's denoiser is time-agnostic, so when a step unmasks nothing in a row
//! its x_θ is reused next step instead of calling the network again; with T ≫ len most steps
//! change nothing and the network calls per sample fall from T towards len.

use super::{
    check_init, denoise_rows, draw_token, gumbel_argmax_f32, Draw, NoiseSchedule, SamplerStats,
    Samples,
};
use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use rand::{Rng, RngCore};
use seqlab_tensor::argmax;
use std::time::Instant;

/// Settings of the ancestral sampler.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AncestralConfig {
    /// Number of reverse steps T (≥ 1).
    pub steps: usize,
    /// The last time of the grid (reference 1e-5), in (0, 1).
    pub t_min: f64,
    /// Reuse x_θ when a step unmasks nothing (valid for a time-agnostic denoiser).
    pub cache: bool,
    /// How tokens are drawn.
    pub draw: Draw,
}

impl Default for AncestralConfig {
    fn default() -> Self {
        Self {
            steps: 128,
            t_min: 1e-5,
            cache: true,
            draw: Draw::F64,
        }
    }
}

impl AncestralConfig {
    fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(DiffusionError::Config(
                "ancestral sampler: steps must be at least 1".into(),
            ));
        }
        if !(self.t_min > 0.0 && self.t_min < 1.0) {
            return Err(DiffusionError::Config(format!(
                "ancestral sampler: t_min must lie in (0, 1), got {}",
                self.t_min
            )));
        }
        Ok(())
    }

    /// Time of grid point i (module docs).
    pub fn time(&self, i: usize) -> f64 {
        1.0 - i as f64 * (1.0 - self.t_min) / self.steps as f64
    }
}

/// Something that picks a full clean candidate x_0 for a row before its ancestral step (EDLM's
/// importance sampling); the step then moves towards that candidate.
pub(crate) trait X0Guide {
    /// Whether the guide acts at time t.
    fn active(&self, t: f64) -> bool;
    /// A clean candidate for `row` (masked positions filled) given its SUBS log-probabilities
    /// `lp` (len × V).
    fn choose(&mut self, row: &[u32], lp: &[f32], rng: &mut dyn RngCore) -> Result<Vec<u32>>;
}

/// One ancestral step t → s of one row in place (module docs): `lp` holds the row's SUBS
/// log-probabilities (len × V), `mask_t` = 1 − α_t and `mask_s` = 1 − α_s the masking
/// probabilities at t and s (the reference's `move_chance`). With `target`
/// (EDLM) a position that unmasks takes the target's token instead of a fresh draw. Returns
/// whether any position unmasked.
#[allow(clippy::too_many_arguments)]
pub fn ancestral_step_row<R: Rng + ?Sized>(
    row: &mut [u32],
    lp: &[f32],
    mask_id: u32,
    mask_t: f64,
    mask_s: f64,
    draw: Draw,
    target: Option<&[u32]>,
    rng: &mut R,
) -> Result<bool> {
    let len = row.len();
    if len == 0 || !lp.len().is_multiple_of(len) {
        return Err(DiffusionError::Input(format!(
            "ancestral step: {} log-probabilities for a row of {len}",
            lp.len()
        )));
    }
    if !((0.0..=1.0).contains(&mask_s) && mask_s <= mask_t && mask_t <= 1.0) {
        return Err(DiffusionError::Input(format!(
            "ancestral step: need 0 ≤ 1 − α_s = {mask_s} ≤ 1 − α_t = {mask_t} ≤ 1 (s before t)"
        )));
    }
    let v = lp.len() / len;
    let (mc_t, mc_s) = (mask_t, mask_s);
    let stay = if mc_t > 0.0 { mc_s / mc_t } else { 0.0 };
    let mut changed = false;
    for (i, tok) in row.iter_mut().enumerate() {
        if *tok != mask_id {
            continue;
        }
        let p = &lp[i * v..(i + 1) * v];
        let new = match draw {
            Draw::F64 => {
                if rng.random::<f64>() < stay {
                    None
                } else {
                    Some(match target {
                        Some(x0) => x0[i],
                        None => draw_token(p, Draw::F64, rng)?,
                    })
                }
            }
            Draw::F32Gumbel => {
                // The reference: q_v = x_θ,v·(mc_t − mc_s), q_mask = mc_s, one f32 race.
                let scale = (mc_t - mc_s) as f32;
                let mut q: Vec<f32> = match target {
                    Some(x0) => {
                        let mut q = vec![0.0f32; v];
                        q[x0[i] as usize] = scale;
                        q
                    }
                    None => p.iter().map(|&l| l.exp() * scale).collect(),
                };
                q[mask_id as usize] = mc_s as f32;
                match gumbel_argmax_f32(&q, rng)? {
                    m if m == mask_id => None,
                    k => Some(k),
                }
            }
        };
        if let Some(k) = new {
            if k == mask_id {
                return Err(DiffusionError::Input(
                    "ancestral step: a candidate holds [MASK] at a masked position".into(),
                ));
            }
            *tok = k;
            changed = true;
        }
    }
    Ok(changed)
}

/// Samples `batch` rows with the ancestral sampler, starting from `init` (module docs of
/// [`crate::sampler`]: `[MASK]` where to generate, fixed tokens elsewhere).
pub fn sample_ancestral<D: Denoiser + ?Sized, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    init: &[u32],
    batch: usize,
    cfg: &AncestralConfig,
    rng: &mut R,
) -> Result<Samples> {
    run_ancestral(den, sched, init, batch, cfg, rng, None)
}

/// The ancestral loop, optionally guided (EDLM).
pub(crate) fn run_ancestral<D: Denoiser + ?Sized, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    init: &[u32],
    batch: usize,
    cfg: &AncestralConfig,
    rng: &mut R,
    mut guide: Option<&mut dyn X0Guide>,
) -> Result<Samples> {
    cfg.validate()?;
    sched.validate()?;
    let len = check_init(den, init, batch)?;
    let mask = den.mask_id();
    let start = Instant::now();
    let mut stats = SamplerStats::default();
    let mut x = init.to_vec();
    let mut cache: Vec<Option<Vec<f32>>> = vec![None; batch];
    let has_mask = |x: &[u32], r: usize| x[r * len..(r + 1) * len].contains(&mask);
    for i in 0..cfg.steps {
        let (t, s) = (cfg.time(i), cfg.time(i + 1));
        let (m_t, m_s) = (sched.mask_prob(t), sched.mask_prob(s));
        let need: Vec<usize> = (0..batch)
            .filter(|&r| has_mask(&x, r) && (cache[r].is_none() || !cfg.cache))
            .collect();
        if !need.is_empty() {
            let lps = denoise_rows(den, &x, len, &need, &vec![t; need.len()], &mut stats)?;
            for (&r, lp) in need.iter().zip(lps) {
                cache[r] = Some(lp);
            }
        }
        let guided = guide.as_ref().is_some_and(|g| g.active(t));
        for r in 0..batch {
            if !has_mask(&x, r) {
                continue;
            }
            let lp = cache[r].as_ref().expect("computed above");
            let row = &mut x[r * len..(r + 1) * len];
            let target = match (&mut guide, guided) {
                (Some(g), true) => Some(g.choose(row, lp, rng)?),
                _ => None,
            };
            let changed =
                ancestral_step_row(row, lp, mask, m_t, m_s, cfg.draw, target.as_deref(), rng)?;
            if changed {
                cache[r] = None;
            }
        }
        stats.steps += 1;
    }
    // Final noise removal: argmax x_θ at t_min where masks remain.
    let need: Vec<usize> = (0..batch)
        .filter(|&r| has_mask(&x, r) && (cache[r].is_none() || !cfg.cache))
        .collect();
    if !need.is_empty() {
        let t = cfg.t_min;
        let lps = denoise_rows(den, &x, len, &need, &vec![t; need.len()], &mut stats)?;
        for (&r, lp) in need.iter().zip(lps) {
            cache[r] = Some(lp);
        }
    }
    let v = den.vocab_size();
    for r in 0..batch {
        if let Some(lp) = &cache[r] {
            for (i, tok) in x[r * len..(r + 1) * len].iter_mut().enumerate() {
                if *tok == mask {
                    *tok = argmax(&lp[i * v..(i + 1) * v])?;
                }
            }
        }
    }
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(Samples {
        tokens: x,
        batch,
        len,
        stats,
    })
}
