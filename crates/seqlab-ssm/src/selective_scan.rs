//! The selective scan of Mamba (Gu & Dao 2023, Alg. 2), CPU forward and backward, with every
//! option of `mamba_ssm`'s `selective_scan_ref` plus an initial state and packed-sequence resets.
//!
//! Per batch row b and channel d, with Δ_t = softplus(δ_t + δ_bias) (or δ_t + δ_bias):
//!
//! ```text
//! x_t = exp(Δ_t A) ⊙ x_{t−1} + Δ_t B_t u_t      (ZOH for A, Euler for B; x_{−1} = initial state or 0)
//! y_t = Re Σ_n C_t[n] x_t[n]                     (×2 for complex A: the conjugate half is implied)
//! out_t = (y_t + D u_t) · SiLU(z_t)
//! ```
//!
//! With `seq_idx`, x_{t−1} is taken as 0 wherever `seq_idx[t] ≠ seq_idx[t−1]` (a new document
//! of a packed row starts); the initial state feeds position 0 only.
//!
//! Layout (row-major, like the reference): u, δ, z, out (batch, dim, len); A (dim, dstate);
//! B, C input-dependent (batch, dstate, len), grouped (batch, groups, dstate, len) with group g
//! serving channels g·dim/groups…, or constant (dim, dstate); D, δ_bias (dim); states
//! (batch, dim, dstate). Complex values carry a trailing (re, im) pair (see [`crate::elem`]).
//!
//! Work is parallel over (batch, channel) rows; the state of one row is a contiguous array of
//! `dstate` elements and the update loop over it has no branches, so it vectorises (exp(Δ_t A) is
//! computed for all n first). The sequence is cut into chunks of `chunk_len`: the forward pass
//! saves the state entering each chunk, O(batch·dim·dstate·len/chunk_len) memory, and the backward
//! pass recomputes one chunk's states from its saved start, then runs the reverse recurrence
//!
//! ```text
//! ḡx_{t−1} = conj(exp(Δ_t A)) ⊙ ḡx_t + C̄_{t−1} ∂ℒ/∂y_{t−1}
//! ```
//!
//! accumulating the gradients of u, δ, A, B, C, D, z, δ_bias and the initial state.
//! Reductions (over batch, over channels sharing a B/C group) are done in a fixed order, so
//! results do not depend on the number of threads. Backward memory beyond the gradients: the
//! saved chunk states, per thread 2·chunk_len·dstate recomputed states, and for input-dependent
//! B/C one (len, dstate) accumulator per task (≤ 16 + groups tasks per batch row).
//!
//! On x86-64 the row kernels are also compiled for AVX2 and picked at run time; no FMA
//! contraction is enabled, so both builds give bitwise equal results.

use rayon::prelude::*;

use crate::elem::{Cplx, Elem};
use crate::error::{check_len, Result, SsmError};
use crate::float::{silu, silu_grad, softplus, softplus_grad, Float};

/// Sizes of one scan call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanDims {
    /// Batch size.
    pub batch: usize,
    /// Number of channels (Mamba's d_inner).
    pub dim: usize,
    /// Sequence length.
    pub len: usize,
    /// State size per channel (N).
    pub dstate: usize,
}

