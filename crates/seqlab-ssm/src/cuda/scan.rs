//! Launchers of `kernels/selective_scan_fwd.cu` and `kernels/selective_scan_bwd.cu`, the GPU twins
//! of [`crate::selective_scan::selective_scan_fwd`] / [`crate::selective_scan::selective_scan_bwd`]
//! (same equations, options and layouts; f32).
//!
//! The backward kernel recomputes states tile by tile from the states entering each
//! [`SCAN_TILE`]-long tile, which the forward kernel saves when run with `chunk_len =
//! SCAN_TILE`; [`selective_scan_bwd`] runs that forward itself, and the candle op keeps them from
//! its forward pass. `ScanConfig::chunk_len` (the CPU backward's memory/time trade-off) sets the
//! chunking of [`GpuScanOutput::saved_states`] only.

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaStream, CudaView, LaunchConfig, PushKernelArg,
};
use std::sync::Arc;

use super::compile::KernelFile;
use super::context::KernelLoader;
use super::{drv, out_buf, Result};
use crate::error::SsmError;
use crate::selective_scan::{AMatrix, BcMatrix, ScanArgs, ScanConfig, ScanDims, ScanGrads};

/// Positions per block tile in the scan kernels (threads × items; `SS_TILE` in the sources).
pub const SCAN_TILE: usize = 512;
/// Largest state size the scan kernels take (`SS_MAX_DSTATE`).
pub const SCAN_MAX_DSTATE: usize = 256;
const THREADS: u32 = 128;
static NULL_PTR: u64 = 0;

/// B or C on the device, in the three forms of [`BcMatrix`].
#[derive(Debug)]
pub enum DevBc<'a> {
    /// Input-dependent (batch, dstate, len[·2]).
    Var(CudaView<'a, f32>),
    /// Grouped (batch, groups, dstate, len[·2]).
    Grouped {
        /// The values.
        data: CudaView<'a, f32>,
        /// Number of groups (divides dim).
        groups: usize,
    },
    /// Constant (dim, dstate[, 2]).
    Const(CudaView<'a, f32>),
}

impl DevBc<'_> {
    fn view(&self) -> &CudaView<'_, f32> {
        match self {
            DevBc::Var(v) | DevBc::Const(v) => v,
            DevBc::Grouped { data, .. } => data,
        }
    }
    /// The kernels' `bc_groups`: 0 for constant, else the number of groups.
    fn groups(&self) -> usize {
        match self {
            DevBc::Var(_) => 1,
            DevBc::Grouped { groups, .. } => *groups,
            DevBc::Const(_) => 0,
        }
    }
}

/// Inputs of a device scan: [`ScanArgs`] with device buffers (same layouts).
#[derive(Debug)]
pub struct DevScanArgs<'a> {
    /// Sizes.
    pub dims: ScanDims,
    /// Complex A (then A, B, C and states hold (re, im) pairs).
    pub complex: bool,
    /// u (batch, dim, len).
    pub u: CudaView<'a, f32>,
    /// Raw δ (batch, dim, len).
    pub delta: CudaView<'a, f32>,
    /// A (dim, dstate[, 2]).
    pub a: CudaView<'a, f32>,
    /// B.
    pub b: DevBc<'a>,
    /// C.
    pub c: DevBc<'a>,
    /// D (dim).
    pub d: Option<CudaView<'a, f32>>,
    /// z (batch, dim, len).
    pub z: Option<CudaView<'a, f32>>,
    /// δ bias (dim).
    pub delta_bias: Option<CudaView<'a, f32>>,
    /// x_{−1} (batch, dim, dstate[, 2]).
    pub initial_state: Option<CudaView<'a, f32>>,
    /// Document ids (batch, len).
    pub seq_idx: Option<CudaView<'a, i32>>,
}

/// Result of [`scan_fwd_dev`].
#[derive(Debug)]
pub struct DevScanOut {
    /// out (batch, dim, len).
    pub out: CudaSlice<f32>,
    /// x_{len−1} (batch, dim, dstate[, 2]).
    pub last_state: CudaSlice<f32>,
    /// States entering each chunk (batch, dim, n_chunks, dstate[, 2]).
    pub saved: CudaSlice<f32>,
    /// Chunk length of `saved`.
    pub chunk_len: usize,
}

