//! Selective scan: backward vs finite differences (f64 twin), chunking, initial state, packed
//! sequences, step mode, shape errors, and the candle op's gradients.

use crate::common;

use candle_core::{Device, Tensor, Var};
use common::{assert_close, slice_last, slice_last_i32, uniform};
use seqlab_ssm::{
    selective_scan_bwd, selective_scan_fwd, selective_scan_tensor, selective_state_update, AMatrix,
    BcMatrix, Float, ScanArgs, ScanConfig, ScanDims, ScanGrads, ScanTensors, SsmError, StepArgs,
    StepDims,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bk {
    Var,
    Grouped(usize),
    Const,
}

#[derive(Clone, Copy, Debug)]
struct Spec {
    dims: ScanDims,
    complex: bool,
    b: Bk,
    c: Bk,
    d: bool,
    z: bool,
    bias: bool,
    softplus: bool,
    init: bool,
    /// Document boundaries in row 0 (positions where a new document starts).
    seq: Option<&'static [usize]>,
    chunk: usize,
}

const DIMS: ScanDims = ScanDims {
    batch: 2,
    dim: 4,
    len: 11,
    dstate: 3,
};

fn full(complex: bool) -> Spec {
    Spec {
        dims: DIMS,
        complex,
        b: Bk::Var,
        c: Bk::Var,
        d: true,
        z: true,
        bias: true,
        softplus: true,
        init: true,
        seq: Some(&[3, 5]),
        chunk: 4,
    }
}

/// Owned scan inputs in precision T.
#[derive(Clone, Debug)]
struct Inputs<T> {
    spec: Spec,
    u: Vec<T>,
    delta: Vec<T>,
    a: Vec<T>,
    b: Vec<T>,
    c: Vec<T>,
    d: Option<Vec<T>>,
    z: Option<Vec<T>>,
    bias: Option<Vec<T>>,
    init: Option<Vec<T>>,
    seq: Option<Vec<i32>>,
}

const PARAMS: [&str; 9] = [
    "u",
    "delta",
    "A",
    "B",
    "C",
    "D",
    "z",
    "delta_bias",
    "initial_state",
];

impl Inputs<f64> {
    fn random(spec: Spec, seed: u64) -> Self {
        let mut r = common::rng(seed);
        let ScanDims {
            batch,
            dim,
            len,
            dstate: n,
        } = spec.dims;
        let w = if spec.complex { 2 } else { 1 };
        let bdl = batch * dim * len;
        let delta = if spec.softplus {
            uniform(&mut r, bdl, -2.0, 1.0)
        } else {
            uniform(&mut r, bdl, 0.05, 0.6)
        };
        let a = if spec.complex {
            (0..dim * n)
                .flat_map(|_| {
                    let re = -uniform(&mut r, 1, 0.1, 1.0)[0];
                    let im = uniform(&mut r, 1, -3.0, 3.0)[0];
                    [re, im]
                })
                .collect()
        } else {
            uniform(&mut r, dim * n, -2.0, -0.1)
        };
        let mut bc = |k: Bk| match k {
            Bk::Var => uniform(&mut r, batch * n * len * w, -1.0, 1.0),
            Bk::Grouped(g) => uniform(&mut r, batch * g * n * len * w, -1.0, 1.0),
            Bk::Const => uniform(&mut r, dim * n * w, -1.0, 1.0),
        };
        let (b, c) = (bc(spec.b), bc(spec.c));
        let d = spec.d.then(|| uniform(&mut r, dim, -1.0, 1.0));
        let z = spec.z.then(|| uniform(&mut r, bdl, -2.0, 2.0));
        let bias = spec.bias.then(|| uniform(&mut r, dim, -0.02, 0.02));
        let init = spec
            .init
            .then(|| uniform(&mut r, batch * dim * n * w, -1.0, 1.0));
        let seq = spec.seq.map(|starts| {
            // Row 0 is packed; the other rows hold one document.
            let mut s = vec![0i32; batch * len];
            for (t, v) in s[..len].iter_mut().enumerate() {
                *v = starts.iter().filter(|&&st| st <= t).count() as i32;
            }
            s
        });
        let u = uniform(&mut r, bdl, -1.0, 1.0);
        Self {
            spec,
            u,
            delta,
            a,
            b,
            c,
            d,
            z,
            bias,
            init,
            seq,
        }
    }

    fn param_mut(&mut self, name: &str) -> Option<&mut Vec<f64>> {
        match name {
            "u" => Some(&mut self.u),
            "delta" => Some(&mut self.delta),
            "A" => Some(&mut self.a),
            "B" => Some(&mut self.b),
            "C" => Some(&mut self.c),
            "D" => self.d.as_mut(),
            "z" => self.z.as_mut(),
            "delta_bias" => self.bias.as_mut(),
            "initial_state" => self.init.as_mut(),
            _ => unreachable!(),
        }
    }
}

fn grad_of<'g, T>(g: &'g ScanGrads<T>, name: &str) -> Option<&'g Vec<T>> {
    match name {
        "u" => Some(&g.du),
        "delta" => Some(&g.ddelta),
        "A" => Some(&g.da),
        "B" => Some(&g.db),
        "C" => Some(&g.dc),
        "D" => g.dd.as_ref(),
        "z" => g.dz.as_ref(),
        "delta_bias" => g.ddelta_bias.as_ref(),
        "initial_state" => g.dinitial_state.as_ref(),
        _ => unreachable!(),
    }
}

