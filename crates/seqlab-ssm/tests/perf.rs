//! Throughput smoke test of the f32 scan (not a benchmark; criterion benches live in benches/).
//! Run: `cargo test -p seqlab-ssm --release --test perf -- --ignored --nocapture`

mod common;

use std::time::Instant;

use seqlab_ssm::{
    selective_scan_bwd, selective_scan_fwd, AMatrix, BcMatrix, ScanArgs, ScanConfig, ScanDims,
};

#[test]
#[ignore = "timing; run with --release: cargo test -p seqlab-ssm --release --test perf -- --ignored --nocapture"]
fn scan_throughput() {
    let dims = ScanDims {
        batch: 4,
        dim: 512,
        len: 1024,
        dstate: 16,
    };
    let ScanDims {
        batch,
        dim,
        len,
        dstate: n,
    } = dims;
    let mut r = common::rng(1);
    let f = |v: Vec<f64>| common::f32s(&v);
    let u = f(common::uniform(&mut r, batch * dim * len, -1.0, 1.0));
    let delta = f(common::uniform(&mut r, batch * dim * len, -3.0, 0.0));
    let z = f(common::uniform(&mut r, batch * dim * len, -1.0, 1.0));
    let a = f(common::uniform(&mut r, dim * n, -16.0, -1.0));
    let b = f(common::uniform(&mut r, batch * n * len, -1.0, 1.0));
    let c = f(common::uniform(&mut r, batch * n * len, -1.0, 1.0));
    let d = f(common::uniform(&mut r, dim, -1.0, 1.0));
    let bias = f(common::uniform(&mut r, dim, -1.0, 1.0));
    let args = ScanArgs::new(
        dims,
        &u,
        &delta,
        AMatrix::Real(&a),
        BcMatrix::Var(&b),
        BcMatrix::Var(&c),
    )
    .with_d(&d)
    .with_z(&z)
    .with_delta_bias(&bias);
    let cfg = ScanConfig {
        delta_softplus: true,
        ..ScanConfig::default()
    };
    let updates = (batch * dim * len * n) as f64;
    let _ = selective_scan_fwd(&args, &cfg).unwrap(); // warm-up
    let t = Instant::now();
    let reps = 5;
    let mut saved = None;
    for _ in 0..reps {
        saved = Some(selective_scan_fwd(&args, &cfg).unwrap().saved);
    }
    let fwd = t.elapsed().as_secs_f64() / reps as f64;
    let t = Instant::now();
    for _ in 0..reps {
        selective_scan_bwd(&args, &cfg, saved.as_ref(), &u, None).unwrap();
    }
    let bwd = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "scan f32 {dims:?} on {} threads: forward {:.1} ms ({:.2} G state-updates/s), backward {:.1} ms ({:.2} G/s)",
        rayon::current_num_threads(),
        fwd * 1e3,
        updates / fwd / 1e9,
        bwd * 1e3,
        updates / bwd / 1e9
    );
}
