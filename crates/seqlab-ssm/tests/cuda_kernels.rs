//! Every CUDA kernel against its CPU twin on fresh random inputs (feature `cuda`).
//!
//! Outputs are poisoned (NaN-filled before each launch, [`cuda::set_poison_outputs`]) so an
//! element a kernel forgets to write fails the comparison. Shapes are odd on purpose (1s,
//! primes, non-multiples of the 512-position tile) and include sequences that cross several
//! tile and `chunk_len` boundaries. Without a GPU or driver every test prints why it is skipped
//! and passes, unless `SEQLAB_REQUIRE_GPU` is set.
//!
//! Run: `cargo test -p seqlab-ssm --features cuda --test ssm cuda_kernels:: -- --nocapture`. Without
//! a GPU, `.ci/cuda-emulator-test` runs them on the CPU emulator of `kernels/emulator` (a CI step).
#![cfg(feature = "cuda")]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab_ssm::cuda::{self, GpuContext};
use seqlab_ssm::selective_scan::{AMatrix, BcMatrix, ScanArgs, ScanConfig, ScanDims};
use seqlab_ssm::{Conv1dArgs, Conv1dDims, StepArgs, StepDims};

/// The GPU, or `None` after printing why the test is skipped (a failure instead when
/// `SEQLAB_REQUIRE_GPU` is set, as `.ci/cuda-emulator-test` does).
fn gpu(test: &str) -> Option<GpuContext> {
    match GpuContext::new(0) {
        Ok(g) => {
            cuda::set_poison_outputs(true);
            if let Ok(name) = g.device_name() {
                eprintln!("{test}: on {name}");
            }
            Some(g)
        }
        Err(e) if std::env::var_os("SEQLAB_REQUIRE_GPU").is_some() => {
            panic!("{test}: SEQLAB_REQUIRE_GPU is set but {e}")
        }
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

fn rand_vec(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// max |got − want| / (atol + rtol·|want|) must be ≤ 1; NaN anywhere fails.
fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{what}[{i}] = {g} (want {w}): not written or not finite"
        );
        let r = (g - w).abs() / (atol + rtol * w.abs());
        if r > worst.0 {
            worst = (r, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 1.0,
        "{what}[{i}]: got {} want {} (error ratio {})",
        got[i],
        want[i],
        worst.0
    );
}

#[derive(Clone, Copy, Debug)]
enum Bc {
    Var,
    Grouped(usize),
    Const,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    batch: usize,
    dim: usize,
    len: usize,
    dstate: usize,
    b: Bc,
    c: Bc,
    complex: bool,
    options: bool,
    seq: bool,
}

struct CaseData {
    u: Vec<f32>,
    delta: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    d: Vec<f32>,
    z: Vec<f32>,
    bias: Vec<f32>,
    init: Vec<f32>,
    seq: Vec<i32>,
}

impl Case {
    fn data(&self, rng: &mut StdRng) -> CaseData {
        let Case {
            batch,
            dim,
            len,
            dstate,
            ..
        } = *self;
        let w = if self.complex { 2 } else { 1 };
        let bc_len = |m: Bc| match m {
            Bc::Var => batch * dstate * len * w,
            Bc::Grouped(g) => batch * g * dstate * len * w,
            Bc::Const => dim * dstate * w,
        };
        // A with negative real parts (a stable SSM, as Mamba's −exp(A_log)).
        let a = (0..dim * dstate * w)
            .map(|i| {
                if i % w == 0 {
                    -rng.random_range(0.05f32..2.0)
                } else {
                    rng.random_range(-3.0f32..3.0)
                }
            })
            .collect();
        let mut seq = vec![0i32; batch * len];
        for bi in 0..batch {
            let mut id = 0;
            for t in 0..len {
                if t > 0 && rng.random_range(0..97) == 0 {
                    id += 1;
                }
                seq[bi * len + t] = id;
            }
        }
        CaseData {
            u: rand_vec(rng, batch * dim * len, -1.0, 1.0),
            delta: rand_vec(rng, batch * dim * len, -3.0, 0.5),
            a,
            b: rand_vec(rng, bc_len(self.b), -1.0, 1.0),
            c: rand_vec(rng, bc_len(self.c), -1.0, 1.0),
            d: rand_vec(rng, dim, -1.0, 1.0),
            z: rand_vec(rng, batch * dim * len, -2.0, 2.0),
            bias: rand_vec(rng, dim, -0.5, 0.5),
            init: rand_vec(rng, batch * dim * dstate * w, -1.0, 1.0),
            seq,
        }
    }

    fn args<'a>(&self, x: &'a CaseData) -> ScanArgs<'a, f32> {
        let dims = ScanDims {
            batch: self.batch,
            dim: self.dim,
            len: self.len,
            dstate: self.dstate,
        };
        let bc = |m: Bc, v: &'a [f32]| match m {
            Bc::Var => BcMatrix::Var(v),
            Bc::Grouped(groups) => BcMatrix::Grouped { data: v, groups },
            Bc::Const => BcMatrix::Const(v),
        };
        let a = if self.complex {
            AMatrix::Complex(&x.a)
        } else {
            AMatrix::Real(&x.a)
        };
        let mut args = ScanArgs::new(dims, &x.u, &x.delta, a, bc(self.b, &x.b), bc(self.c, &x.c));
        if self.options {
            args = args
                .with_d(&x.d)
                .with_z(&x.z)
                .with_delta_bias(&x.bias)
                .with_initial_state(&x.init);
        }
        if self.seq {
            args = args.with_seq_idx(&x.seq);
        }
        args
    }
}

