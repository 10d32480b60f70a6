//! Launchers of `kernels/s4d_vandermonde.cu` and `kernels/s4_cauchy.cu`, the GPU twins of
//! [`crate::s4::s4d_kernel::s4d_vandermonde_kernel`] and [`crate::s4::s4_kernel::cauchy`]
//! (same arguments plus the loader, f64 like the CPU functions; the kernels also come in f32).

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};

use super::compile::KernelFile;
use super::context::KernelLoader;
use super::scan::{as_i32, down, up};
use super::{drv, out_buf, Result};
use crate::error::check_len;

const THREADS: u32 = 128;

/// GPU twin of the S4D Vandermonde product: `out[h, l] = 2·Re Σ_n c[h, n]·exp(dt_a[h, n]·l)`,
/// `dt_a` and `c` (h, n) as re / im slices, `out` (h, l).
#[allow(clippy::too_many_arguments)]
pub fn s4d_vandermonde_kernel(
    loader: &impl KernelLoader,
    dt_a_re: &[f64],
    dt_a_im: &[f64],
    c_re: &[f64],
    c_im: &[f64],
    h: usize,
    n: usize,
    l: usize,
    out: &mut [f64],
) -> Result<()> {
    for (name, v) in [
        ("dt_a_re", dt_a_re),
        ("dt_a_im", dt_a_im),
        ("c_re", c_re),
        ("c_im", c_im),
    ] {
        check_len(name, v.len(), h * n, || format!("(h={h}, n={n})"))?;
    }
    check_len("out", out.len(), h * l, || format!("(h={h}, l={l})"))?;
    if h == 0 || l == 0 {
        return Ok(());
    }
    let stream = loader.stream();
    let f = loader.function(KernelFile::S4dVandermonde, "s4d_vandermonde_f64")?;
    let (xr, xi, cr, ci) = (
        up(&stream, dt_a_re)?,
        up(&stream, dt_a_im)?,
        up(&stream, c_re)?,
        up(&stream, c_im)?,
    );
    let mut o = out_buf(&stream, h * l, f64::NAN)?;
    let (hi, ni, li) = (as_i32("h", h)?, as_i32("n", n)?, as_i32("l", l)?);
    let mut b = stream.launch_builder(&f);
    b.arg(&xr).arg(&xi).arg(&cr).arg(&ci).arg(&mut o);
    b.arg(&hi).arg(&ni).arg(&li);
    let cfg = LaunchConfig {
        grid_dim: ((l as u32).div_ceil(THREADS), h as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: arguments match `s4d_vandermonde_f64`; lengths checked above.
    unsafe { b.launch(cfg) }.map_err(drv)?;
    out.copy_from_slice(&down(&stream, &o)?);
    Ok(())
}

/// GPU twin of the S4 Cauchy kernel with conjugate pairs:
/// `out[r, j] = Σ_n v[r,n]/(z[j] − w[r,n]) + conj(v[r,n])/(z[j] − conj(w[r,n]))`,
/// `v`, `w` (rows, n), `z` (lz) shared by all rows, `out` (rows, lz); complex as re / im slices.
#[allow(clippy::too_many_arguments)]
pub fn cauchy(
    loader: &impl KernelLoader,
    v_re: &[f64],
    v_im: &[f64],
    w_re: &[f64],
    w_im: &[f64],
    z_re: &[f64],
    z_im: &[f64],
    rows: usize,
    n: usize,
    lz: usize,
    out_re: &mut [f64],
    out_im: &mut [f64],
) -> Result<()> {
    for (name, s) in [
        ("v_re", v_re),
        ("v_im", v_im),
        ("w_re", w_re),
        ("w_im", w_im),
    ] {
        check_len(name, s.len(), rows * n, || format!("(rows={rows}, n={n})"))?;
    }
    for (name, s) in [("z_re", z_re), ("z_im", z_im)] {
        check_len(name, s.len(), lz, || format!("(lz={lz})"))?;
    }
    for (name, s) in [("out_re", &*out_re), ("out_im", &*out_im)] {
        check_len(name, s.len(), rows * lz, || {
            format!("(rows={rows}, lz={lz})")
        })?;
    }
    if rows == 0 || lz == 0 {
        return Ok(());
    }
    let stream = loader.stream();
    let f = loader.function(KernelFile::S4Cauchy, "s4_cauchy_f64")?;
    let ups = [v_re, v_im, w_re, w_im, z_re, z_im]
        .iter()
        .map(|s| up(&stream, s))
        .collect::<Result<Vec<_>>>()?;
    let mut ore = out_buf(&stream, rows * lz, f64::NAN)?;
    let mut oim = out_buf(&stream, rows * lz, f64::NAN)?;
    let (ri, ni, li, conj) = (
        as_i32("rows", rows)?,
        as_i32("n", n)?,
        as_i32("lz", lz)?,
        1i32,
    );
    let mut b = stream.launch_builder(&f);
    for s in &ups {
        b.arg(s);
    }
    b.arg(&mut ore)
        .arg(&mut oim)
        .arg(&ri)
        .arg(&ni)
        .arg(&li)
        .arg(&conj);
    let cfg = LaunchConfig {
        grid_dim: ((lz as u32).div_ceil(THREADS), rows as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: arguments match `s4_cauchy_f64`; lengths checked above.
    unsafe { b.launch(cfg) }.map_err(drv)?;
    out_re.copy_from_slice(&down(&stream, &ore)?);
    out_im.copy_from_slice(&down(&stream, &oim)?);
    Ok(())
}
