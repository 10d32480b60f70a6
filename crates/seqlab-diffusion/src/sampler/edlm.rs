//! EDLM (Xu et al. 2024, "Energy-based diffusion language models"; MinkaiXu/Energy-Diffusion-LLM
//! `diffusion.py`): importance sampling of the clean sequence with an energy, inside a window
//! of the ancestral sampler.
//!
//! EDLM's denoising distribution is the residual energy-based model
//! p_{θ,φ}(x_0 | x_t) ∝ p_θ(x_0 | x_t)·exp(−E(x_0, x_t)), with p_θ(x_0 | x_t) = Π_i x_θ,i the
//! factorised denoiser (SUBS: unmasked positions are point masses). With the AR energy
//! E = −log p_AR(x_0) + log p_θ(x_0 | x_t) the target is ∝ p_AR(x_0) on the sequences that agree
//! with x_t. Sampling it by importance sampling with the denoiser as proposal: draw k candidates
//! x_0^(j) ~ p_θ(· | x_t), weight w_j = target/proposal = p_θ·e^{−E}/p_θ = e^{−E_j}
//! = p_AR(x_0^(j)) / p_θ(x_0^(j) | x_t), normalise, resample one (the public code uses +E, the
//! reciprocal weight — issue #3 there; here the sign is the importance weight's). As k → ∞ the
//! resampled candidate's law tends to the target. A temperature τ uses e^{−E/τ}.
//!
//! [`sample_edlm`] runs the ancestral sampler and, at each step whose t lies in
//! [is_end, is_start], resamples a candidate per row and takes the ancestral step towards it
//! (positions that unmask take the candidate's tokens); outside the window it is plain MDLM.

use super::ancestral::{run_ancestral, X0Guide};
use super::{draw_token, AncestralConfig, Draw, NoiseSchedule, Samples};
use crate::ar_score::ar_log_probs;
use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use rand::{Rng, RngCore};
use seqlab_lm::CausalLm;
use seqlab_tensor::Categorical;
use std::cell::Cell;

/// A source of EDLM energies.
pub trait EnergyModel {
    /// The log importance weight −E(x_0^(j), x_t) of each candidate. `candidates` holds k rows of
    /// len tokens; `log_q` (k × len) the proposal's log x_θ of each candidate token at the
    /// positions masked in `x_t` (0 elsewhere).
    fn neg_energy(
        &self,
        candidates: &[Vec<u32>],
        x_t: &[u32],
        log_q: &[Vec<f64>],
    ) -> Result<Vec<f64>>;
}

/// The AR energy E = −log p_AR(x_0) + log p_θ(x_0 | x_t) (module docs) with any [`CausalLm`].
/// Without a BOS id the AR model does not predict position 0, so that position is left out of
/// both terms (its weight is the proposal's: the target there is x_θ's marginal).
#[derive(Debug)]
pub struct ArEnergy<'a, M: CausalLm> {
    /// The AR model (same token ids as the denoiser, `[MASK]` aside).
    pub lm: &'a M,
    /// Optional BOS id fed before the sequence.
    pub bos: Option<u32>,
    evals: Cell<usize>,
}

impl<'a, M: CausalLm> ArEnergy<'a, M> {
    /// The AR energy of `lm`.
    pub fn new(lm: &'a M, bos: Option<u32>) -> Self {
        Self {
            lm,
            bos,
            evals: Cell::new(0),
        }
    }

    /// Sequences scored so far.
    pub fn evals(&self) -> usize {
        self.evals.get()
    }
}

impl<M: CausalLm> EnergyModel for ArEnergy<'_, M> {
    fn neg_energy(
        &self,
        candidates: &[Vec<u32>],
        _x_t: &[u32],
        log_q: &[Vec<f64>],
    ) -> Result<Vec<f64>> {
        let skip = usize::from(self.bos.is_none());
        candidates
            .iter()
            .zip(log_q)
            .map(|(c, q)| {
                self.evals.set(self.evals.get() + 1);
                let ar = ar_log_probs(self.lm, c, self.bos)?;
                Ok(ar.iter().zip(q).skip(skip).map(|(a, q)| a - q).sum())
            })
            .collect()
    }
}

/// A closure energy: −E = `log_target(x_0)` − log p_θ(x_0 | x_t), i.e. importance sampling
/// towards p ∝ exp(log_target) (tests, or any scorer of whole sequences; an `Err` message
/// becomes a [`DiffusionError::Input`]).
pub struct FnEnergy<F: Fn(&[u32]) -> std::result::Result<f64, String>>(pub F);

impl<F: Fn(&[u32]) -> std::result::Result<f64, String>> std::fmt::Debug for FnEnergy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnEnergy")
    }
}

impl<F: Fn(&[u32]) -> std::result::Result<f64, String>> EnergyModel for FnEnergy<F> {
    fn neg_energy(
        &self,
        candidates: &[Vec<u32>],
        _: &[u32],
        log_q: &[Vec<f64>],
    ) -> Result<Vec<f64>> {
        candidates
            .iter()
            .zip(log_q)
            .map(|(c, q)| {
                let target =
                    (self.0)(c).map_err(|e| DiffusionError::Input(format!("EDLM energy: {e}")))?;
                Ok(target - q.iter().sum::<f64>())
            })
            .collect()
    }
}