fn scan_cases() -> Vec<Case> {
    let base = Case {
        batch: 1,
        dim: 1,
        len: 1,
        dstate: 1,
        b: Bc::Var,
        c: Bc::Var,
        complex: false,
        options: false,
        seq: false,
    };
    vec![
        base,
        Case {
            batch: 2,
            dim: 3,
            len: 37,
            dstate: 5,
            ..base
        },
        Case {
            batch: 1,
            dim: 4,
            len: 513,
            dstate: 16,
            options: true,
            ..base
        },
        Case {
            batch: 2,
            dim: 6,
            len: 1500,
            dstate: 7,
            b: Bc::Grouped(3),
            c: Bc::Const,
            options: true,
            seq: true,
            ..base
        },
        Case {
            batch: 1,
            dim: 3,
            len: 2100,
            dstate: 16,
            b: Bc::Const,
            c: Bc::Grouped(3),
            options: true,
            ..base
        },
        Case {
            batch: 2,
            dim: 2,
            len: 777,
            dstate: 4,
            complex: true,
            options: true,
            seq: true,
            ..base
        },
        // One state and no options across tiles: the fewest barriers between the tile-end write
        // of the carried state and its read in the next tile.
        Case {
            batch: 1,
            dim: 2,
            len: 1100,
            dstate: 1,
            ..base
        },
        Case {
            batch: 1,
            dim: 2,
            len: 5000,
            dstate: 3,
            complex: true,
            b: Bc::Const,
            c: Bc::Const,
            ..base
        },
    ]
}

#[test]
fn selective_scan_fwd_matches_cpu() {
    let Some(g) = gpu("selective_scan_fwd_matches_cpu") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(8);
    for case in scan_cases() {
        for (softplus, chunk_len) in [(true, 512), (false, 100), (true, 7)] {
            let mut data = case.data(&mut rng);
            if !softplus {
                // Without softplus the raw step is used as is: keep δ + bias > 0 (bias ≥ −0.5),
                // or exp(δ·A) grows past f32 over a long sequence on both sides.
                for v in &mut data.delta {
                    *v = v.exp().ln_1p() + 0.5;
                }
            }
            let args = case.args(&data);
            let cfg = ScanConfig {
                delta_softplus: softplus,
                chunk_len,
                return_last_state: true,
            };
            let cpu = seqlab_ssm::selective_scan_fwd(&args, &cfg).unwrap();
            let gpu = cuda::selective_scan_fwd(&g, &args, &cfg).unwrap();
            let what = format!("{case:?} softplus={softplus} chunk={chunk_len}");
            assert_close(&format!("out {what}"), &gpu.out, &cpu.out, 1e-4, 1e-3);
            assert_close(
                &format!("last_state {what}"),
                gpu.last_state.as_deref().unwrap(),
                cpu.last_state.as_deref().unwrap(),
                1e-4,
                1e-3,
            );
            assert_close(
                &format!("saved {what}"),
                &gpu.saved_states,
                cpu.saved.states(),
                1e-4,
                1e-3,
            );
        }
    }
}

