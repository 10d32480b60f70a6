//! Where kernels run: a device + stream, and a loader that turns a kernel name into a function.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::cuda_backend::cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaStream,
};
use candle_core::cuda_backend::cudarc::nvrtc::Ptx;

use super::compile::{ptx_for, KernelFile};
use super::{drv, CudaError, Result};

/// Something that can launch our kernels: gives the stream to launch on and loads functions
/// (compiling their source for the device on first use).
pub trait KernelLoader {
    /// The stream every launch and copy goes to.
    fn stream(&self) -> Arc<CudaStream>;
    /// Function `name` of kernel file `file`, compiled and loaded for this device.
    fn function(&self, file: KernelFile, name: &str) -> Result<CudaFunction>;
}

/// Compute capability of a context as one number (8.0 → 80, 9.0 → 90).
fn arch_of(ctx: &CudaContext) -> Result<u32> {
    let (major, minor) = ctx.compute_capability().map_err(drv)?;
    Ok((major * 10 + minor) as u32)
}

/// The CUDA version the driver supports, "major.minor".
fn driver_version() -> Result<String> {
    let mut v = 0;
    // SAFETY: cuDriverGetVersion writes one int through a valid pointer. Only called once a
    // context exists, so the driver library is loaded.
    unsafe { candle_core::cuda_backend::cudarc::driver::sys::cuDriverGetVersion(&mut v) }
        .result()
        .map_err(drv)?;
    Ok(format!("{}.{}", v / 1000, v % 1000 / 10))
}

/// Kernel file `file` that the driver would not load (`err`, the driver's error). The usual
/// cause is PTX from an NVRTC newer than the driver: that error names both versions.
fn load_error(file: KernelFile, err: String) -> CudaError {
    let why = if err.contains("UNSUPPORTED_PTX_VERSION") {
        let nvrtc = super::compile::nvrtc_version().unwrap_or_else(|e| e.to_string());
        let driver = driver_version().unwrap_or_else(|e| e.to_string());
        format!(
            "NVRTC {nvrtc} writes PTX newer than this driver (CUDA {driver}) loads; put an \
             NVRTC no newer than the driver first on LD_LIBRARY_PATH, or update the driver"
        )
    } else {
        err
    };
    CudaError::Driver(format!("kernels/{} does not load: {why}", file.file_name()))
}

/// Kernel file `file`, compiled for compute capability `arch` (or read from the PTX cache) and
/// loaded by the driver into `ctx`.
fn load_module(ctx: &Arc<CudaContext>, file: KernelFile, arch: u32) -> Result<Arc<CudaModule>> {
    let ptx = ptx_for(file, arch)?;
    ctx.load_module(Ptx::from_src(ptx.to_string()))
        .map_err(|e| load_error(file, format!("{e:?}")))
}

/// A CUDA device with its default stream and the modules loaded on it.
pub struct GpuContext {
    stream: Arc<CudaStream>,
    arch: u32,
    modules: Mutex<HashMap<KernelFile, Arc<CudaModule>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("ordinal", &self.stream.context().ordinal())
            .field("arch", &self.arch)
            .finish()
    }
}

impl GpuContext {
    /// Opens GPU `ordinal`. Fails with [`CudaError::NoDevice`] (never panics) when there is no
    /// driver, no GPU, or no GPU with that ordinal.
    pub fn new(ordinal: usize) -> Result<Self> {
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let opened = std::panic::catch_unwind(|| {
            let count = CudaContext::device_count().map_err(|e| format!("{e:?}"))?;
            if ordinal >= count.max(0) as usize {
                return Err(format!("GPU {ordinal} requested, {count} present"));
            }
            CudaContext::new(ordinal).map_err(|e| format!("{e:?}"))
        });
        std::panic::set_hook(previous_hook);
        let ctx = match opened {
            Ok(Ok(ctx)) => ctx,
            Ok(Err(msg)) => return Err(CudaError::NoDevice(msg)),
            Err(_) => {
                return Err(CudaError::NoDevice(
                    "the CUDA driver library could not be loaded".into(),
                ))
            }
        };
        Self::from_stream(ctx.default_stream())
    }

    /// Uses an existing stream (and its device).
    pub fn from_stream(stream: Arc<CudaStream>) -> Result<Self> {
        let arch = arch_of(stream.context())?;
        Ok(Self {
            stream,
            arch,
            modules: Mutex::new(HashMap::new()),
        })
    }

    /// Compute capability as one number (e.g. 90).
    pub fn arch(&self) -> u32 {
        self.arch
    }

    /// Name of the device, as the driver reports it.
    pub fn device_name(&self) -> Result<String> {
        self.stream.context().name().map_err(drv)
    }
}

impl KernelLoader for GpuContext {
    fn stream(&self) -> Arc<CudaStream> {
        self.stream.clone()
    }

    fn function(&self, file: KernelFile, name: &str) -> Result<CudaFunction> {
        let mut modules = self
            .modules
            .lock()
            .map_err(|_| CudaError::Driver("module cache lock poisoned".into()))?;
        let module = match modules.get(&file) {
            Some(m) => m.clone(),
            None => {
                let m = load_module(self.stream.context(), file, self.arch)?;
                modules.insert(file, m.clone());
                m
            }
        };
        module.load_function(name).map_err(drv)
    }
}

impl KernelLoader for candle_core::CudaDevice {
    fn stream(&self) -> Arc<CudaStream> {
        self.cuda_stream()
    }

    /// Loads through candle's per-device module cache (`get_or_load_custom_func`).
    fn function(&self, file: KernelFile, name: &str) -> Result<CudaFunction> {
        let arch = arch_of(self.cuda_stream().context())?;
        let ptx = ptx_for(file, arch)?;
        let f = self
            .get_or_load_custom_func(name, file.module_name(), &ptx)
            .map_err(|e| load_error(file, e.to_string()))?;
        Ok(f.into_cuda_function())
    }
}

/// What a GPU is and whether our kernels run on it: the check behind
/// `seqlab info --device cuda`.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuReport {
    /// Device name, as the driver reports it.
    pub name: String,
    /// Compute capability as one number (e.g. 90).
    pub arch: u32,
    /// Streaming multiprocessors.
    pub multiprocessors: u32,
    /// Device memory in bytes.
    pub memory_bytes: usize,
    /// The CUDA version the driver supports, "major.minor".
    pub driver_version: String,
    /// NVRTC's version, "major.minor".
    pub nvrtc_version: String,
    /// Seconds that compiling (or reading from the PTX cache) and loading every kernel file
    /// ([`KernelFile::ALL`]) took.
    pub kernel_seconds: f64,
}

/// Describes the device of `stream` and compiles and loads every kernel file on it, so a
/// toolkit the driver cannot take (PTX from an NVRTC newer than the driver, a missing NVRTC)
/// is one error here rather than in the middle of a run.
pub fn gpu_report(stream: &Arc<CudaStream>) -> Result<GpuReport> {
    use candle_core::cuda_backend::cudarc::driver::sys::CUdevice_attribute;
    let ctx = stream.context();
    let arch = arch_of(ctx)?;
    let sm_count = ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .map_err(drv)?;
    let start = std::time::Instant::now();
    for file in KernelFile::ALL {
        load_module(ctx, file, arch)?;
    }
    Ok(GpuReport {
        name: ctx.name().map_err(drv)?,
        arch,
        multiprocessors: sm_count.max(0) as u32,
        memory_bytes: ctx.total_mem().map_err(drv)?,
        driver_version: driver_version()?,
        nvrtc_version: super::compile::nvrtc_version()?,
        kernel_seconds: start.elapsed().as_secs_f64(),
    })
}
