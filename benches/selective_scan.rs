//! Criterion benchmarks of the CPU state-space kernels at a Mamba-sized layer
//! (batch 4, d_inner 512, length 1024, d_state 16, width 4).
//!
//! Run: `cargo bench --bench selective_scan`; numbers are recorded in benches/RESULTS.md.
//! Throughput is reported in state updates (batch · d_inner · length · d_state) for the scan,
//! in output elements for the convolution, and in flops (2·n³) for the f32 matmul that sets the
//! machine's peak (candle's CPU gemm), the yardstick the scan is compared with.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab::ssm::{
    causal_conv1d_bwd, causal_conv1d_fwd, selective_scan_bwd, selective_scan_fwd, AMatrix,
    BcMatrix, Conv1dArgs, Conv1dDims, ScanArgs, ScanConfig, ScanDims,
};
use std::hint::black_box;

const BATCH: usize = 4;
const DIM: usize = 512;
const LEN: usize = 1024;
const DSTATE: usize = 16;
const WIDTH: usize = 4;

fn uniform(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Mamba's configuration: real A, input-dependent B and C, D skip, z gate, softplus(δ + bias).
fn scan(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let (b, d, l, n) = (BATCH, DIM, LEN, DSTATE);
    let u = uniform(&mut rng, b * d * l, -1.0, 1.0);
    let delta = uniform(&mut rng, b * d * l, -3.0, 0.0);
    let z = uniform(&mut rng, b * d * l, -1.0, 1.0);
    let a = uniform(&mut rng, d * n, -16.0, -1.0);
    let bm = uniform(&mut rng, b * n * l, -1.0, 1.0);
    let cm = uniform(&mut rng, b * n * l, -1.0, 1.0);
    let skip = uniform(&mut rng, d, -1.0, 1.0);
    let bias = uniform(&mut rng, d, -1.0, 1.0);
    let dims = ScanDims {
        batch: b,
        dim: d,
        len: l,
        dstate: n,
    };
    let args = ScanArgs::new(
        dims,
        &u,
        &delta,
        AMatrix::Real(&a),
        BcMatrix::Var(&bm),
        BcMatrix::Var(&cm),
    )
    .with_d(&skip)
    .with_z(&z)
    .with_delta_bias(&bias);
    let cfg = ScanConfig {
        delta_softplus: true,
        ..ScanConfig::default()
    };
    let saved = selective_scan_fwd(&args, &cfg).expect("scan").saved;

    let mut group = c.benchmark_group("selective_scan_f32");
    group.sample_size(10);
    group.throughput(Throughput::Elements((b * d * l * n) as u64));
    group.bench_function("forward", |bench| {
        bench.iter(|| selective_scan_fwd(black_box(&args), &cfg).expect("scan"))
    });
    group.bench_function("backward", |bench| {
        bench.iter(|| {
            selective_scan_bwd(black_box(&args), &cfg, Some(&saved), &u, None).expect("bwd")
        })
    });
    group.finish();
}

/// Depthwise causal conv1d with bias and fused SiLU, as in the Mamba block.
fn conv1d(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2);
    let x = uniform(&mut rng, BATCH * DIM * LEN, -1.0, 1.0);
    let w = uniform(&mut rng, DIM * WIDTH, -0.5, 0.5);
    let bias = uniform(&mut rng, DIM, -0.5, 0.5);
    let dims = Conv1dDims {
        batch: BATCH,
        dim: DIM,
        len: LEN,
        width: WIDTH,
    };
    let args = Conv1dArgs::new(dims, &x, &w)
        .with_bias(&bias)
        .with_silu(true);

    let mut group = c.benchmark_group("causal_conv1d_f32");
    group.sample_size(10);
    group.throughput(Throughput::Elements((BATCH * DIM * LEN) as u64));
    group.bench_function("forward", |bench| {
        bench.iter(|| causal_conv1d_fwd(black_box(&args)).expect("conv"))
    });
    group.bench_function("backward", |bench| {
        bench.iter(|| causal_conv1d_bwd(black_box(&args), &x).expect("conv bwd"))
    });
    group.finish();
}

/// The machine's f32 matmul rate through candle (gemm), 1024 × 1024 × 1024.
fn matmul_peak(c: &mut Criterion) {
    use seqlab::tensor::candle_core::{Device, Tensor};
    const N: usize = 1024;
    let a = Tensor::randn(0f32, 1.0, (N, N), &Device::Cpu).expect("randn");
    let b = Tensor::randn(0f32, 1.0, (N, N), &Device::Cpu).expect("randn");
    let mut group = c.benchmark_group("matmul_peak_f32");
    group.sample_size(10);
    group.throughput(Throughput::Elements((2 * N * N * N) as u64));
    group.bench_function("1024x1024x1024", |bench| {
        bench.iter(|| black_box(&a).matmul(black_box(&b)).expect("matmul"))
    });
    group.finish();
}

criterion_group!(benches, scan, conv1d, matmul_peak);
criterion_main!(benches);
