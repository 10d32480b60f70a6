//! Launchers of `kernels/causal_conv1d.cu`, the GPU twins of
//! [`crate::causal_conv1d::causal_conv1d_fwd`], [`crate::causal_conv1d::causal_conv1d_bwd`] and
//! [`crate::causal_conv1d::causal_conv1d_update`] (same arguments plus the loader, same layouts;
//! f32 on the host side).

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::compile::KernelFile;
use super::context::KernelLoader;
use super::scan::{as_i32, down, up};
use super::{drv, out_buf, Result};
use crate::causal_conv1d::{Conv1dArgs, Conv1dDims, Conv1dGrads};
use crate::error::SsmError;

const THREADS: u32 = 128;
static NULL_PTR: u64 = 0;

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

fn validate(a: &Conv1dArgs<'_, f32>) -> Result<()> {
    let Conv1dDims {
        batch,
        dim,
        len,
        width,
    } = a.dims;
    if batch == 0 || dim == 0 || len == 0 || width == 0 || width > 32 {
        return Err(SsmError::Invalid(format!(
            "conv sizes must be ≥ 1 (width ≤ 32 on CUDA), got {:?}",
            a.dims
        ))
        .into());
    }
    let mut want = vec![
        ("x", a.x.len(), batch * dim * len),
        ("weight", a.weight.len(), dim * width),
    ];
    if let Some(b) = a.bias {
        want.push(("bias", b.len(), dim));
    }
    if let Some(s) = a.initial_state {
        want.push(("initial_state", s.len(), batch * dim * (width - 1)));
    }
    if let Some(s) = a.seq_idx {
        want.push(("seq_idx", s.len(), batch * len));
    }
    for (name, got, expected) in want {
        if got != expected {
            return Err(SsmError::Shape {
                name,
                shape: format!("{:?}", a.dims),
                expected,
                got,
            }
            .into());
        }
    }
    as_i32("batch·dim·len", batch * dim * len)?;
    Ok(())
}

