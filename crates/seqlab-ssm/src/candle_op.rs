//! The selective scan as a candle op with backward, so a model built from candle tensors trains
//! through it (`candle_core::Var` gradients).
//!
//! candle's custom ops take at most three tensors and give one, so the inputs are flattened and
//! concatenated into one vector (`Tensor::cat`, whose backward splits the gradient again), a
//! [`CustomOp1`] runs [`selective_scan_fwd`] on it and returns `[out, last_state]` flattened,
//! and the caller's view of the two outputs is two `narrow`s. The op keeps the chunk-start
//! states of its forward pass, so its `bwd` runs [`selective_scan_bwd`] without recomputing them.
//! CPU (f32 or f64) and, with the `cuda` feature, CUDA (f32; [`crate::cuda`]'s kernels run on
//! candle's storage: `cuda_fwd` here, and the backward as a second custom op on the packed input
//! and gradient); real A. On CUDA the forward keeps the states entering each
//! [`crate::cuda::SCAN_TILE`]-long tile for the backward kernel (`ScanConfig::chunk_len` is the
//! CPU backward's trade-off and does not apply).

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use crate::error::{Result, SsmError};
use crate::float::Float;
use crate::selective_scan::{
    selective_scan_bwd, selective_scan_fwd, AMatrix, BcMatrix, ScanArgs, ScanConfig, ScanDims,
    ScanSaved,
};

/// Tensor inputs of [`selective_scan`]. Shapes as in [`crate::selective_scan`]: u, delta, z
/// (batch, dim, len); A (dim, dstate), real; B and C by rank: 2 → constant (dim, dstate),
/// 3 → input-dependent (batch, dstate, len), 4 → grouped (batch, groups, dstate, len);
/// D, delta_bias (dim); initial_state (batch, dim, dstate). All one dtype, f32 or f64.
#[derive(Clone, Copy, Debug)]
pub struct ScanTensors<'a> {
    /// u (batch, dim, len).
    pub u: &'a Tensor,
    /// Raw δ (batch, dim, len).
    pub delta: &'a Tensor,
    /// A (dim, dstate).
    pub a: &'a Tensor,
    /// B.
    pub b: &'a Tensor,
    /// C.
    pub c: &'a Tensor,
    /// D (dim).
    pub d: Option<&'a Tensor>,
    /// z (batch, dim, len).
    pub z: Option<&'a Tensor>,
    /// δ bias (dim).
    pub delta_bias: Option<&'a Tensor>,
    /// x_{−1} (batch, dim, dstate).
    pub initial_state: Option<&'a Tensor>,
    /// Document ids (batch·len, row-major) of packed rows; not differentiated.
    pub seq_idx: Option<&'a [i32]>,
}