/// The state matrix A.
#[derive(Clone, Copy, Debug)]
pub enum AMatrix<'a, T> {
    /// Real A (dim, dstate); Mamba uses A = −exp(A_log).
    Real(&'a [T]),
    /// Complex A (dim, dstate, 2) with (re, im) pairs; the state, B and C are then complex.
    Complex(&'a [T]),
}

/// How B (or C) varies: the three forms `selective_scan_ref` accepts.
#[derive(Clone, Copy, Debug)]
pub enum BcMatrix<'a, T> {
    /// Input-dependent (batch, dstate, len); complex A: (batch, dstate, 2·len), (re, im) pairs.
    Var(&'a [T]),
    /// Grouped (batch, groups, dstate, len) (complex A: 2·len); group g serves channels
    /// g·dim/groups … (g+1)·dim/groups − 1.
    Grouped {
        /// The values.
        data: &'a [T],
        /// Number of groups; must divide `dim`.
        groups: usize,
    },
    /// Constant over time (dim, dstate) (complex A: (dim, dstate, 2)).
    Const(&'a [T]),
}

/// Inputs of a scan. Build with [`ScanArgs::new`] and the `with_*` methods.
#[derive(Clone, Copy, Debug)]
pub struct ScanArgs<'a, T> {
    /// Sizes.
    pub dims: ScanDims,
    /// Input u (batch, dim, len).
    pub u: &'a [T],
    /// Raw step sizes δ (batch, dim, len), before bias and softplus.
    pub delta: &'a [T],
    /// State matrix A.
    pub a: AMatrix<'a, T>,
    /// Input matrix B.
    pub b: BcMatrix<'a, T>,
    /// Output matrix C.
    pub c: BcMatrix<'a, T>,
    /// Skip D (dim): out += D·u.
    pub d: Option<&'a [T]>,
    /// Gate z (batch, dim, len): out *= SiLU(z), after the D skip.
    pub z: Option<&'a [T]>,
    /// δ bias (dim), added before the softplus.
    pub delta_bias: Option<&'a [T]>,
    /// x_{−1} (batch, dim, dstate[, 2]): the state carried in from a previous chunk of the sequence.
    pub initial_state: Option<&'a [T]>,
    /// Document id per position (batch, len) for packed rows: the state resets to 0 where it changes.
    pub seq_idx: Option<&'a [i32]>,
}

impl<'a, T> ScanArgs<'a, T> {
    /// The required inputs; every option off.
    pub fn new(
        dims: ScanDims,
        u: &'a [T],
        delta: &'a [T],
        a: AMatrix<'a, T>,
        b: BcMatrix<'a, T>,
        c: BcMatrix<'a, T>,
    ) -> Self {
        Self {
            dims,
            u,
            delta,
            a,
            b,
            c,
            d: None,
            z: None,
            delta_bias: None,
            initial_state: None,
            seq_idx: None,
        }
    }
    /// Sets the D skip.
    pub fn with_d(mut self, d: &'a [T]) -> Self {
        self.d = Some(d);
        self
    }
    /// Sets the z gate.
    pub fn with_z(mut self, z: &'a [T]) -> Self {
        self.z = Some(z);
        self
    }
    /// Sets the δ bias.
    pub fn with_delta_bias(mut self, bias: &'a [T]) -> Self {
        self.delta_bias = Some(bias);
        self
    }
    /// Sets the initial state x_{−1}.
    pub fn with_initial_state(mut self, state: &'a [T]) -> Self {
        self.initial_state = Some(state);
        self
    }
    /// Sets the per-position document ids of packed rows.
    pub fn with_seq_idx(mut self, seq_idx: &'a [i32]) -> Self {
        self.seq_idx = Some(seq_idx);
        self
    }
    fn is_complex(&self) -> bool {
        matches!(self.a, AMatrix::Complex(_))
    }
}

/// Options of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanConfig {
    /// Δ = softplus(δ + bias) when true (Mamba), Δ = δ + bias otherwise.
    pub delta_softplus: bool,
    /// Chunk length for saved states and the backward recomputation (≥ 1).
    pub chunk_len: usize,
    /// Whether [`ScanOutput::last_state`] is filled.
    pub return_last_state: bool,
}

impl Default for ScanConfig {
    /// No softplus, chunks of 512, no last state (the reference's defaults).
    fn default() -> Self {
        Self {
            delta_softplus: false,
            chunk_len: 512,
            return_last_state: false,
        }
    }
}

/// States saved by the forward pass for the backward pass: the state entering each chunk.
#[derive(Clone, Debug)]
pub struct ScanSaved<T> {
    dims: ScanDims,
    complex: bool,
    chunk_len: usize,
    /// (batch, dim, n_chunks, dstate[, 2]): x_{k·chunk_len − 1} for chunk k (chunk 0: x_{−1}).
    states: Vec<T>,
}

impl<T> ScanSaved<T> {
    /// Chunk length the states were saved with.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }
    /// The saved states, (batch, dim, n_chunks, dstate[, 2]).
    pub fn states(&self) -> &[T] {
        &self.states
    }
}

/// Result of [`selective_scan_fwd`].
#[derive(Clone, Debug)]
pub struct ScanOutput<T> {
    /// out (batch, dim, len).
    pub out: Vec<T>,
    /// x_{len−1} (batch, dim, dstate[, 2]) when `return_last_state`.
    pub last_state: Option<Vec<T>>,
    /// Chunk-start states for [`selective_scan_bwd`].
    pub saved: ScanSaved<T>,
}

/// Gradients from [`selective_scan_bwd`], each in the layout of its input (complex inputs:
/// (∂ℒ/∂Re, ∂ℒ/∂Im) pairs). Optional inputs that were absent give `None`.
#[derive(Clone, Debug)]
pub struct ScanGrads<T> {
    /// ∂ℒ/∂u.
    pub du: Vec<T>,
    /// ∂ℒ/∂δ (the raw δ, through bias and softplus).
    pub ddelta: Vec<T>,
    /// ∂ℒ/∂A.
    pub da: Vec<T>,
    /// ∂ℒ/∂B (same form as B).
    pub db: Vec<T>,
    /// ∂ℒ/∂C (same form as C).
    pub dc: Vec<T>,
    /// ∂ℒ/∂D.
    pub dd: Option<Vec<T>>,
    /// ∂ℒ/∂z.
    pub dz: Option<Vec<T>>,
    /// ∂ℒ/∂δ_bias.
    pub ddelta_bias: Option<Vec<T>>,
    /// ∂ℒ/∂x_{−1}.
    pub dinitial_state: Option<Vec<T>>,
}