#[test]
fn selective_scan_bwd_matches_cpu() {
    let Some(g) = gpu("selective_scan_bwd_matches_cpu") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(9);
    for case in scan_cases() {
        let data = case.data(&mut rng);
        let args = case.args(&data);
        let cfg = ScanConfig {
            delta_softplus: true,
            chunk_len: 64,
            return_last_state: true,
        };
        let w = if case.complex { 2 } else { 1 };
        let n_out = case.batch * case.dim * case.len;
        let dout = rand_vec(&mut rng, n_out, -1.0, 1.0);
        let dlast = rand_vec(&mut rng, case.batch * case.dim * case.dstate * w, -1.0, 1.0);
        let cpu = seqlab_ssm::selective_scan_bwd(&args, &cfg, None, &dout, Some(&dlast)).unwrap();
        let gpu = cuda::selective_scan_bwd(&g, &args, &cfg, &dout, Some(&dlast)).unwrap();
        let what = format!("{case:?}");
        // Sums over long sequences (dA, dD, dbias, constant dB/dC) accumulate in a different
        // order on the GPU: a looser relative tolerance.
        assert_close(&format!("du {what}"), &gpu.du, &cpu.du, 1e-4, 2e-3);
        assert_close(
            &format!("ddelta {what}"),
            &gpu.ddelta,
            &cpu.ddelta,
            1e-4,
            2e-3,
        );
        assert_close(&format!("dA {what}"), &gpu.da, &cpu.da, 1e-3, 5e-3);
        assert_close(&format!("dB {what}"), &gpu.db, &cpu.db, 1e-3, 5e-3);
        assert_close(&format!("dC {what}"), &gpu.dc, &cpu.dc, 1e-3, 5e-3);
        for (name, gg, cc) in [
            ("dD", &gpu.dd, &cpu.dd),
            ("dz", &gpu.dz, &cpu.dz),
            ("ddelta_bias", &gpu.ddelta_bias, &cpu.ddelta_bias),
            ("dinitial_state", &gpu.dinitial_state, &cpu.dinitial_state),
        ] {
            assert_eq!(gg.is_some(), cc.is_some(), "{name} presence {what}");
            if let (Some(gg), Some(cc)) = (gg, cc) {
                assert_close(&format!("{name} {what}"), gg, cc, 1e-3, 5e-3);
            }
        }
    }
}