impl<'a> ScanTensors<'a> {
    /// Required inputs, options off.
    pub fn new(
        u: &'a Tensor,
        delta: &'a Tensor,
        a: &'a Tensor,
        b: &'a Tensor,
        c: &'a Tensor,
    ) -> Self {
        Self {
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
    /// Sets D.
    pub fn with_d(mut self, d: &'a Tensor) -> Self {
        self.d = Some(d);
        self
    }
    /// Sets z.
    pub fn with_z(mut self, z: &'a Tensor) -> Self {
        self.z = Some(z);
        self
    }
    /// Sets the δ bias.
    pub fn with_delta_bias(mut self, bias: &'a Tensor) -> Self {
        self.delta_bias = Some(bias);
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BcKind {
    Var,
    Grouped(usize),
    Const,
}

#[derive(Debug)]
enum SavedAny {
    F32(ScanSaved<f32>),
    F64(ScanSaved<f64>),
}

/// The packed op: input = cat of the flattened inputs, output = cat of flattened out and last state.
#[derive(Debug)]
struct ScanOp {
    dims: ScanDims,
    b_kind: BcKind,
    c_kind: BcKind,
    /// Element counts of the packed inputs, in order u, δ, A, B, C, [D], [z], [δ bias], [x_{−1}].
    seg_lens: Vec<usize>,
    has: [bool; 4],
    seq_idx: Option<Vec<i32>>,
    cfg: ScanConfig,
    saved: Mutex<Option<SavedAny>>,
    /// Tile states of the last CUDA forward, for the CUDA backward.
    #[cfg(feature = "cuda")]
    cuda_saved: Mutex<Option<crate::cuda::cudarc::driver::CudaSlice<f32>>>,
}

/// Selective scan on candle tensors: returns (out (batch, dim, len), last_state (batch, dim,
/// dstate)), both differentiable with respect to every tensor input. `cfg.return_last_state`
/// is ignored (the last state is always returned).
pub fn selective_scan(args: &ScanTensors<'_>, cfg: &ScanConfig) -> Result<(Tensor, Tensor)> {
    let dtype = args.u.dtype();
    if dtype != DType::F32 && dtype != DType::F64 {
        return Err(SsmError::Invalid(format!(
            "selective_scan: dtype {dtype:?} not supported (f32 or f64)"
        )));
    }
    let (batch, dim, len) = args.u.dims3()?;
    let (a_dim, dstate) = args.a.dims2()?;
    let dims = ScanDims {
        batch,
        dim,
        len,
        dstate,
    };
    let expect = |name: &'static str, t: &Tensor, shape: &[usize]| -> Result<()> {
        if t.dtype() != dtype {
            return Err(SsmError::Invalid(format!(
                "{name}: dtype {:?}, u has {dtype:?}",
                t.dtype()
            )));
        }
        if t.dims() != shape {
            return Err(SsmError::Invalid(format!(
                "{name}: shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        Ok(())
    };
    expect("delta", args.delta, &[batch, dim, len])?;
    if a_dim != dim {
        return Err(SsmError::Invalid(format!(
            "A: shape {:?}, expected [{dim}, {dstate}] (real A only)",
            args.a.dims()
        )));
    }
    expect("A", args.a, &[dim, dstate])?;
    let kind = |name: &'static str, t: &Tensor| -> Result<BcKind> {
        match t.rank() {
            2 => expect(name, t, &[dim, dstate]).map(|_| BcKind::Const),
            3 => expect(name, t, &[batch, dstate, len]).map(|_| BcKind::Var),
            4 => {
                let g = t.dims()[1];
                expect(name, t, &[batch, g, dstate, len])?;
                Ok(BcKind::Grouped(g))
            }
            r => Err(SsmError::Invalid(format!(
                "{name}: rank {r}; expected 2 (dim, dstate), 3 (batch, dstate, len) or 4 \
                 (batch, groups, dstate, len)"
            ))),
        }
    };
    let b_kind = kind("B", args.b)?;
    let c_kind = kind("C", args.c)?;
    let mut inputs: Vec<&Tensor> = vec![args.u, args.delta, args.a, args.b, args.c];
    let optional = [
        ("D", args.d, vec![dim]),
        ("z", args.z, vec![batch, dim, len]),
        ("delta_bias", args.delta_bias, vec![dim]),
        (
            "initial_state",
            args.initial_state,
            vec![batch, dim, dstate],
        ),
    ];
    let mut has = [false; 4];
    for (i, (name, t, shape)) in optional.iter().enumerate() {
        if let Some(t) = t {
            expect(name, t, shape)?;
            inputs.push(t);
            has[i] = true;
        }
    }
    if let Some(s) = args.seq_idx {
        if s.len() != batch * len {
            return Err(SsmError::Shape {
                name: "seq_idx",
                shape: format!("(batch={batch}, len={len})"),
                expected: batch * len,
                got: s.len(),
            });
        }
    }
    let seg_lens = inputs.iter().map(|t| t.elem_count()).collect();
    let flat = inputs
        .iter()
        .map(|t| t.flatten_all())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let packed = Tensor::cat(&flat, 0)?;
    let op = ScanOp {
        dims,
        b_kind,
        c_kind,
        seg_lens,
        has,
        seq_idx: args.seq_idx.map(<[i32]>::to_vec),
        cfg: *cfg,
        saved: Mutex::new(None),
        #[cfg(feature = "cuda")]
        cuda_saved: Mutex::new(None),
    };
    let res = packed.apply_op1(op)?;
    let n_out = batch * dim * len;
    let out = res.narrow(0, 0, n_out)?.reshape((batch, dim, len))?;
    let last = res
        .narrow(0, n_out, batch * dim * dstate)?
        .reshape((batch, dim, dstate))?;
    Ok((out, last))
}

impl ScanOp {
    fn args<'a, T>(&'a self, packed: &'a [T]) -> ScanArgs<'a, T> {
        let mut rest = packed;
        let mut segs = self.seg_lens.iter().map(|&n| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        });
        let mut next = || segs.next().unwrap_or_default();
        let bc = |kind: BcKind, data: &'a [T]| match kind {
            BcKind::Var => BcMatrix::Var(data),
            BcKind::Grouped(groups) => BcMatrix::Grouped { data, groups },
            BcKind::Const => BcMatrix::Const(data),
        };
        let (u, delta, a) = (next(), next(), next());
        let (b, c) = (bc(self.b_kind, next()), bc(self.c_kind, next()));
        let mut args = ScanArgs::new(self.dims, u, delta, AMatrix::Real(a), b, c);
        let mut opt = |on: bool| on.then(&mut next);
        args.d = opt(self.has[0]);
        args.z = opt(self.has[1]);
        args.delta_bias = opt(self.has[2]);
        args.initial_state = opt(self.has[3]);
        args.seq_idx = self.seq_idx.as_deref();
        args
    }

    fn fwd<T: Float>(&self, packed: &[T]) -> Result<(Vec<T>, ScanSaved<T>)> {
        let cfg = ScanConfig {
            return_last_state: true,
            ..self.cfg
        };
        let res = selective_scan_fwd(&self.args(packed), &cfg)?;
        let mut out = res.out;
        out.extend(res.last_state.unwrap_or_default());
        Ok((out, res.saved))
    }

    fn bwd_packed<T: Float>(
        &self,
        packed: &[T],
        grad: &[T],
        saved: Option<&ScanSaved<T>>,
    ) -> Result<Vec<T>> {
        let args = self.args(packed);
        let n_out = args.u.len();
        if grad.len() < n_out {
            return Err(SsmError::Invalid(
                "selective_scan bwd: short gradient".into(),
            ));
        }
        let (dout, dlast) = grad.split_at(n_out);
        let g = selective_scan_bwd(&args, &self.cfg, saved, dout, Some(dlast))?;
        let mut out = Vec::with_capacity(packed.len());
        for part in [
            Some(g.du),
            Some(g.ddelta),
            Some(g.da),
            Some(g.db),
            Some(g.dc),
        ]
        .into_iter()
        .chain([g.dd, g.dz, g.ddelta_bias, g.dinitial_state])
        .flatten()
        {
            out.extend(part);
        }
        Ok(out)
    }
}

impl CustomOp1 for ScanOp {
    fn name(&self) -> &'static str {
        "seqlab-selective-scan"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::msg("selective_scan: packed input not contiguous")
        })?;
        let wrap = candle_core::Error::wrap;
        let (storage, saved) = match storage {
            CpuStorage::F32(v) => {
                let (out, saved) = self.fwd(&v[start..end]).map_err(wrap)?;
                (CpuStorage::F32(out), SavedAny::F32(saved))
            }
            CpuStorage::F64(v) => {
                let (out, saved) = self.fwd(&v[start..end]).map_err(wrap)?;
                (CpuStorage::F64(out), SavedAny::F64(saved))
            }
            other => {
                return Err(candle_core::Error::msg(format!(
                    "selective_scan: dtype {:?} not supported",
                    other.dtype()
                )))
            }
        };
        let n = match &storage {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            _ => 0,
        };
        if let Ok(mut slot) = self.saved.lock() {
            *slot = Some(saved);
        }
        Ok((storage, Shape::from(n)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        cuda_op::forward(self, storage, layout)
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        #[cfg(feature = "cuda")]
        if arg.device().is_cuda() {
            let op = cuda_op::ScanBwdCuda { op: self };
            return Ok(Some(arg.apply_op2_no_bwd(grad_res, &op)?));
        }
        let wrap = candle_core::Error::wrap;
        let saved = self.saved.lock().ok();
        let saved = saved.as_deref().and_then(Option::as_ref);
        let grad = match arg.dtype() {
            DType::F32 => {
                let s = match saved {
                    Some(SavedAny::F32(s)) => Some(s),
                    _ => None,
                };
                let g = self
                    .bwd_packed(&arg.to_vec1::<f32>()?, &grad_res.to_vec1::<f32>()?, s)
                    .map_err(wrap)?;
                Tensor::from_vec(g, arg.shape(), arg.device())?
            }
            DType::F64 => {
                let s = match saved {
                    Some(SavedAny::F64(s)) => Some(s),
                    _ => None,
                };
                let g = self
                    .bwd_packed(&arg.to_vec1::<f64>()?, &grad_res.to_vec1::<f64>()?, s)
                    .map_err(wrap)?;
                Tensor::from_vec(g, arg.shape(), arg.device())?
            }
            dt => {
                return Err(candle_core::Error::msg(format!(
                    "selective_scan bwd: dtype {dt:?} not supported"
                )))
            }
        };
        Ok(Some(grad))
    }
}

/// The CUDA side of [`ScanOp`]: forward on candle's storage, and the backward op.
#[cfg(feature = "cuda")]
mod cuda_op {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView};
    use candle_core::{CudaStorage, CustomOp2, Layout, Shape};

    use super::{BcKind, ScanOp};
    use crate::cuda::{self, DevBc, DevScanArgs, KernelLoader, SCAN_TILE};

    fn err(e: impl std::fmt::Display) -> candle_core::Error {
        candle_core::Error::Msg(format!("selective_scan (CUDA): {e}"))
    }

    /// The f32 range of a contiguous storage.
    fn packed<'a>(s: &'a CudaStorage, l: &Layout) -> candle_core::Result<CudaView<'a, f32>> {
        let (start, end) = l
            .contiguous_offsets()
            .ok_or_else(|| err("packed input not contiguous"))?;
        let slice = s.as_cuda_slice::<f32>().map_err(|_| {
            err(format!(
                "dtype {:?} not supported on CUDA (f32 only)",
                s.dtype()
            ))
        })?;
        Ok(slice.slice(start..end))
    }