impl<T: Float> Inputs<T> {
    fn cast<U: Float>(&self) -> Inputs<U> {
        let cv = |v: &Vec<T>| common::cast::<T, U>(v);
        Inputs {
            spec: self.spec,
            u: cv(&self.u),
            delta: cv(&self.delta),
            a: cv(&self.a),
            b: cv(&self.b),
            c: cv(&self.c),
            d: self.d.as_ref().map(cv),
            z: self.z.as_ref().map(cv),
            bias: self.bias.as_ref().map(cv),
            init: self.init.as_ref().map(cv),
            seq: self.seq.clone(),
        }
    }

    fn args(&self) -> ScanArgs<'_, T> {
        fn bc<T>(k: Bk, data: &[T]) -> BcMatrix<'_, T> {
            match k {
                Bk::Var => BcMatrix::Var(data),
                Bk::Grouped(groups) => BcMatrix::Grouped { data, groups },
                Bk::Const => BcMatrix::Const(data),
            }
        }
        let a = if self.spec.complex {
            AMatrix::Complex(&self.a)
        } else {
            AMatrix::Real(&self.a)
        };
        let mut args = ScanArgs::new(
            self.spec.dims,
            &self.u,
            &self.delta,
            a,
            bc(self.spec.b, &self.b),
            bc(self.spec.c, &self.c),
        );
        args.d = self.d.as_deref();
        args.z = self.z.as_deref();
        args.delta_bias = self.bias.as_deref();
        args.initial_state = self.init.as_deref();
        args.seq_idx = self.seq.as_deref();
        args
    }

    fn cfg(&self) -> ScanConfig {
        ScanConfig {
            delta_softplus: self.spec.softplus,
            chunk_len: self.spec.chunk,
            return_last_state: true,
        }
    }

    /// (out, last_state).
    fn fwd(&self) -> (Vec<T>, Vec<T>) {
        let r = selective_scan_fwd(&self.args(), &self.cfg()).expect("forward");
        (r.out, r.last_state.expect("last state"))
    }

    fn bwd(&self, dout: &[T], dlast: &[T]) -> ScanGrads<T> {
        let f = selective_scan_fwd(&self.args(), &self.cfg()).expect("forward");
        selective_scan_bwd(&self.args(), &self.cfg(), Some(&f.saved), dout, Some(dlast))
            .expect("backward")
    }
}

fn f64v<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

/// Random cotangents (dout, dlast) for a spec.
fn cotangents(spec: Spec, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let ScanDims {
        batch,
        dim,
        len,
        dstate,
    } = spec.dims;
    let w = if spec.complex { 2 } else { 1 };
    let mut r = common::rng(seed);
    (
        uniform(&mut r, batch * dim * len, -1.0, 1.0),
        uniform(&mut r, batch * dim * dstate * w, -1.0, 1.0),
    )
}

fn loss(x: &Inputs<f64>, r1: &[f64], r2: &[f64]) -> f64 {
    let (out, last) = x.fwd();
    out.iter().zip(r1).map(|(a, b)| a * b).sum::<f64>()
        + last.iter().zip(r2).map(|(a, b)| a * b).sum::<f64>()
}