/// GPU twin of [`crate::causal_conv1d::causal_conv1d_fwd`]: out (batch, dim, len).
pub fn causal_conv1d_fwd(
    loader: &impl KernelLoader,
    args: &Conv1dArgs<'_, f32>,
) -> Result<Vec<f32>> {
    validate(args)?;
    let Conv1dDims {
        batch,
        dim,
        len,
        width,
    } = args.dims;
    let stream = loader.stream();
    let f = loader.function(KernelFile::CausalConv1d, "causal_conv1d_fwd_f32")?;
    let x = up(&stream, args.x)?;
    let w = up(&stream, args.weight)?;
    let bias = args.bias.map(|v| up(&stream, v)).transpose()?;
    let init = args.initial_state.map(|v| up(&stream, v)).transpose()?;
    let seq = args.seq_idx.map(|v| up(&stream, v)).transpose()?;
    let mut out = out_buf(&stream, batch * dim * len, f32::NAN)?;
    let (bi, di, li, ki, si) = (
        as_i32("batch", batch)?,
        as_i32("dim", dim)?,
        as_i32("len", len)?,
        as_i32("width", width)?,
        i32::from(args.silu),
    );
    let mut b = stream.launch_builder(&f);
    b.arg(&x).arg(&w);
    arg_opt!(b, &bias);
    arg_opt!(b, &init);
    arg_opt!(b, &seq);
    b.arg(&mut out).arg(&bi).arg(&di).arg(&li).arg(&ki).arg(&si);
    let cfg = LaunchConfig {
        grid_dim: ((len as u32).div_ceil(THREADS), (batch * dim) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: arguments match `causal_conv1d_fwd_f32`; lengths checked in `validate`.
    unsafe { b.launch(cfg) }.map_err(drv)?;
    down(&stream, &out)
}

/// GPU twin of [`crate::causal_conv1d::causal_conv1d_bwd`].
pub fn causal_conv1d_bwd(
    loader: &impl KernelLoader,
    args: &Conv1dArgs<'_, f32>,
    dout: &[f32],
) -> Result<Conv1dGrads<f32>> {
    validate(args)?;
    let Conv1dDims {
        batch,
        dim,
        len,
        width,
    } = args.dims;
    if dout.len() != batch * dim * len {
        return Err(SsmError::Shape {
            name: "dout",
            shape: format!("(batch={batch}, dim={dim}, len={len})"),
            expected: batch * dim * len,
            got: dout.len(),
        }
        .into());
    }
    let stream = loader.stream();
    let f = loader.function(KernelFile::CausalConv1d, "causal_conv1d_bwd_f32")?;
    let x = up(&stream, args.x)?;
    let w = up(&stream, args.weight)?;
    let bias = args.bias.map(|v| up(&stream, v)).transpose()?;
    let init = args.initial_state.map(|v| up(&stream, v)).transpose()?;
    let seq = args.seq_idx.map(|v| up(&stream, v)).transpose()?;
    let g = up(&stream, dout)?;
    let zeros = |n: usize| stream.alloc_zeros::<f32>(n).map_err(drv);
    let mut dx = out_buf(&stream, batch * dim * len, f32::NAN)?;
    let mut dw = zeros(dim * width)?;
    let mut db: Option<CudaSlice<f32>> = args.bias.map(|_| zeros(dim)).transpose()?;
    let mut dinit: Option<CudaSlice<f32>> = match args.initial_state {
        Some(_) if width > 1 => Some(out_buf(&stream, batch * dim * (width - 1), f32::NAN)?),
        _ => None,
    };
    let (bi, di, li, ki, si) = (
        as_i32("batch", batch)?,
        as_i32("dim", dim)?,
        as_i32("len", len)?,
        as_i32("width", width)?,
        i32::from(args.silu),
    );
    let mut b = stream.launch_builder(&f);
    b.arg(&x).arg(&w);
    arg_opt!(b, &bias);
    arg_opt!(b, &init);
    arg_opt!(b, &seq);
    b.arg(&g).arg(&mut dx).arg(&mut dw);
    arg_opt!(b, db.as_mut());
    arg_opt!(b, dinit.as_mut());
    b.arg(&bi).arg(&di).arg(&li).arg(&ki).arg(&si);
    let cfg = LaunchConfig {
        grid_dim: (
            ((len + width - 1) as u32).div_ceil(THREADS),
            (batch * dim) as u32,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: arguments match `causal_conv1d_bwd_f32`; lengths checked; ∂w, ∂bias zeroed.
    unsafe { b.launch(cfg) }.map_err(drv)?;
    Ok(Conv1dGrads {
        dx: down(&stream, &dx)?,
        dweight: down(&stream, &dw)?,
        dbias: db.as_ref().map(|v| down(&stream, v)).transpose()?,
        dinitial_state: match (args.initial_state, &dinit) {
            (Some(_), Some(v)) => Some(down(&stream, v)?),
            (Some(_), None) => Some(Vec::new()),
            _ => None,
        },
    })
}

/// GPU twin of [`crate::causal_conv1d::causal_conv1d_update`]: feeds `x` (batch, dim, len)
/// token by token, updating `conv_state` (batch, dim, S ≥ width − 1) in place.
pub fn causal_conv1d_update(
    loader: &impl KernelLoader,
    dims: Conv1dDims,
    x: &[f32],
    conv_state: &mut [f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    silu_act: bool,
) -> Result<Vec<f32>> {
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
        }
        .into());
    }
    let s_len = conv_state.len() / rows;
    let stream = loader.stream();
    let f = loader.function(KernelFile::CausalConv1d, "causal_conv1d_update_f32")?;
    let xd = up(&stream, x)?;
    let mut st = up(&stream, conv_state)?;
    let w = up(&stream, weight)?;
    let bd = bias.map(|v| up(&stream, v)).transpose()?;
    let mut out = out_buf(&stream, x.len(), f32::NAN)?;
    let (bi, di, li, ki, si, act) = (
        as_i32("batch", batch)?,
        as_i32("dim", dim)?,
        as_i32("len", len)?,
        as_i32("width", width)?,
        as_i32("state_len", s_len)?,
        i32::from(silu_act),
    );
    let mut b = stream.launch_builder(&f);
    b.arg(&xd).arg(&mut st).arg(&w);
    arg_opt!(b, &bd);
    b.arg(&mut out)
        .arg(&bi)
        .arg(&di)
        .arg(&li)
        .arg(&ki)
        .arg(&si)
        .arg(&act);
    let cfg = LaunchConfig {
        grid_dim: ((rows as u32).div_ceil(THREADS), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: arguments match `causal_conv1d_update_f32`; lengths checked above.
    unsafe { b.launch(cfg) }.map_err(drv)?;
    conv_state.copy_from_slice(&down(&stream, &st)?);
    down(&stream, &out)
}
