//! The CUDA selective scan against the GPU's memory-bandwidth floor (feature `cuda`).
//!
//! For Mamba-like shapes, times the forward and backward scan kernels on device buffers and
//! compares each with the time it takes just to move the bytes the kernel must read and write
//! at the GPU's peak DRAM bandwidth (memory clock × bus width × 2, from the driver's device
//! attributes). The scan is memory-bound by design, so the ratio time / floor says how far the
//! kernel is from optimal. Prints a message and exits 0 when no GPU is present.
//!
//! Run: `cargo bench -p seqlab-ssm --features cuda --bench cuda_scan`.

use std::time::Instant;

use seqlab_ssm::cuda::cudarc::driver::sys::CUdevice_attribute;
use seqlab_ssm::cuda::{self, DevBc, DevScanArgs, GpuContext, KernelLoader, SCAN_TILE};
use seqlab_ssm::selective_scan::ScanDims;

fn main() {
    let g = match GpuContext::new(0) {
        Ok(g) => g,
        Err(e) => {
            println!("skipping the CUDA scan benchmark: {e}");
            return;
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
        "{:>5} {:>5} {:>6} {:>3} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6}",
        "batch", "dim", "len", "N", "fwd ms", "floor ms", "ratio", "bwd ms", "floor ms", "ratio"
    );
    for &(batch, dim, len, n) in &[
        (1, 1536, 2048, 16),
        (8, 1536, 2048, 16),
        (4, 2048, 8192, 16),
        (2, 5120, 4096, 16),
    ] {
        let dims = ScanDims {
            batch,
            dim,
            len,
            dstate: n,
        };
        let fill = |len: usize, v: f32| stream.clone_htod(&vec![v; len]).unwrap();
        let bdl = batch * dim * len;
        let (u, delta, z) = (fill(bdl, 0.5), fill(bdl, -1.0), fill(bdl, 0.3));
        let a = fill(dim * n, -1.0);
        let (bm, cm) = (fill(batch * n * len, 0.1), fill(batch * n * len, 0.2));
        let d = fill(dim, 1.0);
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
            delta_bias: None,
            initial_state: None,
            seq_idx: None,
        };
        let time = |f: &dyn Fn()| {
            f(); // warm-up (and compile)
            stream.synchronize().unwrap();
            let reps = 10;
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            stream.synchronize().unwrap();
            t.elapsed().as_secs_f64() / reps as f64
        };
        let fwd = time(&|| {
            cuda::scan_fwd_dev(&g, &args, true, SCAN_TILE).unwrap();
        });
        let saved = cuda::scan_fwd_dev(&g, &args, true, SCAN_TILE)
            .unwrap()
            .saved;
        let dout = fill(bdl, 1.0);
        let bwd = time(&|| {
            cuda::scan_bwd_dev(&g, &args, true, &saved.as_view(), &dout.as_view(), None).unwrap();
        });
        // Bytes each kernel must move at least (f32): forward reads u, δ, z, B, C, writes out;
        // backward reads u, δ, z, B, C, dout and writes du, dδ, dz, dB, dC.
        let bc = 2 * batch * n * len;
        let fwd_bytes = 4.0 * (4 * bdl + bc) as f64;
        let bwd_bytes = 4.0 * (7 * bdl + 2 * bc) as f64;
        let (ff, bf) = (fwd_bytes / peak, bwd_bytes / peak);
        println!(
            "{batch:>5} {dim:>5} {len:>6} {n:>3} | {:>9.3} {:>9.3} {:>6.1} | {:>9.3} {:>9.3} {:>6.1}",
            fwd * 1e3,
            ff * 1e3,
            fwd / ff,
            bwd * 1e3,
            bf * 1e3,
            bwd / bf
        );
    }
}
