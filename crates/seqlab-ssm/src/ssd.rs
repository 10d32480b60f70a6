//! Mamba-2's SSD ("state space duality", Dao & Gu 2024, §6–7): the selective SSM with a scalar
//! decay per head, computed chunk by chunk so that almost all the work is matrix products.
//!
//! Per batch row, head h (group g = h / (nheads / ngroups)), with Δ_t > 0 already processed
//! (bias, softplus, clamp) and A_h < 0, the state H_t ∈ R^{headdim × dstate} follows
//!
//! ```text
//! H_t = exp(Δ_t A_h) · H_{t−1} + Δ_t · x_t ⊗ B_t          (H_{−1} = initial state or 0)
//! y_t = H_t · C_t + D ⊙ x_t                               (D per head or per channel)
//! ```
//!
//! [`ssd_sequential`] runs this recurrence as written (the reference twin). [`ssd_chunked`]
//! cuts the sequence into chunks of Q positions. With the in-chunk cumulative log-decay
//! cs_l = Σ_{j ≤ l} Δ_j A_h (positions l, s counted from the chunk start t0):
//!
//! ```text
//! 1. CB[l, s]  = C_l · B_s                                   (Q×Q per group: a matmul)
//! 2. S_k       = Σ_s exp(cs_{Q−1} − cs_s) Δ_s · x_s ⊗ B_s     (chunk k's own state: (X·w)ᵀ B)
//! 3. H_{k+1}   = exp(cs_{Q−1}) · H_k + S_k                    (state passing, sequential in k)
//! 4. y_l       = Σ_{s ≤ l} CB[l, s] exp(cs_l − cs_s) Δ_s x_s  (intra-chunk: (CB ∘ L) X)
//!              + exp(cs_l) · H_k C_l                          (inter-chunk: C H_kᵀ)
//!              + D ⊙ x_l
//! ```
//!
//! where H_k is the state entering chunk k (H_0 = initial state). Steps 1, 2 and 4 are
//! independent per chunk and run in parallel over (batch, head or group, chunk); step 3 is a
//! cheap sequential pass of (headdim × dstate) updates per (batch, head).
//!
//! Packed sequences (`seq_idx`): the state entering position t is 0 where
//! seq_idx[t] ≠ seq_idx[t−1]. Positions are given segment numbers (the count of such changes
//! so far); in step 4 the pair (l, s) interacts only within one segment, the carried state H_k
//! reaches only positions of the segment that was open before the chunk, S_k collects only the
//! chunk's last segment, and H_k is dropped at the chunk end if a new segment began inside it.
//! The initial state belongs to the first segment of each row. See docs/ssm.md#ssd.
//!
//! Layout (row-major, as mamba_ssm's `mamba_chunk_scan_combined`): x, y (batch, seqlen, nheads,
//! headdim); Δ (batch, seqlen, nheads); A (nheads); B, C (batch, seqlen, ngroups, dstate);
//! D (nheads) or (nheads, headdim); states (batch, nheads, headdim, dstate); seq_idx (batch, seqlen).

use rayon::prelude::*;

use crate::error::{check_len, Result, SsmError};
use crate::float::Float;
use crate::matmul::{matmul, Mat};
use crate::selective_scan::numel;

/// Sizes of one SSD call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SsdDims {
    /// Batch size.
    pub batch: usize,
    /// Sequence length.
    pub seqlen: usize,
    /// Heads (each with its own scalar A and Δ).
    pub nheads: usize,
    /// Channels per head (P).
    pub headdim: usize,
    /// B/C groups; must divide `nheads` (head h uses group h / (nheads / ngroups)).
    pub ngroups: usize,
    /// State size per channel (N).
    pub dstate: usize,
    /// Chunk length Q (≥ 1; the sequence need not be a multiple of it).
    pub chunk: usize,
}

