//! The small dense pieces of a Mamba block: RMSNorm, linear layers (candle's gemm), and the
//! layout changes between the token-major `(batch, len, width)` activations of the projections
//! and the channel-major `(batch, dim, len)` layout of the conv and scan kernels.

use crate::error::{LmError, Result};
use candle_core::{CpuStorage, Device, Storage, Tensor};
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

/// Runs `f` on the data of a contiguous f32 CPU tensor.
pub fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(f(&v[a..b])),
        _ => Err(LmError::Input(
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
    with_f32(w, |wd| {
        let mut out = vec![0f32; rows * n_out];
        for (xr, o) in x.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
            let one = |(j, o): (usize, &mut f32)| {
                *o = seqlab_ssm::float::dot(xr, &wd[j * n_in..][..n_in])
                    + bias.map_or(0.0, |b| b[j]);
            };
            if n_out * n_in >= GEMV_PAR_MIN {
                o.par_iter_mut().enumerate().with_min_len(32).for_each(one);
            } else {
                o.iter_mut().enumerate().for_each(one);
            }
        }
        out
    })
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

/// The shapes of a block of `len` positions for [`conv_block`] and [`scan_block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockDims {
    /// Rows (sequences).
    pub batch: usize,
    /// Positions in the block.
    pub len: usize,
    /// Channels E·D.
    pub dim: usize,
}

/// Mamba's causal depthwise conv over a block in step semantics (`causal_conv1d_update`,
/// Gu & Dao 2023 §3.4), also returning the conv window after every position.
///
/// `x` is token-major `(batch, len, width_x)` with the conv input in columns
/// `[0, dim)`; `conv` `(batch, dim, K)` is the window (last K inputs, oldest first), updated
/// to the window after the last position. Returns the SiLU outputs `(batch, len, dim)` and the
/// windows after each position, `(len, batch, dim, K)`. Each output is
/// `SiLU(b + Σ_{k<K−1} w_k·window[1 + k] + w_{K−1}·x_t)`, summed in the step kernel's order,
/// so it equals `causal_conv1d_update` bit for bit.
pub fn conv_block(
    dims: BlockDims,
    x: &[f32],
    width_x: usize,
    conv: &mut [f32],
    weight: &[f32],
    bias: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let BlockDims { batch, len, dim } = dims;
    let k = conv.len() / (batch * dim);
    let mut out = vec![0f32; batch * len * dim];
    let mut windows = vec![0f32; len * batch * dim * k];
    for b in 0..batch {
        for c in 0..dim {
            let st = &mut conv[(b * dim + c) * k..][..k];
            let w = &weight[c * k..][..k];
            for t in 0..len {
                let xt = x[(b * len + t) * width_x + c];
                let mut acc = bias.map_or(0.0, |v| v[c]);
                for j in 0..k - 1 {
                    acc += w[j] * st[1 + j];
                }
                acc += w[k - 1] * xt;
                out[(b * len + t) * dim + c] = seqlab_ssm::float::silu(acc);
                st.copy_within(1.., 0);
                st[k - 1] = xt;
                windows[((t * batch + b) * dim + c) * k..][..k].copy_from_slice(st);
            }
        }
    }
    (out, windows)
}

/// The inputs of [`scan_block`], all token-major `(batch, len, ·)`.
#[derive(Debug, Clone, Copy)]
pub struct ScanBlockInputs<'a> {
    /// Conv outputs x, `(batch, len, dim)`.
    pub x: &'a [f32],
    /// Δ before bias and softplus, `(batch, len, dim)`.
    pub delta: &'a [f32],
    /// `x_proj` outputs `(batch, len, R + 2N)`: B at columns `[R, R + N)`, C at `[R + N, R + 2N)`.
    pub xdbl: &'a [f32],
    /// R, the width of δ in `xdbl`.
    pub dt_rank: usize,
    /// `in_proj` outputs `(batch, len, 2·dim)`: the gate z at columns `[dim, 2·dim)`.
    pub xz: &'a [f32],
    /// A = −exp(A_log), `(dim, N)`.
    pub a: &'a [f32],
    /// D, `(dim)`.
    pub d: &'a [f32],
    /// Δ bias, `(dim)`.
    pub dt_bias: &'a [f32],
}

/// The selective scan over a block in step semantics (`selective_state_update`), also
/// returning h after every position: per row and channel, Δ_t = softplus(δ_t + b_Δ),
/// `h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t x_t`, `y_t = (C_t·h_t + D x_t)·SiLU(z_t)`
/// (Gu & Dao 2023, Alg. 2, recurrent form), in the step kernel's arithmetic order, so every
/// y and h equals that kernel's bit for bit. `ssm` `(batch, dim, N)` is updated to h after the
/// last position. Returns y `(batch, len, dim)` and the states `(len, batch, dim, N)`.
pub fn scan_block(
    dims: BlockDims,
    inp: &ScanBlockInputs<'_>,
    ssm: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { scan_block_avx2(dims, inp, ssm) };
    }
    scan_block_impl(dims, inp, ssm)
}

/// [`scan_block_impl`] compiled with AVX2: 8-wide loops over the state, no FMA contraction,
/// so the results are bitwise those of the baseline build (as `seqlab-ssm`'s scan does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_block_avx2(
    dims: BlockDims,
    inp: &ScanBlockInputs<'_>,
    ssm: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    scan_block_impl(dims, inp, ssm)
}

