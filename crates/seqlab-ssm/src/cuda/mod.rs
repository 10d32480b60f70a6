//! CUDA kernels for the SSM ops (feature `cuda`): the GPU twins of this crate's CPU kernels.
//!
//! - Sources: `kernels/*.cu` at the repository root, embedded in the binary ([`KernelFile`]),
//!   compiled at run time with NVRTC for the device's compute capability, the PTX cached on disk
//!   ([`compile`]). Building never needs a CUDA toolkit beyond what candle's CUDA backend needs.
//! - Loading: [`GpuContext`] (a device and stream of our own) or a candle [`CudaDevice`]; both
//!   implement [`KernelLoader`].
//! - Launchers: one per CPU function, with the CPU function's arguments plus the loader, taking
//!   and returning host buffers in exactly the CPU layouts ([`selective_scan_fwd`],
//!   [`selective_scan_bwd`], [`causal_conv1d_fwd`], [`causal_conv1d_bwd`],
//!   [`causal_conv1d_update`], [`selective_state_update`], [`s4d_vandermonde_kernel`],
//!   [`cauchy`], [`long_conv_fwd`], [`long_conv_bwd`]); the selective scan and S4's long
//!   convolution also have device-buffer launchers ([`scan_fwd_dev`], [`scan_bwd_dev`],
//!   [`long_conv_fwd_dev`], [`long_conv_du_dev`], [`long_conv_dk_dev`]) that the candle ops
//!   ([`crate::candle_op`], [`crate::s4::fft_conv_tensor`]) run on candle's storage.
//!
//! Errors are [`CudaError`], one line each; nothing panics when the GPU, the driver or NVRTC is
//! missing. Note that with candle's CUDA backend, cudarc links the driver and NVRTC dynamically
//! (candle enables cudarc's `dynamic-linking`), so a `cuda` build refuses to start at all on a
//! machine without `libcuda.so`/`libnvrtc.so` (the loader names the missing library); default
//! builds have no such dependency and report "no CUDA support in this build" instead.

pub mod compile;
mod context;
mod conv;
mod long_conv;
mod s4;
mod scan;
mod step;

pub use candle_core::cuda_backend::cudarc;
pub use candle_core::CudaDevice;
pub use compile::{ptx_for, KernelFile, NVRTC_OPTIONS};
pub use context::{gpu_report, GpuContext, GpuReport, KernelLoader};
pub use conv::{causal_conv1d_bwd, causal_conv1d_fwd, causal_conv1d_update};
pub use long_conv::{
    long_conv_bwd, long_conv_dk_dev, long_conv_du_dev, long_conv_fwd, long_conv_fwd_dev,
    LongConvDims, LongConvFloat,
};
pub use s4::{cauchy, s4d_vandermonde_kernel};
pub use scan::{
    scan_bwd_dev, scan_fwd_dev, selective_scan_bwd, selective_scan_fwd, DevBc, DevScanArgs,
    DevScanGrads, DevScanOut, GpuScanOutput, SCAN_MAX_DSTATE, SCAN_TILE,
};
pub use step::selective_state_update;

use crate::error::SsmError;

/// What the CUDA side can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// No usable GPU or driver (no device, driver too old, out of range ordinal, ...).
    #[error("no CUDA GPU/driver found: {0}")]
    NoDevice(String),
    /// NVRTC could not be used (library missing or failing outside of compilation).
    #[error("NVRTC unavailable: {0}")]
    Nvrtc(String),
    /// A kernel source failed to compile; `log` is NVRTC's full log.
    #[error("kernels/{file} does not compile for sm_{arch}: {}", first_error(.log))]
    Compile {
        /// Source file name.
        file: &'static str,
        /// Compute capability (e.g. 90).
        arch: u32,
        /// NVRTC's compile log.
        log: String,
    },
    /// A driver call (allocation, copy, launch, module load) failed.
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// Invalid arguments (shapes, sizes the kernels cannot take).
    #[error(transparent)]
    Ssm(#[from] SsmError),
}

/// Result alias for the CUDA side.
pub type Result<T> = std::result::Result<T, CudaError>;

/// The first line of a compile log that reports an error (else its first line).
fn first_error(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("error"))
        .or_else(|| log.lines().next())
        .unwrap_or("(empty log)")
        .trim()
}

static POISON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// When on, output buffers that the kernels write element by element are filled with NaN
/// before the launch (instead of zeros), so an element a kernel fails to write shows up in a
/// comparison. For tests; buffers accumulated with atomics are always zeroed.
pub fn set_poison_outputs(on: bool) {
    POISON.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// A device output buffer of `n` elements: NaN-filled when poisoning is on, else zeroed.
pub(crate) fn out_buf<T>(
    stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    n: usize,
    nan: T,
) -> Result<cudarc::driver::CudaSlice<T>>
where
    T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Copy,
{
    if POISON.load(std::sync::atomic::Ordering::Relaxed) {
        stream.clone_htod(&vec![nan; n]).map_err(drv)
    } else {
        stream.alloc_zeros::<T>(n).map_err(drv)
    }
}

/// Maps a cudarc driver error into [`CudaError::Driver`].
pub(crate) fn drv<E: std::fmt::Debug>(e: E) -> CudaError {
    CudaError::Driver(format!("{e:?}"))
}

impl From<CudaError> for candle_core::Error {
    fn from(e: CudaError) -> Self {
        candle_core::Error::Msg(e.to_string())
    }
}
