//! The backward pass of Mamba-2's chunked SSD ([`crate::ssd`], docs/ssm.md#ssd), chunked as the
//! forward: no (seqlen × seqlen) matrix and no per-position state is ever formed.
//!
//! The forward is recomputed up to the chunk states (CB blocks, the states H_k entering each
//! chunk). With G_k = ∂ℒ/∂H_{k+1} (the gradient of the state leaving chunk k; G_{last} = the
//! final state's gradient) and the in-chunk notation of [`crate::ssd`]
//! (cs_l cumulative log-decay, M[l, s] = CB[l, s] exp(cs_l − cs_s) Δ_s, masks for segments):
//!
//! ```text
//! a. O_k      = Σ_l exp(cs_l) dy_l ⊗ C_l                      (∂ℒ/∂H_k from chunk k's outputs)
//! b. G_{k−1}  = exp(cs_{Q−1}) G_k + O_k                        (reverse state passing; G_{−1} = ∂ℒ/∂H_{−1})
//! c. per chunk, with dM = dY Xᵀ:
//!    dX   = Mᵀ dY + w ⊙ (B G_kᵀ) + D dY                      (w_s = exp(cs_{Q−1} − cs_s) Δ_s)
//!    dC_l = exp(cs_l) dy_l H_k + Σ_s dM[l, s] exp(cs_l − cs_s) Δ_s B_s
//!    dB_s = Σ_l dM[l, s] exp(cs_l − cs_s) Δ_s C_l + (w ⊙ X) G_k
//!    dΔ_s = Σ_l dM[l, s] CB[l, s] exp(cs_l − cs_s) + exp(cs_{Q−1} − cs_s) x_s·(G_k B_s)
//!    dcs  = the gradients of every exp(·) above by its exponent, plus exp(cs_{Q−1}) ⟨G_k, H_k⟩
//! d. ∂ℒ/∂(Δ_j A_h) = Σ_{l ≥ j} dcs_l  (reverse cumulative sum in the chunk), giving
//!    dΔ_j += A_h · it and dA_h += Σ_j Δ_j · it.
//! ```
//!
//! Each product above is one matmul per (batch, head, chunk), run in parallel; dB and dC are
//! summed over the heads of a group, dA and D's gradient over batch and chunks, in a fixed order
//! (results do not depend on the thread count).

use rayon::prelude::*;

use crate::error::{check_len, Result};
use crate::float::Float;
use crate::matmul::{matmul, Mat};
use crate::selective_scan::numel;
use crate::ssd::{
    bc_offset, cb_blocks, chunk_carry, chunk_states, cumulative_decay, decay, heads_to_seq,
    pass_states, segment_before, segments, validate, x_offset, Chunks, Skip, SsdDims, SsdInputs,
};

/// Gradients of every differentiable SSD input (shapes as the inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct SsdGrads<T> {
    /// ∂ℒ/∂x (batch, seqlen, nheads, headdim).
    pub dx: Vec<T>,
    /// ∂ℒ/∂Δ (batch, seqlen, nheads).
    pub ddt: Vec<T>,
    /// ∂ℒ/∂A (nheads).
    pub da: Vec<T>,
    /// ∂ℒ/∂B (batch, seqlen, ngroups, dstate).
    pub db: Vec<T>,
    /// ∂ℒ/∂C (batch, seqlen, ngroups, dstate).
    pub dc: Vec<T>,
    /// ∂ℒ/∂D, the length of the given D (None without D).
    pub dd: Option<Vec<T>>,
    /// ∂ℒ/∂H_{−1} (batch, nheads, headdim, dstate) (None without an initial state).
    pub dinitial_state: Option<Vec<T>>,
}

/// What one (batch, head, chunk) task contributes.
struct ChunkGrads<T> {
    dx: Vec<T>,
    ddt: Vec<T>,
    db: Vec<T>,
    dc: Vec<T>,
    da: T,
    dd: Vec<T>,
}