/// Runs the selective scan forward.
///
/// Returns `out`, the last state if asked, and the chunk-start states the backward pass needs.
/// Errors (never panics) on any shape that does not match `args.dims`.
pub fn selective_scan_fwd<T: Float>(
    args: &ScanArgs<'_, T>,
    cfg: &ScanConfig,
) -> Result<ScanOutput<T>> {
    validate(args, cfg)?;
    match args.a {
        AMatrix::Real(_) => forward_impl::<T, T>(args, cfg),
        AMatrix::Complex(_) => forward_impl::<T, Cplx<T>>(args, cfg),
    }
}

/// Runs the selective scan backward: given ∂ℒ/∂out (batch, dim, len) and optionally ∂ℒ/∂last_state,
/// returns the gradients of every input. `saved` is [`ScanOutput::saved`] of the forward call with
/// the same `args` and `cfg`; with `None` the chunk states are recomputed by a forward pass.
pub fn selective_scan_bwd<T: Float>(
    args: &ScanArgs<'_, T>,
    cfg: &ScanConfig,
    saved: Option<&ScanSaved<T>>,
    dout: &[T],
    dlast_state: Option<&[T]>,
) -> Result<ScanGrads<T>> {
    validate(args, cfg)?;
    match args.a {
        AMatrix::Real(_) => backward_impl::<T, T>(args, cfg, saved, dout, dlast_state),
        AMatrix::Complex(_) => backward_impl::<T, Cplx<T>>(args, cfg, saved, dout, dlast_state),
    }
}

/// Product of sizes, as an error instead of an overflow.
pub(crate) fn numel(sizes: &[usize]) -> Result<usize> {
    sizes.iter().try_fold(1usize, |acc, &s| {
        acc.checked_mul(s)
            .ok_or_else(|| SsmError::Invalid(format!("tensor size overflows: {sizes:?}")))
    })
}

fn validate<T>(args: &ScanArgs<'_, T>, cfg: &ScanConfig) -> Result<()> {
    let ScanDims {
        batch,
        dim,
        len,
        dstate,
    } = args.dims;
    if batch == 0 || dim == 0 || len == 0 || dstate == 0 {
        return Err(SsmError::Invalid(format!(
            "scan sizes must be ≥ 1, got {:?}",
            args.dims
        )));
    }
    if cfg.chunk_len == 0 {
        return Err(SsmError::Invalid("chunk_len must be ≥ 1".into()));
    }
    let w = if args.is_complex() { 2 } else { 1 };
    let bdl = numel(&[batch, dim, len])?;
    let s_bdl = || format!("(batch={batch}, dim={dim}, len={len})");
    check_len("u", args.u.len(), bdl, s_bdl)?;
    check_len("delta", args.delta.len(), bdl, s_bdl)?;
    if let Some(z) = args.z {
        check_len("z", z.len(), bdl, s_bdl)?;
    }
    let cx = if w == 2 { ", 2" } else { "" };
    let a = match args.a {
        AMatrix::Real(a) | AMatrix::Complex(a) => a,
    };
    check_len("A", a.len(), numel(&[dim, dstate, w])?, || {
        format!("(dim={dim}, dstate={dstate}{cx})")
    })?;
    for (name, m) in [("B", &args.b), ("C", &args.c)] {
        match *m {
            BcMatrix::Var(v) => check_len(name, v.len(), numel(&[batch, dstate, len, w])?, || {
                format!("(batch={batch}, dstate={dstate}, len={})", len * w)
            })?,
            BcMatrix::Grouped { data, groups } => {
                if groups == 0 || dim % groups != 0 {
                    return Err(SsmError::Invalid(format!(
                        "{name}: groups={groups} must be ≥ 1 and divide dim={dim}"
                    )));
                }
                check_len(
                    name,
                    data.len(),
                    numel(&[batch, groups, dstate, len, w])?,
                    || {
                        format!(
                            "(batch={batch}, groups={groups}, dstate={dstate}, len={})",
                            len * w
                        )
                    },
                )?
            }
            BcMatrix::Const(v) => check_len(name, v.len(), numel(&[dim, dstate, w])?, || {
                format!("(dim={dim}, dstate={dstate}{cx})")
            })?,
        }
    }
    if let Some(d) = args.d {
        check_len("D", d.len(), dim, || format!("(dim={dim})"))?;
    }
    if let Some(b) = args.delta_bias {
        check_len("delta_bias", b.len(), dim, || format!("(dim={dim})"))?;
    }
    if let Some(s) = args.initial_state {
        check_len(
            "initial_state",
            s.len(),
            numel(&[batch, dim, dstate, w])?,
            || format!("(batch={batch}, dim={dim}, dstate={dstate}{cx})"),
        )?;
    }
    if let Some(s) = args.seq_idx {
        check_len("seq_idx", s.len(), numel(&[batch, len])?, || {
            format!("(batch={batch}, len={len})")
        })?;
    }
    Ok(())
}

/// Δ and dΔ/dδ for raw δ and bias.
#[inline]
fn eff_delta<T: Float>(raw: T, bias: T, use_softplus: bool) -> (T, T) {
    let p = raw + bias;
    if use_softplus {
        (softplus(p), softplus_grad(p))
    } else {
        (p, T::ONE)
    }
}

