//! The small tensor primitives every model shares, written once: RMSNorm, softplus, and the
//! check that a flat id array splits into a batch of equal rows.

use crate::error::{Result, TensorError};
use candle_core::{Tensor, D};

/// RMSNorm over the last dimension (Zhang & Sennrich 2019): `x / √(mean(x²) + ε) ⊙ w`, in the
/// dtype of `x` (differentiable, any device).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (ms + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?.broadcast_mul(w)?)
}

/// softplus(x) = ln(1 + eˣ), stably for every x: `max(x, 0) + ln(1 + e^{−|x|})`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// The row length of `n_tokens` ids laid out as `batch` equal, non-empty rows; an error (never a
/// panic) when they do not split that way.
pub fn batch_rows(n_tokens: usize, batch: usize) -> Result<usize> {
    if batch == 0 || n_tokens == 0 || !n_tokens.is_multiple_of(batch) {
        return Err(TensorError::RaggedBatch {
            tokens: n_tokens,
            batch,
        });
    }
    Ok(n_tokens / batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rms_norm_and_softplus_values() {
        let x = Tensor::new(&[[3f32, 4.0]], &Device::Cpu).unwrap();
        let w = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let y = rms_norm(&x, &w, 0.0).unwrap().to_vec2::<f32>().unwrap();
        let s = 12.5f32.sqrt();
        assert!((y[0][0] - 3.0 / s).abs() < 1e-6 && (y[0][1] - 8.0 / s).abs() < 1e-6);
        let z = Tensor::new(&[-10f64, 0.0, 50.0], &Device::Cpu).unwrap();
        let sp = softplus(&z).unwrap().to_vec1::<f64>().unwrap();
        assert!((sp[0] - (-10f64).exp().ln_1p()).abs() < 1e-15);
        assert!((sp[1] - 2f64.ln()).abs() < 1e-15);
        assert!((sp[2] - 50.0).abs() < 1e-15);
    }

    #[test]
    fn batch_rows_splits_or_refuses() {
        assert_eq!(batch_rows(12, 3).unwrap(), 4);
        for (n, b) in [(12, 5), (0, 1), (3, 0)] {
            let e = batch_rows(n, b).unwrap_err().to_string();
            assert!(e.contains("equal-length rows"), "{e}");
        }
    }
}
