//! Mamba's depthwise causal conv1d (`nn.Conv1d(groups=dim, padding=K−1)` cut to the first `len`
//! outputs, i.e. `causal_conv1d_fn` of Dao-AILab/causal-conv1d), forward, backward, the one-token
//! update of step mode, and the conv state left after a prefill.
//!
//! For channel d of row b, with the input extended to the left by the K−1 values of the initial
//! state (zeros when absent):
//!
//! ```text
//! p_t = bias_d + Σ_{k<K} w_{d,k} · x_{t−(K−1)+k}        out_t = SiLU(p_t) if `silu` else p_t
//! ```
//!
//! With `seq_idx` (packed rows) an input contributes to output t only if it belongs to the same
//! document: no `seq_idx` change lies between them (the initial state belongs to the first
//! document). Layout: x, out (batch, dim, len); weight (dim, K) (Mamba's (dim, 1, K) squeezed);
//! bias (dim); initial state (batch, dim, K−1), oldest first.

use rayon::prelude::*;

use crate::error::{check_len, Result, SsmError};
use crate::float::{silu, silu_grad, Float};
use crate::selective_scan::numel;

/// Sizes of one conv call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dDims {
    /// Batch size.
    pub batch: usize,
    /// Channels.
    pub dim: usize,
    /// Sequence length.
    pub len: usize,
    /// Kernel width K (Mamba's d_conv).
    pub width: usize,
}

/// Inputs of a causal conv.
#[derive(Clone, Copy, Debug)]
pub struct Conv1dArgs<'a, T> {
    /// Sizes.
    pub dims: Conv1dDims,
    /// Input (batch, dim, len).
    pub x: &'a [T],
    /// Weight (dim, width).
    pub weight: &'a [T],
    /// Bias (dim).
    pub bias: Option<&'a [T]>,
    /// The K−1 inputs before position 0, (batch, dim, width−1), oldest first (chunked prefill).
    pub initial_state: Option<&'a [T]>,
    /// Document id per position (batch, len): inputs of other documents do not contribute.
    pub seq_idx: Option<&'a [i32]>,
    /// Apply SiLU to the output (fused activation, as Mamba uses it).
    pub silu: bool,
}

impl<'a, T> Conv1dArgs<'a, T> {
    /// Plain conv: no bias, no state, no activation.
    pub fn new(dims: Conv1dDims, x: &'a [T], weight: &'a [T]) -> Self {
        Self {
            dims,
            x,
            weight,
            bias: None,
            initial_state: None,
            seq_idx: None,
            silu: false,
        }
    }
    /// Sets the bias.
    pub fn with_bias(mut self, bias: &'a [T]) -> Self {
        self.bias = Some(bias);
        self
    }
    /// Sets the initial conv state (batch, dim, width−1).
    pub fn with_initial_state(mut self, state: &'a [T]) -> Self {
        self.initial_state = Some(state);
        self
    }
    /// Sets the document ids of packed rows.
    pub fn with_seq_idx(mut self, seq_idx: &'a [i32]) -> Self {
        self.seq_idx = Some(seq_idx);
        self
    }
    /// Sets the fused SiLU.
    pub fn with_silu(mut self, silu: bool) -> Self {
        self.silu = silu;
        self
    }
}

/// Gradients of [`causal_conv1d_bwd`].
#[derive(Clone, Debug)]
pub struct Conv1dGrads<T> {
    /// ∂ℒ/∂x (batch, dim, len).
    pub dx: Vec<T>,
    /// ∂ℒ/∂weight (dim, width).
    pub dweight: Vec<T>,
    /// ∂ℒ/∂bias (dim), when a bias was given.
    pub dbias: Option<Vec<T>>,
    /// ∂ℒ/∂initial_state (batch, dim, width−1), when one was given.
    pub dinitial_state: Option<Vec<T>>,
}

fn validate<T>(a: &Conv1dArgs<'_, T>) -> Result<()> {
    let Conv1dDims {
        batch,
        dim,
        len,
        width,
    } = a.dims;
    if batch == 0 || dim == 0 || len == 0 || width == 0 {
        return Err(SsmError::Invalid(format!(
            "conv sizes must be ≥ 1, got {:?}",
            a.dims
        )));
    }
    check_len("x", a.x.len(), numel(&[batch, dim, len])?, || {
        format!("(batch={batch}, dim={dim}, len={len})")
    })?;
    check_len("weight", a.weight.len(), numel(&[dim, width])?, || {
        format!("(dim={dim}, width={width})")
    })?;
    if let Some(b) = a.bias {
        check_len("bias", b.len(), dim, || format!("(dim={dim})"))?;
    }
    if let Some(s) = a.initial_state {
        check_len(
            "initial_state",
            s.len(),
            numel(&[batch, dim, width - 1])?,
            || format!("(batch={batch}, dim={dim}, width-1={})", width - 1),
        )?;
    }
    if let Some(s) = a.seq_idx {
        check_len("seq_idx", s.len(), numel(&[batch, len])?, || {
            format!("(batch={batch}, len={len})")
        })?;
    }
    Ok(())
}

