//! Launchers of `kernels/long_conv.cu`: S4's causal long convolution y = K ∗ u (S4 eq. (5)
//! without D) and its gradients, f32 or f64. On device buffers for the candle op
//! ([`crate::s4::fft_conv_tensor`]), and on host buffers as the GPU twins of
//! [`crate::s4::fft_conv::direct_conv`] and [`crate::s4::fft_conv::fft_conv_bwd`].
//! Layout: u, g, y, ∂u (batch, H, L); K, ∂K (H, L).

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};

use super::compile::KernelFile;
use super::context::KernelLoader;
use super::scan::{as_i32, down, up};
use super::{drv, out_buf, Result};
use crate::error::{check_len, SsmError};

/// Threads per block and output positions per block (`LC_THREADS` in the kernel file).
const THREADS: u32 = 256;

/// A scalar the long-convolution kernels come in.
pub trait LongConvFloat: DeviceRepr + ValidAsZeroBits + Copy + Default {
    /// Kernel name suffix.
    const SUFFIX: &'static str;
    /// NaN, for poisoned outputs.
    const NAN: Self;
}
impl LongConvFloat for f32 {
    const SUFFIX: &'static str = "f32";
    const NAN: Self = f32::NAN;
}
impl LongConvFloat for f64 {
    const SUFFIX: &'static str = "f64";
    const NAN: Self = f64::NAN;
}

/// (batch, H, L) of a long convolution, checked against the lengths of its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongConvDims {
    /// Batch size.
    pub batch: usize,
    /// Channels.
    pub h: usize,
    /// Sequence length.
    pub l: usize,
}

impl LongConvDims {
    /// Every dimension ≥ 1 (the kernels have no work to do otherwise, and the CPU's FFT plan
    /// refuses L = 0 too).
    fn check_nonempty(&self) -> Result<()> {
        if self.batch == 0 || self.h == 0 || self.l == 0 {
            return Err(SsmError::Invalid(format!(
                "long_conv: (batch, h, l) = ({}, {}, {}) has an empty dimension",
                self.batch, self.h, self.l
            ))
            .into());
        }
        Ok(())
    }

    fn check(&self, name: &'static str, got: usize, per_batch: bool) -> Result<()> {
        let Self { batch, h, l } = *self;
        if per_batch {
            check_len(name, got, batch * h * l, || {
                format!("(batch={batch}, h={h}, l={l})")
            })?;
        } else {
            check_len(name, got, h * l, || format!("(h={h}, l={l})"))?;
        }
        Ok(())
    }