/// Every gradient of `spec` against central differences of the f64 scan.
fn check_fd(spec: Spec, seed: u64) {
    let x = Inputs::random(spec, seed);
    let (r1, r2) = cotangents(spec, seed + 1000);
    let g = x.bwd(&r1, &r2);
    let eps = 1e-5;
    let mut checked = 0;
    for name in PARAMS {
        let mut xp = x.clone();
        let Some(n) = xp.param_mut(name).map(|v| v.len()) else {
            assert!(
                grad_of(&g, name).is_none(),
                "{name}: grad for an absent input"
            );
            continue;
        };
        let an = grad_of(&g, name).unwrap_or_else(|| panic!("{name}: no gradient"));
        assert_eq!(an.len(), n, "{name}: gradient length");
        let mut fd = vec![0.0; n];
        for (i, fdi) in fd.iter_mut().enumerate() {
            let orig = xp.param_mut(name).unwrap()[i];
            xp.param_mut(name).unwrap()[i] = orig + eps;
            let lp = loss(&xp, &r1, &r2);
            xp.param_mut(name).unwrap()[i] = orig - eps;
            let lm = loss(&xp, &r1, &r2);
            xp.param_mut(name).unwrap()[i] = orig;
            *fdi = (lp - lm) / (2.0 * eps);
        }
        assert!(
            fd.iter().any(|v| v.abs() > 1e-6),
            "{name}: finite differences all ~0, the check would be vacuous"
        );
        assert_close(&format!("{spec:?} d{name}"), an, &fd, 1e-6);
        checked += n;
    }
    assert!(checked > 0);
}

#[test]
fn backward_matches_finite_differences_real() {
    // All options, chunk 4 < len 11 (not a multiple), packed row 0, initial state.
    check_fd(full(false), 1);
    // One chunk covering the sequence.
    check_fd(
        Spec {
            chunk: 64,
            ..full(false)
        },
        2,
    );
    // Chunk of 1.
    check_fd(
        Spec {
            chunk: 1,
            seq: None,
            ..full(false)
        },
        3,
    );
    // Grouped B, constant C, no softplus, no z, no initial state.
    check_fd(
        Spec {
            b: Bk::Grouped(2),
            c: Bk::Const,
            z: false,
            softplus: false,
            init: false,
            seq: None,
            chunk: 3,
            ..full(false)
        },
        4,
    );
    // Constant B, grouped C, no D, no bias.
    check_fd(
        Spec {
            b: Bk::Const,
            c: Bk::Grouped(4),
            d: false,
            bias: false,
            chunk: 5,
            ..full(false)
        },
        5,
    );
    // Nothing optional.
    check_fd(
        Spec {
            d: false,
            z: false,
            bias: false,
            softplus: false,
            init: false,
            seq: None,
            ..full(false)
        },
        6,
    );
}

#[test]
fn backward_matches_finite_differences_complex() {
    check_fd(full(true), 11);
    check_fd(
        Spec {
            chunk: 64,
            ..full(true)
        },
        12,
    );
    check_fd(
        Spec {
            b: Bk::Const,
            c: Bk::Const,
            z: false,
            bias: false,
            softplus: false,
            seq: None,
            chunk: 3,
            ..full(true)
        },
        13,
    );
    check_fd(
        Spec {
            b: Bk::Grouped(2),
            c: Bk::Var,
            d: false,
            init: false,
            chunk: 5,
            ..full(true)
        },
        14,
    );
}

#[test]
fn f32_backward_matches_f64_backward() {
    for spec in [full(false), full(true)] {
        let x = Inputs::random(spec, 21);
        let (r1, r2) = cotangents(spec, 22);
        let g64 = x.bwd(&r1, &r2);
        let x32 = x.cast::<f32>();
        let g32 = x32.bwd(&common::f32s(&r1), &common::f32s(&r2));
        for name in PARAMS {
            let (a, b) = (grad_of(&g32, name), grad_of(&g64, name));
            assert_eq!(a.is_some(), b.is_some(), "{name}");
            if let (Some(a), Some(b)) = (a, b) {
                assert_close(&format!("f32 vs f64 d{name}"), &f64v(a), b, 2e-5);
            }
        }
    }
}