/// Inputs of [`ssd_chunked`] / [`ssd_sequential`] (layouts in the module doc).
#[derive(Clone, Copy, Debug)]
pub struct SsdInputs<'a, T> {
    /// x (batch, seqlen, nheads, headdim).
    pub x: &'a [T],
    /// Δ (batch, seqlen, nheads): after bias, softplus and clamp (positive).
    pub dt: &'a [T],
    /// A (nheads): A = −exp(A_log), one scalar per head.
    pub a: &'a [T],
    /// B (batch, seqlen, ngroups, dstate).
    pub b: &'a [T],
    /// C (batch, seqlen, ngroups, dstate).
    pub c: &'a [T],
    /// Skip D: nheads (per head) or nheads·headdim (per channel) values.
    pub d: Option<&'a [T]>,
    /// H_{−1} (batch, nheads, headdim, dstate), feeding the first sequence of each row.
    pub initial_state: Option<&'a [T]>,
    /// Document id per position (batch, seqlen): the state resets where it changes.
    pub seq_idx: Option<&'a [i32]>,
}

/// Result of an SSD forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct SsdOutput<T> {
    /// y (batch, seqlen, nheads, headdim).
    pub y: Vec<T>,
    /// The state after the last position (batch, nheads, headdim, dstate).
    pub final_state: Vec<T>,
}

/// How D is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    None,
    PerHead,
    PerChannel,
}

impl Skip {
    /// D for head h, channel p.
    #[inline]
    pub(crate) fn at<T: Float>(self, d: Option<&[T]>, headdim: usize, h: usize, p: usize) -> T {
        match (self, d) {
            (Skip::PerHead, Some(d)) => d[h],
            (Skip::PerChannel, Some(d)) => d[h * headdim + p],
            _ => T::ZERO,
        }
    }
}

/// Checks every size and slice length; returns the layout of D.
pub(crate) fn validate<T>(dims: &SsdDims, inp: &SsdInputs<'_, T>) -> Result<Skip> {
    let SsdDims {
        batch,
        seqlen,
        nheads,
        headdim,
        ngroups,
        dstate,
        chunk,
    } = *dims;
    if batch == 0 || seqlen == 0 || nheads == 0 || headdim == 0 || dstate == 0 || chunk == 0 {
        return Err(SsmError::Invalid(format!(
            "ssd: sizes must be ≥ 1, got {dims:?}"
        )));
    }
    if ngroups == 0 || nheads % ngroups != 0 {
        return Err(SsmError::Invalid(format!(
            "ssd: ngroups={ngroups} must be ≥ 1 and divide nheads={nheads}"
        )));
    }
    let blh = numel(&[batch, seqlen, nheads])?;
    check_len("x", inp.x.len(), numel(&[blh, headdim])?, || {
        format!("(batch={batch}, seqlen={seqlen}, nheads={nheads}, headdim={headdim})")
    })?;
    check_len("dt", inp.dt.len(), blh, || {
        format!("(batch={batch}, seqlen={seqlen}, nheads={nheads})")
    })?;
    check_len("A", inp.a.len(), nheads, || format!("(nheads={nheads})"))?;
    let bc = numel(&[batch, seqlen, ngroups, dstate])?;
    let s_bc = || format!("(batch={batch}, seqlen={seqlen}, ngroups={ngroups}, dstate={dstate})");
    check_len("B", inp.b.len(), bc, s_bc)?;
    check_len("C", inp.c.len(), bc, s_bc)?;
    let skip = match inp.d {
        None => Skip::None,
        Some(d) if d.len() == nheads => Skip::PerHead,
        Some(d) if d.len() == nheads * headdim => Skip::PerChannel,
        Some(d) => {
            return Err(SsmError::Shape {
                name: "D",
                shape: format!("(nheads={nheads}) or (nheads={nheads}, headdim={headdim})"),
                expected: nheads * headdim,
                got: d.len(),
            })
        }
    };
    if let Some(s) = inp.initial_state {
        check_len(
            "initial_state",
            s.len(),
            numel(&[batch, nheads, headdim, dstate])?,
            || format!("(batch={batch}, nheads={nheads}, headdim={headdim}, dstate={dstate})"),
        )?;
    }
    if let Some(s) = inp.seq_idx {
        check_len("seq_idx", s.len(), batch * seqlen, || {
            format!("(batch={batch}, seqlen={seqlen})")
        })?;
    }
    Ok(skip)
}

/// Chunk geometry shared by the forward and backward passes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunks {
    /// Effective chunk length: min(chunk, seqlen).
    pub q: usize,
    /// Number of chunks, ⌈seqlen / q⌉.
    pub n: usize,
    pub seqlen: usize,
}

