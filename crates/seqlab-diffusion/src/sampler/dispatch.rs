//! The sampler dispatcher: one [`SamplerSpec`] names a sampler and its settings (as
//! `seqlab diffusion sample` and `eval` choose them), [`run_sampler`] runs it. Evaluation
//! ([`crate::gen_eval`]) calls this; sampling never goes through evaluation.

use super::edlm::{sample_edlm, EdlmConfig, EnergyModel};
use super::{
    sample_ancestral, sample_first_hitting, AncestralConfig, Draw, FhsConfig, NoiseSchedule,
    Samples,
};
use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use rand::Rng;

/// A sampler and its settings, as `seqlab diffusion sample` / `eval` choose them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerSpec {
    /// MDLM's ancestral sampler.
    Ancestral(AncestralConfig),
    /// The first-hitting sampler.
    FirstHitting(FhsConfig),
    /// EDLM importance sampling over the ancestral sampler (needs an energy).
    Edlm(EdlmConfig),
}

impl SamplerSpec {
    /// `ancestral`, `fhs` or `edlm`.
    pub fn name(&self) -> &'static str {
        match self {
            SamplerSpec::Ancestral(_) => "ancestral",
            SamplerSpec::FirstHitting(_) => "fhs",
            SamplerSpec::Edlm(_) => "edlm",
        }
    }

    /// Steps T (0 for FHS, which has none).
    pub fn steps(&self) -> usize {
        match self {
            SamplerSpec::Ancestral(c) => c.steps,
            SamplerSpec::FirstHitting(_) => 0,
            SamplerSpec::Edlm(c) => c.ancestral.steps,
        }
    }

    /// Whether the no-change cache is on (FHS never needs it).
    pub fn cache(&self) -> bool {
        match self {
            SamplerSpec::Ancestral(c) => c.cache,
            SamplerSpec::FirstHitting(_) => false,
            SamplerSpec::Edlm(c) => c.ancestral.cache,
        }
    }

    /// The categorical draw.
    pub fn draw(&self) -> Draw {
        match self {
            SamplerSpec::Ancestral(c) => c.draw,
            SamplerSpec::FirstHitting(c) => c.draw,
            SamplerSpec::Edlm(c) => c.ancestral.draw,
        }
    }

    /// EDLM's k (0 otherwise).
    pub fn k(&self) -> usize {
        match self {
            SamplerSpec::Edlm(c) => c.k,
            _ => 0,
        }
    }
}

/// Runs `spec` on `batch` rows from `init`; EDLM needs `energy`.
pub fn run_sampler<D: Denoiser + ?Sized, E: EnergyModel + ?Sized, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    spec: &SamplerSpec,
    energy: Option<&E>,
    init: &[u32],
    batch: usize,
    rng: &mut R,
) -> Result<Samples> {
    match spec {
        SamplerSpec::Ancestral(c) => sample_ancestral(den, sched, init, batch, c, rng),
        SamplerSpec::FirstHitting(c) => sample_first_hitting(den, sched, init, batch, c, rng),
        SamplerSpec::Edlm(c) => {
            let e = energy.ok_or_else(|| {
                DiffusionError::Config("EDLM needs an energy model (an AR model)".into())
            })?;
            Ok(sample_edlm(den, sched, e, init, batch, c, rng)?.samples)
        }
    }
}
