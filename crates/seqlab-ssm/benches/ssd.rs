//! Criterion benchmark: Mamba-2's chunked SSD against Mamba-1's selective scan at the same
//! d_inner, prefill (forward) tokens/s, for d_state 64 and 128 (docs/ssm.md#ssd).
//!
//! Shape: batch 1, length 2048, d_inner 1024 (SSD: 16 heads × headdim 64, one B/C group, chunk
//! 64 and 256); the scan runs Mamba's configuration (softplus(δ + bias), D skip, input-dependent
//! B and C, no z gate — the SSD is compared without the gate as well). Both are the CPU f32
//! kernels with rayon on every core.
//!
//! Run: `cargo bench -p seqlab-ssm --bench ssd` (it lives in seqlab-ssm so that a release
//! build needs only the kernels' crate); numbers are recorded in benches/RESULTS.md. Throughput is in
//! tokens (batch · length) per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab_ssm::{
    selective_scan_fwd, ssd_chunked, AMatrix, BcMatrix, ScanArgs, ScanConfig, ScanDims, SsdDims,
    SsdInputs,
};
use std::hint::black_box;

const BATCH: usize = 1;
const LEN: usize = 2048;
const D_INNER: usize = 1024;
const HEADDIM: usize = 64;

fn uniform(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn prefill(c: &mut Criterion) {
    let mut group = c.benchmark_group("prefill_f32");
    group.sample_size(10);
    group.throughput(Throughput::Elements((BATCH * LEN) as u64));
    for n in [64, 128] {
        let mut rng = StdRng::seed_from_u64(n as u64);
        // Mamba-1: (batch, d_inner, len) layout.
        let (b, d, l) = (BATCH, D_INNER, LEN);
        let u = uniform(&mut rng, b * d * l, -1.0, 1.0);
        let delta = uniform(&mut rng, b * d * l, -3.0, 0.0);
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
        .with_delta_bias(&bias);
        let cfg = ScanConfig {
            delta_softplus: true,
            ..ScanConfig::default()
        };
        group.bench_function(format!("mamba1_scan/d_state_{n}"), |bench| {
            bench.iter(|| selective_scan_fwd(black_box(&args), &cfg).expect("scan"))
        });

        // Mamba-2 SSD: (batch, len, heads, headdim) layout, one group.
        let nheads = D_INNER / HEADDIM;
        let x = uniform(&mut rng, b * l * D_INNER, -1.0, 1.0);
        let dt = uniform(&mut rng, b * l * nheads, 0.001, 0.1);
        let a_h = uniform(&mut rng, nheads, -16.0, -1.0);
        let bs = uniform(&mut rng, b * l * n, -1.0, 1.0);
        let cs = uniform(&mut rng, b * l * n, -1.0, 1.0);
        let d_h = uniform(&mut rng, nheads, -1.0, 1.0);
        let inp = SsdInputs {
            x: &x,
            dt: &dt,
            a: &a_h,
            b: &bs,
            c: &cs,
            d: Some(&d_h),
            initial_state: None,
            seq_idx: None,
        };
        for chunk in [64, 256] {
            let dims = SsdDims {
                batch: b,
                seqlen: l,
                nheads,
                headdim: HEADDIM,
                ngroups: 1,
                dstate: n,
                chunk,
            };
            group.bench_function(format!("ssd_chunk_{chunk}/d_state_{n}"), |bench| {
                bench.iter(|| ssd_chunked(black_box(&dims), black_box(&inp)).expect("ssd"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, prefill);
criterion_main!(benches);
