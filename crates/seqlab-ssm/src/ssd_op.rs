//! Mamba-2's chunked SSD ([`crate::ssd`]) as a candle op with backward, so models built from
//! candle tensors train through it (`candle_core::Var` gradients).
//!
//! As for the selective scan ([`crate::candle_op`]): candle's custom ops take at most three
//! tensors and give one, so the inputs are flattened and concatenated (`Tensor::cat`, whose
//! backward splits the gradient again), a [`CustomOp1`] runs [`ssd_chunked`] on the packed
//! vector and returns `[y, final_state]` flattened, and the two outputs are `narrow`s of it.
//! Its `bwd` runs [`ssd_chunked_backward`] (which recomputes the chunk states: the forward keeps
//! nothing). CPU tensors, f32 or f64; other devices are refused with an error.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use crate::error::{Result, SsmError};
use crate::float::Float;
use crate::ssd::{ssd_chunked, SsdDims, SsdInputs};
use crate::ssd_backward::ssd_chunked_backward;

/// Tensor inputs of [`ssd`] (layouts of [`crate::ssd`]): x (batch, seqlen, nheads, headdim),
/// dt (batch, seqlen, nheads) already positive, A (nheads), B and C (batch, seqlen, ngroups,
/// dstate), D (nheads) or (nheads, headdim), initial state (batch, nheads, headdim, dstate).
/// All one dtype, f32 or f64, on the CPU.
#[derive(Clone, Copy, Debug)]
pub struct SsdTensors<'a> {
    /// x (batch, seqlen, nheads, headdim).
    pub x: &'a Tensor,
    /// Δ (batch, seqlen, nheads).
    pub dt: &'a Tensor,
    /// A (nheads).
    pub a: &'a Tensor,
    /// B (batch, seqlen, ngroups, dstate).
    pub b: &'a Tensor,
    /// C (batch, seqlen, ngroups, dstate).
    pub c: &'a Tensor,
    /// D (nheads) or (nheads, headdim).
    pub d: Option<&'a Tensor>,
    /// H_{−1} (batch, nheads, headdim, dstate).
    pub initial_state: Option<&'a Tensor>,
    /// Document ids (batch·seqlen, row-major) of packed rows; not differentiated.
    pub seq_idx: Option<&'a [i32]>,
}

impl<'a> SsdTensors<'a> {
    /// Required inputs, options off.
    pub fn new(x: &'a Tensor, dt: &'a Tensor, a: &'a Tensor, b: &'a Tensor, c: &'a Tensor) -> Self {
        Self {
            x,
            dt,
            a,
            b,
            c,
            d: None,
            initial_state: None,
            seq_idx: None,
        }
    }
    /// Sets D.
    pub fn with_d(mut self, d: &'a Tensor) -> Self {
        self.d = Some(d);
        self
    }
    /// Sets the initial state.
    pub fn with_initial_state(mut self, state: &'a Tensor) -> Self {
        self.initial_state = Some(state);
        self
    }
    /// Sets the packed-row document ids.
    pub fn with_seq_idx(mut self, seq_idx: &'a [i32]) -> Self {
        self.seq_idx = Some(seq_idx);
        self
    }
}

/// The packed op: input = cat of the flattened inputs (x, dt, A, B, C, [D], [H_{−1}]),
/// output = cat of flattened y and final state.
#[derive(Debug)]
struct SsdOp {
    dims: SsdDims,
    seg_lens: Vec<usize>,
    has_d: bool,
    has_init: bool,
    seq_idx: Option<Vec<i32>>,
}