impl Chunks {
    pub(crate) fn new(dims: &SsdDims) -> Self {
        let q = dims.chunk.min(dims.seqlen);
        Self {
            q,
            n: dims.seqlen.div_ceil(q),
            seqlen: dims.seqlen,
        }
    }
    /// Positions [t0, t1) of chunk k.
    #[inline]
    pub(crate) fn range(&self, k: usize) -> (usize, usize) {
        let t0 = k * self.q;
        (t0, (t0 + self.q).min(self.seqlen))
    }
}

/// Segment number of every position (batch, seqlen): the count of seq_idx changes so far in the
/// row (all 0 without seq_idx).
pub(crate) fn segments(dims: &SsdDims, seq_idx: Option<&[i32]>) -> Vec<u32> {
    let mut seg = vec![0u32; dims.batch * dims.seqlen];
    if let Some(s) = seq_idx {
        for (row, ids) in seg
            .chunks_exact_mut(dims.seqlen)
            .zip(s.chunks_exact(dims.seqlen))
        {
            for t in 1..dims.seqlen {
                row[t] = row[t - 1] + u32::from(ids[t] != ids[t - 1]);
            }
        }
    }
    seg
}

/// The segment the state entering position t0 belongs to (t0 = 0: the initial state's, which
/// is the first segment's).
#[inline]
pub(crate) fn segment_before(seg_row: &[u32], t0: usize) -> u32 {
    seg_row[t0.saturating_sub(1)]
}

/// In-chunk cumulative log-decay cs_l = Σ_{j ≤ l} Δ_{t0+j} A_h of head h in batch row b, summed
/// in f64 whatever T is: exponents are differences cs_l − cs_s of two long sums, and rounding
/// them in f32 would cost ~|cs|·2⁻²⁴ relative error on every decay of a long chunk.
pub(crate) fn cumulative_decay<T: Float>(
    dims: &SsdDims,
    dt: &[T],
    a_h: T,
    b: usize,
    h: usize,
    (t0, t1): (usize, usize),
) -> Vec<f64> {
    let a_h = a_h.to_f64();
    let mut acc = 0.0;
    (t0..t1)
        .map(|t| {
            acc += dt[(b * dims.seqlen + t) * dims.nheads + h].to_f64() * a_h;
            acc
        })
        .collect()
}

/// exp(log_decay) in T (log_decay ≤ 0 wherever SSD calls it), flushed to 0 below e⁻⁸⁰
/// (< 2·10⁻³⁵) so that f32 products never meet denormals, which are slow on x86.
#[inline(always)]
pub(crate) fn decay<T: Float>(log_decay: f64) -> T {
    if log_decay < -80.0 {
        T::ZERO
    } else {
        T::from_f64(log_decay).exp_fast()
    }
}

/// Offset of (b, t, g, 0) in a (batch, seqlen, ngroups, dstate) tensor.
#[inline]
pub(crate) fn bc_offset(dims: &SsdDims, b: usize, t: usize, g: usize) -> usize {
    ((b * dims.seqlen + t) * dims.ngroups + g) * dims.dstate
}

/// Offset of (b, t, h, 0) in a (batch, seqlen, nheads, headdim) tensor.
#[inline]
pub(crate) fn x_offset(dims: &SsdDims, b: usize, t: usize, h: usize) -> usize {
    ((b * dims.seqlen + t) * dims.nheads + h) * dims.headdim
}

/// Step 1: CB[l, s] = C_l · B_s for every (batch, group, chunk), as (q × q) blocks of a
/// (batch, ngroups, nchunks, q, q) buffer (the last chunk uses the top-left corner of its block).
pub(crate) fn cb_blocks<T: Float>(
    dims: &SsdDims,
    ch: &Chunks,
    b_in: &[T],
    c_in: &[T],
) -> Result<Vec<T>> {
    let (g_n, n) = (dims.ngroups, dims.dstate);
    let qq = ch.q * ch.q;
    let mut cb = vec![T::ZERO; numel(&[dims.batch, g_n, ch.n, qq])?];
    cb.par_chunks_mut(qq)
        .enumerate()
        .try_for_each(|(idx, blk)| {
            let (k, g, b) = (idx % ch.n, (idx / ch.n) % g_n, idx / (ch.n * g_n));
            let (t0, t1) = ch.range(k);
            let q = t1 - t0;
            let off = bc_offset(dims, b, t0, g);
            matmul(
                (q, q, n),
                blk,
                ch.q,
                false,
                Mat::rows(&c_in[off..], g_n * n),
                Mat::transposed(&b_in[off..], g_n * n),
            )
        })?;
    Ok(cb)
}

