//! Launcher of `kernels/selective_state_update.cu`, the GPU twin of
//! [`crate::state_update::selective_state_update`].

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};

use super::compile::KernelFile;
use super::context::KernelLoader;
use super::scan::{as_i32, down, up};
use super::{drv, out_buf, Result};
use crate::error::SsmError;
use crate::state_update::{StepArgs, StepDims};

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

/// GPU twin of [`crate::state_update::selective_state_update`]: advances `state` (batch,
/// nheads, headdim, dstate) by one token in place and returns out (batch, nheads, headdim).
pub fn selective_state_update(
    loader: &impl KernelLoader,
    state: &mut [f32],
    args: &StepArgs<'_, f32>,
) -> Result<Vec<f32>> {
    let StepDims {
        batch,
        nheads,
        headdim,
        dstate,
        ngroups,
    } = args.dims;
    if batch == 0 || nheads == 0 || headdim == 0 || dstate == 0 {
        return Err(
            SsmError::Invalid(format!("step sizes must be ≥ 1, got {:?}", args.dims)).into(),
        );
    }
    if ngroups == 0 || nheads % ngroups != 0 {
        return Err(SsmError::Invalid(format!(
            "ngroups={ngroups} must be ≥ 1 and divide nheads={nheads}"
        ))
        .into());
    }
    let bhp = batch * nheads * headdim;
    let mut want = vec![
        ("state", state.len(), bhp * dstate),
        ("x", args.x.len(), bhp),
        ("dt", args.dt.len(), bhp),
        ("A", args.a.len(), nheads * headdim * dstate),
        ("B", args.b.len(), batch * ngroups * dstate),
        ("C", args.c.len(), batch * ngroups * dstate),
    ];
    if let Some(z) = args.z {
        want.push(("z", z.len(), bhp));
    }
    if let Some(d) = args.d {
        want.push(("D", d.len(), nheads * headdim));
    }
    if let Some(b) = args.dt_bias {
        want.push(("dt_bias", b.len(), nheads * headdim));
    }
    for (name, got, expected) in want {
        if got != expected {
            return Err(SsmError::Shape {
                name,
                shape: format!("{:?}", args.dims),
                expected,
                got,
            }
            .into());
        }
    }
    as_i32("batch·nheads·headdim·dstate", bhp * dstate)?;
    let stream = loader.stream();
    let f = loader.function(
        KernelFile::SelectiveStateUpdate,
        "selective_state_update_f32",
    )?;
    let mut st = up(&stream, state)?;
    let x = up(&stream, args.x)?;
    let dt = up(&stream, args.dt)?;
    let a = up(&stream, args.a)?;
    let bm = up(&stream, args.b)?;
    let cm = up(&stream, args.c)?;
    let d = args.d.map(|v| up(&stream, v)).transpose()?;
    let z = args.z.map(|v| up(&stream, v)).transpose()?;
    let bias = args.dt_bias.map(|v| up(&stream, v)).transpose()?;
    let mut out = out_buf(&stream, bhp, f32::NAN)?;
    let (bi, hi, pi, ni, gi, sp) = (
        as_i32("batch", batch)?,
        as_i32("nheads", nheads)?,
        as_i32("headdim", headdim)?,
        as_i32("dstate", dstate)?,
        as_i32("ngroups", ngroups)?,
        i32::from(args.dt_softplus),
    );
    let mut b = stream.launch_builder(&f);
    b.arg(&mut st).arg(&x).arg(&dt).arg(&a).arg(&bm).arg(&cm);
    arg_opt!(b, &d);
    arg_opt!(b, &z);
    arg_opt!(b, &bias);
    b.arg(&mut out)
        .arg(&bi)
        .arg(&hi)
        .arg(&pi)
        .arg(&ni)
        .arg(&gi)
        .arg(&sp);
    let rows_per_block = THREADS / 32;
    let cfg = LaunchConfig {
        grid_dim: ((bhp as u32).div_ceil(rows_per_block), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: arguments match `selective_state_update_f32`; lengths checked above.
    unsafe { b.launch(cfg) }.map_err(drv)?;
    state.copy_from_slice(&down(&stream, &st)?);
    down(&stream, &out)
}