#[test]
fn causal_conv1d_matches_cpu() {
    let Some(g) = gpu("causal_conv1d_matches_cpu") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(10);
    for &(batch, dim, len, width) in &[(1, 1, 1, 1), (2, 3, 17, 4), (1, 5, 1029, 3), (3, 2, 300, 2)]
    {
        for opts in [false, true] {
            let dims = Conv1dDims {
                batch,
                dim,
                len,
                width,
            };
            let x = rand_vec(&mut rng, batch * dim * len, -1.0, 1.0);
            let w = rand_vec(&mut rng, dim * width, -1.0, 1.0);
            let bias = rand_vec(&mut rng, dim, -1.0, 1.0);
            let init = rand_vec(&mut rng, batch * dim * (width - 1), -1.0, 1.0);
            let seq: Vec<i32> = (0..batch * len).map(|i| ((i % len) / 11) as i32).collect();
            let mut args = Conv1dArgs::new(dims, &x, &w);
            if opts {
                args = args
                    .with_bias(&bias)
                    .with_initial_state(&init)
                    .with_seq_idx(&seq)
                    .with_silu(true);
            }
            let what = format!("{dims:?} options={opts}");
            let cpu = seqlab_ssm::causal_conv1d_fwd(&args).unwrap();
            let gpu = cuda::causal_conv1d_fwd(&g, &args).unwrap();
            assert_close(&format!("conv out {what}"), &gpu, &cpu, 1e-5, 1e-4);
            let dout = rand_vec(&mut rng, batch * dim * len, -1.0, 1.0);
            let cpu = seqlab_ssm::causal_conv1d_bwd(&args, &dout).unwrap();
            let gpu = cuda::causal_conv1d_bwd(&g, &args, &dout).unwrap();
            assert_close(&format!("dx {what}"), &gpu.dx, &cpu.dx, 1e-5, 1e-4);
            assert_close(
                &format!("dw {what}"),
                &gpu.dweight,
                &cpu.dweight,
                1e-4,
                1e-3,
            );
            assert_eq!(gpu.dbias.is_some(), cpu.dbias.is_some());
            if let (Some(a), Some(b)) = (&gpu.dbias, &cpu.dbias) {
                assert_close(&format!("dbias {what}"), a, b, 1e-4, 1e-3);
            }
            assert_eq!(gpu.dinitial_state.is_some(), cpu.dinitial_state.is_some());
            if let (Some(a), Some(b)) = (&gpu.dinitial_state, &cpu.dinitial_state) {
                assert_close(&format!("dinit {what}"), a, b, 1e-5, 1e-4);
            }
            // Step mode over a few tokens, state S = width (Mamba) and S = width − 1.
            for s_len in [width, width - 1] {
                let steps = 3.min(len);
                let xs: Vec<f32> = (0..batch * dim)
                    .flat_map(|r| x[r * len..r * len + steps].to_vec())
                    .collect();
                let mut st_cpu = rand_vec(&mut rng, batch * dim * s_len, -1.0, 1.0);
                let mut st_gpu = st_cpu.clone();
                let sd = Conv1dDims { len: steps, ..dims };
                let b = opts.then_some(&bias[..]);
                let cpu = seqlab_ssm::causal_conv1d_update(sd, &xs, &mut st_cpu, &w, b, opts);
                let gpu = cuda::causal_conv1d_update(&g, sd, &xs, &mut st_gpu, &w, b, opts);
                match (cpu, gpu) {
                    (Ok(c), Ok(gv)) => {
                        assert_close(&format!("update out {what} S={s_len}"), &gv, &c, 1e-5, 1e-4);
                        assert_close(&format!("update state {what}"), &st_gpu, &st_cpu, 0.0, 0.0);
                    }
                    (Err(_), Err(_)) => {}
                    (c, gv) => panic!("update {what} S={s_len}: cpu {c:?} vs gpu {gv:?}"),
                }
            }
        }
    }
}

#[test]
fn selective_state_update_matches_cpu() {
    let Some(g) = gpu("selective_state_update_matches_cpu") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(11);
    for dims in [
        StepDims::mamba1(1, 1, 1),
        StepDims::mamba1(3, 37, 16),
        StepDims {
            batch: 2,
            nheads: 6,
            headdim: 5,
            dstate: 67,
            ngroups: 3,
        },
    ] {
        let bhp = dims.batch * dims.nheads * dims.headdim;
        let hp = dims.nheads * dims.headdim;
        let x = rand_vec(&mut rng, bhp, -1.0, 1.0);
        let dt = rand_vec(&mut rng, bhp, -3.0, 1.0);
        let a: Vec<f32> = rand_vec(&mut rng, hp * dims.dstate, -2.0, -0.05);
        let bm = rand_vec(&mut rng, dims.batch * dims.ngroups * dims.dstate, -1.0, 1.0);
        let cm = rand_vec(&mut rng, dims.batch * dims.ngroups * dims.dstate, -1.0, 1.0);
        let d = rand_vec(&mut rng, hp, -1.0, 1.0);
        let z = rand_vec(&mut rng, bhp, -2.0, 2.0);
        let bias = rand_vec(&mut rng, hp, -0.5, 0.5);
        for opts in [false, true] {
            let mut args = StepArgs::new(dims, &x, &dt, &a, &bm, &cm);
            if opts {
                args = args
                    .with_d(&d)
                    .with_z(&z)
                    .with_dt_bias(&bias)
                    .with_dt_softplus(true);
            }
            let mut st_cpu = rand_vec(&mut rng, bhp * dims.dstate, -1.0, 1.0);
            let mut st_gpu = st_cpu.clone();
            let cpu = seqlab_ssm::selective_state_update(&mut st_cpu, &args).unwrap();
            let gpu = cuda::selective_state_update(&g, &mut st_gpu, &args).unwrap();
            let what = format!("{dims:?} options={opts}");
            assert_close(&format!("step out {what}"), &gpu, &cpu, 1e-5, 1e-4);
            assert_close(&format!("step state {what}"), &st_gpu, &st_cpu, 1e-5, 1e-4);
        }
    }
}

