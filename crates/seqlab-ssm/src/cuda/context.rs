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
                let ptx = ptx_for(file, self.arch)?;
                let m = self
                    .stream
                    .context()
                    .load_module(Ptx::from_src(ptx.to_string()))
                    .map_err(drv)?;
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
            .map_err(|e| CudaError::Driver(e.to_string()))?;
        Ok(f.into_cuda_function())
    }
}
