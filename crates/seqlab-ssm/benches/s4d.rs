//! S4D layer forward (kernel by Vandermonde + convolution + D skip) at L = 16384: FFT
//! convolution vs the direct O(L²) convolution, on the inputs `benches/compare/s4d_pytorch.py`
//! builds (same closed-form formulas), so the PyTorch reference formula can be timed on the
//! same data. `cargo bench -p seqlab-ssm --bench s4d`; threads: RAYON_NUM_THREADS.
//! Sizes: SEQLAB_S4D_H (32), SEQLAB_S4D_L (16384), batch 1, N = 64 (32 modes), S4D-Inv, ZOH.

use criterion::{criterion_group, criterion_main, Criterion};
use seqlab_ssm::s4::{
    direct_conv, fft_conv, s4d_init_a, s4d_kernel, Disc, FftConvPlan, S4dInit, S4dParams,
};
use std::hint::black_box;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The shared inputs (identical formulas in s4d_pytorch.py).
struct Inputs {
    h: usize,
    m: usize,
    l: usize,
    a_re: Vec<f64>,
    a_im: Vec<f64>,
    b_re: Vec<f64>,
    b_im: Vec<f64>,
    c_re: Vec<f64>,
    c_im: Vec<f64>,
    dt: Vec<f64>,
    d: Vec<f32>,
    u: Vec<f32>,
}

fn inputs(h: usize, l: usize) -> Inputs {
    let n = 64;
    let m = n / 2;
    let a = s4d_init_a(S4dInit::Inv, n).expect("init");
    let hm = h * m;
    let idx = |i: usize| i as f64;
    Inputs {
        h,
        m,
        l,
        a_re: (0..hm).map(|i| a[i % m].re).collect(),
        a_im: (0..hm).map(|i| a[i % m].im).collect(),
        b_re: vec![1.0; hm],
        b_im: vec![0.0; hm],
        c_re: (0..hm).map(|i| (0.37 * idx(i)).cos() * 0.5).collect(),
        c_im: (0..hm).map(|i| (0.53 * idx(i)).sin() * 0.5).collect(),
        // dt log-spaced in [1e-3, 1e-1] over the channels.
        dt: (0..h)
            .map(|i| {
                (1e-3f64.ln() + (1e-1f64.ln() - 1e-3f64.ln()) * idx(i) / (h.max(2) - 1) as f64)
                    .exp()
            })
            .collect(),
        d: (0..h).map(|i| (0.5 + 0.01 * idx(i)) as f32).collect(),
        u: (0..h * l)
            .map(|i| {
                ((0.001 * idx(i % l) * (idx(i / l) + 1.0)).sin() + 0.1 * (0.7 * idx(i)).cos())
                    as f32
            })
            .collect(),
    }
}

fn layer(inp: &Inputs, fft: Option<&FftConvPlan<f32>>) -> Vec<f32> {
    let p = S4dParams {
        h: inp.h,
        n: inp.m,
        a_re: &inp.a_re,
        a_im: &inp.a_im,
        b_re: &inp.b_re,
        b_im: &inp.b_im,
        c_re: &inp.c_re,
        c_im: &inp.c_im,
        dt: &inp.dt,
    };
    let k: Vec<f32> = s4d_kernel(&p, Disc::Zoh, inp.l, 1.0)
        .expect("kernel")
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let mut y = vec![0.0f32; inp.h * inp.l];
    match fft {
        Some(plan) => fft_conv(plan, &inp.u, &k, Some(&inp.d), 1, inp.h, &mut y).expect("fft"),
        None => direct_conv(&inp.u, &k, Some(&inp.d), 1, inp.h, inp.l, &mut y).expect("direct"),
    }
    y
}

fn bench(c: &mut Criterion) {
    let (h, l) = (env("SEQLAB_S4D_H", 32), env("SEQLAB_S4D_L", 16384));
    let inp = inputs(h, l);
    let plan = FftConvPlan::<f32>::new(l).expect("plan");
    let y_fft = layer(&inp, Some(&plan));
    let y_dir = layer(&inp, None);
    let max_ref = y_dir.iter().fold(0.0f32, |a, b| a.max(b.abs()));
    let max_diff = y_fft
        .iter()
        .zip(&y_dir)
        .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
    let sum: f64 = y_fft.iter().map(|&x| x as f64).sum();
    println!(
        "s4d parity: H={h} L={l} fft vs direct max|diff|/max|y| = {:.2e}; sum(y) = {sum:.6}; y[0,-1] = {}",
        max_diff / max_ref,
        y_fft[l - 1]
    );
    let mut g = c.benchmark_group(format!("s4d_layer_fwd_H{h}_L{l}"));
    g.sample_size(10);
    g.bench_function("kernel_only", |b| {
        b.iter(|| {
            let p = S4dParams {
                h: inp.h,
                n: inp.m,
                a_re: &inp.a_re,
                a_im: &inp.a_im,
                b_re: &inp.b_re,
                b_im: &inp.b_im,
                c_re: &inp.c_re,
                c_im: &inp.c_im,
                dt: &inp.dt,
            };
            black_box(s4d_kernel(&p, Disc::Zoh, inp.l, 1.0).expect("kernel"))
        })
    });
    g.bench_function("fft_conv", |b| {
        b.iter(|| black_box(layer(&inp, Some(&plan))))
    });
    g.bench_function("direct_conv", |b| b.iter(|| black_box(layer(&inp, None))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