/// Result of [`scan_bwd_dev`]: the fields of [`ScanGrads`] on the device.
#[derive(Debug)]
pub struct DevScanGrads {
    /// ∂ℒ/∂u.
    pub du: CudaSlice<f32>,
    /// ∂ℒ/∂δ.
    pub ddelta: CudaSlice<f32>,
    /// ∂ℒ/∂A.
    pub da: CudaSlice<f32>,
    /// ∂ℒ/∂B.
    pub db: CudaSlice<f32>,
    /// ∂ℒ/∂C.
    pub dc: CudaSlice<f32>,
    /// ∂ℒ/∂D.
    pub dd: Option<CudaSlice<f32>>,
    /// ∂ℒ/∂z.
    pub dz: Option<CudaSlice<f32>>,
    /// ∂ℒ/∂δ_bias.
    pub ddelta_bias: Option<CudaSlice<f32>>,
    /// ∂ℒ/∂x_{−1}.
    pub dinitial_state: Option<CudaSlice<f32>>,
}

/// Result of the host-buffer [`selective_scan_fwd`].
#[derive(Clone, Debug)]
pub struct GpuScanOutput {
    /// out (batch, dim, len).
    pub out: Vec<f32>,
    /// x_{len−1} when `return_last_state`.
    pub last_state: Option<Vec<f32>>,
    /// States entering each `chunk_len` chunk (batch, dim, n_chunks, dstate[, 2]): the CPU's
    /// `ScanSaved::states`.
    pub saved_states: Vec<f32>,
}

fn check(name: &'static str, got: usize, expected: usize, shape: &str) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(SsmError::Shape {
            name,
            shape: shape.to_string(),
            expected,
            got,
        }
        .into())
    }
}

/// An i32 kernel argument, or an error naming the size that does not fit.
pub(crate) fn as_i32(name: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        SsmError::Invalid(format!("{name} = {v} exceeds the kernels' i32 range")).into()
    })
}

fn validate(args: &DevScanArgs<'_>) -> Result<()> {
    let ScanDims {
        batch,
        dim,
        len,
        dstate,
    } = args.dims;
    if batch == 0 || dim == 0 || len == 0 || dstate == 0 {
        return Err(
            SsmError::Invalid(format!("scan sizes must be ≥ 1, got {:?}", args.dims)).into(),
        );
    }
    if dstate > SCAN_MAX_DSTATE {
        return Err(SsmError::Invalid(format!(
            "dstate = {dstate} exceeds the CUDA scan's limit of {SCAN_MAX_DSTATE}"
        ))
        .into());
    }
    let w = if args.complex { 2 } else { 1 };
    let bdl = batch * dim * len;
    check("u", args.u.len(), bdl, "(batch, dim, len)")?;
    check("delta", args.delta.len(), bdl, "(batch, dim, len)")?;
    check("A", args.a.len(), dim * dstate * w, "(dim, dstate[, 2])")?;
    for (name, m) in [("B", &args.b), ("C", &args.c)] {
        let g = m.groups();
        if g > 0 && dim % g != 0 {
            return Err(
                SsmError::Invalid(format!("{name}: groups={g} must divide dim={dim}")).into(),
            );
        }
        let expected = if g == 0 {
            dim * dstate * w
        } else {
            batch * g * dstate * len * w
        };
        check(
            name,
            m.view().len(),
            expected,
            "(batch, groups, dstate, len) or (dim, dstate)",
        )?;
    }
    if let Some(d) = &args.d {
        check("D", d.len(), dim, "(dim)")?;
    }
    if let Some(z) = &args.z {
        check("z", z.len(), bdl, "(batch, dim, len)")?;
    }
    if let Some(b) = &args.delta_bias {
        check("delta_bias", b.len(), dim, "(dim)")?;
    }
    if let Some(s) = &args.initial_state {
        check(
            "initial_state",
            s.len(),
            batch * dim * dstate * w,
            "(batch, dim, dstate[, 2])",
        )?;
    }
    if let Some(s) = &args.seq_idx {
        check("seq_idx", s.len(), batch * len, "(batch, len)")?;
    }
    as_i32("batch·dim·len·dstate", bdl * dstate * w)?;
    Ok(())
}

