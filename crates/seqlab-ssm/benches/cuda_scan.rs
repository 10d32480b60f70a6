//! The CUDA selective scan against the GPU's memory-bandwidth floor and, side by side, against
//! mamba_ssm's kernels (feature `cuda`).
//!
//! For Mamba-like shapes (f32, input-dependent B and C, D, z and a δ bias, softplus on δ), times
//! the forward and backward scan kernels on device buffers and compares each with the time it
//! takes just to move the bytes the kernel must read and write at the GPU's peak DRAM bandwidth
//! (memory clock × bus width × 2, from the driver's device attributes). The scan is memory-bound
//! by design, so the ratio time / floor says how far the kernel is from optimal.
//!
//! With `SEQLAB_MAMBA_SSM_LIB` naming the library `benches/cuda/mamba_ssm/build.sh` builds
//! (mamba_ssm's own `selective_scan_fwd/bwd_cuda`, no PyTorch), the same inputs also go through
//! mamba_ssm: its outputs and gradients must agree with ours (max |difference| ≤ 1e-3 of the
//! tensor's max |value|; the run fails otherwise), and both are timed in the same run.
//!
//! Other shapes: `SEQLAB_SCAN_SHAPES=BxDxLxN,…`. Prints a message and exits 0 when no GPU is
//! present (fails instead with `SEQLAB_REQUIRE_GPU` set).
//!
//! Run: `cargo bench -p seqlab-ssm --features cuda --bench cuda_scan`.

mod common;

use std::ffi::{c_char, c_int, c_void};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab_ssm::cuda::cudarc::driver::sys::CUdevice_attribute;
use seqlab_ssm::cuda::cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use seqlab_ssm::cuda::{self, DevBc, DevScanArgs, GpuContext, KernelLoader, SCAN_TILE};
use seqlab_ssm::selective_scan::ScanDims;

/// Largest max |ours − mamba_ssm| / max |mamba_ssm| accepted for any output or gradient.
const AGREEMENT: f64 = 1e-3;

/// `MambaSsmScan` of benches/cuda/mamba_ssm/scan_capi.h: sizes and raw device pointers
/// (0 = absent).
#[repr(C)]
struct MambaSsmScan {
    batch: i32,
    dim: i32,
    seqlen: i32,
    dstate: i32,
    delta_softplus: i32,
    u: u64,
    delta: u64,
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    z: u64,
    delta_bias: u64,
    out: u64,
    x: u64,
    out_z: u64,
    dout: u64,
    du: u64,
    ddelta: u64,
    da: u64,
    db: u64,
    dc: u64,
    dd: u64,
    dz: u64,
    ddelta_bias: u64,
}

type EntryPoint =
    unsafe extern "C" fn(*const MambaSsmScan, *mut c_void, *mut c_char, c_int) -> c_int;

/// mamba_ssm's forward and backward scan, from the library build.sh made.
struct MambaSsm {
    fwd: EntryPoint,
    bwd: EntryPoint,
    _lib: libloading::Library,
}

impl MambaSsm {
    fn load(path: &str) -> Result<Self, String> {
        // SAFETY: the library is the one build.sh builds: loading it runs only the CUDA
        // runtime's static initialisers, and both symbols have the `EntryPoint` signature.
        unsafe {
            let lib = libloading::Library::new(path)
                .map_err(|e| format!("cannot load mamba_ssm's library {path}: {e}"))?;
            let sym = |name: &[u8]| {
                lib.get::<EntryPoint>(name)
                    .map(|s| *s)
                    .map_err(|e| format!("{path}: {e}"))
            };
            Ok(Self {
                fwd: sym(b"seqlab_mamba_ssm_fwd\0")?,
                bwd: sym(b"seqlab_mamba_ssm_bwd\0")?,
                _lib: lib,
            })
        }
    }

    /// Calls `f` on `stream`; the C side launches asynchronously and reports launch errors.
    fn call(f: EntryPoint, s: &MambaSsmScan, stream: &CudaStream) -> Result<(), String> {
        let mut err = [0 as c_char; 256];
        // SAFETY: every pointer in `s` is a live device buffer of the size scan_capi.h
        // documents (see `run_mamba_ssm`), and `stream` belongs to the primary context the
        // CUDA runtime also uses.
        let rc = unsafe { f(s, stream.cu_stream() as *mut c_void, err.as_mut_ptr(), 256) };
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: the C side wrote a NUL-terminated message into `err`.
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) };
        Err(format!("CUDA error {rc}: {}", msg.to_string_lossy()))
    }
}