fn assert_close64(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{what}[{i}] = {g}: not written or not finite"
        );
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g} want {w}"
        );
    }
}

#[test]
fn s4_kernels_match_cpu() {
    let Some(g) = gpu("s4_kernels_match_cpu") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(12);
    let mut r64 = |n: usize, lo: f64, hi: f64| -> Vec<f64> {
        (0..n).map(|_| rng.random_range(lo..hi)).collect()
    };
    for &(h, n, l) in &[(1, 1, 1), (3, 32, 1000), (2, 300, 4097)] {
        let (xr, xi) = (r64(h * n, -0.5, -1e-3), r64(h * n, -50.0, 50.0));
        let (cr, ci) = (r64(h * n, -1.0, 1.0), r64(h * n, -1.0, 1.0));
        let mut cpu = vec![0.0; h * l];
        let mut gpu = vec![0.0; h * l];
        seqlab_ssm::s4::s4d_kernel::s4d_vandermonde_kernel(&xr, &xi, &cr, &ci, h, n, l, &mut cpu)
            .unwrap();
        cuda::s4d_vandermonde_kernel(&g, &xr, &xi, &cr, &ci, h, n, l, &mut gpu).unwrap();
        // Both sides are f64; the CPU's z^l recurrence and the GPU's direct exp(x·l) differ by
        // rounding that grows with l·|Im x|.
        assert_close64(
            &format!("vandermonde h={h} n={n} l={l}"),
            &gpu,
            &cpu,
            1e-7,
            1e-7,
        );
    }
    // n = 600 crosses two CY_TILE (256) boundaries of the shared-memory staging.
    for &(rows, n, lz) in &[(1, 1, 1), (4, 33, 129), (2, 256, 1025), (2, 600, 300)] {
        let (vr, vi) = (r64(rows * n, -1.0, 1.0), r64(rows * n, -1.0, 1.0));
        let (wr, wi) = (r64(rows * n, -1.0, -0.01), r64(rows * n, -40.0, 40.0));
        let (zr, zi) = (r64(lz, -2.0, 2.0), r64(lz, -2.0, 2.0));
        let (mut cr, mut ci) = (vec![0.0; rows * lz], vec![0.0; rows * lz]);
        let (mut gr, mut gi) = (vec![0.0; rows * lz], vec![0.0; rows * lz]);
        seqlab_ssm::s4::s4_kernel::cauchy(
            &vr, &vi, &wr, &wi, &zr, &zi, rows, n, lz, &mut cr, &mut ci,
        )
        .unwrap();
        cuda::cauchy(
            &g, &vr, &vi, &wr, &wi, &zr, &zi, rows, n, lz, &mut gr, &mut gi,
        )
        .unwrap();
        let what = format!("cauchy rows={rows} n={n} lz={lz}");
        assert_close64(&format!("{what} re"), &gr, &cr, 1e-8, 1e-8);
        assert_close64(&format!("{what} im"), &gi, &ci, 1e-8, 1e-8);
    }
}