#[test]
fn chunked_equals_unchunked_bitwise() {
    for complex in [false, true] {
        let base = Inputs::random(
            Spec {
                chunk: 512,
                ..full(complex)
            },
            31,
        )
        .cast::<f32>();
        let (r1, r2) = cotangents(base.spec, 32);
        let (r1, r2) = (common::f32s(&r1), common::f32s(&r2));
        let (out0, last0) = base.fwd();
        let g0 = base.bwd(&r1, &r2);
        // Backward without saved states (recomputed) equals backward with them.
        let g_nosave =
            selective_scan_bwd(&base.args(), &base.cfg(), None, &r1, Some(&r2)).expect("bwd");
        for name in PARAMS {
            assert_eq!(
                grad_of(&g_nosave, name),
                grad_of(&g0, name),
                "{name} (no saved)"
            );
        }
        for chunk in [1, 3, 4, 10, 11] {
            let mut x = base.clone();
            x.spec.chunk = chunk;
            let (out, last) = x.fwd();
            assert_eq!(out, out0, "out, chunk {chunk}");
            assert_eq!(last, last0, "last state, chunk {chunk}");
            let g = x.bwd(&r1, &r2);
            for name in PARAMS {
                assert_eq!(
                    grad_of(&g, name),
                    grad_of(&g0, name),
                    "d{name}, chunk {chunk}"
                );
            }
        }
    }
}

#[test]
fn avx2_and_baseline_kernels_agree_bitwise() {
    for complex in [false, true] {
        let x = Inputs::random(full(complex), 35).cast::<f32>();
        let (r1, r2) = cotangents(x.spec, 36);
        let (r1, r2) = (common::f32s(&r1), common::f32s(&r2));
        let run = |on: bool| {
            seqlab_ssm::selective_scan::set_simd_dispatch(on);
            let res = (x.fwd(), x.bwd(&r1, &r2));
            seqlab_ssm::selective_scan::set_simd_dispatch(true);
            res
        };
        let ((out0, last0), g0) = run(false);
        let ((out1, last1), g1) = run(true);
        assert_eq!(out0, out1);
        assert_eq!(last0, last1);
        for name in PARAMS {
            assert_eq!(grad_of(&g0, name), grad_of(&g1, name), "d{name}");
        }
    }
}

/// Inputs restricted to positions [t0, t1) (batch and everything else unchanged).
fn time_slice(x: &Inputs<f64>, t0: usize, t1: usize) -> Inputs<f64> {
    let len = x.spec.dims.len;
    let w = if x.spec.complex { 2 } else { 1 };
    let bc = |k: Bk, v: &Vec<f64>| match k {
        Bk::Const => v.clone(),
        _ => slice_last(v, len * w, t0 * w, t1 * w),
    };
    let mut spec = x.spec;
    spec.dims.len = t1 - t0;
    Inputs {
        spec,
        u: slice_last(&x.u, len, t0, t1),
        delta: slice_last(&x.delta, len, t0, t1),
        a: x.a.clone(),
        b: bc(x.spec.b, &x.b),
        c: bc(x.spec.c, &x.c),
        d: x.d.clone(),
        z: x.z.as_ref().map(|z| slice_last(z, len, t0, t1)),
        bias: x.bias.clone(),
        init: x.init.clone(),
        seq: x.seq.as_ref().map(|s| slice_last_i32(s, len, t0, t1)),
    }
}

