//! The kernel sources embedded in the binary, their run-time compilation with NVRTC for the
//! device's architecture, and the on-disk PTX cache.
//!
//! PTX is cached per (source, options, NVRTC version, architecture) in
//! `$SEQLAB_PTX_CACHE`, else `$XDG_CACHE_HOME/seqlab/ptx`, else `~/.cache/seqlab/ptx`, as
//! `<kernel>-<hash>-sm_XX.ptx`, written atomically ([`seqlab_io::write_atomic`]) so concurrent
//! processes never read half a file. A cache that cannot be read or written only costs a compile.
//! Within a process, compiled PTX is also kept in memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::nvrtc::{self, CompileError, CompileOptions};

use super::{CudaError, Result};

/// NVRTC options shared by every kernel (the architecture is added per device). Keep in sync
/// with `NVRTC_OPTIONS` in `.ci/cuda-kernels-check`, which compiles the same sources in CI.
pub const NVRTC_OPTIONS: &[&str] = &["--std=c++17", "--fmad=true", "-default-device"];

/// One `kernels/*.cu` source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelFile {
    /// `selective_scan_fwd.cu`: the selective scan forward.
    SelectiveScanFwd,
    /// `selective_scan_bwd.cu`: the selective scan backward.
    SelectiveScanBwd,
    /// `causal_conv1d.cu`: causal depthwise conv1d forward, backward and one-token update.
    CausalConv1d,
    /// `selective_state_update.cu`: one recurrent SSM step.
    SelectiveStateUpdate,
    /// `s4d_vandermonde.cu`: the S4D Vandermonde kernel.
    S4dVandermonde,
    /// `s4_cauchy.cu`: the S4 Cauchy kernel.
    S4Cauchy,
    /// `long_conv.cu`: S4's causal long convolution y = K ∗ u and its gradients.
    LongConv,
}

impl KernelFile {
    /// Every kernel file.
    pub const ALL: [KernelFile; 7] = [
        KernelFile::SelectiveScanFwd,
        KernelFile::SelectiveScanBwd,
        KernelFile::CausalConv1d,
        KernelFile::SelectiveStateUpdate,
        KernelFile::S4dVandermonde,
        KernelFile::S4Cauchy,
        KernelFile::LongConv,
    ];

    /// File name under `kernels/`.
    pub fn file_name(self) -> &'static str {
        match self {
            KernelFile::SelectiveScanFwd => "selective_scan_fwd.cu",
            KernelFile::SelectiveScanBwd => "selective_scan_bwd.cu",
            KernelFile::CausalConv1d => "causal_conv1d.cu",
            KernelFile::SelectiveStateUpdate => "selective_state_update.cu",
            KernelFile::S4dVandermonde => "s4d_vandermonde.cu",
            KernelFile::S4Cauchy => "s4_cauchy.cu",
            KernelFile::LongConv => "long_conv.cu",
        }
    }

    /// The CUDA C source as NVRTC compiles it: the file embedded at build time, with each
    /// `#include` of a [`HEADERS`] file replaced by that file (NVRTC has no include path at run
    /// time).
    pub fn source(self) -> String {
        splice_headers(self.file_source())
    }

    /// The file itself, embedded at build time.
    fn file_source(self) -> &'static str {
        match self {
            KernelFile::SelectiveScanFwd => {
                include_str!("../../../../kernels/selective_scan_fwd.cu")
            }
            KernelFile::SelectiveScanBwd => {
                include_str!("../../../../kernels/selective_scan_bwd.cu")
            }
            KernelFile::CausalConv1d => include_str!("../../../../kernels/causal_conv1d.cu"),
            KernelFile::SelectiveStateUpdate => {
                include_str!("../../../../kernels/selective_state_update.cu")
            }
            KernelFile::S4dVandermonde => include_str!("../../../../kernels/s4d_vandermonde.cu"),
            KernelFile::S4Cauchy => include_str!("../../../../kernels/s4_cauchy.cu"),
            KernelFile::LongConv => include_str!("../../../../kernels/long_conv.cu"),
        }
    }

    /// Module name under which the compiled PTX is loaded (unique per file).
    pub fn module_name(self) -> &'static str {
        match self {
            KernelFile::SelectiveScanFwd => "seqlab_selective_scan_fwd",
            KernelFile::SelectiveScanBwd => "seqlab_selective_scan_bwd",
            KernelFile::CausalConv1d => "seqlab_causal_conv1d",
            KernelFile::SelectiveStateUpdate => "seqlab_selective_state_update",
            KernelFile::S4dVandermonde => "seqlab_s4d_vandermonde",
            KernelFile::S4Cauchy => "seqlab_s4_cauchy",
            KernelFile::LongConv => "seqlab_long_conv",
        }
    }
}

/// The headers kernel files include (`#include "NAME"` on a line of its own), embedded at build
/// time. `.ci/cuda-kernels-check` splices them in the same way; g++ (kernels/emulator) reads
/// them from `kernels/`.
const HEADERS: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../../../../kernels/common.cuh")),
    (
        "scan_common.cuh",
        include_str!("../../../../kernels/scan_common.cuh"),
    ),
];