/// S4's long convolution y = K ∗ u and its gradients against the CPU: the direct convolution
/// for y and the FFT backward for (∂u, ∂K), f64 and f32. L crosses the 256-position tiles
/// (257, 1000, 4099) and ∂K sums over batches of 1 to 3.
#[test]
fn long_conv_matches_cpu() {
    use seqlab_ssm::cuda::LongConvDims;
    use seqlab_ssm::s4::{direct_conv, fft_conv_bwd, FftConvPlan};
    let Some(g) = gpu("long_conv_matches_cpu") else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(14);
    for &(batch, h, l) in &[(1, 1, 1), (2, 3, 257), (3, 2, 1000), (1, 2, 4099)] {
        let dims = LongConvDims { batch, h, l };
        let what = format!("long_conv batch={batch} h={h} l={l}");
        let mut r64 =
            |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let (u, k, gy) = (r64(batch * h * l), r64(h * l), r64(batch * h * l));
        let mut want = vec![0.0; batch * h * l];
        direct_conv(&u, &k, None, batch, h, l, &mut want).unwrap();
        let (want_du, want_dk, _) =
            fft_conv_bwd(&FftConvPlan::new(l).unwrap(), &u, &k, None, batch, h, &gy).unwrap();
        let mut got = vec![0.0; batch * h * l];
        cuda::long_conv_fwd(&g, dims, &u, &k, &mut got).unwrap();
        let (du, dk) = cuda::long_conv_bwd(&g, dims, &u, &k, &gy).unwrap();
        // Sums of up to batch·L terms of size ≤ 1; the FFT's rounding is ~1e-15 of its scale.
        let tol = 1e-12 * (batch * l) as f64;
        assert_close64(&format!("{what} y f64"), &got, &want, tol, 1e-12);
        assert_close64(&format!("{what} du f64"), &du, &want_du, tol, 1e-12);
        assert_close64(&format!("{what} dk f64"), &dk, &want_dk, tol, 1e-12);

        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let mut got = vec![0.0f32; batch * h * l];
        cuda::long_conv_fwd(&g, dims, &f(&u), &f(&k), &mut got).unwrap();
        let (du, dk) = cuda::long_conv_bwd(&g, dims, &f(&u), &f(&k), &f(&gy)).unwrap();
        // f32 sums of up to batch·L terms: error ~ 1e-7·√(batch·L) of the terms' size.
        let tol = 2e-6 * ((batch * l) as f32).sqrt();
        assert_close(&format!("{what} y f32"), &got, &f(&want), tol, 1e-5);
        assert_close(&format!("{what} du f32"), &du, &f(&want_du), tol, 1e-5);
        assert_close(&format!("{what} dk f32"), &dk, &f(&want_dk), tol, 1e-5);
    }
    let bad = LongConvDims {
        batch: 1,
        h: 2,
        l: 3,
    };
    let err = cuda::long_conv_fwd(&g, bad, &[0.0f32; 5], &[0.0f32; 6], &mut [0.0f32; 6])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "u: expected shape (batch=1, h=2, l=3) = 6 elements, got 5"
    );
    let empty = LongConvDims { batch: 0, ..bad };
    let err = cuda::long_conv_bwd::<f32>(&g, empty, &[], &[0.0; 6], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("has an empty dimension"), "{err}");
}