/// Step 2: each chunk's own end state S_k (batch, nheads, nchunks, headdim, dstate), from its
/// last segment's positions only.
pub(crate) fn chunk_states<T: Float>(
    dims: &SsdDims,
    ch: &Chunks,
    inp: &SsdInputs<'_, T>,
    seg: &[u32],
) -> Result<Vec<T>> {
    let SsdDims {
        nheads,
        headdim: p_n,
        ngroups,
        dstate: n,
        ..
    } = *dims;
    let hpg = nheads / ngroups;
    let pn = p_n * n;
    let mut states = vec![T::ZERO; numel(&[dims.batch, nheads, ch.n, pn])?];
    states
        .par_chunks_mut(pn)
        .enumerate()
        .try_for_each(|(idx, s_k)| {
            let (k, h, b) = (idx % ch.n, (idx / ch.n) % nheads, idx / (ch.n * nheads));
            let (t0, t1) = ch.range(k);
            let q = t1 - t0;
            let cs = cumulative_decay(dims, inp.dt, inp.a[h], b, h, (t0, t1));
            let seg_row = &seg[b * dims.seqlen..][..dims.seqlen];
            let last = seg_row[t1 - 1];
            // X_w[s, p] = exp(cs_{q−1} − cs_s) Δ_s x_s[p] on the last segment, 0 before it.
            let mut xw = vec![T::ZERO; q * p_n];
            for (l, row) in xw.chunks_exact_mut(p_n).enumerate() {
                let t = t0 + l;
                if seg_row[t] != last {
                    continue;
                }
                let w = decay::<T>(cs[q - 1] - cs[l]) * inp.dt[(b * dims.seqlen + t) * nheads + h];
                let xs = &inp.x[x_offset(dims, b, t, h)..][..p_n];
                for (o, &v) in row.iter_mut().zip(xs) {
                    *o = v * w;
                }
            }
            let off = bc_offset(dims, b, t0, h / hpg);
            matmul(
                (p_n, n, q),
                s_k,
                n,
                false,
                Mat::transposed(&xw, p_n),
                Mat::rows(&inp.b[off..], ngroups * n),
            )
        })?;
    Ok(states)
}

/// The factor carrying the state entering chunk k to its end: exp(Σ_chunk Δ A) if the chunk
/// stays in the segment open before it, else 0.
pub(crate) fn chunk_carry<T: Float>(cs: &[f64], seg_row: &[u32], (t0, t1): (usize, usize)) -> T {
    if seg_row[t1 - 1] == segment_before(seg_row, t0) {
        decay(cs[cs.len() - 1])
    } else {
        T::ZERO
    }
}

/// Step 3: turns the chunk states S_k into the states H_k entering each chunk, in place, and
/// returns the final state (batch, nheads, headdim, dstate).
pub(crate) fn pass_states<T: Float>(
    dims: &SsdDims,
    ch: &Chunks,
    inp: &SsdInputs<'_, T>,
    seg: &[u32],
    states: &mut [T],
) -> Vec<T> {
    let pn = dims.headdim * dims.dstate;
    let mut fin = vec![T::ZERO; dims.batch * dims.nheads * pn];
    states
        .par_chunks_mut(ch.n * pn)
        .zip(fin.par_chunks_mut(pn))
        .enumerate()
        .for_each(|(bh, (row, hcur))| {
            let (b, h) = (bh / dims.nheads, bh % dims.nheads);
            if let Some(init) = inp.initial_state {
                hcur.copy_from_slice(&init[bh * pn..][..pn]);
            }
            let seg_row = &seg[b * dims.seqlen..][..dims.seqlen];
            for (k, s_k) in row.chunks_exact_mut(pn).enumerate() {
                let range = ch.range(k);
                let cs = cumulative_decay(dims, inp.dt, inp.a[h], b, h, range);
                let carry: T = chunk_carry(&cs, seg_row, range);
                for (s, hv) in s_k.iter_mut().zip(hcur.iter_mut()) {
                    let own = *s;
                    *s = *hv;
                    *hv = carry * *hv + own;
                }
            }
        });
    fin
}