#[inline(always)]
fn scan_block_impl(
    dims: BlockDims,
    inp: &ScanBlockInputs<'_>,
    ssm: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let BlockDims { batch, len, dim } = dims;
    let n = inp.a.len() / dim;
    let r = inp.dt_rank;
    let xw = r + 2 * n;
    let mut y = vec![0f32; batch * len * dim];
    let mut hs = vec![0f32; len * batch * dim * n];
    for b in 0..batch {
        for c in 0..dim {
            let st = &mut ssm[(b * dim + c) * n..][..n];
            let a = &inp.a[c * n..][..n];
            for t in 0..len {
                let row = b * len + t;
                let raw = inp.delta[row * dim + c] + inp.dt_bias[c];
                let dt = seqlab_ssm::float::softplus(raw);
                let x = inp.x[row * dim + c];
                let bv = &inp.xdbl[row * xw + r..][..n];
                let cv = &inp.xdbl[row * xw + r + n..][..n];
                for ((s, &a), &bk) in st.iter_mut().zip(a).zip(bv) {
                    *s = *s * seqlab_ssm::Float::exp_fast(dt * a) + (dt * bk) * x;
                }
                let mut yv = seqlab_ssm::float::dot(st, cv);
                yv += x * inp.d[c];
                yv *= seqlab_ssm::float::silu(inp.xz[row * 2 * dim + dim + c]);
                y[row * dim + c] = yv;
                hs[((t * batch + b) * dim + c) * n..][..n].copy_from_slice(st);
            }
        }
    }
    (y, hs)
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

    /// The block kernels equal the step kernels (`causal_conv1d_update`,
    /// `selective_state_update`) bit for bit, position by position, states included.
    #[test]
    fn block_kernels_equal_the_step_kernels() {
        use seqlab_ssm::{
            causal_conv1d_update, selective_state_update, Conv1dDims, StepArgs, StepDims,
        };
        let (batch, len, dim, n, r, k) = (2, 5, 6, 4, 2, 4);
        let val = |i: usize, s: f32| (i as f32 * 0.7312 + s).sin() * 1.3;
        let xz: Vec<f32> = (0..batch * len * 2 * dim).map(|i| val(i, 0.1)).collect();
        let xdbl: Vec<f32> = (0..batch * len * (r + 2 * n))
            .map(|i| val(i, 0.2))
            .collect();
        let delta: Vec<f32> = (0..batch * len * dim).map(|i| val(i, 0.3)).collect();
        let w: Vec<f32> = (0..dim * k).map(|i| val(i, 0.4)).collect();
        let bias: Vec<f32> = (0..dim).map(|i| val(i, 0.5)).collect();
        let a: Vec<f32> = (0..dim * n).map(|i| -val(i, 0.6).abs() - 0.1).collect();
        let d: Vec<f32> = (0..dim).map(|i| val(i, 0.7)).collect();
        let dtb: Vec<f32> = (0..dim).map(|i| val(i, 0.8)).collect();
        let conv0: Vec<f32> = (0..batch * dim * k).map(|i| val(i, 0.9)).collect();
        let ssm0: Vec<f32> = (0..batch * dim * n).map(|i| val(i, 1.0)).collect();
        let dims = BlockDims { batch, len, dim };
        let mut conv = conv0.clone();
        let (xc, windows) = conv_block(dims, &xz, 2 * dim, &mut conv, &w, Some(&bias));
        let inp = ScanBlockInputs {
            x: &xc,
            delta: &delta,
            xdbl: &xdbl,
            dt_rank: r,
            xz: &xz,
            a: &a,
            d: &d,
            dt_bias: &dtb,
        };
        let mut ssm = ssm0.clone();
        let (y, hs) = scan_block(dims, &inp, &mut ssm);
        let (mut cs, mut ss) = (conv0, ssm0);
        let at = |src: &[f32], width: usize, off: usize, cnt: usize, t: usize| -> Vec<f32> {
            (0..batch)
                .flat_map(|b| src[(b * len + t) * width + off..][..cnt].to_vec())
                .collect()
        };
        for t in 0..len {
            let cd = Conv1dDims {
                batch,
                dim,
                len: 1,
                width: k,
            };
            let xc_t = causal_conv1d_update(
                cd,
                &at(&xz, 2 * dim, 0, dim, t),
                &mut cs,
                &w,
                Some(&bias),
                true,
            )
            .unwrap();
            assert_eq!(xc_t, at(&xc, dim, 0, dim, t));
            assert_eq!(&windows[t * cs.len()..][..cs.len()], &cs[..]);
            let (dt_t, b_t, c_t, z_t) = (
                at(&delta, dim, 0, dim, t),
                at(&xdbl, r + 2 * n, r, n, t),
                at(&xdbl, r + 2 * n, r + n, n, t),
                at(&xz, 2 * dim, dim, dim, t),
            );
            let args = StepArgs::new(
                StepDims::mamba1(batch, dim, n),
                &xc_t,
                &dt_t,
                &a,
                &b_t,
                &c_t,
            )
            .with_d(&d)
            .with_z(&z_t)
            .with_dt_bias(&dtb)
            .with_dt_softplus(true);
            let y_t = selective_state_update(&mut ss, &args).unwrap();
            assert_eq!(y_t, at(&y, dim, 0, dim, t));
            assert_eq!(&hs[t * ss.len()..][..ss.len()], &ss[..]);
        }
        assert_eq!((conv, ssm), (cs, ss));
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