/// B or C converted to state elements, time-major: (batch·groups, len, dstate) or (dim, dstate).
struct BcPrep<E> {
    data: Vec<E>,
    /// None: constant; Some(g): input-dependent with g groups.
    groups: Option<usize>,
}

/// B_t (or C_t) of one (batch, channel) row as a function of t.
#[derive(Clone, Copy)]
struct BcRow<'a, E> {
    data: &'a [E],
    stride: usize,
    n: usize,
}

impl<'a, E> BcRow<'a, E> {
    #[inline(always)]
    fn at(&self, t: usize) -> &'a [E] {
        &self.data[t * self.stride..][..self.n]
    }
}

impl<E> BcPrep<E> {
    fn new<T: Float>(m: &BcMatrix<'_, T>, dims: ScanDims) -> Self
    where
        E: Elem<T>,
    {
        let ScanDims {
            batch,
            dim,
            len,
            dstate: n,
        } = dims;
        let transpose = |data: &[T], groups: usize| {
            let mut out = Vec::with_capacity(batch * groups * len * n);
            for bg in 0..batch * groups {
                for t in 0..len {
                    for k in 0..n {
                        out.push(E::read(data, (bg * n + k) * len + t));
                    }
                }
            }
            out
        };
        match *m {
            BcMatrix::Var(v) => Self {
                data: transpose(v, 1),
                groups: Some(1),
            },
            BcMatrix::Grouped { data, groups } => Self {
                data: transpose(data, groups),
                groups: Some(groups),
            },
            BcMatrix::Const(v) => Self {
                data: (0..dim * n).map(|i| E::read(v, i)).collect(),
                groups: None,
            },
        }
    }

    /// Group index of channel d (input-dependent forms).
    fn group_of(&self, d: usize, dim: usize) -> Option<usize> {
        self.groups.map(|g| d / (dim / g))
    }

    fn row(&self, b: usize, d: usize, dims: ScanDims) -> BcRow<'_, E> {
        let (len, n) = (dims.len, dims.dstate);
        match self.groups {
            Some(g) => {
                let gi = d / (dims.dim / g);
                BcRow {
                    data: &self.data[(b * g + gi) * len * n..][..len * n],
                    stride: n,
                    n,
                }
            }
            None => BcRow {
                data: &self.data[d * n..][..n],
                stride: 0,
                n,
            },
        }
    }
}

/// Inputs converted once per call.
struct Prep<E> {
    dims: ScanDims,
    chunk: usize,
    n_chunks: usize,
    softplus: bool,
    a: Vec<E>,
    b: BcPrep<E>,
    c: BcPrep<E>,
}

impl<E> Prep<E> {
    fn new<T: Float>(args: &ScanArgs<'_, T>, cfg: &ScanConfig) -> Self
    where
        E: Elem<T>,
    {
        let dims = args.dims;
        let a = match args.a {
            AMatrix::Real(a) | AMatrix::Complex(a) => a,
        };
        Self {
            dims,
            chunk: cfg.chunk_len,
            n_chunks: dims.len.div_ceil(cfg.chunk_len),
            softplus: cfg.delta_softplus,
            a: (0..dims.dim * dims.dstate).map(|i| E::read(a, i)).collect(),
            b: BcPrep::new(&args.b, dims),
            c: BcPrep::new(&args.c, dims),
        }
    }
}

/// Whether position t of batch row b starts a new document (x_{t−1} treated as 0).
#[inline(always)]
fn is_reset(seq: Option<&[i32]>, t: usize) -> bool {
    match seq {
        Some(s) => t > 0 && s[t] != s[t - 1],
        None => false,
    }
}

/// Everything of one (batch, channel) row that both passes read.
struct RowIn<'a, T, E> {
    u: &'a [T],
    delta: &'a [T],
    z: Option<&'a [T]>,
    d: Option<T>,
    bias: T,
    a: &'a [E],
    b: BcRow<'a, E>,
    c: BcRow<'a, E>,
    seq: Option<&'a [i32]>,
}

impl<'a, T: Float, E: Elem<T>> RowIn<'a, T, E> {
    fn new(p: &'a Prep<E>, args: &ScanArgs<'a, T>, b: usize, d: usize) -> Self {
        let ScanDims {
            dim,
            len,
            dstate: n,
            ..
        } = p.dims;
        let r = (b * dim + d) * len;
        Self {
            u: &args.u[r..][..len],
            delta: &args.delta[r..][..len],
            z: args.z.map(|z| &z[r..][..len]),
            d: args.d.map(|v| v[d]),
            bias: args.delta_bias.map_or(T::ZERO, |v| v[d]),
            a: &p.a[d * n..][..n],
            b: p.b.row(b, d, p.dims),
            c: p.c.row(b, d, p.dims),
            seq: args.seq_idx.map(|s| &s[b * len..][..len]),
        }
    }