/// Start of the document containing each position of one row (0 without `seq_idx`).
fn doc_starts(seq: Option<&[i32]>, len: usize) -> Vec<usize> {
    let mut starts = vec![0; len];
    if let Some(s) = seq {
        for t in 1..len {
            starts[t] = if s[t] != s[t - 1] { t } else { starts[t - 1] };
        }
    }
    starts
}

/// One row's view: input at (possibly negative) position p, if it may feed output t.
struct ConvRow<'a, T> {
    x: &'a [T],
    init: Option<&'a [T]>,
    w: &'a [T],
    bias: T,
    starts: Vec<usize>,
}

impl<T: Float> ConvRow<'_, T> {
    /// Pre-activation p_t and, through `visit(k, value, init_index)`, each contributing input.
    #[inline]
    fn pre(&self, t: usize, mut visit: impl FnMut(usize, T, Src)) -> T {
        let kw = self.w.len();
        let start = self.starts[t];
        let mut acc = self.bias;
        for k in 0..kw {
            // p = t − (K−1) + k
            let (v, src) = if t + k >= kw - 1 {
                let p = t + k + 1 - kw;
                if p < start {
                    continue;
                }
                (self.x[p], Src::X(p))
            } else {
                let i = t + k; // index into the K−1 state entries
                match self.init {
                    Some(s) if start == 0 => (s[i], Src::Init(i)),
                    _ => continue,
                }
            };
            acc += self.w[k] * v;
            visit(k, v, src);
        }
        acc
    }
}

/// Where a contributing input came from.
#[derive(Clone, Copy)]
enum Src {
    X(usize),
    Init(usize),
}

fn row_view<'a, T: Float>(a: &Conv1dArgs<'a, T>, b: usize, d: usize) -> ConvRow<'a, T> {
    let Conv1dDims {
        dim, len, width, ..
    } = a.dims;
    let row = b * dim + d;
    ConvRow {
        x: &a.x[row * len..][..len],
        init: a
            .initial_state
            .map(|s| &s[row * (width - 1)..][..width - 1]),
        w: &a.weight[d * width..][..width],
        bias: a.bias.map_or(T::ZERO, |v| v[d]),
        starts: doc_starts(a.seq_idx.map(|s| &s[b * len..][..len]), len),
    }
}

/// Forward: out (batch, dim, len).
pub fn causal_conv1d_fwd<T: Float>(args: &Conv1dArgs<'_, T>) -> Result<Vec<T>> {
    validate(args)?;
    let Conv1dDims { dim, len, .. } = args.dims;
    let mut out = vec![T::ZERO; args.x.len()];
    out.par_chunks_mut(len).enumerate().for_each(|(row, o)| {
        let r = row_view(args, row / dim, row % dim);
        for (t, o) in o.iter_mut().enumerate() {
            let p = r.pre(t, |_, _, _| {});
            *o = if args.silu { silu(p) } else { p };
        }
    });
    Ok(out)
}

/// Backward: given ∂ℒ/∂out (batch, dim, len), the gradients of x, weight, bias and the initial
/// state. dp_t = ∂ℒ/∂out_t · SiLU′(p_t); dx_p += w_k dp_t; dw_k += x_p dp_t; dbias += dp_t.
pub fn causal_conv1d_bwd<T: Float>(args: &Conv1dArgs<'_, T>, dout: &[T]) -> Result<Conv1dGrads<T>> {
    validate(args)?;
    let Conv1dDims {
        batch,
        dim,
        len,
        width,
    } = args.dims;
    check_len("dout", dout.len(), args.x.len(), || {
        format!("(batch={batch}, dim={dim}, len={len})")
    })?;
    let mut dx = vec![T::ZERO; args.x.len()];
    let mut dw_rows = vec![T::ZERO; batch * dim * width];
    let mut db_rows = vec![T::ZERO; batch * dim];
    // Rows of K−1 (one dummy slot when K = 1, so every row gets a chunk).
    let il = (width - 1).max(1);
    let mut dinit = vec![T::ZERO; batch * dim * il];
    dx.par_chunks_mut(len)
        .zip(dw_rows.par_chunks_mut(width))
        .zip(db_rows.par_chunks_mut(1))
        .zip(dinit.par_chunks_mut(il))
        .enumerate()
        .for_each(|(row, (((dx, dw), db), di))| {
            let r = row_view(args, row / dim, row % dim);
            let dout = &dout[row * len..][..len];
            for (t, &go) in dout.iter().enumerate() {
                let g = if args.silu {
                    go * silu_grad(r.pre(t, |_, _, _| {}))
                } else {
                    go
                };
                db[0] += g;
                r.pre(t, |k, v, src| {
                    dw[k] += g * v;
                    match src {
                        Src::X(p) => dx[p] += r.w[k] * g,
                        Src::Init(i) => di[i] += r.w[k] * g,
                    }
                });
            }
        });
    let sum_over_batch = |rows: &[T]| -> Vec<T> {
        let per = rows.len() / batch;
        let mut out = rows[..per].to_vec();
        for chunk in rows.chunks_exact(per).skip(1) {
            for (o, &v) in out.iter_mut().zip(chunk) {
                *o += v;
            }
        }
        out
    };
    Ok(Conv1dGrads {
        dx,
        dweight: sum_over_batch(&dw_rows),
        dbias: args.bias.map(|_| sum_over_batch(&db_rows)),
        dinitial_state: args
            .initial_state
            .map(|_| if width == 1 { Vec::new() } else { dinit }),
    })
}

