//! Samplers for masked diffusion LMs (docs/diffusion.md#samplers): the ancestral
//! sampler with the no-change cache ([`ancestral`]), the first-hitting sampler
//! ([`first_hitting`]), semi-autoregressive block generation ([`semi_ar`]), infilling
//! templates ([`infill`]), EDLM importance sampling ([`edlm`]), a tiny hash-table denoiser for
//! exact checks ([`toy`]) and the dispatcher that runs any of them from one [`SamplerSpec`]
//! ([`dispatch`]).
//!
//! Every sampler starts from a batch of rows `x` (row-major, `batch × len`) in which the
//! positions to generate hold [`Denoiser::mask_id`] and every other position is fixed (an infill
//! template; all-mask for unconditional generation). Fixed positions are never touched: SUBS
//! carry-over makes the denoiser's distribution there a point mass, and the samplers only
//! write masked positions.
//!
//! The noise schedule is a [`NoiseSchedule`] (α_t: probability that a token is still clean at
//! time t).

pub mod ancestral;
pub mod dispatch;
pub mod edlm;
pub mod first_hitting;
pub mod infill;
pub mod semi_ar;
pub mod toy;

use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
pub use crate::schedule::NoiseSchedule;
use crate::subs::{masked_log_softmax, subs_log_probs};
use rand::Rng;
use seqlab_tensor::{batch_rows, sample_categorical};

pub use ancestral::{ancestral_step_row, sample_ancestral, AncestralConfig};
pub use dispatch::{run_sampler, SamplerSpec};
pub use first_hitting::{first_hitting_time, sample_first_hitting, FhsConfig};
pub use infill::{all_masked, InfillTemplate};
pub use semi_ar::{sample_semi_ar, InnerSampler, SemiArConfig};
pub use toy::{ToyCall, ToyDenoiser};

/// How a categorical draw is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Draw {
    /// Inverse CDF in f64 with a 53-bit uniform (`seqlab_tensor::sample_categorical`): every
    /// token gets its probability up to f64 rounding.
    #[default]
    F64,
    /// The reference implementation's float32 Gumbel trick, `argmax_v q_v / (−ln(u_v + 1e-10) +
    /// 1e-10)` with u and q in f32 (MDLM `_sample_categorical`). Known defect: the noise is
    /// capped (−ln u ≥ ~6e-8 … ≤ ~23), so tokens far in the tail can never win — a lower
    /// effective temperature that flatters gen-PPL. Kept to measure that effect.
    F32Gumbel,
}

impl Draw {
    /// `"f64"` or `"f32-gumbel"`.
    pub fn name(self) -> &'static str {
        match self {
            Draw::F64 => "f64",
            Draw::F32Gumbel => "f32-gumbel",
        }
    }
}

/// Counters every sampler reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct SamplerStats {
    /// Sequence forward passes of the denoiser (one per row per call; the row-level count the
    /// no-change cache saves).
    pub network_calls: usize,
    /// Batched denoiser calls (each covers one or more rows).
    pub batch_calls: usize,
    /// Reverse steps taken (ancestral: T; first-hitting: unmask events of the longest row).
    pub steps: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// A batch of generated rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// `batch × len` token ids, row-major, no `[MASK]` left.
    pub tokens: Vec<u32>,
    /// Rows.
    pub batch: usize,
    /// Row length.
    pub len: usize,
    /// Counters.
    pub stats: SamplerStats,
}

impl Samples {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.len..(i + 1) * self.len]
    }

    /// Network calls per generated row.
    pub fn calls_per_sample(&self) -> f64 {
        self.stats.network_calls as f64 / self.batch.max(1) as f64
    }
}

/// Checks a sampler's starting batch against the denoiser: `batch × len` ids, every id inside
/// the vocabulary.
pub(crate) fn check_init<D: Denoiser + ?Sized>(
    den: &D,
    init: &[u32],
    batch: usize,
) -> Result<usize> {
    let len = batch_rows(init.len(), batch)?;
    let v = den.vocab_size();
    if den.mask_id() as usize >= v {
        return Err(DiffusionError::Input(format!(
            "sampler: mask id {} outside the denoiser's vocabulary of {v}",
            den.mask_id()
        )));
    }
    if let Some(&bad) = init.iter().find(|&&t| t as usize >= v) {
        return Err(DiffusionError::Input(format!(
            "sampler: token {bad} outside the denoiser's vocabulary of {v}"
        )));
    }
    Ok(len)
}