    /// One step of the recurrence: da ← exp(Δ_t A); x ← da ⊙ x + Δ_t u_t B_t. Returns (Δ_t, dΔ/dδ).
    #[inline(always)]
    fn step(&self, t: usize, softplus: bool, x: &mut [E], da: &mut [E]) -> (T, T) {
        if is_reset(self.seq, t) {
            x.fill(E::zero());
        }
        let (dt, dsp) = eff_delta(self.delta[t], self.bias, softplus);
        E::exp_scaled(self.a, dt, da);
        let du = dt * self.u[t];
        let bt = self.b.at(t);
        for ((xv, &dav), &bv) in x.iter_mut().zip(da.iter()).zip(bt) {
            *xv = dav.mul(*xv).add(bv.scale(du));
        }
        (dt, dsp)
    }

    /// y_t + D u_t (before the gate).
    #[inline(always)]
    fn pre_gate(&self, t: usize, x: &[E]) -> T {
        let y = E::dot_re(self.c.at(t), x) * T::from_f64(E::Y_SCALE);
        match self.d {
            Some(d) => y + self.u[t] * d,
            None => y,
        }
    }
}

fn read_state<T: Float, E: Elem<T>>(src: Option<&[T]>, offset: usize, x: &mut [E]) {
    match src {
        Some(s) => {
            for (i, v) in x.iter_mut().enumerate() {
                *v = E::read(s, offset + i);
            }
        }
        None => x.fill(E::zero()),
    }
}

fn write_state<T: Float, E: Elem<T>>(x: &[E], dst: &mut [T], offset: usize) {
    for (i, v) in x.iter().enumerate() {
        v.write(dst, offset + i);
    }
}

fn forward_impl<T: Float, E: Elem<T>>(
    args: &ScanArgs<'_, T>,
    cfg: &ScanConfig,
) -> Result<ScanOutput<T>> {
    let p = Prep::<E>::new(args, cfg);
    let ScanDims {
        batch,
        dim,
        len,
        dstate: n,
    } = p.dims;
    let w = E::WIDTH;
    let nc = p.n_chunks;
    let mut out = vec![T::ZERO; batch * dim * len];
    let mut last = vec![T::ZERO; batch * dim * n * w];
    let mut states = vec![T::ZERO; batch * dim * nc * n * w];
    out.par_chunks_mut(len)
        .zip(last.par_chunks_mut(n * w))
        .zip(states.par_chunks_mut(nc * n * w))
        .enumerate()
        .for_each_init(
            || (vec![E::zero(); n], vec![E::zero(); n]),
            |scratch, (row, ((out, last), saved))| {
                #[cfg(target_arch = "x86_64")]
                if has_avx2() {
                    // SAFETY: the CPU supports AVX2 (checked at run time).
                    return unsafe { forward_row_avx2(&p, args, row, (out, last, saved), scratch) };
                }
                forward_row(&p, args, row, (out, last, saved), scratch)
            },
        );
    Ok(ScanOutput {
        out,
        last_state: cfg.return_last_state.then_some(last),
        saved: ScanSaved {
            dims: p.dims,
            complex: w == 2,
            chunk_len: p.chunk,
            states,
        },
    })
}

static SIMD_DISPATCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns the run-time choice of AVX2 row kernels on (default) or off. Both builds give bitwise
/// equal results; this exists so tests can compare them on one machine.
#[doc(hidden)]
pub fn set_simd_dispatch(on: bool) {
    SIMD_DISPATCH.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether to run the AVX2 build of the row kernels (std caches the CPU check).
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2() -> bool {
    SIMD_DISPATCH.load(std::sync::atomic::Ordering::Relaxed)
        && std::arch::is_x86_feature_detected!("avx2")
}

/// Output buffers of one forward row: out (len), last state, saved chunk states.
type RowBufs<'a, T> = (&'a mut [T], &'a mut [T], &'a mut [T]);

/// Forward of one (batch, channel) row; `scratch` = (state x, exp(Δ_t A)), `dstate` each.
#[inline(always)]
fn forward_row<T: Float, E: Elem<T>>(
    p: &Prep<E>,
    args: &ScanArgs<'_, T>,
    row: usize,
    (out, last, saved): RowBufs<'_, T>,
    (x, da): &mut (Vec<E>, Vec<E>),
) {
    let ScanDims {
        dim,
        len,
        dstate: n,
        ..
    } = p.dims;
    let r = RowIn::new(p, args, row / dim, row % dim);
    read_state(args.initial_state, row * n, x);
    for t in 0..len {
        if t % p.chunk == 0 {
            write_state(x, saved, (t / p.chunk) * n);
        }
        r.step(t, p.softplus, x, da);
        let o = r.pre_gate(t, x);
        out[t] = match r.z {
            Some(z) => o * silu(z[t]),
            None => o,
        };
    }
    write_state(x, last, 0);
}

