//! The small dense pieces of a Mamba block: RMSNorm, linear layers (candle's gemm), and the
//! layout changes between the token-major `(batch, len, width)` activations of the projections
//! and the channel-major `(batch, dim, len)` layout of the conv and scan kernels.

use crate::error::{LmError, Result};
use candle_core::{CpuStorage, Device, Storage, StorageRef, Tensor};
use rayon::prelude::*;

/// RMSNorm (Zhang & Sennrich 2019) of each `width`-row of `x`:
/// `y = x / sqrt(mean(x²) + ε) · w`, the mean in f64 (HF's `MambaRMSNorm` computes in f32).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f64) -> Vec<f32> {
    let width = weight.len();
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .with_min_len(16)
        .for_each(|(o, row)| {
            let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / width as f64;
            let inv = (1.0 / (ms + eps).sqrt()) as f32;
            for ((o, &v), &w) in o.iter_mut().zip(row).zip(weight) {
                *o = w * (v * inv);
            }
        });
    out
}

/// `x W^T (+ b)` as a candle tensor (rows, out): x is (rows, in) row-major, W is (out, in).
pub fn linear_tensor(x: &[f32], rows: usize, w: &Tensor, bias: Option<&[f32]>) -> Result<Tensor> {
    let (_, inp) = w.dims2()?;
    let xt = Tensor::from_slice(x, (rows, inp), &Device::Cpu)?;
    let y = xt.matmul(&w.t()?)?;
    Ok(match bias {
        Some(b) => {
            let b = Tensor::from_slice(b, b.len(), &Device::Cpu)?;
            y.broadcast_add(&b)?
        }
        None => y,
    })
}

/// Up to this many rows, [`linear`] is a matrix-vector product per row (decode steps) instead
/// of a gemm call: no tensor allocations, and parallel only when the matrix is large.
const GEMV_MAX_ROWS: usize = 4;
/// Multiply-adds below which a matrix-vector product stays on the calling thread.
const GEMV_PAR_MIN: usize = 1 << 16;

/// The data of a contiguous f32 CPU tensor, borrowed without a copy (a read guard on its
/// storage: hold it only while the slice is used).
pub struct F32View<'a> {
    storage: StorageRef<'a>,
    range: std::ops::Range<usize>,
}

impl std::fmt::Debug for F32View<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("F32View")
            .field("len", &self.range.len())
            .finish()
    }
}

impl std::ops::Deref for F32View<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match &*self.storage {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.range.clone()],
            _ => unreachable!("checked by f32_view"),
        }
    }
}

/// Borrows the data of a contiguous f32 CPU tensor ([`F32View`]); an error for any other.
pub fn f32_view(t: &Tensor) -> Result<F32View<'_>> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(_)), Some((a, b))) => Ok(F32View {
            storage,
            range: a..b,
        }),
        _ => Err(LmError::Weights(
            "a weight is not a contiguous f32 tensor on the CPU".into(),
        )),
    }
}

/// `x W^T (+ b)` as a (rows, out) tensor: the gemm's own result for many rows (no copy out of
/// candle, which matters for the lm_head's rows × vocab logits), [`linear`]'s matrix-vector
/// products for a few.
pub fn linear_as_tensor(
    x: &[f32],
    rows: usize,
    w: &Tensor,
    bias: Option<&[f32]>,
) -> Result<Tensor> {
    if rows > GEMV_MAX_ROWS {
        return linear_tensor(x, rows, w, bias);
    }
    let (n_out, _) = w.dims2()?;
    Ok(Tensor::from_vec(
        linear(x, rows, w, bias)?,
        (rows, n_out),
        &Device::Cpu,
    )?)
}

