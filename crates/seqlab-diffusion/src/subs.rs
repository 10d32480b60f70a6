//! SUBS parameterisation (MDLM, Sahoo et al. 2024, §3.2.3): zero masking probabilities and
//! carry-over unmasking.

use crate::error::{DiffusionError, Result};
use candle_core::{DType, Tensor, D};

/// SUBS at one masked position, in place: the raw `logits` (V) of a [MASK]ed position become
/// log x_θ — the [MASK] logit is set to −∞ (zero masking probability), then log-softmax.
pub fn masked_log_softmax(logits: &mut [f32], mask_id: u32) {
    logits[mask_id as usize] = f32::NEG_INFINITY;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
    logits.iter_mut().for_each(|x| *x -= lse);
}

/// log x_θ(x_t, t) under SUBS, (batch, len, V) f32, from raw `logits` (batch, len, V):
/// - zero masking probabilities: the [MASK] logit is set to −∞ before the log-softmax, so the
///   model never predicts [MASK];
/// - carry-over unmasking: where x_t is not [MASK], the distribution is the point mass on x_t
///   (log-prob 0 there, −∞ elsewhere).
pub fn subs_log_probs(logits: &Tensor, tokens: &[u32], mask_id: u32) -> Result<Tensor> {
    let (b, l, v) = logits.dims3()?;
    if tokens.len() != b * l {
        return Err(DiffusionError::Input(format!(
            "subs: {} tokens for logits of shape ({b}, {l}, {v})",
            tokens.len()
        )));
    }
    if mask_id as usize >= v {
        return Err(DiffusionError::Input(format!(
            "subs: mask id {mask_id} outside a vocabulary of {v}"
        )));
    }
    let logits = logits
        .to_dtype(DType::F32)?
        .to_device(&candle_core::Device::Cpu)?;
    let mut data = logits.flatten_all()?.to_vec1::<f32>()?;
    for (pos, &tok) in tokens.iter().enumerate() {
        let row = &mut data[pos * v..(pos + 1) * v];
        if tok == mask_id {
            masked_log_softmax(row, mask_id);
        } else {
            if tok as usize >= v {
                return Err(DiffusionError::Input(format!(
                    "subs: token {tok} outside a vocabulary of {v}"
                )));
            }
            row.fill(f32::NEG_INFINITY);
            row[tok as usize] = 0.0;
        }
    }
    let out = Tensor::from_vec(data, (b, l, v), &candle_core::Device::Cpu)?;
    debug_assert_eq!(out.dims()[2], logits.dim(D::Minus1)?);
    Ok(out)
}

fn check_ids(tokens: &[u32], rows: usize, v: usize, mask_id: u32, what: &str) -> Result<()> {
    if tokens.len() != rows {
        return Err(DiffusionError::Input(format!(
            "{what}: {} tokens for {rows} rows of logits",
            tokens.len()
        )));
    }
    if mask_id as usize >= v {
        return Err(DiffusionError::Input(format!(
            "{what}: mask id {mask_id} outside a vocabulary of {v}"
        )));
    }
    if let Some(&tok) = tokens.iter().find(|&&t| t as usize >= v) {
        return Err(DiffusionError::Input(format!(
            "{what}: token {tok} outside a vocabulary of {v}"
        )));
    }
    Ok(())
}

/// (V,) additive bias in `dtype`: −∞ at `mask_id`, 0 elsewhere (SUBS zero masking probabilities).
fn mask_bias(v: usize, mask_id: u32, dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
    let mut b = vec![0f32; v];
    b[mask_id as usize] = f32::NEG_INFINITY;
    Ok(Tensor::from_vec(b, v, device)?.to_dtype(dtype)?)
}

/// log-softmax over the last dimension, `x − max − ln Σ exp(x − max)` (max detached: it
/// cancels in the value and the gradient).
fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// The differentiable twin of [`subs_log_probs`] for training: the same SUBS log x_θ(x_t, t)
/// (batch, len, V) built from candle ops on `logits`' device and dtype, so gradients flow back
/// into the denoiser. Masked positions: log-softmax of the logits with the [MASK] logit at −∞;
/// unmasked positions: the carry-over point mass (0 at x_t, −∞ elsewhere; no gradient).
pub fn subs_log_probs_diff(logits: &Tensor, tokens: &[u32], mask_id: u32) -> Result<Tensor> {
    let (b, l, v) = logits.dims3()?;
    check_ids(tokens, b * l, v, mask_id, "subs")?;
    let dev = logits.device().clone();
    let biased = logits.broadcast_add(&mask_bias(v, mask_id, logits.dtype(), &dev)?)?;
    let lsm = log_softmax_last(&biased)?;
    let mut carry = vec![f32::NEG_INFINITY; b * l * v];
    let mut is_mask = vec![0u8; b * l];
    for (pos, &tok) in tokens.iter().enumerate() {
        if tok == mask_id {
            is_mask[pos] = 1;
        } else {
            carry[pos * v + tok as usize] = 0.0;
        }
    }
    let carry = Tensor::from_vec(carry, (b, l, v), &dev)?.to_dtype(logits.dtype())?;
    let is_mask = Tensor::from_vec(is_mask, (b, l, 1), &dev)?.broadcast_as((b, l, v))?;
    Ok(is_mask.where_cond(&lsm, &carry)?)
}

/// log x_θ(x_t)[x_0] at selected positions, differentiable: for each `positions[i]` (a flat
/// index into the batch·len rows of `logits` (batch, len, V), where x_t is [MASK]) the SUBS
/// log-probability of the clean token `targets[i]` — log-softmax of that row with the [MASK]
/// logit at −∞ — as an (n,) tensor. Only masked positions carry loss in the NELBO, so the
/// loss softmaxes just these rows.
pub fn subs_target_log_probs(
    logits: &Tensor,
    positions: &[u32],
    targets: &[u32],
    mask_id: u32,
) -> Result<Tensor> {
    let (b, l, v) = logits.dims3()?;
    check_ids(targets, positions.len(), v, mask_id, "subs")?;
    if let Some(&p) = positions.iter().find(|&&p| p as usize >= b * l) {
        return Err(DiffusionError::Input(format!(
            "subs: position {p} outside {} rows",
            b * l
        )));
    }
    if let Some(&t) = targets.iter().find(|&&t| t == mask_id) {
        return Err(DiffusionError::Input(format!(
            "subs: the clean sequence holds the mask id {t}"
        )));
    }
    let dev = logits.device().clone();
    let n = positions.len();
    let idx = Tensor::from_slice(positions, n, &dev)?;
    let rows = logits.reshape((b * l, v))?.index_select(&idx, 0)?;
    let rows = rows.broadcast_add(&mask_bias(v, mask_id, logits.dtype(), &dev)?)?;
    let lsm = log_softmax_last(&rows)?;
    let tgt = Tensor::from_slice(targets, (n, 1), &dev)?;
    Ok(lsm.gather(&tgt, 1)?.reshape(n)?)
}