    impl ScanOp {
        /// Device view of the packed inputs, split as [`ScanOp::args`] does on the host.
        fn dev_args<'a>(
            &self,
            packed: &CudaView<'a, f32>,
            seq: Option<&'a CudaSlice<i32>>,
        ) -> DevScanArgs<'a> {
            let mut off = 0;
            let mut segs = self.seg_lens.iter().map(|&n| {
                let v = packed.slice(off..off + n);
                off += n;
                v
            });
            let mut next = || segs.next().unwrap_or_else(|| packed.slice(0..0));
            let bc = |kind: BcKind, data: CudaView<'a, f32>| match kind {
                BcKind::Var => DevBc::Var(data),
                BcKind::Grouped(groups) => DevBc::Grouped { data, groups },
                BcKind::Const => DevBc::Const(data),
            };
            let (u, delta, a) = (next(), next(), next());
            let b = bc(self.b_kind, next());
            let c = bc(self.c_kind, next());
            let mut opt = |on: bool| on.then(&mut next);
            let d = opt(self.has[0]);
            let z = opt(self.has[1]);
            let delta_bias = opt(self.has[2]);
            let initial_state = opt(self.has[3]);
            DevScanArgs {
                dims: self.dims,
                complex: false,
                u,
                delta,
                a,
                b,
                c,
                d,
                z,
                delta_bias,
                initial_state,
                seq_idx: seq.map(CudaSlice::as_view),
            }
        }

        fn upload_seq(
            &self,
            dev: &candle_core::CudaDevice,
        ) -> candle_core::Result<Option<CudaSlice<i32>>> {
            self.seq_idx
                .as_ref()
                .map(|s| dev.cuda_stream().clone_htod(s).map_err(err))
                .transpose()
        }
    }

    /// `cuda_fwd` of [`ScanOp`]: out and last state, packed like the CPU result.
    pub(super) fn forward(
        op: &ScanOp,
        storage: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = storage.device.clone();
        let input = packed(storage, layout)?;
        let seq = op.upload_seq(&dev)?;
        let args = op.dev_args(&input, seq.as_ref());
        let res = cuda::scan_fwd_dev(&dev, &args, op.cfg.delta_softplus, SCAN_TILE)?;
        let stream = dev.stream();
        let (n_out, n_last) = (res.out.len(), res.last_state.len());
        // SAFETY: every element is written by the two copies below before it is read.
        let mut out = unsafe { stream.alloc::<f32>(n_out + n_last) }.map_err(err)?;
        stream
            .memcpy_dtod(&res.out, &mut out.slice_mut(0..n_out))
            .map_err(err)?;
        stream
            .memcpy_dtod(&res.last_state, &mut out.slice_mut(n_out..))
            .map_err(err)?;
        if let Ok(mut slot) = op.cuda_saved.lock() {
            *slot = Some(res.saved);
        }
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev),
            Shape::from(n_out + n_last),
        ))
    }

    /// The backward of [`ScanOp`] on CUDA: (packed input, packed output gradient) → packed
    /// input gradient, in the segment order of the input.
    pub(super) struct ScanBwdCuda<'a> {
        pub(super) op: &'a ScanOp,
    }

    impl CustomOp2 for ScanBwdCuda<'_> {
        fn name(&self) -> &'static str {
            "seqlab-selective-scan-bwd"
        }

        fn cpu_fwd(
            &self,
            _: &candle_core::CpuStorage,
            _: &Layout,
            _: &candle_core::CpuStorage,
            _: &Layout,
        ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
            Err(err("the CUDA backward op got CPU tensors"))
        }

        fn cuda_fwd(
            &self,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
        ) -> candle_core::Result<(CudaStorage, Shape)> {
            let op = self.op;
            let dev = s1.device.clone();
            let input = packed(s1, l1)?;
            let grad = packed(s2, l2)?;
            let seq = op.upload_seq(&dev)?;
            let args = op.dev_args(&input, seq.as_ref());
            let n_out = op.dims.batch * op.dims.dim * op.dims.len;
            if grad.len() < n_out {
                return Err(err("short gradient"));
            }
            let saved = op.cuda_saved.lock().ok().and_then(|mut s| s.take());
            let saved = match saved {
                Some(s) => s,
                None => cuda::scan_fwd_dev(&dev, &args, op.cfg.delta_softplus, SCAN_TILE)?.saved,
            };
            let g = cuda::scan_bwd_dev(
                &dev,
                &args,
                op.cfg.delta_softplus,
                &saved.as_view(),
                &grad.slice(0..n_out),
                Some(&grad.slice(n_out..)),
            )?;
            let stream = dev.stream();
            let total = input.len();
            let mut out = stream.alloc_zeros::<f32>(total).map_err(err)?;
            let mut off = 0;
            for part in [
                Some(&g.du),
                Some(&g.ddelta),
                Some(&g.da),
                Some(&g.db),
                Some(&g.dc),
            ]
            .into_iter()
            .chain([
                g.dd.as_ref(),
                g.dz.as_ref(),
                g.ddelta_bias.as_ref(),
                g.dinitial_state.as_ref(),
            ])
            .flatten()
            {
                let n = part.len();
                if off + n > total {
                    return Err(err("gradient segments exceed the packed input"));
                }
                stream
                    .memcpy_dtod(part, &mut out.slice_mut(off..off + n))
                    .map_err(err)?;
                off += n;
            }
            Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from(total)))
        }
    }
}