/// Step 4 for one (batch, head, chunk): y rows (q × headdim, contiguous) from the entering
/// state `h_in` and the CB block.
#[allow(clippy::too_many_arguments)]
fn chunk_output<T: Float>(
    dims: &SsdDims,
    ch: &Chunks,
    inp: &SsdInputs<'_, T>,
    skip: Skip,
    seg_row: &[u32],
    cb: &[T],
    h_in: &[T],
    (b, h, k): (usize, usize, usize),
    y: &mut [T],
) -> Result<()> {
    let SsdDims {
        nheads,
        headdim: p_n,
        ngroups,
        dstate: n,
        ..
    } = *dims;
    let (t0, t1) = ch.range(k);
    let q = t1 - t0;
    let cs = cumulative_decay(dims, inp.dt, inp.a[h], b, h, (t0, t1));
    let g = h / (nheads / ngroups);
    let before = segment_before(seg_row, t0);
    // Inter-chunk: y_l = exp(cs_l) C_l H_inᵀ on the positions still in the entering segment.
    let off = bc_offset(dims, b, t0, g);
    let mut c_scaled = vec![T::ZERO; q * n];
    for (l, row) in c_scaled.chunks_exact_mut(n).enumerate() {
        if seg_row[t0 + l] != before {
            break;
        }
        let w: T = decay(cs[l]);
        let cl = &inp.c[off + l * ngroups * n..][..n];
        for (o, &v) in row.iter_mut().zip(cl) {
            *o = v * w;
        }
    }
    matmul(
        (q, p_n, n),
        y,
        p_n,
        false,
        Mat::rows(&c_scaled, n),
        Mat::transposed(h_in, n),
    )?;
    // Intra-chunk: M[l, s] = CB[l, s] exp(cs_l − cs_s) Δ_s for s ≤ l in one segment; y += M X.
    let dt_at = |t: usize| inp.dt[(b * dims.seqlen + t) * nheads + h];
    let mut m = vec![T::ZERO; q * q];
    for (l, row) in m.chunks_exact_mut(q).enumerate() {
        let seg_l = seg_row[t0 + l];
        for s in (0..=l).rev() {
            if seg_row[t0 + s] != seg_l {
                break;
            }
            row[s] = cb[l * ch.q + s] * decay::<T>(cs[l] - cs[s]) * dt_at(t0 + s);
        }
    }
    matmul(
        (q, p_n, q),
        y,
        p_n,
        true,
        Mat::rows(&m, q),
        Mat::rows(&inp.x[x_offset(dims, b, t0, h)..], nheads * p_n),
    )?;
    if skip != Skip::None {
        for (l, row) in y.chunks_exact_mut(p_n).enumerate() {
            let xs = &inp.x[x_offset(dims, b, t0 + l, h)..][..p_n];
            for (p, (o, &v)) in row.iter_mut().zip(xs).enumerate() {
                *o += skip.at(inp.d, p_n, h, p) * v;
            }
        }
    }
    Ok(())
}

/// Copies a (batch, nheads, seqlen, headdim) buffer into (batch, seqlen, nheads, headdim).
pub(crate) fn heads_to_seq<T: Float>(dims: &SsdDims, src: &[T]) -> Vec<T> {
    let SsdDims {
        seqlen,
        nheads,
        headdim: p_n,
        ..
    } = *dims;
    let mut out = vec![T::ZERO; src.len()];
    out.par_chunks_mut(nheads * p_n)
        .enumerate()
        .for_each(|(bt, row)| {
            let (b, t) = (bt / seqlen, bt % seqlen);
            for (h, dst) in row.chunks_exact_mut(p_n).enumerate() {
                dst.copy_from_slice(&src[((b * nheads + h) * seqlen + t) * p_n..][..p_n]);
            }
        });
    out
}