/// Gradients of [`crate::ssd_chunked`] given ∂ℒ/∂y (batch, seqlen, nheads, headdim) and
/// optionally ∂ℒ/∂final_state (batch, nheads, headdim, dstate) (module doc, steps a–d).
pub fn ssd_chunked_backward<T: Float>(
    dims: &SsdDims,
    inp: &SsdInputs<'_, T>,
    dy: &[T],
    dfinal_state: Option<&[T]>,
) -> Result<SsdGrads<T>> {
    let skip = validate(dims, inp)?;
    let SsdDims {
        batch,
        seqlen,
        nheads,
        headdim: p_n,
        ngroups,
        dstate: n,
        ..
    } = *dims;
    check_len("dy", dy.len(), inp.x.len(), || {
        format!("(batch={batch}, seqlen={seqlen}, nheads={nheads}, headdim={p_n})")
    })?;
    let pn = p_n * n;
    if let Some(g) = dfinal_state {
        check_len(
            "dfinal_state",
            g.len(),
            numel(&[batch, nheads, pn])?,
            || format!("(batch={batch}, nheads={nheads}, headdim={p_n}, dstate={n})"),
        )?;
    }
    let ch = Chunks::new(dims);
    let seg = segments(dims, inp.seq_idx);
    let cb = cb_blocks(dims, &ch, inp.b, inp.c)?;
    let mut states = chunk_states(dims, &ch, inp, &seg)?;
    pass_states(dims, &ch, inp, &seg, &mut states);

    // a. O_k = (dY_k)ᵀ C̃_k with C̃_l = exp(cs_l) [l in the entering segment] C_l.
    let mut grad_out = vec![T::ZERO; states.len()];
    grad_out
        .par_chunks_mut(pn)
        .enumerate()
        .try_for_each(|(idx, o_k)| {
            let (k, h, b) = (idx % ch.n, (idx / ch.n) % nheads, idx / (ch.n * nheads));
            let range = ch.range(k);
            let q = range.1 - range.0;
            let cs = cumulative_decay(dims, inp.dt, inp.a[h], b, h, range);
            let seg_row = &seg[b * seqlen..][..seqlen];
            let c_scaled = entering_scaled_c(dims, inp.c, &cs, seg_row, (b, h), range);
            matmul(
                (p_n, n, q),
                o_k,
                n,
                false,
                Mat::transposed(&dy[x_offset(dims, b, range.0, h)..], nheads * p_n),
                Mat::rows(&c_scaled, n),
            )
        })?;
    // b. Reverse state passing: grad_out[k] becomes G_k, the gradient of the state leaving k.
    let mut dinit = vec![T::ZERO; batch * nheads * pn];
    grad_out
        .par_chunks_mut(ch.n * pn)
        .zip(dinit.par_chunks_mut(pn))
        .enumerate()
        .for_each(|(bh, (row, g))| {
            let (b, h) = (bh / nheads, bh % nheads);
            if let Some(df) = dfinal_state {
                g.copy_from_slice(&df[bh * pn..][..pn]);
            }
            let seg_row = &seg[b * seqlen..][..seqlen];
            for (k, o_k) in row.chunks_exact_mut(pn).enumerate().rev() {
                let range = ch.range(k);
                let cs = cumulative_decay(dims, inp.dt, inp.a[h], b, h, range);
                let carry: T = chunk_carry(&cs, seg_row, range);
                for (o, gv) in o_k.iter_mut().zip(g.iter_mut()) {
                    let own = *o;
                    *o = *gv;
                    *gv = carry * *gv + own;
                }
            }
        });

    // c, d. Per-chunk gradients.
    let parts: Vec<ChunkGrads<T>> = (0..batch * nheads * ch.n)
        .into_par_iter()
        .map(|idx| {
            let (k, h, b) = (idx % ch.n, (idx / ch.n) % nheads, idx / (ch.n * nheads));
            let g = h / (nheads / ngroups);
            let qq = ch.q * ch.q;
            let cb_k = &cb[((b * ngroups + g) * ch.n + k) * qq..][..qq];
            let st = (idx) * pn;
            chunk_backward(
                dims,
                &ch,
                inp,
                skip,
                &seg[b * seqlen..][..seqlen],
                cb_k,
                &states[st..][..pn],
                &grad_out[st..][..pn],
                dy,
                (b, h, k),
            )
        })
        .collect::<Result<_>>()?;

    // Scatter and reduce in task order.
    let mut dx_heads = vec![T::ZERO; inp.x.len()];
    let mut ddt = vec![T::ZERO; inp.dt.len()];
    let mut db = vec![T::ZERO; inp.b.len()];
    let mut dc = vec![T::ZERO; inp.c.len()];
    let mut da = vec![T::ZERO; nheads];
    let mut dd_channel = vec![T::ZERO; nheads * p_n];
    for (idx, part) in parts.iter().enumerate() {
        let (k, h, b) = (idx % ch.n, (idx / ch.n) % nheads, idx / (ch.n * nheads));
        let (t0, t1) = ch.range(k);
        let bh = b * nheads + h;
        dx_heads[(bh * seqlen + t0) * p_n..(bh * seqlen + t1) * p_n].copy_from_slice(&part.dx);
        let g = h / (nheads / ngroups);
        for (l, t) in (t0..t1).enumerate() {
            ddt[(b * seqlen + t) * nheads + h] = part.ddt[l];
            let off = bc_offset(dims, b, t, g);
            for (o, &v) in db[off..off + n].iter_mut().zip(&part.db[l * n..][..n]) {
                *o += v;
            }
            for (o, &v) in dc[off..off + n].iter_mut().zip(&part.dc[l * n..][..n]) {
                *o += v;
            }
        }
        da[h] += part.da;
        for (o, &v) in dd_channel[h * p_n..][..p_n].iter_mut().zip(&part.dd) {
            *o += v;
        }
    }
    let dd = match skip {
        Skip::None => None,
        Skip::PerChannel => Some(dd_channel),
        Skip::PerHead => Some(
            dd_channel
                .chunks_exact(p_n)
                .map(|c| c.iter().copied().sum::<T>())
                .collect(),
        ),
    };
    Ok(SsdGrads {
        dx: heads_to_seq(dims, &dx_heads),
        ddt,
        da,
        db,
        dc,
        dd,
        dinitial_state: inp.initial_state.map(|_| dinit),
    })
}