/// The S4 convolution op on a CUDA device (`kernels/long_conv.cu`) against the CPU's FFT op:
/// output and the gradients of u and K, f32 and f64.
#[test]
fn candle_long_conv_op_on_cuda_matches_cpu() {
    use candle_core::{DType, Device, Tensor, Var};
    if gpu("candle_long_conv_op_on_cuda_matches_cpu").is_none() {
        return;
    }
    let dev = Device::new_cuda(0).expect("candle's CUDA device");
    let (batch, h, l) = (3, 4, 600);
    let mut rng = StdRng::seed_from_u64(15);
    let u = Tensor::from_vec(
        rand_vec(&mut rng, batch * h * l, -1.0, 1.0),
        (batch, h, l),
        &Device::Cpu,
    )
    .unwrap();
    let k = Tensor::from_vec(rand_vec(&mut rng, h * l, -1.0, 1.0), (h, l), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(
        rand_vec(&mut rng, batch * h * l, -1.0, 1.0),
        (batch, h, l),
        &Device::Cpu,
    )
    .unwrap();
    for dtype in [DType::F32, DType::F64] {
        let run = |device: &Device| {
            let cast = |t: &Tensor| t.to_dtype(dtype).unwrap().to_device(device).unwrap();
            let (u, k) = (
                Var::from_tensor(&cast(&u)).unwrap(),
                Var::from_tensor(&cast(&k)).unwrap(),
            );
            // A transposed (non-contiguous) u on the way in, as the S4 block passes it.
            let ut = u
                .as_tensor()
                .transpose(1, 2)
                .unwrap()
                .transpose(1, 2)
                .unwrap();
            let y = seqlab_ssm::s4::fft_conv_tensor(&ut, k.as_tensor()).unwrap();
            let loss = (&y * cast(&w)).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            [&y, grads.get(&u).unwrap(), grads.get(&k).unwrap()].map(|t| {
                t.to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
        };
        let (cpu, gpu) = (run(&Device::Cpu), run(&dev));
        for (name, (g, c)) in ["y", "du", "dk"].iter().zip(gpu.iter().zip(&cpu)) {
            assert_close(&format!("long conv op {dtype:?} {name}"), g, c, 2e-4, 1e-4);
        }
    }
}

/// The candle op on a CUDA device: forward values and gradients of every input match the CPU.
#[test]
fn candle_scan_op_on_cuda_matches_cpu() {
    use candle_core::{Device, Tensor, Var};
    if gpu("candle_scan_op_on_cuda_matches_cpu").is_none() {
        return;
    }
    // Our kernels' context opened, so candle's device (cuBLAS, cuRAND) must open too.
    let dev = Device::new_cuda(0).expect("candle's CUDA device");
    let (batch, dim, len, n) = (2, 3, 700, 5);
    let mut rng = StdRng::seed_from_u64(13);
    let mut mk = |shape: &[usize], lo: f32, hi: f32| {
        let v = rand_vec(&mut rng, shape.iter().product(), lo, hi);
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    };
    let host = [
        mk(&[batch, dim, len], -1.0, 1.0),
        mk(&[batch, dim, len], -3.0, 0.5),
        mk(&[dim, n], -2.0, -0.05),
        mk(&[batch, n, len], -1.0, 1.0),
        mk(&[batch, n, len], -1.0, 1.0),
        mk(&[dim], -1.0, 1.0),
        mk(&[batch, dim, len], -2.0, 2.0),
    ];
    let run = |device: &Device| {
        let vars: Vec<Var> = host
            .iter()
            .map(|t| Var::from_tensor(&t.to_device(device).unwrap()).unwrap())
            .collect();
        let args = seqlab_ssm::ScanTensors::new(&vars[0], &vars[1], &vars[2], &vars[3], &vars[4])
            .with_d(&vars[5])
            .with_z(&vars[6]);
        let cfg = ScanConfig {
            delta_softplus: true,
            ..ScanConfig::default()
        };
        let (out, last) = seqlab_ssm::selective_scan_tensor(&args, &cfg).unwrap();
        let loss = (out.sqr().unwrap().sum_all().unwrap() + last.sum_all().unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        let mut all = vec![out.flatten_all().unwrap().to_vec1::<f32>().unwrap()];
        for v in &vars {
            all.push(
                grads
                    .get(v)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            );
        }
        all
    };
    let cpu = run(&Device::Cpu);
    let gpu = run(&dev);
    for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        assert_close(&format!("candle op output/gradient {i}"), g, c, 1e-3, 5e-3);
    }
}

/// A kernel with a syntax error comes back as a one-line `CudaError::Compile` carrying NVRTC's
/// log (needs NVRTC only, no GPU).
#[test]
fn broken_kernel_is_a_compile_error() {
    let src = "extern \"C\" __global__ void k(float* x) { x[0] = 1.0f }";
    match cuda::compile::compile_uncached(cuda::KernelFile::S4Cauchy, src, 80) {
        Err(e @ cuda::CudaError::Compile { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("does not compile for sm_80"), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        Err(cuda::CudaError::Nvrtc(m)) => eprintln!("skipping: NVRTC unavailable: {m}"),
        other => panic!("expected a compile error, got {other:?}"),
    }
}