/// SSD forward by chunks (module doc, steps 1–4): y and the final state. Equal to
/// [`ssd_sequential`] up to rounding for any chunk length.
pub fn ssd_chunked<T: Float>(dims: &SsdDims, inp: &SsdInputs<'_, T>) -> Result<SsdOutput<T>> {
    let skip = validate(dims, inp)?;
    let ch = Chunks::new(dims);
    let seg = segments(dims, inp.seq_idx);
    let cb = cb_blocks(dims, &ch, inp.b, inp.c)?;
    let mut states = chunk_states(dims, &ch, inp, &seg)?;
    let final_state = pass_states(dims, &ch, inp, &seg, &mut states);
    let SsdDims {
        seqlen,
        nheads,
        headdim: p_n,
        ngroups,
        dstate: n,
        ..
    } = *dims;
    let pn = p_n * n;
    let qq = ch.q * ch.q;
    let mut y_heads = vec![T::ZERO; numel(&[dims.batch, nheads, seqlen, p_n])?];
    y_heads
        .par_chunks_mut(seqlen * p_n)
        .enumerate()
        .try_for_each(|(bh, y_row)| {
            let (b, h) = (bh / nheads, bh % nheads);
            let g = h / (nheads / ngroups);
            let seg_row = &seg[b * seqlen..][..seqlen];
            y_row
                .par_chunks_mut(ch.q * p_n)
                .enumerate()
                .try_for_each(|(k, y)| {
                    let cb_k = &cb[((b * ngroups + g) * ch.n + k) * qq..][..qq];
                    let h_in = &states[(bh * ch.n + k) * pn..][..pn];
                    chunk_output(dims, &ch, inp, skip, seg_row, cb_k, h_in, (b, h, k), y)
                })
        })?;
    Ok(SsdOutput {
        y: heads_to_seq(dims, &y_heads),
        final_state,
    })
}

/// SSD forward as the plain recurrence (module doc), one position at a time: the reference twin
/// of [`ssd_chunked`].
pub fn ssd_sequential<T: Float>(dims: &SsdDims, inp: &SsdInputs<'_, T>) -> Result<SsdOutput<T>> {
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
    let pn = p_n * n;
    let hpg = nheads / ngroups;
    let mut y = vec![T::ZERO; inp.x.len()];
    let mut fin = vec![T::ZERO; batch * nheads * pn];
    // (batch, nheads) rows, each writing its own (seqlen, headdim) outputs, scattered after.
    let rows: Vec<Vec<T>> = fin
        .par_chunks_mut(pn)
        .enumerate()
        .map(|(bh, state)| {
            let (b, h) = (bh / nheads, bh % nheads);
            if let Some(init) = inp.initial_state {
                state.copy_from_slice(&init[bh * pn..][..pn]);
            }
            let mut out = vec![T::ZERO; seqlen * p_n];
            for t in 0..seqlen {
                if let Some(s) = inp.seq_idx {
                    if t > 0 && s[b * seqlen + t] != s[b * seqlen + t - 1] {
                        state.iter_mut().for_each(|v| *v = T::ZERO);
                    }
                }
                let dt = inp.dt[(b * seqlen + t) * nheads + h];
                let decay = (dt * inp.a[h]).exp();
                let bv = &inp.b[bc_offset(dims, b, t, h / hpg)..][..n];
                let cv = &inp.c[bc_offset(dims, b, t, h / hpg)..][..n];
                let xs = &inp.x[x_offset(dims, b, t, h)..][..p_n];
                for (p, row) in state.chunks_exact_mut(n).enumerate() {
                    let dx = dt * xs[p];
                    let mut acc = T::ZERO;
                    for ((s, &bk), &ck) in row.iter_mut().zip(bv).zip(cv) {
                        *s = decay * *s + dx * bk;
                        acc += *s * ck;
                    }
                    out[t * p_n + p] = acc + skip.at(inp.d, p_n, h, p) * xs[p];
                }
            }
            out
        })
        .collect();
    for (bh, out) in rows.iter().enumerate() {
        let (b, h) = (bh / nheads, bh % nheads);
        for t in 0..seqlen {
            y[x_offset(dims, b, t, h)..][..p_n].copy_from_slice(&out[t * p_n..][..p_n]);
        }
    }
    Ok(SsdOutput {
        y,
        final_state: fin,
    })
}
