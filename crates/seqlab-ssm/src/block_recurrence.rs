//! Mamba's conv and scan over a short block of positions in step semantics (speculative
//! verification, Gu & Dao 2023 §3.4 and Alg. 2, recurrent form): the arithmetic of
//! [`causal_conv1d_update`](crate::causal_conv1d_update) and
//! [`selective_state_update`](crate::selective_state_update) position by position, bit for bit,
//! also returning the conv window and the SSM state after every position so a caller can roll
//! back into the block. The dense parts around them (projections) are the caller's; see
//! docs/ssm.md.

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
                out[(b * len + t) * dim + c] = crate::float::silu(acc);
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
                let dt = crate::float::softplus(raw);
                let x = inp.x[row * dim + c];
                let bv = &inp.xdbl[row * xw + r..][..n];
                let cv = &inp.xdbl[row * xw + r + n..][..n];
                for ((s, &a), &bk) in st.iter_mut().zip(a).zip(bv) {
                    *s = *s * crate::Float::exp_fast(dt * a) + (dt * bk) * x;
                }
                let mut yv = crate::float::dot(st, cv);
                yv += x * inp.d[c];
                yv *= crate::float::silu(inp.xz[row * 2 * dim + dim + c]);
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

    /// The block kernels equal the step kernels (`causal_conv1d_update`,
    /// `selective_state_update`) bit for bit, position by position, states included.
    #[test]
    fn block_kernels_equal_the_step_kernels() {
        use crate::{causal_conv1d_update, selective_state_update, Conv1dDims, StepArgs, StepDims};
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
}