fn grid(dims: ScanDims) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((dims.batch * dims.dim) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Pushes an optional device buffer, or a null pointer.
macro_rules! arg_opt {
    ($b:expr, $v:expr) => {
        match $v {
            Some(v) => {
                $b.arg(v);
            }
            None => {
                $b.arg(&NULL_PTR);
            }
        }
    };
}

/// Forward scan on device buffers; saves the states entering every `chunk_len` positions.
pub fn scan_fwd_dev(
    loader: &impl KernelLoader,
    args: &DevScanArgs<'_>,
    delta_softplus: bool,
    chunk_len: usize,
) -> Result<DevScanOut> {
    validate(args)?;
    if chunk_len == 0 {
        return Err(SsmError::Invalid("chunk_len must be ≥ 1".into()).into());
    }
    let ScanDims {
        batch,
        dim,
        len,
        dstate,
    } = args.dims;
    let w = if args.complex { 2 } else { 1 };
    let n_chunks = len.div_ceil(chunk_len);
    let stream = loader.stream();
    let name = if args.complex {
        "selective_scan_fwd_complex_f32"
    } else {
        "selective_scan_fwd_f32"
    };
    let f = loader.function(KernelFile::SelectiveScanFwd, name)?;
    let mut out = out_buf(&stream, batch * dim * len, f32::NAN)?;
    let mut last = out_buf(&stream, batch * dim * dstate * w, f32::NAN)?;
    let mut saved = out_buf(&stream, batch * dim * n_chunks * dstate * w, f32::NAN)?;
    let (bi, di, li, ni) = (
        as_i32("batch", batch)?,
        as_i32("dim", dim)?,
        as_i32("len", len)?,
        as_i32("dstate", dstate)?,
    );
    let (bg, cg) = (
        as_i32("groups", args.b.groups())?,
        as_i32("groups", args.c.groups())?,
    );
    let (cl, nc, sp) = (
        as_i32("chunk_len", chunk_len)?,
        as_i32("n_chunks", n_chunks)?,
        i32::from(delta_softplus),
    );
    let mut b = stream.launch_builder(&f);
    b.arg(&args.u).arg(&args.delta).arg(&args.a);
    b.arg(args.b.view()).arg(args.c.view());
    arg_opt!(b, &args.d);
    arg_opt!(b, &args.z);
    arg_opt!(b, &args.delta_bias);
    arg_opt!(b, &args.initial_state);
    arg_opt!(b, &args.seq_idx);
    b.arg(&mut out).arg(&mut last).arg(&mut saved);
    b.arg(&bi).arg(&di).arg(&li).arg(&ni).arg(&bg).arg(&cg);
    b.arg(&cl).arg(&nc).arg(&sp);
    // SAFETY: argument list matches `selective_scan_fwd_*` in kernels/selective_scan_fwd.cu; every
    // buffer's length was checked against the sizes passed.
    unsafe { b.launch(grid(args.dims)) }.map_err(drv)?;
    Ok(DevScanOut {
        out,
        last_state: last,
        saved,
        chunk_len,
    })
}

/// Backward scan on device buffers. `tile_states` are the states entering each [`SCAN_TILE`]
/// tile ([`scan_fwd_dev`] with `chunk_len = SCAN_TILE`); `dout` (batch, dim, len); `dlast`
/// (batch, dim, dstate[, 2]) or none.
pub fn scan_bwd_dev(
    loader: &impl KernelLoader,
    args: &DevScanArgs<'_>,
    delta_softplus: bool,
    tile_states: &CudaView<'_, f32>,
    dout: &CudaView<'_, f32>,
    dlast: Option<&CudaView<'_, f32>>,
) -> Result<DevScanGrads> {
    validate(args)?;
    let ScanDims {
        batch,
        dim,
        len,
        dstate,
    } = args.dims;
    let w = if args.complex { 2 } else { 1 };
    check("dout", dout.len(), batch * dim * len, "(batch, dim, len)")?;
    if let Some(dl) = dlast {
        check(
            "dlast_state",
            dl.len(),
            batch * dim * dstate * w,
            "(batch, dim, dstate[, 2])",
        )?;
    }
    check(
        "tile_states",
        tile_states.len(),
        batch * dim * len.div_ceil(SCAN_TILE) * dstate * w,
        "(batch, dim, n_tiles, dstate[, 2])",
    )?;
    let stream = loader.stream();
    let name = if args.complex {
        "selective_scan_bwd_complex_f32"
    } else {
        "selective_scan_bwd_f32"
    };
    let f = loader.function(KernelFile::SelectiveScanBwd, name)?;
    let zeros = |n: usize| stream.alloc_zeros::<f32>(n).map_err(drv);
    let opt_zeros = |on: bool, n: usize| on.then(|| zeros(n)).transpose();
    let opt_out = |on: bool, n: usize| on.then(|| out_buf(&stream, n, f32::NAN)).transpose();
    let bdl = batch * dim * len;
    let mut du = out_buf(&stream, bdl, f32::NAN)?;
    let mut ddelta = out_buf(&stream, bdl, f32::NAN)?;
    let mut da = zeros(dim * dstate * w)?;
    let mut db = zeros(args.b.view().len())?;
    let mut dc = zeros(args.c.view().len())?;
    let mut dd = opt_zeros(args.d.is_some(), dim)?;
    let mut dz = opt_out(args.z.is_some(), bdl)?;
    let mut dbias = opt_zeros(args.delta_bias.is_some(), dim)?;
    let mut dinit = opt_out(args.initial_state.is_some(), batch * dim * dstate * w)?;
    let (bi, di, li, ni) = (
        as_i32("batch", batch)?,
        as_i32("dim", dim)?,
        as_i32("len", len)?,
        as_i32("dstate", dstate)?,
    );
    let (bg, cg) = (
        as_i32("groups", args.b.groups())?,
        as_i32("groups", args.c.groups())?,
    );
    let sp = i32::from(delta_softplus);
    let mut b = stream.launch_builder(&f);
    b.arg(&args.u).arg(&args.delta).arg(&args.a);
    b.arg(args.b.view()).arg(args.c.view());
    arg_opt!(b, &args.d);
    arg_opt!(b, &args.z);
    arg_opt!(b, &args.delta_bias);
    arg_opt!(b, &args.seq_idx);
    b.arg(tile_states).arg(dout);
    arg_opt!(b, dlast);
    b.arg(&mut du)
        .arg(&mut ddelta)
        .arg(&mut da)
        .arg(&mut db)
        .arg(&mut dc);
    arg_opt!(b, dd.as_mut());
    arg_opt!(b, dz.as_mut());
    arg_opt!(b, dbias.as_mut());
    arg_opt!(b, dinit.as_mut());
    b.arg(&bi)
        .arg(&di)
        .arg(&li)
        .arg(&ni)
        .arg(&bg)
        .arg(&cg)
        .arg(&sp);
    // SAFETY: argument list matches `selective_scan_bwd_*` in kernels/selective_scan_bwd.cu;
    // every buffer's length was checked against the sizes passed; atomically accumulated
    // outputs are zeroed above.
    unsafe { b.launch(grid(args.dims)) }.map_err(drv)?;
    Ok(DevScanGrads {
        du,
        ddelta,
        da,
        db,
        dc,
        dd,
        dz,
        ddelta_bias: dbias,
        dinitial_state: dinit,
    })
}

/// Host buffers of one scan call, uploaded.
struct Uploaded {
    u: CudaSlice<f32>,
    delta: CudaSlice<f32>,
    a: CudaSlice<f32>,
    b: (CudaSlice<f32>, usize),
    c: (CudaSlice<f32>, usize),
    d: Option<CudaSlice<f32>>,
    z: Option<CudaSlice<f32>>,
    bias: Option<CudaSlice<f32>>,
    init: Option<CudaSlice<f32>>,
    seq: Option<CudaSlice<i32>>,
    complex: bool,
    dims: ScanDims,
}

/// Uploads a host buffer.
pub(crate) fn up<T: candle_core::cuda_backend::cudarc::driver::DeviceRepr>(
    stream: &Arc<CudaStream>,
    v: &[T],
) -> Result<CudaSlice<T>> {
    stream.clone_htod(v).map_err(drv)
}

fn upload(stream: &Arc<CudaStream>, args: &ScanArgs<'_, f32>) -> Result<Uploaded> {
    let (a, complex) = match args.a {
        AMatrix::Real(a) => (a, false),
        AMatrix::Complex(a) => (a, true),
    };
    let bc = |m: &BcMatrix<'_, f32>| -> Result<(CudaSlice<f32>, usize)> {
        Ok(match *m {
            BcMatrix::Var(v) => (up(stream, v)?, 1),
            BcMatrix::Grouped { data, groups } => (up(stream, data)?, groups),
            BcMatrix::Const(v) => (up(stream, v)?, 0),
        })
    };
    let opt = |v: Option<&[f32]>| v.map(|v| up(stream, v)).transpose();
    Ok(Uploaded {
        u: up(stream, args.u)?,
        delta: up(stream, args.delta)?,
        a: up(stream, a)?,
        b: bc(&args.b)?,
        c: bc(&args.c)?,
        d: opt(args.d)?,
        z: opt(args.z)?,
        bias: opt(args.delta_bias)?,
        init: opt(args.initial_state)?,
        seq: args.seq_idx.map(|s| up(stream, s)).transpose()?,
        complex,
        dims: args.dims,
    })
}