    /// Launches kernel `name` over `rows` rows: (a, b) inputs, one output of `rows · L`.
    fn launch<T: LongConvFloat>(
        &self,
        loader: &impl KernelLoader,
        name: &str,
        rows: usize,
        a: &CudaView<'_, T>,
        b: &CudaView<'_, T>,
    ) -> Result<CudaSlice<T>> {
        self.check_nonempty()?;
        let stream = loader.stream();
        let mut out = out_buf(&stream, rows * self.l, T::NAN)?;
        let f = loader.function(
            KernelFile::LongConv,
            &format!("long_conv_{name}_{}", T::SUFFIX),
        )?;
        let (bi, hi, li) = (
            as_i32("batch", self.batch)?,
            as_i32("h", self.h)?,
            as_i32("l", self.l)?,
        );
        let tiles = u32::try_from(self.l.div_ceil(THREADS as usize))
            .ok()
            .filter(|&t| t <= 65_535)
            .ok_or_else(|| SsmError::Invalid(format!("long_conv: L = {} is too long", self.l)))?;
        let mut builder = stream.launch_builder(&f);
        builder
            .arg(a)
            .arg(b)
            .arg(&mut out)
            .arg(&bi)
            .arg(&hi)
            .arg(&li);
        let cfg = LaunchConfig {
            grid_dim: (as_i32("rows", rows)? as u32, tiles, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: every `long_conv_*` kernel takes (two inputs, output, B, H, L) of these types;
        // the lengths were checked by the callers against `self`, the grid covers rows × L.
        unsafe { builder.launch(cfg) }.map_err(drv)?;
        Ok(out)
    }
}

/// y = K ∗ u on the device: `y[b,h,t] = Σ_{s≤t} K[h,s]·u[b,h,t−s]`.
pub fn long_conv_fwd_dev<T: LongConvFloat>(
    loader: &impl KernelLoader,
    dims: LongConvDims,
    u: &CudaView<'_, T>,
    k: &CudaView<'_, T>,
) -> Result<CudaSlice<T>> {
    dims.check("u", u.len(), true)?;
    dims.check("K", k.len(), false)?;
    dims.launch(loader, "fwd", dims.batch * dims.h, u, k)
}

/// ∂u of [`long_conv_fwd_dev`] from ∂ℒ/∂y `g`, on the device:
/// `∂u[b,h,s] = Σ_{t≥s} g[b,h,t]·K[h,t−s]`.
pub fn long_conv_du_dev<T: LongConvFloat>(
    loader: &impl KernelLoader,
    dims: LongConvDims,
    k: &CudaView<'_, T>,
    g: &CudaView<'_, T>,
) -> Result<CudaSlice<T>> {
    dims.check("K", k.len(), false)?;
    dims.check("grad_out", g.len(), true)?;
    dims.launch(loader, "bwd_du", dims.batch * dims.h, k, g)
}

/// ∂K of [`long_conv_fwd_dev`] from ∂ℒ/∂y `g`, on the device:
/// `∂K[h,j] = Σ_b Σ_{t≥j} g[b,h,t]·u[b,h,t−j]`.
pub fn long_conv_dk_dev<T: LongConvFloat>(
    loader: &impl KernelLoader,
    dims: LongConvDims,
    u: &CudaView<'_, T>,
    g: &CudaView<'_, T>,
) -> Result<CudaSlice<T>> {
    dims.check("u", u.len(), true)?;
    dims.check("grad_out", g.len(), true)?;
    dims.launch(loader, "bwd_dk", dims.h, u, g)
}

/// GPU twin of [`crate::s4::fft_conv::direct_conv`] without D, on host buffers.
pub fn long_conv_fwd<T: LongConvFloat>(
    loader: &impl KernelLoader,
    dims: LongConvDims,
    u: &[T],
    k: &[T],
    out: &mut [T],
) -> Result<()> {
    dims.check_nonempty()?;
    dims.check("u", u.len(), true)?;
    dims.check("K", k.len(), false)?;
    dims.check("out", out.len(), true)?;
    let stream = loader.stream();
    let (u_dev, k_dev) = (up(&stream, u)?, up(&stream, k)?);
    let y = long_conv_fwd_dev(loader, dims, &u_dev.as_view(), &k_dev.as_view())?;
    out.copy_from_slice(&down(&stream, &y)?);
    Ok(())
}

/// GPU twin of [`crate::s4::fft_conv::fft_conv_bwd`] without D, on host buffers: (∂u, ∂K).
pub fn long_conv_bwd<T: LongConvFloat>(
    loader: &impl KernelLoader,
    dims: LongConvDims,
    u: &[T],
    k: &[T],
    g: &[T],
) -> Result<(Vec<T>, Vec<T>)> {
    dims.check_nonempty()?;
    dims.check("u", u.len(), true)?;
    dims.check("K", k.len(), false)?;
    dims.check("grad_out", g.len(), true)?;
    let stream = loader.stream();
    let (u_dev, k_dev, g_dev) = (up(&stream, u)?, up(&stream, k)?, up(&stream, g)?);
    let du = long_conv_du_dev(loader, dims, &k_dev.as_view(), &g_dev.as_view())?;
    let dk = long_conv_dk_dev(loader, dims, &u_dev.as_view(), &g_dev.as_view())?;
    Ok((down(&stream, &du)?, down(&stream, &dk)?))
}
