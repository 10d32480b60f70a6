//! The continuous-time MDLM NELBO (Sahoo et al. 2024, eq. 10; docs/diffusion.md#training-loss):
//!
//! ```text
//! L = E_{t ~ U[0,1]} E_{x_t ~ q(x_t | x_0)} [ w(t) · Σ_{ℓ : x_t^ℓ = [MASK]} log x_θ(x_t, t)[x_0^ℓ] ],
//! w(t) = α′_t / (1 − α_t) ≤ 0     (= −1/t for the log-linear schedule)
//! ```
//!
//! with x_θ the SUBS parameterisation ([`crate::subs`]): unmasked positions carry over exactly and
//! contribute 0. A batch of B rows uses antithetic times t_i = ε + (1 − ε)·((u + i/B) mod 1), one
//! u ~ U[0,1) per batch (MDLM's `_sample_t`, low-discrepancy over the batch; ε keeps t away from
//! 0 where w blows up), masks each token of row i independently with probability 1 − α_{t_i},
//! and normalises the sum by the number of tokens B·L (nats per token).

use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use crate::schedule::NoiseSchedule;
use crate::subs::subs_target_log_probs;
use candle_core::{DType, Tensor};
use rand::Rng;

/// Antithetic diffusion times for a batch of `batch` rows: t_i = ε + (1 − ε)·((u + i/B) mod 1),
/// i = 0 … B−1, so the B times are evenly spread over [ε, 1) and each is marginally U[ε, 1).
pub fn antithetic_times(batch: usize, u: f64, eps: f64) -> Vec<f64> {
    (0..batch)
        .map(|i| {
            let s = (u + i as f64 / batch as f64).rem_euclid(1.0);
            eps + (1.0 - eps) * s
        })
        .collect()
}

/// The forward (masking) process q(x_t | x_0): row r of `x0` (rows of `len` tokens) is copied
/// with each token independently replaced by `mask_id` with probability 1 − α_{t_r}
/// (a draw u ~ U[0,1) in f64 per token, masked when u < 1 − α_t).
pub fn mask_tokens(
    x0: &[u32],
    t: &[f64],
    schedule: &NoiseSchedule,
    mask_id: u32,
    rng: &mut impl Rng,
) -> Result<Vec<u32>> {
    let len = seqlab_tensor::batch_rows(x0.len(), t.len())?;
    let mut out = x0.to_vec();
    for (row, &tr) in out.chunks_mut(len).zip(t) {
        let p = schedule.mask_prob(tr);
        for tok in row.iter_mut() {
            if rng.random::<f64>() < p {
                *tok = mask_id;
            }
        }
    }
    Ok(out)
}

/// One batch's NELBO estimate as a differentiable scalar (nats per token):
/// `(1 / (B·L)) Σ_r Σ_{ℓ : x_t = [MASK]} w(t_r) · log x_θ(x_t)[x_0]`, from the denoiser's raw
/// `logits` (B, L, V) of `xt`. `x0` must not contain the mask id. With no masked token the loss
/// is exactly 0 (a constant).
pub fn nelbo_loss(
    logits: &Tensor,
    x0: &[u32],
    xt: &[u32],
    t: &[f64],
    schedule: &NoiseSchedule,
    mask_id: u32,
) -> Result<Tensor> {
    let (b, l, _) = logits.dims3()?;
    if x0.len() != b * l || xt.len() != b * l || t.len() != b {
        return Err(DiffusionError::Input(format!(
            "nelbo_loss: logits ({b}, {l}, ·) with {} clean tokens, {} noisy tokens, {} times",
            x0.len(),
            xt.len(),
            t.len()
        )));
    }
    let n = (b * l) as f64;
    let mut pos = Vec::new();
    let mut tgt = Vec::new();
    let mut coef = Vec::new();
    for (i, (&a, &c)) in xt.iter().zip(x0).enumerate() {
        if a == mask_id {
            pos.push(i as u32);
            tgt.push(c);
            coef.push(schedule.weight(t[i / l]) / n);
        } else if a != c {
            return Err(DiffusionError::Input(format!(
                "nelbo_loss: position {i} is neither masked nor the clean token"
            )));
        }
    }
    if pos.is_empty() {
        return Ok(Tensor::zeros((), logits.dtype(), logits.device())?);
    }
    if let Some(w) = coef.iter().find(|w| !w.is_finite()) {
        return Err(DiffusionError::Input(format!(
            "nelbo_loss: the weight w(t) is {w} (t = 0?)"
        )));
    }
    let logp = subs_target_log_probs(logits, &pos, &tgt, mask_id)?;
    let coef = Tensor::from_vec(coef, pos.len(), logits.device())?.to_dtype(logits.dtype())?;
    Ok((logp * coef)?.sum_all()?)
}

/// A noisy batch: the clean rows, their antithetic times and the masked rows.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisyBatch {
    /// Clean tokens x_0 (batch·len).
    pub x0: Vec<u32>,
    /// Masked tokens x_t (batch·len).
    pub xt: Vec<u32>,
    /// One time per row.
    pub t: Vec<f64>,
}

/// Draws the antithetic times (u from `rng`) and the masks of one batch of clean rows.
pub fn noisy_batch(
    x0: &[u32],
    batch: usize,
    schedule: &NoiseSchedule,
    t_eps: f64,
    mask_id: u32,
    rng: &mut impl Rng,
) -> Result<NoisyBatch> {
    if !(0.0..1.0).contains(&t_eps) {
        return Err(DiffusionError::Config(format!(
            "t_eps must be in [0, 1), got {t_eps}"
        )));
    }
    if let Some(&m) = x0.iter().find(|&&x| x >= mask_id) {
        return Err(DiffusionError::Input(format!(
            "clean token {m} is not below the mask id {mask_id}"
        )));
    }
    let u: f64 = rng.random();
    let t = antithetic_times(batch, u, t_eps);
    let xt = mask_tokens(x0, &t, schedule, mask_id, rng)?;
    Ok(NoisyBatch {
        x0: x0.to_vec(),
        xt,
        t,
    })
}

/// The training loss of one batch: [`noisy_batch`], the denoiser's logits of x_t, then
/// [`nelbo_loss`]. Returns the differentiable loss and the noisy batch it used.
pub fn diffusion_loss(
    denoiser: &dyn Denoiser,
    x0: &[u32],
    batch: usize,
    schedule: &NoiseSchedule,
    t_eps: f64,
    rng: &mut impl Rng,
) -> Result<(Tensor, NoisyBatch)> {
    let nb = noisy_batch(x0, batch, schedule, t_eps, denoiser.mask_id(), rng)?;
    let logits = denoiser.logits(&nb.xt, batch, &nb.t)?;
    let loss = nelbo_loss(&logits, &nb.x0, &nb.xt, &nb.t, schedule, denoiser.mask_id())?;
    Ok((loss, nb))
}

/// A scalar loss tensor's value in f64.
pub fn scalar(x: &Tensor) -> Result<f64> {
    Ok(x.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}