impl Uploaded {
    fn args(&self) -> DevScanArgs<'_> {
        fn bc((s, g): &(CudaSlice<f32>, usize)) -> DevBc<'_> {
            match *g {
                0 => DevBc::Const(s.as_view()),
                1 => DevBc::Var(s.as_view()),
                groups => DevBc::Grouped {
                    data: s.as_view(),
                    groups,
                },
            }
        }
        DevScanArgs {
            dims: self.dims,
            complex: self.complex,
            u: self.u.as_view(),
            delta: self.delta.as_view(),
            a: self.a.as_view(),
            b: bc(&self.b),
            c: bc(&self.c),
            d: self.d.as_ref().map(CudaSlice::as_view),
            z: self.z.as_ref().map(CudaSlice::as_view),
            delta_bias: self.bias.as_ref().map(CudaSlice::as_view),
            initial_state: self.init.as_ref().map(CudaSlice::as_view),
            seq_idx: self.seq.as_ref().map(CudaSlice::as_view),
        }
    }
}

/// Downloads a device buffer.
pub(crate) fn down<T: candle_core::cuda_backend::cudarc::driver::DeviceRepr + Default + Clone>(
    stream: &Arc<CudaStream>,
    v: &CudaSlice<T>,
) -> Result<Vec<T>> {
    stream.clone_dtoh(v).map_err(drv)
}