/// C̃ (q × dstate): exp(cs_l) C_l on the positions still in the segment open before the chunk,
/// 0 after a reset.
pub(crate) fn entering_scaled_c<T: Float>(
    dims: &SsdDims,
    c: &[T],
    cs: &[f64],
    seg_row: &[u32],
    (b, h): (usize, usize),
    (t0, t1): (usize, usize),
) -> Vec<T> {
    let (n, g_n) = (dims.dstate, dims.ngroups);
    let g = h / (dims.nheads / g_n);
    let before = segment_before(seg_row, t0);
    let mut out = vec![T::ZERO; (t1 - t0) * n];
    for (l, row) in out.chunks_exact_mut(n).enumerate() {
        if seg_row[t0 + l] != before {
            break;
        }
        let w: T = decay(cs[l]);
        for (o, &v) in row.iter_mut().zip(&c[bc_offset(dims, b, t0 + l, g)..][..n]) {
            *o = v * w;
        }
    }
    out
}

/// Step c and d for one (batch, head, chunk): `h_in` is H_k, `g_out` is G_k.
#[allow(clippy::too_many_arguments)]
fn chunk_backward<T: Float>(
    dims: &SsdDims,
    ch: &Chunks,
    inp: &SsdInputs<'_, T>,
    skip: Skip,
    seg_row: &[u32],
    cb: &[T],
    h_in: &[T],
    g_out: &[T],
    dy: &[T],
    (b, h, k): (usize, usize, usize),
) -> Result<ChunkGrads<T>> {
    let SsdDims {
        seqlen,
        nheads,
        headdim: p_n,
        ngroups,
        dstate: n,
        ..
    } = *dims;
    let (t0, t1) = ch.range(k);
    let q = t1 - t0;
    let a_h = inp.a[h];
    let cs = cumulative_decay(dims, inp.dt, a_h, b, h, (t0, t1));
    let dt: Vec<T> = (t0..t1)
        .map(|t| inp.dt[(b * seqlen + t) * nheads + h])
        .collect();
    let g = h / (nheads / ngroups);
    let bc_off = bc_offset(dims, b, t0, g);
    let bc_rs = ngroups * n;
    let x_off = x_offset(dims, b, t0, h);
    let x_rs = nheads * p_n;
    let x_at = |l: usize| &inp.x[x_off + l * x_rs..][..p_n];
    let dy_at = |l: usize| &dy[x_off + l * x_rs..][..p_n];
    let mut dcs = vec![T::ZERO; q];
    let mut ddt = vec![T::ZERO; q];

    // Inter-chunk output: y_l += exp(cs_l) C_l H_kᵀ → dC_l = exp(cs_l) (dY H_k)_l.
    let mut dc = vec![T::ZERO; q * n];
    matmul(
        (q, n, p_n),
        &mut dc,
        n,
        false,
        Mat::rows(&dy[x_off..], x_rs),
        Mat::rows(h_in, n),
    )?;
    let before = segment_before(seg_row, t0);
    for (l, row) in dc.chunks_exact_mut(n).enumerate() {
        if seg_row[t0 + l] != before {
            row.iter_mut().for_each(|v| *v = T::ZERO);
            continue;
        }
        let w: T = decay(cs[l]);
        let cl = &inp.c[bc_off + l * bc_rs..][..n];
        let mut acc = T::ZERO;
        for (o, &c) in row.iter_mut().zip(cl) {
            *o *= w;
            acc += *o * c;
        }
        dcs[l] += acc;
    }

    // Intra-chunk: W[l, s] = exp(cs_l − cs_s) for s ≤ l in one segment (else 0), M = CB ⊙ W Δ_s,
    // Y += M X, so dM = dY Xᵀ.
    let mut wmat = vec![T::ZERO; q * q];
    for (l, row) in wmat.chunks_exact_mut(q).enumerate() {
        let seg_l = seg_row[t0 + l];
        for s in (0..=l).rev() {
            if seg_row[t0 + s] != seg_l {
                break;
            }
            row[s] = decay(cs[l] - cs[s]);
        }
    }
    let mut dm = vec![T::ZERO; q * q];
    matmul(
        (q, q, p_n),
        &mut dm,
        q,
        false,
        Mat::rows(&dy[x_off..], x_rs),
        Mat::transposed(&inp.x[x_off..], x_rs),
    )?;
    // dM → dΔ_s = Σ_l dM CB W, dcs (± dM ⊙ M through exp(cs_l − cs_s)), and dCB = dM ⊙ W Δ_s
    // (written over dm); M goes over W for dX = Mᵀ dY.
    for l in 0..q {
        for s in 0..=l {
            let w = wmat[l * q + s];
            let dmv = dm[l * q + s];
            let kv = cb[l * ch.q + s] * w;
            ddt[s] += dmv * kv;
            let e = dmv * kv * dt[s];
            dcs[l] += e;
            dcs[s] -= e;
            dm[l * q + s] = dmv * w * dt[s];
            wmat[l * q + s] = kv * dt[s];
        }
        for s in l + 1..q {
            dm[l * q + s] = T::ZERO;
        }
    }
    // dC += dCB B, dB = dCBᵀ C.
    matmul(
        (q, n, q),
        &mut dc,
        n,
        true,
        Mat::rows(&dm, q),
        Mat::rows(&inp.b[bc_off..], bc_rs),
    )?;
    let mut db = vec![T::ZERO; q * n];
    matmul(
        (q, n, q),
        &mut db,
        n,
        false,
        Mat::transposed(&dm, q),
        Mat::rows(&inp.c[bc_off..], bc_rs),
    )?;
    let mut dx = vec![T::ZERO; q * p_n];
    matmul(
        (q, p_n, q),
        &mut dx,
        p_n,
        false,
        Mat::transposed(&wmat, q),
        Mat::rows(&dy[x_off..], x_rs),
    )?;

    // Chunk state: S_k = (w ⊙ X)ᵀ B, w_s = exp(cs_{q−1} − cs_s) Δ_s on the last segment.
    let last_seg = seg_row[t1 - 1];
    let mut xw = vec![T::ZERO; q * p_n];
    let mut decay_to_end = vec![T::ZERO; q];
    let in_last = |l: usize| seg_row[t0 + l] == last_seg;
    for (l, row) in xw.chunks_exact_mut(p_n).enumerate() {
        if !in_last(l) {
            continue;
        }
        decay_to_end[l] = decay(cs[q - 1] - cs[l]);
        let w = decay_to_end[l] * dt[l];
        for (o, &v) in row.iter_mut().zip(x_at(l)) {
            *o = v * w;
        }
    }
    let mut dxw = vec![T::ZERO; q * p_n];
    matmul(
        (q, p_n, n),
        &mut dxw,
        p_n,
        false,
        Mat::rows(&inp.b[bc_off..], bc_rs),
        Mat::transposed(g_out, n),
    )?;
    matmul(
        (q, n, p_n),
        &mut db,
        n,
        true,
        Mat::rows(&xw, p_n),
        Mat::rows(g_out, n),
    )?;
    for l in 0..q {
        if !in_last(l) {
            continue;
        }
        let w = decay_to_end[l] * dt[l];
        let grow = &dxw[l * p_n..][..p_n];
        let dw: T = crate::float::dot(x_at(l), grow);
        for (o, &v) in dx[l * p_n..][..p_n].iter_mut().zip(grow) {
            *o += w * v;
        }
        ddt[l] += dw * decay_to_end[l];
        let e = dw * w;
        dcs[q - 1] += e;
        dcs[l] -= e;
    }
    // Carry of H_k to the chunk end: exp(cs_{q−1}) H_k.
    let carry: T = chunk_carry(&cs, seg_row, (t0, t1));
    if carry != T::ZERO {
        dcs[q - 1] += carry * crate::float::dot(g_out, h_in);
    }

    // D skip.
    let mut dd = vec![T::ZERO; p_n];
    if skip != Skip::None {
        for l in 0..q {
            let (xs, gs) = (x_at(l), dy_at(l));
            for p in 0..p_n {
                dx[l * p_n + p] += skip.at(inp.d, p_n, h, p) * gs[p];
                dd[p] += gs[p] * xs[p];
            }
        }
    }

    // d. Through cs_l = Σ_{j ≤ l} Δ_j A_h.
    let mut acc = T::ZERO;
    let mut da = T::ZERO;
    for j in (0..q).rev() {
        acc += dcs[j];
        ddt[j] += a_h * acc;
        da += dt[j] * acc;
    }
    Ok(ChunkGrads {
        dx,
        ddt,
        db,
        dc,
        da,
        dd,
    })
}