/// One batched denoiser call on `rows` of `x` (rows of `len` tokens) at `times`: the rows'
/// tokens and the raw logits (rows, len, V), shape-checked.
fn batched_logits<D: Denoiser + ?Sized>(
    den: &D,
    x: &[u32],
    len: usize,
    rows: &[usize],
    times: &[f64],
) -> Result<(Vec<u32>, candle_core::Tensor)> {
    let mut sub = Vec::with_capacity(rows.len() * len);
    for &r in rows {
        sub.extend_from_slice(&x[r * len..(r + 1) * len]);
    }
    let logits = den.logits(&sub, rows.len(), times)?;
    let dims = logits.dims().to_vec();
    let v = den.vocab_size();
    if dims != [rows.len(), len, v] {
        return Err(DiffusionError::Input(format!(
            "denoiser returned logits of shape {dims:?}, expected [{}, {len}, {v}]",
            rows.len()
        )));
    }
    Ok((sub, logits))
}

/// SUBS log-probabilities (f32, `rows × len × V` flattened) for the given rows of `x` at the
/// given times — one batched denoiser call.
pub(crate) fn denoise_rows<D: Denoiser + ?Sized>(
    den: &D,
    x: &[u32],
    len: usize,
    rows: &[usize],
    times: &[f64],
    stats: &mut SamplerStats,
) -> Result<Vec<Vec<f32>>> {
    let (sub, logits) = batched_logits(den, x, len, rows, times)?;
    let v = den.vocab_size();
    let lp = subs_log_probs(&logits, &sub, den.mask_id())?;
    let flat = lp.flatten_all()?.to_vec1::<f32>()?;
    stats.network_calls += rows.len();
    stats.batch_calls += 1;
    Ok(flat.chunks_exact(len * v).map(<[f32]>::to_vec).collect())
}

/// One token from `exp(log_probs)` (SUBS log-probabilities of one position; `[MASK]` at −∞),
/// drawn as `draw` says.
/// SUBS log-probabilities (V) at one masked position per row, `positions[i]` of `rows[i]`, from
/// one batched network call; only those logit rows are normalised (all the first-hitting
/// sampler needs).
pub(crate) fn denoise_positions<D: Denoiser + ?Sized>(
    den: &D,
    x: &[u32],
    len: usize,
    rows: &[usize],
    times: &[f64],
    positions: &[usize],
    stats: &mut SamplerStats,
) -> Result<Vec<Vec<f32>>> {
    let (_, logits) = batched_logits(den, x, len, rows, times)?;
    stats.network_calls += rows.len();
    stats.batch_calls += 1;
    positions
        .iter()
        .enumerate()
        .map(|(i, &pos)| {
            let mut row = logits
                .get(i)?
                .get(pos)?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?;
            masked_log_softmax(&mut row, den.mask_id());
            Ok(row)
        })
        .collect()
}

pub fn draw_token<R: Rng + ?Sized>(log_probs: &[f32], draw: Draw, rng: &mut R) -> Result<u32> {
    match draw {
        Draw::F64 => {
            let w: Vec<f64> = log_probs.iter().map(|&l| f64::from(l).exp()).collect();
            Ok(sample_categorical(&w, rng)? as u32)
        }
        Draw::F32Gumbel => {
            let probs: Vec<f32> = log_probs.iter().map(|&l| l.exp()).collect();
            gumbel_argmax_f32(&probs, rng)
        }
    }
}

/// MDLM's `_sample_categorical` in float32: `argmax_v q_v / (1e-10 − ln(u_v + 1e-10))` with
/// `u_v ~ U[0, 1)` in f32 — an exponential race, equivalent to Gumbel-max, whose noise is
/// capped by the f32 grid (the defect [`Draw::F32Gumbel`] describes).
pub fn gumbel_argmax_f32<R: Rng + ?Sized>(q: &[f32], rng: &mut R) -> Result<u32> {
    let mut best = (f32::NEG_INFINITY, None);
    for (i, &p) in q.iter().enumerate() {
        let u: f32 = rng.random::<f32>();
        let g = 1e-10f32 - (u + 1e-10f32).ln();
        let score = p / g;
        if score > best.0 {
            best = (score, Some(i));
        }
    }
    match best {
        (s, Some(i)) if s > 0.0 => Ok(i as u32),
        _ => Err(DiffusionError::NotFinite(
            "categorical draw: no category has positive probability".into(),
        )),
    }
}