/// GPU twin of [`crate::selective_scan::selective_scan_fwd`] on host buffers (same arguments,
/// plus the loader). A grouped B/C with `groups = 1` is the same as `Var`.
pub fn selective_scan_fwd(
    loader: &impl KernelLoader,
    args: &ScanArgs<'_, f32>,
    cfg: &ScanConfig,
) -> Result<GpuScanOutput> {
    let stream = loader.stream();
    let host = upload(&stream, args)?;
    let res = scan_fwd_dev(loader, &host.args(), cfg.delta_softplus, cfg.chunk_len)?;
    Ok(GpuScanOutput {
        out: down(&stream, &res.out)?,
        last_state: if cfg.return_last_state {
            Some(down(&stream, &res.last_state)?)
        } else {
            None
        },
        saved_states: down(&stream, &res.saved)?,
    })
}

/// GPU twin of [`crate::selective_scan::selective_scan_bwd`] on host buffers: recomputes the
/// tile states with the forward kernel, then runs the backward kernel.
pub fn selective_scan_bwd(
    loader: &impl KernelLoader,
    args: &ScanArgs<'_, f32>,
    cfg: &ScanConfig,
    dout: &[f32],
    dlast_state: Option<&[f32]>,
) -> Result<ScanGrads<f32>> {
    let stream = loader.stream();
    let host = upload(&stream, args)?;
    let dev = host.args();
    let fwd = scan_fwd_dev(loader, &dev, cfg.delta_softplus, SCAN_TILE)?;
    let dout = up(&stream, dout)?;
    let dlast = dlast_state.map(|d| up(&stream, d)).transpose()?;
    let g = scan_bwd_dev(
        loader,
        &dev,
        cfg.delta_softplus,
        &fwd.saved.as_view(),
        &dout.as_view(),
        dlast.as_ref().map(CudaSlice::as_view).as_ref(),
    )?;
    let opt = |v: &Option<CudaSlice<f32>>| v.as_ref().map(|v| down(&stream, v)).transpose();
    Ok(ScanGrads {
        du: down(&stream, &g.du)?,
        ddelta: down(&stream, &g.ddelta)?,
        da: down(&stream, &g.da)?,
        db: down(&stream, &g.db)?,
        dc: down(&stream, &g.dc)?,
        dd: opt(&g.dd)?,
        dz: opt(&g.dz)?,
        ddelta_bias: opt(&g.ddelta_bias)?,
        dinitial_state: opt(&g.dinitial_state)?,
    })
}