/// Joins per-row time pieces: rows of `a` (length la) then rows of `b` (length lb).
fn join_time(a: &[f64], la: usize, b: &[f64], lb: usize) -> Vec<f64> {
    a.chunks_exact(la)
        .zip(b.chunks_exact(lb))
        .flat_map(|(x, y)| x.iter().chain(y).copied())
        .collect()
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

#[test]
fn initial_state_splits_the_sequence() {
    for complex in [false, true] {
        for b_kind in [Bk::Var, Bk::Const] {
            let spec = Spec {
                seq: None,
                b: b_kind,
                c: Bk::Grouped(2),
                ..full(complex)
            };
            let x = Inputs::random(spec, 41);
            let len = spec.dims.len;
            let l1 = 6;
            let (out, last) = x.fwd();
            let p1 = time_slice(&x, 0, l1);
            let (out1, last1) = p1.fwd();
            let mut p2 = time_slice(&x, l1, len);
            p2.init = Some(last1);
            let (out2, last2) = p2.fwd();
            assert_eq!(join_time(&out1, l1, &out2, len - l1), out, "out");
            assert_eq!(last2, last, "last state");

            // Gradients through the split: part 1 receives part 2's d(initial state).
            let (r1, r2) = cotangents(spec, 42);
            let g = x.bwd(&r1, &r2);
            let g2 = p2.bwd(&slice_last(&r1, len, l1, len), &r2);
            let dinit2 = g2.dinitial_state.clone().expect("dinit");
            let g1 = p1.bwd(&slice_last(&r1, len, 0, l1), &dinit2);
            let tol = 1e-12;
            for (name, whole, a, b) in [
                ("du", &g.du, &g1.du, &g2.du),
                ("ddelta", &g.ddelta, &g1.ddelta, &g2.ddelta),
                (
                    "dz",
                    g.dz.as_ref().unwrap(),
                    g1.dz.as_ref().unwrap(),
                    g2.dz.as_ref().unwrap(),
                ),
            ] {
                assert_close(name, &join_time(a, l1, b, len - l1), whole, tol);
            }
            let w = if complex { 2 } else { 1 };
            match b_kind {
                Bk::Const => assert_close("dB", &add(&g1.db, &g2.db), &g.db, tol),
                _ => assert_close(
                    "dB",
                    &join_time(&g1.db, l1 * w, &g2.db, (len - l1) * w),
                    &g.db,
                    tol,
                ),
            }
            assert_close(
                "dC",
                &join_time(&g1.dc, l1 * w, &g2.dc, (len - l1) * w),
                &g.dc,
                tol,
            );
            assert_close("dA", &add(&g1.da, &g2.da), &g.da, tol);
            let (dd1, dd2) = (g1.dd.unwrap(), g2.dd.unwrap());
            assert_close("dD", &add(&dd1, &dd2), g.dd.as_ref().unwrap(), tol);
            let (db1, db2) = (g1.ddelta_bias.unwrap(), g2.ddelta_bias.unwrap());
            assert_close(
                "dbias",
                &add(&db1, &db2),
                g.ddelta_bias.as_ref().unwrap(),
                tol,
            );
            assert_close(
                "dinit",
                g1.dinitial_state.as_ref().unwrap(),
                g.dinitial_state.as_ref().unwrap(),
                tol,
            );
        }
    }
}

#[test]
fn packed_documents_equal_separate_runs() {
    for complex in [false, true] {
        let docs = [5usize, 1, 7];
        let len: usize = docs.iter().sum();
        let starts: &'static [usize] = &[5, 6];
        let spec = Spec {
            dims: ScanDims {
                batch: 1,
                dim: 4,
                len,
                dstate: 3,
            },
            seq: Some(starts),
            chunk: 4,
            ..full(complex)
        };
        let x = Inputs::random(spec, 51);
        let (out, last) = x.fwd();
        let (r1, r2) = cotangents(spec, 52);
        let g = x.bwd(&r1, &r2);
        let w = if complex { 2 } else { 1 };
        let mut t0 = 0;
        // Per-document pieces of (out, du, ddelta, dC), each with its row length.
        let mut pieces: [Vec<(Vec<f64>, usize)>; 4] = Default::default();
        let mut da = vec![0.0; g.da.len()];
        let mut dinit = None;
        for (k, &dl) in docs.iter().enumerate() {
            let mut p = time_slice(&x, t0, t0 + dl);
            p.seq = None;
            if k > 0 {
                p.init = Some(vec![0.0; x.init.as_ref().unwrap().len()]);
            }
            let (o, l) = p.fwd();
            let last_doc = k + 1 == docs.len();
            if last_doc {
                assert_eq!(l, last, "last state = last document's");
            }
            let zeros = vec![0.0; r2.len()];
            let gp = p.bwd(
                &slice_last(&r1, len, t0, t0 + dl),
                if last_doc { &r2 } else { &zeros },
            );
            pieces[0].push((o, dl));
            pieces[1].push((gp.du, dl));
            pieces[2].push((gp.ddelta, dl));
            pieces[3].push((gp.dc, dl * w));
            da = add(&da, &gp.da);
            if k == 0 {
                dinit = gp.dinitial_state;
            }
            t0 += dl;
        }
        let join = |ps: &[(Vec<f64>, usize)]| -> Vec<f64> {
            let rows = ps[0].0.len() / ps[0].1;
            (0..rows)
                .flat_map(|r| {
                    ps.iter()
                        .flat_map(move |(v, rl)| v[r * rl..(r + 1) * rl].iter().copied())
                })
                .collect()
        };
        assert_eq!(join(&pieces[0]), out, "packed out");
        assert_close("du", &join(&pieces[1]), &g.du, 1e-12);
        assert_close("ddelta", &join(&pieces[2]), &g.ddelta, 1e-12);
        assert_close("dC", &join(&pieces[3]), &g.dc, 1e-12);
        assert_close("dA", &da, &g.da, 1e-12);
        assert_close(
            "dinit",
            &dinit.unwrap(),
            g.dinitial_state.as_ref().unwrap(),
            1e-12,
        );
    }
}

/// Token-by-token `selective_state_update` from the same initial state equals the scan.
fn step_equals_scan<T: Float>(rtol: f64) {
    let spec = Spec {
        seq: None,
        ..full(false)
    };
    let x = Inputs::random(spec, 61).cast::<T>();
    let ScanDims {
        batch,
        dim,
        len,
        dstate: n,
    } = spec.dims;
    let (out, last) = x.fwd();
    let mut state = x.init.clone().unwrap();
    let mut stepped = vec![T::ZERO; out.len()];
    let col =
        |v: &[T], rows: usize, t: usize| -> Vec<T> { (0..rows).map(|r| v[r * len + t]).collect() };
    for t in 0..len {
        let (ut, dt, zt) = (
            col(&x.u, batch * dim, t),
            col(&x.delta, batch * dim, t),
            col(x.z.as_ref().unwrap(), batch * dim, t),
        );
        let (bt, ct) = (col(&x.b, batch * n, t), col(&x.c, batch * n, t));
        let args = StepArgs::new(StepDims::mamba1(batch, dim, n), &ut, &dt, &x.a, &bt, &ct)
            .with_d(x.d.as_ref().unwrap())
            .with_z(&zt)
            .with_dt_bias(x.bias.as_ref().unwrap())
            .with_dt_softplus(true);
        let o = selective_state_update(&mut state, &args).expect("step");
        for (r, v) in o.into_iter().enumerate() {
            stepped[r * len + t] = v;
        }
    }
    assert_close("step out", &f64v(&stepped), &f64v(&out), rtol);
    assert_close("step state", &f64v(&state), &f64v(&last), rtol);
}

#[test]
fn step_mode_equals_parallel_scan() {
    step_equals_scan::<f32>(1e-5);
    step_equals_scan::<f64>(1e-12);
}

#[test]
fn step_mode_with_heads_and_groups() {
    // 2 heads of 3 channels, 2 groups: equals the scan with grouped B/C, A per head broadcast.
    let (batch, nh, hd, n) = (2, 2, 3, 4);
    let mut r = common::rng(71);
    let state0 = uniform(&mut r, batch * nh * hd * n, -1.0, 1.0);
    let x = uniform(&mut r, batch * nh * hd, -1.0, 1.0);
    let dt = uniform(&mut r, batch * nh * hd, -1.0, 1.0);
    let a = uniform(&mut r, nh * hd * n, -2.0, -0.1);
    let b = uniform(&mut r, batch * 2 * n, -1.0, 1.0);
    let c = uniform(&mut r, batch * 2 * n, -1.0, 1.0);
    let dims = StepDims {
        batch,
        nheads: nh,
        headdim: hd,
        dstate: n,
        ngroups: 2,
    };
    let mut state = state0.clone();
    let out = selective_state_update(
        &mut state,
        &StepArgs::new(dims, &x, &dt, &a, &b, &c).with_dt_softplus(true),
    )
    .unwrap();
    let sdims = ScanDims {
        batch,
        dim: nh * hd,
        len: 1,
        dstate: n,
    };
    let args = ScanArgs::new(
        sdims,
        &x,
        &dt,
        AMatrix::Real(&a),
        BcMatrix::Grouped {
            data: &b,
            groups: 2,
        },
        BcMatrix::Grouped {
            data: &c,
            groups: 2,
        },
    )
    .with_initial_state(&state0);
    let cfg = ScanConfig {
        delta_softplus: true,
        return_last_state: true,
        ..ScanConfig::default()
    };
    let res = selective_scan_fwd(&args, &cfg).unwrap();
    assert_close("out", &out, &res.out, 1e-12);
    assert_close("state", &state, res.last_state.as_ref().unwrap(), 1e-12);
}

#[test]
fn inconsistent_shapes_are_errors_not_panics() {
    let x = Inputs::random(full(false), 81);
    let cfg = x.cfg();
    let mut args = x.args();
    let short = &x.u[1..];
    args.u = short;
    assert!(matches!(
        selective_scan_fwd(&args, &cfg),
        Err(SsmError::Shape { name: "u", .. })
    ));
    let mut args = x.args();
    args.b = BcMatrix::Grouped {
        data: &x.b,
        groups: 3,
    };
    assert!(matches!(
        selective_scan_fwd(&args, &cfg),
        Err(SsmError::Invalid(_))
    ));
    let mut args = x.args();
    args.c = BcMatrix::Const(&x.c);
    assert!(matches!(
        selective_scan_fwd(&args, &cfg),
        Err(SsmError::Shape { name: "C", .. })
    ));
    let mut args = x.args();
    args.a = AMatrix::Complex(&x.a);
    assert!(matches!(
        selective_scan_fwd(&args, &cfg),
        Err(SsmError::Shape { name: "A", .. })
    ));
    let seq = vec![0; 3];
    let args = x.args().with_seq_idx(&seq);
    assert!(selective_scan_fwd(&args, &cfg).is_err());
    let bad = ScanConfig {
        chunk_len: 0,
        ..cfg
    };
    assert!(matches!(
        selective_scan_fwd(&x.args(), &bad),
        Err(SsmError::Invalid(_))
    ));
    let mut args = x.args();
    args.dims.len = 0;
    assert!(selective_scan_fwd(&args, &cfg).is_err());
    // Backward: short dout, saved states from another chunking.
    let f = selective_scan_fwd(&x.args(), &cfg).unwrap();
    assert!(selective_scan_bwd(&x.args(), &cfg, Some(&f.saved), &f.out[1..], None).is_err());
    let other = ScanConfig {
        chunk_len: 3,
        ..cfg
    };
    assert!(matches!(
        selective_scan_bwd(&x.args(), &other, Some(&f.saved), &f.out, None),
        Err(SsmError::Invalid(_))
    ));
    assert!(selective_scan_bwd(&x.args(), &cfg, None, &f.out, Some(&f.out[..2])).is_err());
    // Step mode.
    let mut state = vec![0.0f64; 2 * 4 * 3];
    let v4 = vec![0.0; 8];
    let a = vec![0.0; 12];
    let bc = vec![0.0; 6];
    let dims = StepDims::mamba1(2, 4, 3);
    assert!(
        selective_state_update(&mut state, &StepArgs::new(dims, &v4, &v4, &a, &bc, &bc)).is_ok()
    );
    assert!(selective_state_update(
        &mut state,
        &StepArgs::new(dims, &v4[1..], &v4, &a, &bc, &bc)
    )
    .is_err());
    let dims = StepDims { ngroups: 3, ..dims };
    assert!(
        selective_state_update(&mut state, &StepArgs::new(dims, &v4, &v4, &a, &bc, &bc)).is_err()
    );
}

/// The candle op: forward equals the direct scan; `Var` gradients equal the direct backward.
fn candle_op_grads<T: Float + candle_core::WithDType>(spec: Spec) {
    let x = Inputs::random(spec, 91).cast::<T>();
    let ScanDims {
        batch,
        dim,
        len,
        dstate: n,
    } = spec.dims;
    let dev = Device::Cpu;
    let var = |v: &Vec<T>, shape: &[usize]| {
        Var::from_tensor(&Tensor::from_vec(v.clone(), shape, &dev).unwrap()).unwrap()
    };
    let bc_shape = |k: Bk| match k {
        Bk::Var => vec![batch, n, len],
        Bk::Grouped(g) => vec![batch, g, n, len],
        Bk::Const => vec![dim, n],
    };
    let u = var(&x.u, &[batch, dim, len]);
    let delta = var(&x.delta, &[batch, dim, len]);
    let a = var(&x.a, &[dim, n]);
    let b = var(&x.b, &bc_shape(spec.b));
    let c = var(&x.c, &bc_shape(spec.c));
    let d = var(x.d.as_ref().unwrap(), &[dim]);
    let z = var(x.z.as_ref().unwrap(), &[batch, dim, len]);
    let bias = var(x.bias.as_ref().unwrap(), &[dim]);
    let init = var(x.init.as_ref().unwrap(), &[batch, dim, n]);
    let mut args = ScanTensors::new(&u, &delta, &a, &b, &c)
        .with_d(&d)
        .with_z(&z)
        .with_delta_bias(&bias)
        .with_initial_state(&init);
    if let Some(s) = &x.seq {
        args = args.with_seq_idx(s);
    }
    let (out, last) = selective_scan_tensor(&args, &x.cfg()).expect("candle scan");
    let (want_out, want_last) = x.fwd();
    assert_eq!(out.flatten_all().unwrap().to_vec1::<T>().unwrap(), want_out);
    assert_eq!(
        last.flatten_all().unwrap().to_vec1::<T>().unwrap(),
        want_last
    );

    let (r1, r2) = cotangents(spec, 92);
    let (r1, r2) = (
        r1.iter()
            .map(|&v| <T as Float>::from_f64(v))
            .collect::<Vec<T>>(),
        r2.iter()
            .map(|&v| <T as Float>::from_f64(v))
            .collect::<Vec<T>>(),
    );
    let rt1 = Tensor::from_vec(r1.clone(), (batch, dim, len), &dev).unwrap();
    let rt2 = Tensor::from_vec(r2.clone(), (batch, dim, n), &dev).unwrap();
    let loss = ((out * rt1).unwrap().sum_all().unwrap() + (last * rt2).unwrap().sum_all().unwrap())
        .unwrap();
    let grads = loss.backward().unwrap();
    let want = x.bwd(&r1, &r2);
    for (name, v) in [
        ("u", &u),
        ("delta", &delta),
        ("A", &a),
        ("B", &b),
        ("C", &c),
        ("D", &d),
        ("z", &z),
        ("delta_bias", &bias),
        ("initial_state", &init),
    ] {
        let got = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no candle gradient"))
            .flatten_all()
            .unwrap()
            .to_vec1::<T>()
            .unwrap();
        let want = grad_of(&want, name).unwrap();
        assert_close(&format!("candle d{name}"), &f64v(&got), &f64v(want), 1e-6);
    }
}

#[test]
fn candle_op_gradients_equal_direct_backward() {
    candle_op_grads::<f64>(full(false));
    candle_op_grads::<f32>(full(false));
    candle_op_grads::<f64>(Spec {
        b: Bk::Const,
        c: Bk::Grouped(2),
        seq: None,
        ..full(false)
    });
}

#[test]
fn candle_op_rejects_bad_shapes() {
    let dev = Device::Cpu;
    let t = |s: &[usize]| Tensor::zeros(s, candle_core::DType::F32, &dev).unwrap();
    let (u, a, b) = (t(&[2, 4, 5]), t(&[4, 3]), t(&[2, 3, 5]));
    let cfg = ScanConfig::default();
    assert!(selective_scan_tensor(&ScanTensors::new(&u, &u, &a, &b, &b), &cfg).is_ok());
    let bad_a = t(&[3, 4]);
    assert!(selective_scan_tensor(&ScanTensors::new(&u, &u, &bad_a, &b, &b), &cfg).is_err());
    let bad_b = t(&[2, 3, 5, 1, 1]);
    assert!(selective_scan_tensor(&ScanTensors::new(&u, &u, &a, &bad_b, &b), &cfg).is_err());
    let u64t = u.to_dtype(candle_core::DType::F64).unwrap();
    assert!(selective_scan_tensor(&ScanTensors::new(&u64t, &u, &a, &b, &b), &cfg).is_err());
}