/// `src` with every `#include "NAME"` line naming one of [`HEADERS`] replaced by that header.
/// Other lines, unknown includes among them, are kept (NVRTC then reports those).
fn splice_headers(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 16 * 1024);
    for line in src.lines() {
        let header = line
            .trim()
            .strip_prefix("#include \"")
            .and_then(|rest| rest.strip_suffix('"'))
            .and_then(|name| HEADERS.iter().find(|(n, _)| *n == name));
        match header {
            Some((_, text)) => out.push_str(text),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// 64-bit FNV-1a: a stable hash for cache keys (std's hasher may change between Rust releases).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Directory of the on-disk PTX cache (see the module doc), if one can be named.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("SEQLAB_PTX_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("seqlab").join("ptx")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("seqlab").join("ptx")))
}

/// NVRTC's version as "major.minor", or an error when the library cannot be used.
pub fn nvrtc_version() -> Result<String> {
    let guarded = std::panic::catch_unwind(|| {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: nvrtcVersion writes two ints through valid pointers.
        let status = unsafe { nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        status.result().map(|()| (major, minor))
    });
    match guarded {
        Ok(Ok((major, minor))) => Ok(format!("{major}.{minor}")),
        Ok(Err(e)) => Err(CudaError::Nvrtc(format!("{e:?}"))),
        Err(_) => Err(CudaError::Nvrtc(
            "libnvrtc could not be loaded (install the CUDA toolkit or the \
             nvidia-cuda-nvrtc-cu12 wheel and put its lib/ on LD_LIBRARY_PATH)"
                .into(),
        )),
    }
}

/// Compiles `file` to PTX for compute capability `arch` (e.g. 90 for sm_90) with NVRTC, without
/// any cache. A syntax error comes back as [`CudaError::Compile`] with NVRTC's log.
pub fn compile_uncached(file: KernelFile, source: &str, arch: u32) -> Result<String> {
    let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture=compute_{arch}"));
    let opts = CompileOptions {
        options,
        name: Some(file.file_name().to_string()),
        ..Default::default()
    };
    let guarded = std::panic::catch_unwind(|| nvrtc::compile_ptx_with_opts(source, opts));
    match guarded {
        Ok(Ok(ptx)) => Ok(ptx.to_src()),
        Ok(Err(CompileError::CompileError { log, .. })) => Err(CudaError::Compile {
            file: file.file_name(),
            arch,
            log: log.to_string_lossy().trim().to_string(),
        }),
        Ok(Err(e)) => Err(CudaError::Nvrtc(format!("{e:?}"))),
        Err(_) => Err(CudaError::Nvrtc(
            "NVRTC panicked (is libnvrtc missing or incompatible?)".into(),
        )),
    }
}

type PtxMap = HashMap<(KernelFile, u32), Arc<str>>;

/// PTX of `file` for compute capability `arch`: from memory, else the disk cache, else NVRTC
/// (then written to the disk cache).
pub fn ptx_for(file: KernelFile, arch: u32) -> Result<Arc<str>> {
    static MEM: OnceLock<Mutex<PtxMap>> = OnceLock::new();
    let mem = MEM.get_or_init(Default::default);
    if let Some(p) = mem.lock().ok().and_then(|m| m.get(&(file, arch)).cloned()) {
        return Ok(p);
    }
    let source = file.source();
    let version = nvrtc_version()?;
    let key = fnv1a(&[
        source.as_bytes(),
        NVRTC_OPTIONS.join(" ").as_bytes(),
        version.as_bytes(),
    ]);
    let stem = file.file_name().trim_end_matches(".cu");
    let path = cache_dir().map(|d| d.join(format!("{stem}-{key:016x}-sm_{arch}.ptx")));
    let cached = path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .filter(|s| s.contains(".entry"));
    let ptx: Arc<str> = match cached {
        Some(s) => s.into(),
        None => {
            let s = compile_uncached(file, &source, arch)?;
            if let Some(p) = &path {
                // Best effort: a read-only or full disk only costs a compile next time.
                let _ = std::fs::create_dir_all(p.parent().unwrap_or(p))
                    .map_err(|_| ())
                    .and_then(|_| seqlab_io::write_atomic(p, s.as_bytes()).map_err(|_| ()));
            }
            s.into()
        }
    };
    if let Ok(mut m) = mem.lock() {
        m.insert((file, arch), ptx.clone());
    }
    Ok(ptx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_embedded_and_name_their_cpu_twin() {
        for f in KernelFile::ALL {
            let src = f.source();
            assert!(
                src.contains("CPU twin: crates/seqlab-ssm/src/")
                    || src.contains("CPU twins: crates/seqlab-ssm/src/"),
                "{}",
                f.file_name()
            );
            assert!(src.contains("extern \"C\" __global__"), "{}", f.file_name());
            assert!(
                !src.lines().any(|l| l.trim_start().starts_with("#include")),
                "{}: a header left unspliced",
                f.file_name()
            );
        }
        // The scan files get both headers, in order.
        let fwd = KernelFile::SelectiveScanFwd.source();
        let (common, scan) = (fwd.find("struct f16_t"), fwd.find("#define SS_TILE"));
        assert!(matches!((common, scan), (Some(c), Some(s)) if c < s));
    }

    #[test]
    fn cache_key_hash_is_stable() {
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }
}