/// Chunked SSD on candle tensors with chunk length `chunk`: returns (y (batch, seqlen, nheads,
/// headdim), final_state (batch, nheads, headdim, dstate)), both differentiable with respect to
/// every tensor input.
pub fn ssd(args: &SsdTensors<'_>, chunk: usize) -> Result<(Tensor, Tensor)> {
    let dtype = args.x.dtype();
    if dtype != DType::F32 && dtype != DType::F64 {
        return Err(SsmError::Invalid(format!(
            "ssd: dtype {dtype:?} not supported (f32 or f64)"
        )));
    }
    if !args.x.device().is_cpu() {
        return Err(SsmError::Invalid(format!(
            "ssd: tensors on {:?} are not supported (the SSD op runs on the CPU only)",
            args.x.device().location()
        )));
    }
    let (batch, seqlen, nheads, headdim) = args.x.dims4()?;
    let (_, _, ngroups, dstate) = args.b.dims4()?;
    let dims = SsdDims {
        batch,
        seqlen,
        nheads,
        headdim,
        ngroups,
        dstate,
        chunk,
    };
    let expect = |name: &'static str, t: &Tensor, shapes: &[&[usize]]| -> Result<()> {
        if t.dtype() != dtype {
            return Err(SsmError::Invalid(format!(
                "{name}: dtype {:?}, x has {dtype:?}",
                t.dtype()
            )));
        }
        if !t.device().same_device(args.x.device()) {
            return Err(SsmError::Invalid(format!(
                "{name}: on another device than x"
            )));
        }
        if !shapes.contains(&t.dims()) {
            return Err(SsmError::Invalid(format!(
                "{name}: shape {:?}, expected {}",
                t.dims(),
                shapes
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        Ok(())
    };
    expect("dt", args.dt, &[&[batch, seqlen, nheads]])?;
    expect("A", args.a, &[&[nheads]])?;
    expect("B", args.b, &[&[batch, seqlen, ngroups, dstate]])?;
    expect("C", args.c, &[&[batch, seqlen, ngroups, dstate]])?;
    let mut inputs: Vec<&Tensor> = vec![args.x, args.dt, args.a, args.b, args.c];
    if let Some(d) = args.d {
        expect("D", d, &[&[nheads], &[nheads, headdim]])?;
        inputs.push(d);
    }
    if let Some(s) = args.initial_state {
        expect("initial_state", s, &[&[batch, nheads, headdim, dstate]])?;
        inputs.push(s);
    }
    let op = SsdOp {
        dims,
        seg_lens: inputs.iter().map(|t| t.elem_count()).collect(),
        has_d: args.d.is_some(),
        has_init: args.initial_state.is_some(),
        seq_idx: args.seq_idx.map(<[i32]>::to_vec),
    };
    // Checks the sizes, seq_idx and chunk before anything runs: the check reads lengths only,
    // so a vector of `()` (no memory) stands in for the packed data.
    let total = inputs.iter().map(|t| t.elem_count()).sum();
    crate::ssd::validate(&dims, &op.inputs(&vec![(); total]))?;
    let flat = inputs
        .iter()
        .map(|t| t.flatten_all())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let packed = Tensor::cat(&flat, 0)?;
    let res = packed.apply_op1(op)?;
    let n_y = args.x.elem_count();
    let y = res
        .narrow(0, 0, n_y)?
        .reshape((batch, seqlen, nheads, headdim))?;
    let fin = res
        .narrow(0, n_y, batch * nheads * headdim * dstate)?
        .reshape((batch, nheads, headdim, dstate))?;
    Ok((y, fin))
}

impl SsdOp {
    fn inputs<'a, T>(&'a self, packed: &'a [T]) -> SsdInputs<'a, T> {
        let mut rest = packed;
        let mut segs = self.seg_lens.iter().map(|&n| {
            let (head, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            head
        });
        let mut next = || segs.next().unwrap_or_default();
        let (x, dt, a, b, c) = (next(), next(), next(), next(), next());
        let d = self.has_d.then(&mut next);
        let initial_state = self.has_init.then(&mut next);
        SsdInputs {
            x,
            dt,
            a,
            b,
            c,
            d,
            initial_state,
            seq_idx: self.seq_idx.as_deref(),
        }
    }

    fn fwd<T: Float>(&self, packed: &[T]) -> Result<Vec<T>> {
        let out = ssd_chunked(&self.dims, &self.inputs(packed))?;
        let mut y = out.y;
        y.extend(out.final_state);
        Ok(y)
    }

    fn bwd_packed<T: Float>(&self, packed: &[T], grad: &[T]) -> Result<Vec<T>> {
        let inp = self.inputs(packed);
        let n_y = inp.x.len();
        if grad.len() < n_y {
            return Err(SsmError::Invalid("ssd bwd: short gradient".into()));
        }
        let (dy, dfinal) = grad.split_at(n_y);
        let g = ssd_chunked_backward(&self.dims, &inp, dy, Some(dfinal))?;
        let mut out = Vec::with_capacity(packed.len());
        for part in [Some(g.dx), Some(g.ddt), Some(g.da), Some(g.db), Some(g.dc)]
            .into_iter()
            .chain([g.dd, g.dinitial_state])
            .flatten()
        {
            out.extend(part);
        }
        Ok(out)
    }
}

impl CustomOp1 for SsdOp {
    fn name(&self) -> &'static str {
        "seqlab-ssd"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::msg("ssd: packed input not contiguous"))?;
        let wrap = candle_core::Error::wrap;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.fwd(&v[start..end]).map_err(wrap)?),
            CpuStorage::F64(v) => CpuStorage::F64(self.fwd(&v[start..end]).map_err(wrap)?),
            other => {
                return Err(candle_core::Error::msg(format!(
                    "ssd: dtype {:?} not supported",
                    other.dtype()
                )))
            }
        };
        let n = match &out {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            _ => 0,
        };
        Ok((out, Shape::from(n)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let wrap = candle_core::Error::wrap;
        let grad = match arg.dtype() {
            DType::F32 => {
                let g = self
                    .bwd_packed(&arg.to_vec1::<f32>()?, &grad_res.to_vec1::<f32>()?)
                    .map_err(wrap)?;
                Tensor::from_vec(g, arg.shape(), arg.device())?
            }
            DType::F64 => {
                let g = self
                    .bwd_packed(&arg.to_vec1::<f64>()?, &grad_res.to_vec1::<f64>()?)
                    .map_err(wrap)?;
                Tensor::from_vec(g, arg.shape(), arg.device())?
            }
            dt => {
                return Err(candle_core::Error::msg(format!(
                    "ssd bwd: dtype {dt:?} not supported"
                )))
            }
        };
        Ok(Some(grad))
    }
}