/// [`forward_row`] compiled with AVX2 (8-wide loops over the state; no FMA contraction, so
/// results are bitwise those of the baseline build).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward_row_avx2<T: Float, E: Elem<T>>(
    p: &Prep<E>,
    args: &ScanArgs<'_, T>,
    row: usize,
    bufs: RowBufs<'_, T>,
    scratch: &mut (Vec<E>, Vec<E>),
) {
    forward_row(p, args, row, bufs, scratch)
}

/// Per-row outputs of one backward task (a run of channels of one batch row).
struct TaskOut<'a, T> {
    b: usize,
    d0: usize,
    d1: usize,
    du: &'a mut [T],
    ddelta: &'a mut [T],
    dz: &'a mut [T],
    da: &'a mut [T],
    dd: &'a mut [T],
    dbias: &'a mut [T],
    dinit: &'a mut [T],
    db_const: &'a mut [T],
    dc_const: &'a mut [T],
}

/// Splits `buf` into consecutive pieces of `rows[i] · row_len` elements.
fn split_rows<'a, T>(mut buf: &'a mut [T], row_len: usize, rows: &[usize]) -> Vec<&'a mut [T]> {
    let mut pieces = Vec::with_capacity(rows.len());
    for &r in rows {
        let (head, tail) = std::mem::take(&mut buf).split_at_mut(r * row_len);
        pieces.push(head);
        buf = tail;
    }
    pieces
}

/// Channel ranges [d0, d1) of the backward tasks of one batch row: each range lies inside one
/// B group and one C group, and has at most ⌈dim/16⌉ channels. Depends on sizes only.
fn channel_blocks<E>(p: &Prep<E>) -> Vec<(usize, usize)> {
    let dim = p.dims.dim;
    let max_len = dim.div_ceil(16).max(1);
    let key = |d: usize| (p.b.group_of(d, dim), p.c.group_of(d, dim));
    let mut blocks = Vec::new();
    let mut d0 = 0;
    for d in 1..=dim {
        if d == dim || key(d) != key(d0) || d - d0 == max_len {
            blocks.push((d0, d));
            d0 = d;
        }
    }
    blocks
}

fn backward_impl<T: Float, E: Elem<T>>(
    args: &ScanArgs<'_, T>,
    cfg: &ScanConfig,
    saved: Option<&ScanSaved<T>>,
    dout: &[T],
    dlast: Option<&[T]>,
) -> Result<ScanGrads<T>> {
    let dims = args.dims;
    let ScanDims {
        batch,
        dim,
        len,
        dstate: n,
    } = dims;
    let w = E::WIDTH;
    check_len("dout", dout.len(), batch * dim * len, || {
        format!("(batch={batch}, dim={dim}, len={len})")
    })?;
    if let Some(dl) = dlast {
        check_len("dlast_state", dl.len(), batch * dim * n * w, || {
            format!("(batch={batch}, dim={dim}, dstate={n}, {w})")
        })?;
    }
    let recomputed;
    let saved = match saved {
        Some(s) => {
            if s.dims != dims || s.complex != (w == 2) || s.chunk_len != cfg.chunk_len {
                return Err(SsmError::Invalid(format!(
                    "saved scan states are for dims {:?}, complex={}, chunk_len={}; \
                     the backward call has {:?}, complex={}, chunk_len={}",
                    s.dims,
                    s.complex,
                    s.chunk_len,
                    dims,
                    w == 2,
                    cfg.chunk_len
                )));
            }
            s
        }
        None => {
            recomputed = forward_impl::<T, E>(args, cfg)?.saved;
            &recomputed
        }
    };
    let p = Prep::<E>::new(args, cfg);

    let bdl = batch * dim * len;
    let (mut du, mut ddelta) = (vec![T::ZERO; bdl], vec![T::ZERO; bdl]);
    let mut dz = vec![T::ZERO; if args.z.is_some() { bdl } else { 0 }];
    let mut da_rows = vec![T::ZERO; batch * dim * n * w];
    let mut dd_rows = vec![T::ZERO; batch * dim];
    let mut dbias_rows = vec![T::ZERO; batch * dim];
    let mut dinit = vec![T::ZERO; batch * dim * n * w];
    let const_len = |m: &BcMatrix<'_, T>| match m {
        BcMatrix::Const(_) => batch * dim * n * w,
        _ => 0,
    };
    let mut db_const = vec![T::ZERO; const_len(&args.b)];
    let mut dc_const = vec![T::ZERO; const_len(&args.c)];

    let blocks = channel_blocks(&p);
    let rows: Vec<usize> = (0..batch)
        .flat_map(|_| blocks.iter().map(|&(d0, d1)| d1 - d0))
        .collect();
    let per_row = |buf: &[T]| buf.len() / (batch * dim);
    let row_lens = [
        len,
        len,
        per_row(&dz),
        n * w,
        1,
        1,
        n * w,
        per_row(&db_const),
        per_row(&dc_const),
    ];
    let mut pieces = [
        &mut du,
        &mut ddelta,
        &mut dz,
        &mut da_rows,
        &mut dd_rows,
        &mut dbias_rows,
        &mut dinit,
        &mut db_const,
        &mut dc_const,
    ]
    .into_iter()
    .zip(row_lens)
    .map(|(buf, rl)| split_rows(buf, rl, &rows).into_iter())
    .collect::<Vec<_>>();
    let mut tasks = Vec::with_capacity(rows.len());
    for b in 0..batch {
        for &(d0, d1) in &blocks {
            let [du, ddelta, dz, da, dd, dbias, dinit, db_const, dc_const] =
                pieces_next(&mut pieces);
            tasks.push(TaskOut {
                b,
                d0,
                d1,
                du,
                ddelta,
                dz,
                da,
                dd,
                dbias,
                dinit,
                db_const,
                dc_const,
            });
        }
    }

    let accs: Vec<(Vec<E>, Vec<E>)> = tasks
        .into_par_iter()
        .map(|task| {
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: the CPU supports AVX2 (checked at run time).
                return unsafe { backward_task_avx2(&p, args, saved, dout, dlast, task) };
            }
            backward_task(&p, args, saved, dout, dlast, task)
        })
        .collect();

    // Input-dependent B/C: sum the task accumulators of each (batch, group) in task order.
    let reduce_var = |prep: &BcPrep<E>, is_b: bool| -> Vec<T> {
        let g = prep.groups.unwrap_or(1);
        let mut acc = vec![E::zero(); batch * g * len * n];
        for (ti, task_acc) in accs.iter().enumerate() {
            let b = ti / blocks.len();
            let gi = prep.group_of(blocks[ti % blocks.len()].0, dim).unwrap_or(0);
            let dst = &mut acc[(b * g + gi) * len * n..][..len * n];
            let src = if is_b { &task_acc.0 } else { &task_acc.1 };
            for (a, &v) in dst.iter_mut().zip(src) {
                *a = a.add(v);
            }
        }
        let mut out = vec![T::ZERO; batch * g * n * len * w];
        for bg in 0..batch * g {
            for t in 0..len {
                for k in 0..n {
                    acc[(bg * len + t) * n + k].write(&mut out, (bg * n + k) * len + t);
                }
            }
        }
        out
    };
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
    let db = match p.b.groups {
        Some(_) => reduce_var(&p.b, true),
        None => sum_over_batch(&db_const),
    };
    let dc = match p.c.groups {
        Some(_) => reduce_var(&p.c, false),
        None => sum_over_batch(&dc_const),
    };
    Ok(ScanGrads {
        du,
        ddelta,
        da: sum_over_batch(&da_rows),
        db,
        dc,
        dd: args.d.map(|_| sum_over_batch(&dd_rows)),
        dz: args.z.map(|_| dz),
        ddelta_bias: args.delta_bias.map(|_| sum_over_batch(&dbias_rows)),
        dinitial_state: args.initial_state.map(|_| dinit),
    })
}