/// `x W^T (+ b)` for a block of positions: one gemm call from 2 rows up (a matrix-matrix
/// product reads each weight once for all rows), [`linear`]'s matrix-vector product for 1.
pub fn linear_block(x: &[f32], rows: usize, w: &Tensor, bias: Option<&[f32]>) -> Result<Vec<f32>> {
    if rows < 2 {
        return linear(x, rows, w, bias);
    }
    Ok(linear_tensor(x, rows, w, bias)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// `x W^T (+ b)` as a row-major (rows, out) vector.
pub fn linear(x: &[f32], rows: usize, w: &Tensor, bias: Option<&[f32]>) -> Result<Vec<f32>> {
    if rows > GEMV_MAX_ROWS {
        return Ok(linear_tensor(x, rows, w, bias)?
            .flatten_all()?
            .to_vec1::<f32>()?);
    }
    let (n_out, n_in) = w.dims2()?;
    let w_view = f32_view(w)?;
    let wd: &[f32] = &w_view;
    let mut out = vec![0f32; rows * n_out];
    for (xr, o) in x.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
        let one = |(j, o): (usize, &mut f32)| {
            *o = seqlab_ssm::float::dot(xr, &wd[j * n_in..][..n_in]) + bias.map_or(0.0, |b| b[j]);
        };
        if n_out * n_in >= GEMV_PAR_MIN {
            o.par_iter_mut().enumerate().with_min_len(32).for_each(one);
        } else {
            o.iter_mut().enumerate().for_each(one);
        }
    }
    Ok(out)
}

/// Columns `[offset, offset + count)` of `src` (batch, len, width), as (batch, count, len).
pub fn columns_to_channel_major(
    src: &[f32],
    batch: usize,
    len: usize,
    width: usize,
    offset: usize,
    count: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; batch * count * len];
    out.par_chunks_mut(len)
        .enumerate()
        .with_min_len(16)
        .for_each(|(row, o)| {
            let (b, c) = (row / count, row % count);
            let base = b * len * width + offset + c;
            for (t, o) in o.iter_mut().enumerate() {
                *o = src[base + t * width];
            }
        });
    out
}

/// (batch, dim, len) → (batch, len, dim).
pub fn channel_to_token_major(src: &[f32], batch: usize, dim: usize, len: usize) -> Vec<f32> {
    let mut out = vec![0f32; batch * len * dim];
    out.par_chunks_mut(dim)
        .enumerate()
        .with_min_len(16)
        .for_each(|(row, o)| {
            let (b, t) = (row / len, row % len);
            let base = b * dim * len + t;
            for (c, o) in o.iter_mut().enumerate() {
                *o = src[base + c * len];
            }
        });
    out
}

/// Columns `[offset, offset + count)` of each `width`-row of `src`, kept row-major.
pub fn columns(src: &[f32], width: usize, offset: usize, count: usize) -> Vec<f32> {
    src.chunks_exact(width)
        .flat_map(|r| r[offset..offset + count].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip() {
        // (batch 2, len 3, width 5); take columns 1..4 → (2, 3, 3) channel-major and back.
        let src: Vec<f32> = (0..30).map(|v| v as f32).collect();
        let cm = columns_to_channel_major(&src, 2, 3, 5, 1, 3);
        assert_eq!(&cm[..3], &[1.0, 6.0, 11.0]);
        let tm = channel_to_token_major(&cm, 2, 3, 3);
        assert_eq!(tm, columns(&src, 5, 1, 3));
    }

    #[test]
    fn linear_and_norm() {
        let w = Tensor::from_slice(&[1f32, 2.0, 3.0, 4.0, 5.0, 6.0], (3, 2), &Device::Cpu).unwrap();
        let y = linear(&[1.0, 1.0, 2.0, 0.0], 2, &w, Some(&[0.5, 0.0, 0.0])).unwrap();
        assert_eq!(y, vec![3.5, 7.0, 11.0, 2.5, 6.0, 10.0]);
        let n = rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0);
        let s = (12.5f32).sqrt();
        assert!((n[0] - 3.0 / s).abs() < 1e-6 && (n[1] - 8.0 / s).abs() < 1e-6);
    }
}