/// Settings of EDLM sampling.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EdlmConfig {
    /// The ancestral sampler underneath.
    pub ancestral: AncestralConfig,
    /// Candidates per importance-sampling step (k ≥ 1; k = 1 is plain MDLM).
    pub k: usize,
    /// Window start (largest t), reference 0.6.
    pub is_start: f64,
    /// Window end (smallest t), reference 0.4.
    pub is_end: f64,
    /// Energy temperature τ (weights e^{−E/τ}), > 0.
    pub temperature: f64,
}

impl Default for EdlmConfig {
    fn default() -> Self {
        Self {
            ancestral: AncestralConfig::default(),
            k: 2,
            is_start: 0.6,
            is_end: 0.4,
            temperature: 1.0,
        }
    }
}

/// EDLM's counters on top of the sampler's.
#[derive(Debug, Clone, PartialEq)]
pub struct EdlmOutput {
    /// The samples (stats as the ancestral sampler counts them).
    pub samples: Samples,
    /// Row-steps that importance-sampled a candidate.
    pub is_steps: usize,
    /// Candidates scored by the energy.
    pub energy_evals: usize,
}

/// One importance-resampling draw (module docs): k candidates for `row` from its SUBS
/// log-probabilities `lp` (len × V, candidates drawn in f64 independently per position),
/// weighted by `energy` at temperature τ, one returned.
pub fn importance_resample<E: EnergyModel + ?Sized, R: Rng + ?Sized>(
    row: &[u32],
    lp: &[f32],
    mask_id: u32,
    k: usize,
    temperature: f64,
    energy: &E,
    rng: &mut R,
) -> Result<Vec<u32>> {
    if k == 0 || !(temperature > 0.0 && temperature.is_finite()) {
        return Err(DiffusionError::Config(format!(
            "EDLM: need k ≥ 1 candidates and a temperature > 0, got k = {k}, τ = {temperature}"
        )));
    }
    let len = row.len();
    if len == 0 || !lp.len().is_multiple_of(len) {
        return Err(DiffusionError::Input(format!(
            "EDLM: {} log-probabilities for a row of {len}",
            lp.len()
        )));
    }
    let v = lp.len() / len;
    let mut cands = Vec::with_capacity(k);
    let mut log_q = Vec::with_capacity(k);
    for _ in 0..k {
        let mut c = row.to_vec();
        let mut q = vec![0.0; len];
        for i in 0..len {
            if row[i] == mask_id {
                let p = &lp[i * v..(i + 1) * v];
                let tok = draw_token(p, Draw::F64, rng)?;
                c[i] = tok;
                q[i] = f64::from(p[tok as usize]);
            }
        }
        cands.push(c);
        log_q.push(q);
    }
    if k == 1 {
        return Ok(cands.pop().expect("one candidate"));
    }
    let lw = energy.neg_energy(&cands, row, &log_q)?;
    if lw.len() != k || lw.iter().any(|w| w.is_nan() || *w == f64::INFINITY) {
        return Err(DiffusionError::NotFinite(format!(
            "EDLM: the energy returned {lw:?} for {k} candidates"
        )));
    }
    let scaled: Vec<f64> = lw.iter().map(|w| w / temperature).collect();
    let j = Categorical::from_log_weights(&scaled)
        .map_err(|e| DiffusionError::NotFinite(format!("EDLM weights: {e}")))?
        .sample(rng);
    Ok(cands.swap_remove(j))
}

struct Guide<'a, E: EnergyModel + ?Sized> {
    energy: &'a E,
    cfg: EdlmConfig,
    mask_id: u32,
    is_steps: usize,
}

impl<E: EnergyModel + ?Sized> X0Guide for Guide<'_, E> {
    fn active(&self, t: f64) -> bool {
        self.cfg.k > 1 && t >= self.cfg.is_end && t <= self.cfg.is_start
    }

    fn choose(&mut self, row: &[u32], lp: &[f32], rng: &mut dyn RngCore) -> Result<Vec<u32>> {
        self.is_steps += 1;
        importance_resample(
            row,
            lp,
            self.mask_id,
            self.cfg.k,
            self.cfg.temperature,
            self.energy,
            rng,
        )
    }
}

/// Samples `batch` rows with EDLM (module docs) from `init` (`[MASK]` where to generate).
pub fn sample_edlm<D: Denoiser + ?Sized, E: EnergyModel + ?Sized, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    energy: &E,
    init: &[u32],
    batch: usize,
    cfg: &EdlmConfig,
    rng: &mut R,
) -> Result<EdlmOutput> {
    let valid = cfg.k >= 1
        && cfg.temperature > 0.0
        && cfg.temperature.is_finite()
        && (0.0..=1.0).contains(&cfg.is_end)
        && cfg.is_end <= cfg.is_start
        && cfg.is_start <= 1.0;
    if !valid {
        return Err(DiffusionError::Config(format!(
            "EDLM: need k ≥ 1, τ > 0 and 0 ≤ is_end ≤ is_start ≤ 1; got k = {}, τ = {}, window \
             [{}, {}]",
            cfg.k, cfg.temperature, cfg.is_end, cfg.is_start
        )));
    }
    let mut guide = Guide {
        energy,
        cfg: *cfg,
        mask_id: den.mask_id(),
        is_steps: 0,
    };
    let samples = run_ancestral(
        den,
        sched,
        init,
        batch,
        &cfg.ancestral,
        rng,
        Some(&mut guide),
    )?;
    Ok(EdlmOutput {
        samples,
        is_steps: guide.is_steps,
        energy_evals: guide.is_steps * cfg.k,
    })
}