/// The conv state after processing `args.x`: the last `state_len` inputs of
/// [initial state, x], oldest first, (batch, dim, state_len); zero where there is no input or
/// (packed rows) where the input belongs to an earlier document than the last one.
/// Use `state_len = width` for Mamba's step mode ([`causal_conv1d_update`]) and
/// `state_len = width − 1` for the `initial_state` of the next prefill chunk.
pub fn causal_conv1d_final_state<T: Float>(
    args: &Conv1dArgs<'_, T>,
    state_len: usize,
) -> Result<Vec<T>> {
    validate(args)?;
    let Conv1dDims {
        batch,
        dim,
        len,
        width,
    } = args.dims;
    let mut out = vec![T::ZERO; numel(&[batch, dim, state_len])?];
    if state_len == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(state_len)
        .enumerate()
        .for_each(|(row, st)| {
            let r = row_view(args, row / dim, row % dim);
            let start = r.starts[len - 1];
            for (j, s) in st.iter_mut().enumerate() {
                // Position in x of slot j: len − state_len + j (may be negative → state / zero).
                let pos = len as isize - state_len as isize + j as isize;
                *s = if pos >= 0 {
                    let p = pos as usize;
                    if p >= start {
                        r.x[p]
                    } else {
                        T::ZERO
                    }
                } else {
                    let i = width as isize - 1 + pos; // index into the K−1 initial entries
                    match r.init {
                        Some(init) if i >= 0 && start == 0 => init[i as usize],
                        _ => T::ZERO,
                    }
                };
            }
        });
    Ok(out)
}

/// Step mode: feeds `x` (batch, dim, len) — usually len = 1 — through the conv one token at a
/// time, updating `conv_state` (batch, dim, S), the last S inputs, oldest first, S ≥ width − 1
/// (Mamba: S = width). Per token: out = act(bias + Σ_k w_k · [state, x_t]_{last K}); then the
/// state drops its oldest entry and appends x_t. Returns out (batch, dim, len).
pub fn causal_conv1d_update<T: Float>(
    dims: Conv1dDims,
    x: &[T],
    conv_state: &mut [T],
    weight: &[T],
    bias: Option<&[T]>,
    silu_act: bool,
) -> Result<Vec<T>> {
    validate(&Conv1dArgs {
        dims,
        x,
        weight,
        bias,
        initial_state: None,
        seq_idx: None,
        silu: silu_act,
    })?;
    let Conv1dDims {
        batch,
        dim,
        len,
        width,
    } = dims;
    let rows = batch * dim;
    if !conv_state.len().is_multiple_of(rows) || conv_state.len() / rows + 1 < width {
        return Err(SsmError::Shape {
            name: "conv_state",
            shape: format!("(batch={batch}, dim={dim}, S ≥ width-1={})", width - 1),
            expected: rows * width,
            got: conv_state.len(),
        });
    }
    let s_len = conv_state.len() / rows;
    let mut out = vec![T::ZERO; x.len()];
    let state_chunks: Vec<&mut [T]> = if s_len == 0 {
        (0..rows).map(|_| <&mut [T]>::default()).collect()
    } else {
        conv_state.chunks_mut(s_len).collect()
    };
    out.par_chunks_mut(len)
        .zip(state_chunks)
        .enumerate()
        .for_each(|(row, (o, st))| {
            let d = row % dim;
            let w = &weight[d * width..][..width];
            let xr = &x[row * len..][..len];
            for (t, o) in o.iter_mut().enumerate() {
                let mut acc = bias.map_or(T::ZERO, |b| b[d]);
                // window = last K−1 state entries, then x_t
                for k in 0..width - 1 {
                    acc += w[k] * st[s_len - (width - 1) + k];
                }
                acc += w[width - 1] * xr[t];
                *o = if silu_act { silu(acc) } else { acc };
                if s_len > 0 {
                    st.copy_within(1.., 0);
                    st[s_len - 1] = xr[t];
                }
            }
        });
    Ok(out)
}