/// Mean seconds per call of `f` over 10 calls after one warm-up (which also compiles).
fn time(stream: &CudaStream, f: &mut dyn FnMut()) -> f64 {
    f();
    stream.synchronize().unwrap();
    let reps = 10;
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    stream.synchronize().unwrap();
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() -> ExitCode {
    let shapes = match shapes() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let g = match GpuContext::new(0) {
        Ok(g) => g,
        Err(e) if std::env::var_os("SEQLAB_REQUIRE_GPU").is_some() => {
            eprintln!("error: SEQLAB_REQUIRE_GPU is set and the GPU cannot be opened: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            println!("skipping the CUDA scan benchmark: {e}");
            return ExitCode::SUCCESS;
        }
    };
    let mamba_ssm = match std::env::var("SEQLAB_MAMBA_SSM_LIB") {
        Ok(path) => match MambaSsm::load(&path) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => {
            println!(
                "(set SEQLAB_MAMBA_SSM_LIB to the library benches/cuda/mamba_ssm/build.sh builds \
                 to time mamba_ssm's kernels beside ours)"
            );
            None
        }
    };
    let stream = g.stream();
    let ctx = stream.context();
    let attr = |a| ctx.attribute(a).unwrap_or(0) as f64;
    let mem_khz = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
    let bus_bits = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
    let peak = mem_khz * 1e3 * 2.0 * bus_bits / 8.0; // bytes/s
    println!(
        "{} (sm_{}), peak DRAM bandwidth ≈ {:.0} GB/s",
        g.device_name().unwrap_or_default(),
        g.arch(),
        peak / 1e9
    );
    println!(
        "{:>5} {:>5} {:>6} {:>3} | {:>8} {:>8} {:>5} {:>9} {:>6} | {:>8} {:>8} {:>5} {:>9} {:>6}",
        "batch",
        "dim",
        "len",
        "N",
        "fwd ms",
        "floor",
        "ratio",
        "mamba_ssm",
        "ours/m",
        "bwd ms",
        "floor",
        "ratio",
        "mamba_ssm",
        "ours/m"
    );
    let (mut disagree, mut failed) = (false, false);
    for [batch, dim, len, n] in shapes {
        match bench_shape(&g, &stream, mamba_ssm.as_ref(), peak, batch, dim, len, n) {
            Ok(Outcome::Timed) => {}
            Ok(Outcome::Disagree) => disagree = true,
            Ok(Outcome::Failed) => failed = true,
            Err(e) => {
                eprintln!("error: {batch}x{dim}x{len}x{n}: {e}");
                failed = true;
            }
        }
    }
    if disagree {
        eprintln!("error: mamba_ssm and seqlab disagree (see above)");
    }
    if disagree || failed {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// (batch, dim, len, N) to time: Mamba-like sizes, one length that is not a multiple of the
/// tile, or `SEQLAB_SCAN_SHAPES=BxDxLxN,…`.
fn shapes() -> Result<Vec<[usize; 4]>, String> {
    let default = vec![
        [1, 1536, 2048, 16],
        [8, 1536, 2048, 16],
        [4, 2048, 8192, 16],
        [2, 5120, 4096, 16],
        [4, 1024, 1000, 16],
    ];
    common::shapes_from_env("SEQLAB_SCAN_SHAPES", "BxDxLxN", default)
}

/// Times one shape (and mamba_ssm on it, when loaded).
#[allow(clippy::too_many_arguments)]
fn bench_shape(
    g: &GpuContext,
    stream: &Arc<CudaStream>,
    mamba_ssm: Option<&MambaSsm>,
    peak: f64,
    batch: usize,
    dim: usize,
    len: usize,
    n: usize,
) -> Result<Outcome, String> {
    let dims = ScanDims {
        batch,
        dim,
        len,
        dstate: n,
    };
    let mut rng = StdRng::seed_from_u64((batch * 31 + dim * 7 + len) as u64);
    let mut random = |count: usize, lo: f32, hi: f32| -> Vec<f32> {
        (0..count).map(|_| rng.random_range(lo..hi)).collect()
    };
    let bdl = batch * dim * len;
    let bnl = batch * n * len;
    let dev = |v: Vec<f32>| stream.clone_htod(&v).map_err(|e| e.to_string());
    // Mamba-like values: δ = softplus(raw + bias) ≈ 0.01 … 0.47, A = −(1 … N) (S4D-real).
    let u = dev(random(bdl, -1.0, 1.0))?;
    let delta = dev(random(bdl, -4.0, -1.0))?;
    let a = dev((0..dim * n).map(|i| -((i % n) as f32 + 1.0)).collect())?;
    let bm = dev(random(bnl, -1.0, 1.0))?;
    let cm = dev(random(bnl, -1.0, 1.0))?;
    let d = dev(random(dim, 0.5, 1.5))?;
    let z = dev(random(bdl, -2.0, 2.0))?;
    let bias = dev(random(dim, -0.5, 0.5))?;
    let dout = dev(random(bdl, -1.0, 1.0))?;
    let args = DevScanArgs {
        dims,
        complex: false,
        u: u.as_view(),
        delta: delta.as_view(),
        a: a.as_view(),
        b: DevBc::Var(bm.as_view()),
        c: DevBc::Var(cm.as_view()),
        d: Some(d.as_view()),
        z: Some(z.as_view()),
        delta_bias: Some(bias.as_view()),
        initial_state: None,
        seq_idx: None,
    };
    let fwd = time(stream, &mut || {
        cuda::scan_fwd_dev(g, &args, true, SCAN_TILE).unwrap();
    });
    let ours = cuda::scan_fwd_dev(g, &args, true, SCAN_TILE).map_err(|e| e.to_string())?;
    let bwd = time(stream, &mut || {
        cuda::scan_bwd_dev(g, &args, true, &ours.saved.as_view(), &dout.as_view(), None).unwrap();
    });
    let grads = cuda::scan_bwd_dev(g, &args, true, &ours.saved.as_view(), &dout.as_view(), None)
        .map_err(|e| e.to_string())?;
    // Bytes each kernel must move at least (f32): forward reads u, δ, z, B, C, writes out;
    // backward reads u, δ, z, B, C, dout and writes du, dδ, dz, dB, dC.
    let bc = 2 * bnl;
    let fwd_bytes = 4.0 * (4 * bdl + bc) as f64;
    let bwd_bytes = 4.0 * (7 * bdl + 2 * bc) as f64;
    // The floor in ms and time / floor ("-" where the driver reports no memory clock).
    let floor = |bytes: f64, t: f64| match bytes / peak {
        f if f.is_finite() => (format!("{:.3}", f * 1e3), format!("{:.1}", t / f)),
        _ => ("-".to_string(), "-".to_string()),
    };
    let ((ff, fr), (bf, br)) = (floor(fwd_bytes, fwd), floor(bwd_bytes, bwd));
    let inputs = [&u, &delta, &a, &bm, &cm, &d, &z, &bias, &dout];
    let vs = mamba_ssm.map(|m| compare(m, stream, dims, inputs, &ours.out, &grads));
    let (mut mfwd, mut mbwd, mut rfwd, mut rbwd) = ("-".into(), "-".into(), "-".into(), "-".into());
    if let Some(Ok(v)) = &vs {
        mfwd = format!("{:.3}", v.fwd_s * 1e3);
        mbwd = format!("{:.3}", v.bwd_s * 1e3);
        rfwd = format!("{:.2}", fwd / v.fwd_s);
        rbwd = format!("{:.2}", bwd / v.bwd_s);
    }
    println!(
        "{batch:>5} {dim:>5} {len:>6} {n:>3} | {:>8.3} {ff:>8} {fr:>5} {mfwd:>9} {rfwd:>6} | {:>8.3} {bf:>8} {br:>5} {mbwd:>9} {rbwd:>6}",
        fwd * 1e3,
        bwd * 1e3,
    );
    Ok(match vs {
        None => Outcome::Timed,
        Some(Ok(v)) => {
            let verdict = if v.agree { "agree" } else { "DISAGREE" };
            println!(
                "      vs mamba_ssm ({verdict}, max |Δ| / max |·|):{}",
                v.errors
            );
            if v.agree {
                Outcome::Timed
            } else {
                Outcome::Disagree
            }
        }
        Some(Err(e)) => {
            println!("      mamba_ssm failed: {e}");
            Outcome::Failed
        }
    })
}

/// How one shape went.
enum Outcome {
    /// Timed (and, with mamba_ssm, in agreement).
    Timed,
    /// mamba_ssm's results differ from ours.
    Disagree,
    /// mamba_ssm could not run.
    Failed,
}

/// mamba_ssm beside ours on the same inputs.
struct Comparison {
    fwd_s: f64,
    bwd_s: f64,
    /// Every output and gradient within [`AGREEMENT`].
    agree: bool,
    /// " name error" for each.
    errors: String,
}

/// Runs mamba_ssm on `inputs` and checks its out_z and gradients against ours.
fn compare(
    m: &MambaSsm,
    stream: &Arc<CudaStream>,
    dims: ScanDims,
    inputs: [&CudaSlice<f32>; 9],
    out: &CudaSlice<f32>,
    grads: &cuda::DevScanGrads,
) -> Result<Comparison, String> {
    let theirs = run_mamba_ssm(m, stream, dims, inputs)?;
    let down = |s: &CudaSlice<f32>| stream.clone_dtoh(s).map_err(|e| e.to_string());
    let ours = [
        out,
        &grads.du,
        &grads.ddelta,
        &grads.da,
        &grads.db,
        &grads.dc,
        grads.dd.as_ref().ok_or("no dD")?,
        grads.dz.as_ref().ok_or("no dz")?,
        grads.ddelta_bias.as_ref().ok_or("no dδ_bias")?,
    ];
    let names = ["out", "du", "dδ", "dA", "dB", "dC", "dD", "dz", "dδ_bias"];
    let (mut agree, mut errors) = (true, String::new());
    for ((name, ours), theirs) in names.iter().zip(ours).zip(&theirs.results) {
        let e = common::rel_err(&down(ours)?, &down(theirs)?);
        agree &= e <= AGREEMENT;
        errors.push_str(&format!(" {name} {e:.1e}"));
    }
    Ok(Comparison {
        fwd_s: theirs.fwd_s,
        bwd_s: theirs.bwd_s,
        agree,
        errors,
    })
}

/// mamba_ssm's results on the same inputs: out_z then du, dδ, dA, dB, dC, dD, dz, dδ_bias.
struct MambaSsmRun {
    fwd_s: f64,
    bwd_s: f64,
    results: Vec<CudaSlice<f32>>,
}

/// Runs and times mamba_ssm's forward and backward on `inputs` (u, raw δ, A, B, C, D, z, δ
/// bias, dout). Its outputs are allocated once, outside the timing, as PyTorch's caching
/// allocator would serve them; the backward zeroes its accumulators itself, as mamba_ssm does.
fn run_mamba_ssm(
    m: &MambaSsm,
    stream: &Arc<CudaStream>,
    dims: ScanDims,
    inputs: [&CudaSlice<f32>; 9],
) -> Result<MambaSsmRun, String> {
    let ScanDims {
        batch,
        dim,
        len,
        dstate,
    } = dims;
    let bdl = batch * dim * len;
    let bnl = batch * dstate * len;
    let n_chunks = len.div_ceil(2048);
    let alloc = |count: usize| stream.alloc_zeros::<f32>(count).map_err(|e| e.to_string());
    let (out, x) = (alloc(bdl)?, alloc(batch * dim * n_chunks * dstate * 2)?);
    // out_z, then du, dδ, dA, dB, dC, dD, dz, dδ_bias.
    let results: Vec<CudaSlice<f32>> = [bdl, bdl, bdl, dim * dstate, bnl, bnl, dim, bdl, dim]
        .iter()
        .map(|&count| alloc(count))
        .collect::<Result<_, _>>()?;
    // The guards device_ptr returns only order other streams; everything here is on `stream`.
    let ptr = |s: &CudaSlice<f32>| s.device_ptr(stream).0;
    let [u, delta, a, b, c, d, z, bias, dout] = inputs;
    let r = |i: usize| ptr(&results[i]);
    let s = MambaSsmScan {
        batch: as_i32(batch)?,
        dim: as_i32(dim)?,
        seqlen: as_i32(len)?,
        dstate: as_i32(dstate)?,
        delta_softplus: 1,
        u: ptr(u),
        delta: ptr(delta),
        a: ptr(a),
        b: ptr(b),
        c: ptr(c),
        d: ptr(d),
        z: ptr(z),
        delta_bias: ptr(bias),
        out: ptr(&out),
        x: ptr(&x),
        out_z: r(0),
        dout: ptr(dout),
        du: r(1),
        ddelta: r(2),
        da: r(3),
        db: r(4),
        dc: r(5),
        dd: r(6),
        dz: r(7),
        ddelta_bias: r(8),
    };
    let fwd_s = time_checked(stream, &mut || MambaSsm::call(m.fwd, &s, stream))?;
    let bwd_s = time_checked(stream, &mut || MambaSsm::call(m.bwd, &s, stream))?;
    stream.synchronize().map_err(|e| e.to_string())?;
    Ok(MambaSsmRun {
        fwd_s,
        bwd_s,
        results,
    })
}

fn as_i32(v: usize) -> Result<i32, String> {
    i32::try_from(v).map_err(|_| format!("{v} does not fit mamba_ssm's int sizes"))
}

/// [`time`] for a fallible call: the first error ends it.
fn time_checked(
    stream: &CudaStream,
    f: &mut dyn FnMut() -> Result<(), String>,
) -> Result<f64, String> {
    let mut first = Ok(());
    let t = time(stream, &mut || {
        if first.is_ok() {
            first = f();
        }
    });
    first.map(|()| t)
}