/// The next piece of each of the 9 split buffers (one per task, in task order).
fn pieces_next<'a, T>(its: &mut [std::vec::IntoIter<&'a mut [T]>]) -> [&'a mut [T]; 9] {
    let mut it = its.iter_mut().map(|it| it.next().unwrap_or_default());
    std::array::from_fn(|_| it.next().unwrap_or_default())
}

/// [`backward_task`] compiled with AVX2 (see [`forward_row_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn backward_task_avx2<T: Float, E: Elem<T>>(
    p: &Prep<E>,
    args: &ScanArgs<'_, T>,
    saved: &ScanSaved<T>,
    dout: &[T],
    dlast: Option<&[T]>,
    task: TaskOut<'_, T>,
) -> (Vec<E>, Vec<E>) {
    backward_task(p, args, saved, dout, dlast, task)
}

/// Backward of one task; returns its accumulators for input-dependent B and C (time-major,
/// len·dstate; empty for constant B/C).
#[inline(always)]
fn backward_task<T: Float, E: Elem<T>>(
    p: &Prep<E>,
    args: &ScanArgs<'_, T>,
    saved: &ScanSaved<T>,
    dout: &[T],
    dlast: Option<&[T]>,
    task: TaskOut<'_, T>,
) -> (Vec<E>, Vec<E>) {
    let ScanDims {
        dim,
        len,
        dstate: n,
        ..
    } = p.dims;
    let w = E::WIDTH;
    let (chunk, nc) = (p.chunk, p.n_chunks);
    let acc_len = |bc: &BcPrep<E>| if bc.groups.is_some() { len * n } else { 0 };
    let mut acc_b = vec![E::zero(); acc_len(&p.b)];
    let mut acc_c = vec![E::zero(); acc_len(&p.c)];
    let clen = chunk.min(len);
    let mut xs = vec![E::zero(); clen * n];
    let mut das = vec![E::zero(); clen * n];
    let mut dts = vec![T::ZERO; clen];
    let mut dsps = vec![T::ZERO; clen];
    let mut x = vec![E::zero(); n];
    let mut x0 = vec![E::zero(); n];
    let mut h = vec![E::zero(); n];
    let mut ga = vec![E::zero(); n];
    let mut gda = vec![E::zero(); n];
    let mut gb_const = vec![E::zero(); n];
    let mut gc_const = vec![E::zero(); n];
    let ys = T::from_f64(E::Y_SCALE);
    let b = task.b;

    for (j, d) in (task.d0..task.d1).enumerate() {
        let row = b * dim + d;
        let r = RowIn::new(p, args, b, d);
        let dout = &dout[row * len..][..len];
        let du = &mut task.du[j * len..][..len];
        let ddelta = &mut task.ddelta[j * len..][..len];
        read_state(dlast, row * n, &mut h);
        ga.fill(E::zero());
        gb_const.fill(E::zero());
        gc_const.fill(E::zero());
        let (mut gd, mut gbias) = (T::ZERO, T::ZERO);
        let saved_row = &saved.states[row * nc * n * w..][..nc * n * w];

        for ci in (0..nc).rev() {
            let t0 = ci * chunk;
            let t1 = (t0 + chunk).min(len);
            // Recompute x_t for t in the chunk from the saved x_{t0−1}.
            read_state(Some(saved_row), ci * n, &mut x0);
            x.copy_from_slice(&x0);
            for t in t0..t1 {
                let i = t - t0;
                let (dt, dsp) = r.step(t, p.softplus, &mut x, &mut das[i * n..][..n]);
                dts[i] = dt;
                dsps[i] = dsp;
                xs[i * n..][..n].copy_from_slice(&x);
            }
            // Reverse recurrence; h holds ḡx_t (the part from t+1.. on entry).
            for t in (t0..t1).rev() {
                let i = t - t0;
                let xt = &xs[i * n..][..n];
                let g = dout[t];
                let go = match r.z {
                    Some(z) => {
                        let o = r.pre_gate(t, xt);
                        task.dz[j * len + t] = g * o * silu_grad(z[t]);
                        g * silu(z[t])
                    }
                    None => g,
                };
                let ut = r.u[t];
                let mut gu = match r.d {
                    Some(dv) => {
                        gd += go * ut;
                        go * dv
                    }
                    None => T::ZERO,
                };
                let gy = go * ys;
                let reset = is_reset(r.seq, t);
                let xprev: &[E] = if i > 0 { &xs[(i - 1) * n..][..n] } else { &x0 };
                let (dt, dat) = (dts[i], &das[i * n..][..n]);
                let (bt, ct) = (r.b.at(t), r.c.at(t));
                let scale_b = dt * ut;
                // ḡx_t = (carry from t+1) + ∂y_t/∂x_t · ∂ℒ/∂y_t
                for (hk, &ck) in h.iter_mut().zip(ct) {
                    *hk = hk.add(ck.conj().scale(gy));
                }
                // ∂ℒ/∂C_t += ∂ℒ/∂y_t · conj(x_t);  ∂ℒ/∂B_t += Δ_t u_t · ḡx_t
                let gc_dst = if acc_c.is_empty() {
                    &mut gc_const[..]
                } else {
                    &mut acc_c[t * n..][..n]
                };
                for (g, &xk) in gc_dst.iter_mut().zip(xt) {
                    *g = g.add(xk.conj().scale(gy));
                }
                let gb_dst = if acc_b.is_empty() {
                    &mut gb_const[..]
                } else {
                    &mut acc_b[t * n..][..n]
                };
                for (g, &hk) in gb_dst.iter_mut().zip(h.iter()) {
                    *g = g.add(hk.scale(scale_b));
                }
                let hb = E::dot_conj_re(bt, &h);
                let mut gdt = T::ZERO;
                if reset {
                    h.fill(E::zero());
                } else {
                    // ḡ(ΔA) = conj(exp(ΔA)) · ḡx_t · conj(x_{t−1});  ḡx_{t−1} = conj(exp(ΔA)) · ḡx_t
                    for ((((hk, &dak), &xp), gak), gk) in h
                        .iter_mut()
                        .zip(dat)
                        .zip(xprev)
                        .zip(ga.iter_mut())
                        .zip(gda.iter_mut())
                    {
                        let carry = dak.conj().mul(*hk);
                        *gk = carry.mul(xp.conj());
                        *gak = gak.add(gk.scale(dt));
                        *hk = carry;
                    }
                    gdt = E::dot_conj_re(r.a, &gda);
                }
                gdt += ut * hb;
                gu += dt * hb;
                du[t] = gu;
                let graw = gdt * dsps[i];
                ddelta[t] = graw;
                gbias += graw;
            }
        }
        write_state(&h, task.dinit, j * n);
        write_state(&ga, task.da, j * n);
        if !task.db_const.is_empty() {
            write_state(&gb_const, task.db_const, j * n);
        }
        if !task.dc_const.is_empty() {
            write_state(&gc_const, task.dc_const, j * n);
        }
        task.dd[j] = gd;
        task.dbias[j] = gbias;
    }
    (acc_b, acc_c)
}
