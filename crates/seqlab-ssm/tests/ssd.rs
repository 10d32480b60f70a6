//! Mamba-2 SSD: the chunked algorithm against the sequential recurrence (f64 and f32, every
//! chunk length, groups, D layouts, initial / final states, packed sequences), the one-token
//! state update continuing a chunked prefill, and shape errors.

use crate::common;

use common::{assert_close, uniform};
use seqlab_ssm::{
    selective_state_update, ssd_chunked, ssd_chunked_backward, ssd_sequential, Float, SsdDims,
    SsdGrads, SsdInputs, SsdOutput, SsmError, StepArgs, StepDims,
};

/// What D looks like in a case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DKind {
    None,
    PerHead,
    PerChannel,
}

/// One SSD problem with owned data of element type T.
#[derive(Clone, Debug)]
pub struct Case<T> {
    pub dims: SsdDims,
    pub x: Vec<T>,
    pub dt: Vec<T>,
    pub a: Vec<T>,
    pub b: Vec<T>,
    pub c: Vec<T>,
    pub d: Option<Vec<T>>,
    pub init: Option<Vec<T>>,
    pub seq: Option<Vec<i32>>,
}

impl Case<f64> {
    /// Random data: x, B, C in [−1, 1), Δ in [0.05, 0.6), A in [−3, −0.2), D in [−1, 1).
    pub fn random(dims: SsdDims, d: DKind, init: bool, seed: u64) -> Self {
        let mut r = common::rng(seed);
        let SsdDims {
            batch,
            seqlen,
            nheads,
            headdim,
            ngroups,
            dstate,
            ..
        } = dims;
        let x = uniform(&mut r, batch * seqlen * nheads * headdim, -1.0, 1.0);
        let dt = uniform(&mut r, batch * seqlen * nheads, 0.05, 0.6);
        let a = uniform(&mut r, nheads, -3.0, -0.2);
        let b = uniform(&mut r, batch * seqlen * ngroups * dstate, -1.0, 1.0);
        let c = uniform(&mut r, batch * seqlen * ngroups * dstate, -1.0, 1.0);
        let d = match d {
            DKind::None => None,
            DKind::PerHead => Some(uniform(&mut r, nheads, -1.0, 1.0)),
            DKind::PerChannel => Some(uniform(&mut r, nheads * headdim, -1.0, 1.0)),
        };
        let init = init.then(|| uniform(&mut r, batch * nheads * headdim * dstate, -1.0, 1.0));
        Self {
            dims,
            x,
            dt,
            a,
            b,
            c,
            d,
            init,
            seq: None,
        }
    }
}

impl<T: Float> Case<T> {
    pub fn cast<U: Float>(&self) -> Case<U> {
        let cv = |v: &Vec<T>| common::cast::<T, U>(v);
        Case {
            dims: self.dims,
            x: cv(&self.x),
            dt: cv(&self.dt),
            a: cv(&self.a),
            b: cv(&self.b),
            c: cv(&self.c),
            d: self.d.as_ref().map(cv),
            init: self.init.as_ref().map(cv),
            seq: self.seq.clone(),
        }
    }

    pub fn inputs(&self) -> SsdInputs<'_, T> {
        SsdInputs {
            x: &self.x,
            dt: &self.dt,
            a: &self.a,
            b: &self.b,
            c: &self.c,
            d: self.d.as_deref(),
            initial_state: self.init.as_deref(),
            seq_idx: self.seq.as_deref(),
        }
    }

    pub fn with_chunk(&self, chunk: usize) -> Self {
        let mut out = self.clone();
        out.dims.chunk = chunk;
        out
    }

    pub fn chunked(&self) -> SsdOutput<T> {
        ssd_chunked(&self.dims, &self.inputs()).expect("ssd_chunked")
    }

    pub fn sequential(&self) -> SsdOutput<T> {
        ssd_sequential(&self.dims, &self.inputs()).expect("ssd_sequential")
    }

    /// Positions [t0, t1) of every row (the initial state kept only when t0 = 0).
    pub fn time_slice(&self, t0: usize, t1: usize) -> Self {
        let SsdDims {
            batch,
            seqlen,
            nheads,
            headdim,
            ngroups,
            dstate,
            ..
        } = self.dims;
        let mut dims = self.dims;
        dims.seqlen = t1 - t0;
        Self {
            dims,
            x: time_slice(&self.x, batch, seqlen, nheads * headdim, t0, t1),
            dt: time_slice(&self.dt, batch, seqlen, nheads, t0, t1),
            a: self.a.clone(),
            b: time_slice(&self.b, batch, seqlen, ngroups * dstate, t0, t1),
            c: time_slice(&self.c, batch, seqlen, ngroups * dstate, t0, t1),
            d: self.d.clone(),
            init: if t0 == 0 { self.init.clone() } else { None },
            seq: self
                .seq
                .as_ref()
                .map(|s| time_slice(s, batch, seqlen, 1, t0, t1)),
        }
    }
}

/// Positions [t0, t1) of a (batch, seqlen, inner) tensor.
pub fn time_slice<T: Copy>(
    v: &[T],
    batch: usize,
    seqlen: usize,
    inner: usize,
    t0: usize,
    t1: usize,
) -> Vec<T> {
    (0..batch)
        .flat_map(|b| {
            v[(b * seqlen + t0) * inner..(b * seqlen + t1) * inner]
                .iter()
                .copied()
        })
        .collect()
}

pub fn f64v<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn dims(
    batch: usize,
    seqlen: usize,
    nheads: usize,
    headdim: usize,
    ngroups: usize,
    dstate: usize,
) -> SsdDims {
    SsdDims {
        batch,
        seqlen,
        nheads,
        headdim,
        ngroups,
        dstate,
        chunk: 16,
    }
}

fn assert_same<T: Float, U: Float>(what: &str, got: &SsdOutput<T>, want: &SsdOutput<U>, rtol: f64) {
    assert_close(&format!("{what}: y"), &f64v(&got.y), &f64v(&want.y), rtol);
    assert_close(
        &format!("{what}: final state"),
        &f64v(&got.final_state),
        &f64v(&want.final_state),
        rtol,
    );
}

/// The problems the equivalence tests sweep: odd sizes, one and several groups, every D layout,
/// with and without an initial state.
fn sweep() -> Vec<(String, Case<f64>)> {
    let mut cases = Vec::new();
    let shapes = [
        dims(2, 37, 4, 3, 2, 5),
        dims(1, 29, 3, 5, 1, 7),
        dims(3, 13, 6, 2, 3, 4),
    ];
    let mut seed = 1;
    for shape in shapes {
        for (d, init) in [
            (DKind::None, false),
            (DKind::PerHead, true),
            (DKind::PerChannel, true),
            (DKind::PerChannel, false),
        ] {
            seed += 1;
            cases.push((
                format!("{shape:?} D {d:?} init {init}"),
                Case::random(shape, d, init, seed),
            ));
        }
    }
    cases
}

#[test]
fn chunked_equals_sequential_f64() {
    for (name, case) in sweep() {
        let want = case.sequential();
        for chunk in [1, 3, 16, case.dims.seqlen, case.dims.seqlen + 5] {
            let got = case.with_chunk(chunk).chunked();
            assert_same(&format!("{name} chunk {chunk}"), &got, &want, 1e-10);
        }
    }
}

#[test]
fn chunked_equals_sequential_f32() {
    for (name, case) in sweep() {
        let want64 = case.sequential();
        let c32 = case.cast::<f32>();
        let want32 = c32.sequential();
        for chunk in [1, 3, 16, case.dims.seqlen + 5] {
            let got = c32.with_chunk(chunk).chunked();
            assert_same(&format!("{name} chunk {chunk} vs f32"), &got, &want32, 1e-5);
            assert_same(&format!("{name} chunk {chunk} vs f64"), &got, &want64, 1e-5);
        }
    }
}

/// Row b's document ids: three documents of lengths `lens` (summing to seqlen).
fn three_docs(lens: [[usize; 3]; 2]) -> Vec<i32> {
    lens.iter()
        .flat_map(|row| {
            row.iter()
                .enumerate()
                .flat_map(|(i, &n)| std::iter::repeat_n(10 + 3 * i as i32, n))
        })
        .collect()
}

#[test]
fn packed_sequences_equal_separate_runs() {
    // Row 0: documents of 9, 14, 8 positions; row 1: 1, 20, 10 (a one-token document at the
    // start). The initial state feeds the first document of each row only.
    let lens = [[9, 14, 8], [1, 20, 10]];
    let mut case = Case::random(dims(2, 31, 4, 3, 2, 5), DKind::PerChannel, true, 41);
    case.seq = Some(three_docs(lens));
    let want = case.sequential();
    for chunk in [1, 3, 4, 16, 40] {
        let got = case.with_chunk(chunk).chunked();
        assert_same(&format!("packed chunk {chunk}"), &got, &want, 1e-10);
    }
    // Each row's documents run separately (batch 1): the first from the row's initial state,
    // the others from zero; y pieces concatenate, the last piece's final state is the row's.
    let SsdDims {
        nheads,
        headdim,
        dstate,
        ..
    } = case.dims;
    let (inner, pn) = (nheads * headdim, nheads * headdim * dstate);
    for (b, row_lens) in lens.iter().enumerate() {
        let mut row = case.time_slice(0, case.dims.seqlen);
        row.dims.batch = 1;
        let seqlen = case.dims.seqlen;
        row.x = case.x[b * seqlen * inner..][..seqlen * inner].to_vec();
        row.dt = case.dt[b * seqlen * nheads..][..seqlen * nheads].to_vec();
        let g_n = case.dims.ngroups * dstate;
        row.b = case.b[b * seqlen * g_n..][..seqlen * g_n].to_vec();
        row.c = case.c[b * seqlen * g_n..][..seqlen * g_n].to_vec();
        row.init = case.init.as_ref().map(|s| s[b * pn..][..pn].to_vec());
        row.seq = None;
        let mut t0 = 0;
        let mut last_state = Vec::new();
        for &n in row_lens {
            let piece = row.time_slice(t0, t0 + n).with_chunk(4);
            let out = piece.chunked();
            let want_y = &want.y[(b * seqlen + t0) * inner..][..n * inner];
            assert_close(&format!("row {b} document at {t0}"), &out.y, want_y, 1e-10);
            last_state = out.final_state;
            t0 += n;
        }
        assert_close(
            &format!("row {b} final state"),
            &last_state,
            &want.final_state[b * pn..][..pn],
            1e-10,
        );
    }
    // f32 chunked on packed rows against the f64 recurrence.
    let got = case.cast::<f32>().with_chunk(8).chunked();
    assert_same("packed f32", &got, &want, 1e-5);
}

#[test]
fn a_document_id_that_returns_still_resets() {
    // Ids 5 5 7 7 7 5 5 …: the state resets at both changes, so the last run does not see the
    // first one although they share an id.
    let mut case = Case::random(dims(1, 12, 2, 3, 1, 4), DKind::PerHead, true, 43);
    case.seq = Some(vec![5, 5, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5]);
    let want = case.sequential();
    for chunk in [1, 2, 5, 12] {
        assert_same(
            &format!("chunk {chunk}"),
            &case.with_chunk(chunk).chunked(),
            &want,
            1e-10,
        );
    }
    let tail = case.time_slice(5, 12).chunked();
    let inner = 2 * 3;
    assert_close("tail", &tail.y, &want.y[5 * inner..], 1e-10);
    assert_close("tail state", &tail.final_state, &want.final_state, 1e-10);
}

#[test]
fn final_state_continues_a_split_sequence() {
    // Prefill [0, 20) → state; [20, 33) from that state equals the whole run's tail.
    let case = Case::random(dims(2, 33, 4, 3, 2, 5), DKind::PerChannel, true, 47);
    let whole = case.with_chunk(8).chunked();
    let head = case.time_slice(0, 20).with_chunk(8).chunked();
    let mut tail = case.time_slice(20, 33).with_chunk(5);
    tail.init = Some(head.final_state.clone());
    let tail = tail.chunked();
    let inner = 4 * 3;
    let joined: Vec<f64> = (0..2)
        .flat_map(|b| {
            head.y[b * 20 * inner..][..20 * inner]
                .iter()
                .chain(&tail.y[b * 13 * inner..][..13 * inner])
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_close("joined y", &joined, &whole.y, 1e-10);
    assert_close("final state", &tail.final_state, &whole.final_state, 1e-10);
}

/// A chunked prefill of all but the last token, then `selective_state_update` (heads and
/// groups, A and Δ broadcast over channels and state) for the last token, equals the full run.
fn prefill_then_step<T: Float>(rtol: f64) {
    let case = Case::random(dims(2, 19, 4, 3, 2, 5), DKind::PerChannel, true, 53).cast::<T>();
    let SsdDims {
        batch,
        seqlen,
        nheads,
        headdim,
        ngroups,
        dstate,
        ..
    } = case.dims;
    let full = case.with_chunk(4).chunked();
    let pre = case.time_slice(0, seqlen - 1).with_chunk(4).chunked();
    let last = case.time_slice(seqlen - 1, seqlen);
    let mut state = pre.final_state.clone();
    let a: Vec<T> = (0..nheads * headdim * dstate)
        .map(|i| case.a[i / (headdim * dstate)])
        .collect();
    let dt: Vec<T> = (0..batch * nheads * headdim)
        .map(|i| last.dt[i / headdim])
        .collect();
    let step = StepDims {
        batch,
        nheads,
        headdim,
        dstate,
        ngroups,
    };
    let out = selective_state_update(
        &mut state,
        &StepArgs::new(step, &last.x, &dt, &a, &last.b, &last.c).with_d(case.d.as_ref().unwrap()),
    )
    .expect("step");
    let inner = nheads * headdim;
    let want_y: Vec<T> = (0..batch)
        .flat_map(|b| full.y[(b * seqlen + seqlen - 1) * inner..][..inner].to_vec())
        .collect();
    assert_close("step y", &f64v(&out), &f64v(&want_y), rtol);
    assert_close("step state", &f64v(&state), &f64v(&full.final_state), rtol);
}

#[test]
fn state_update_continues_a_chunked_prefill() {
    prefill_then_step::<f64>(1e-12);
    prefill_then_step::<f32>(1e-5);
}

#[test]
fn bad_inputs_are_errors_naming_the_argument() {
    let case = Case::random(dims(2, 7, 4, 3, 2, 5), DKind::PerHead, true, 59);
    let mut seq = vec![0; 14];
    seq[9] = 1;
    let name_of = |inp: &SsdInputs<'_, f64>, dims: &SsdDims| -> String {
        let e1 = ssd_chunked(dims, inp).expect_err("chunked must refuse");
        let e2 = ssd_sequential(dims, inp).expect_err("sequential must refuse");
        assert_eq!(e1.to_string(), e2.to_string());
        match e1 {
            SsmError::Shape { name, .. } => name.to_string(),
            other => other.to_string(),
        }
    };
    let good = SsdInputs {
        seq_idx: Some(&seq),
        ..case.inputs()
    };
    assert!(ssd_chunked(&case.dims, &good).is_ok());
    let short = &case.x[1..];
    let d_bad = vec![0.0; 5];
    let seq_bad = vec![0; 13];
    for (want, inp) in [
        ("x", SsdInputs { x: short, ..good }),
        ("dt", SsdInputs { dt: short, ..good }),
        (
            "A",
            SsdInputs {
                a: &case.a[1..],
                ..good
            },
        ),
        ("B", SsdInputs { b: short, ..good }),
        (
            "C",
            SsdInputs {
                c: &case.c[1..],
                ..good
            },
        ),
        (
            "D",
            SsdInputs {
                d: Some(&d_bad),
                ..good
            },
        ),
        (
            "initial_state",
            SsdInputs {
                initial_state: Some(short),
                ..good
            },
        ),
        (
            "seq_idx",
            SsdInputs {
                seq_idx: Some(&seq_bad),
                ..good
            },
        ),
    ] {
        assert_eq!(name_of(&inp, &case.dims), want);
    }
    for bad in [
        SsdDims {
            chunk: 0,
            ..case.dims
        },
        SsdDims {
            ngroups: 3,
            ..case.dims
        },
        SsdDims {
            ngroups: 0,
            ..case.dims
        },
        SsdDims {
            seqlen: 0,
            ..case.dims
        },
        SsdDims {
            batch: usize::MAX,
            ..case.dims
        },
    ] {
        let msg = name_of(&good, &bad);
        assert!(!msg.is_empty(), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Backward.

/// Cotangents of y and of the final state for ℒ = Σ r_y ⊙ y + Σ r_s ⊙ final_state.
fn cotangents(d: &SsdDims, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut r = common::rng(seed);
    (
        uniform(&mut r, d.batch * d.seqlen * d.nheads * d.headdim, -1.0, 1.0),
        uniform(&mut r, d.batch * d.nheads * d.headdim * d.dstate, -1.0, 1.0),
    )
}

fn loss(case: &Case<f64>, ry: &[f64], rs: &[f64]) -> f64 {
    let out = case.sequential();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    dot(&out.y, ry) + dot(&out.final_state, rs)
}

fn backward<T: Float>(case: &Case<T>, ry: &[f64], rs: &[f64]) -> SsdGrads<T> {
    let (ry, rs): (Vec<T>, Vec<T>) = (common::cast(ry), common::cast(rs));
    ssd_chunked_backward(&case.dims, &case.inputs(), &ry, Some(&rs)).expect("backward")
}

/// The input called `name` (as in the error messages).
fn field_mut<'a>(c: &'a mut Case<f64>, name: &str) -> &'a mut Vec<f64> {
    match name {
        "x" => &mut c.x,
        "dt" => &mut c.dt,
        "A" => &mut c.a,
        "B" => &mut c.b,
        "C" => &mut c.c,
        "D" => c.d.as_mut().expect("D"),
        "initial_state" => c.init.as_mut().expect("initial state"),
        other => panic!("no input {other}"),
    }
}

/// The gradient called `name`.
fn grad_of<'a, T>(g: &'a SsdGrads<T>, name: &str) -> &'a Vec<T> {
    match name {
        "x" => &g.dx,
        "dt" => &g.ddt,
        "A" => &g.da,
        "B" => &g.db,
        "C" => &g.dc,
        "D" => g.dd.as_ref().expect("dD"),
        "initial_state" => g.dinitial_state.as_ref().expect("dinitial_state"),
        other => panic!("no gradient {other}"),
    }
}

const INPUTS: [&str; 7] = ["x", "dt", "A", "B", "C", "D", "initial_state"];

/// Every input's gradient against central differences of the sequential recurrence.
fn check_fd(case: &Case<f64>, seed: u64) {
    let (ry, rs) = cotangents(&case.dims, seed);
    let g = backward(case, &ry, &rs);
    let eps = 1e-5;
    for name in INPUTS {
        let got = grad_of(&g, name);
        let len = field_mut(&mut case.clone(), name).len();
        assert_eq!(len, got.len(), "d{name}: length");
        let fd: Vec<f64> = (0..len)
            .map(|i| {
                let mut plus = case.clone();
                field_mut(&mut plus, name)[i] += eps;
                let mut minus = case.clone();
                field_mut(&mut minus, name)[i] -= eps;
                (loss(&plus, &ry, &rs) - loss(&minus, &ry, &rs)) / (2.0 * eps)
            })
            .collect();
        assert_close(&format!("d{name} vs finite differences"), got, &fd, 1e-6);
    }
}

/// Row 0: resets inside chunk 0 (t = 2) and at the start of chunk 2 (t = 6); row 1: a reset at
/// a chunk boundary (t = 3) and a one-token document at the end.
fn packed_case(d: DKind, seed: u64) -> Case<f64> {
    let mut case = Case::random(dims(2, 7, 4, 2, 2, 3), d, true, seed);
    case.dims.chunk = 3;
    case.seq = Some(vec![0, 0, 1, 1, 1, 1, 2, 3, 3, 3, 4, 4, 4, 5]);
    case
}

#[test]
fn backward_matches_finite_differences() {
    check_fd(&packed_case(DKind::PerChannel, 61), 62);
    check_fd(&packed_case(DKind::PerHead, 63), 64);
    // No seq_idx, one group, a chunk longer than the sequence and one of a single position.
    let mut plain = Case::random(dims(1, 6, 2, 3, 1, 4), DKind::PerHead, true, 65);
    plain.dims.chunk = 8;
    check_fd(&plain, 66);
    plain.dims.chunk = 1;
    check_fd(&plain, 67);
}

#[test]
fn backward_is_independent_of_the_chunk_length() {
    let mut case = Case::random(dims(2, 37, 4, 3, 2, 5), DKind::PerChannel, true, 71);
    let mut seq = vec![0; 37];
    seq[20..].iter_mut().for_each(|v| *v = 1);
    seq.extend(std::iter::repeat_n(7, 37));
    case.seq = Some(seq);
    let (ry, rs) = cotangents(&case.dims, 72);
    let want = backward(&case.with_chunk(1), &ry, &rs);
    for chunk in [3, 16, 64] {
        let got = backward(&case.with_chunk(chunk), &ry, &rs);
        for name in INPUTS {
            assert_close(
                &format!("chunk {chunk}: d{name}"),
                grad_of(&got, name),
                grad_of(&want, name),
                1e-10,
            );
        }
        // f32 against f64.
        let g32 = backward(&case.cast::<f32>().with_chunk(chunk), &ry, &rs);
        for name in INPUTS {
            assert_close(
                &format!("f32 chunk {chunk}: d{name}"),
                &f64v(grad_of(&g32, name)),
                grad_of(&want, name),
                1e-5,
            );
        }
    }
    // Without the final-state cotangent, D or an initial state.
    let mut bare = case.clone();
    bare.d = None;
    bare.init = None;
    let g = ssd_chunked_backward(&bare.dims, &bare.inputs(), &ry, None).unwrap();
    assert!(g.dd.is_none() && g.dinitial_state.is_none());
    let g_zero = backward(&bare, &ry, &vec![0.0; rs.len()]);
    assert_close("no dfinal", &g.dx, &g_zero.dx, 0.0);
    assert!(ssd_chunked_backward(&bare.dims, &bare.inputs(), &ry[1..], None).is_err());
    assert!(ssd_chunked_backward(&bare.dims, &bare.inputs(), &ry, Some(&rs[1..])).is_err());
}

// ---------------------------------------------------------------------------------------------
// The candle op.

mod candle_op {
    use super::*;
    use candle_core::{DType, Device, Tensor, Var};
    use seqlab_ssm::{ssd_tensor, SsdTensors};

    fn var<T: Float + candle_core::WithDType>(v: &[T], shape: &[usize]) -> Var {
        Var::from_tensor(&Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn flat<T: Float + candle_core::WithDType>(t: &Tensor) -> Vec<T> {
        t.flatten_all().unwrap().to_vec1::<T>().unwrap()
    }

    /// Forward equals `ssd_chunked`; `Var` gradients equal `ssd_chunked_backward`.
    fn grads_equal_direct<T: Float + candle_core::WithDType>(case: &Case<f64>, rtol: f64) {
        let c = case.cast::<T>();
        let SsdDims {
            batch,
            seqlen,
            nheads,
            headdim,
            ngroups,
            dstate,
            chunk,
        } = c.dims;
        let x = var(&c.x, &[batch, seqlen, nheads, headdim]);
        let dt = var(&c.dt, &[batch, seqlen, nheads]);
        let a = var(&c.a, &[nheads]);
        let b = var(&c.b, &[batch, seqlen, ngroups, dstate]);
        let cm = var(&c.c, &[batch, seqlen, ngroups, dstate]);
        let d_vals = c.d.as_ref().unwrap();
        let d_shape = if d_vals.len() == nheads {
            vec![nheads]
        } else {
            vec![nheads, headdim]
        };
        let d = var(d_vals, &d_shape);
        let init = var(c.init.as_ref().unwrap(), &[batch, nheads, headdim, dstate]);
        let mut args = SsdTensors::new(&x, &dt, &a, &b, &cm)
            .with_d(&d)
            .with_initial_state(&init);
        if let Some(s) = &c.seq {
            args = args.with_seq_idx(s);
        }
        let (y, fin) = ssd_tensor(&args, chunk).expect("ssd op");
        let want = c.chunked();
        assert_eq!(flat::<T>(&y), want.y);
        assert_eq!(flat::<T>(&fin), want.final_state);

        let (ry, rs) = cotangents(&c.dims, 81);
        let ry_t = Tensor::from_vec(common::cast::<f64, T>(&ry), y.shape(), &Device::Cpu).unwrap();
        let rs_t =
            Tensor::from_vec(common::cast::<f64, T>(&rs), fin.shape(), &Device::Cpu).unwrap();
        let l = ((y * ry_t).unwrap().sum_all().unwrap() + (fin * rs_t).unwrap().sum_all().unwrap())
            .unwrap();
        let grads = l.backward().unwrap();
        let direct = backward(&c, &ry, &rs);
        for (name, v) in [
            ("x", &x),
            ("dt", &dt),
            ("A", &a),
            ("B", &b),
            ("C", &cm),
            ("D", &d),
            ("initial_state", &init),
        ] {
            let got = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no candle gradient"));
            assert_close(
                &format!("candle d{name}"),
                &f64v(&flat::<T>(got)),
                &f64v(grad_of(&direct, name)),
                rtol,
            );
        }
    }

    #[test]
    fn gradients_equal_the_direct_backward() {
        grads_equal_direct::<f64>(&packed_case(DKind::PerChannel, 83), 1e-12);
        grads_equal_direct::<f32>(&packed_case(DKind::PerHead, 84), 1e-6);
    }

    #[test]
    fn sgd_through_the_op_lowers_the_loss() {
        // Fit y of a random SSD to the y of another one by SGD on x, B, C, D and Δ.
        let shape = SsdDims {
            chunk: 4,
            ..dims(2, 10, 2, 3, 1, 4)
        };
        let start = Case::random(shape, DKind::PerHead, false, 91).cast::<f32>();
        let target = Case::random(shape, DKind::PerHead, false, 92)
            .cast::<f32>()
            .chunked();
        let SsdDims {
            batch,
            seqlen,
            nheads,
            headdim,
            ngroups,
            dstate,
            chunk,
        } = shape;
        let x = var(&start.x, &[batch, seqlen, nheads, headdim]);
        let dt = var(&start.dt, &[batch, seqlen, nheads]);
        let a = var(&start.a, &[nheads]);
        let b = var(&start.b, &[batch, seqlen, ngroups, dstate]);
        let c = var(&start.c, &[batch, seqlen, ngroups, dstate]);
        let d = var(start.d.as_ref().unwrap(), &[nheads]);
        let target =
            Tensor::from_vec(target.y, (batch, seqlen, nheads, headdim), &Device::Cpu).unwrap();
        let mut losses = Vec::new();
        for _ in 0..5 {
            let args = SsdTensors::new(&x, &dt, &a, &b, &c).with_d(&d);
            let (y, _) = ssd_tensor(&args, chunk).unwrap();
            let l = (y - &target).unwrap().sqr().unwrap().mean_all().unwrap();
            losses.push(l.to_scalar::<f32>().unwrap());
            let grads = l.backward().unwrap();
            for v in [&x, &b, &c, &d, &dt] {
                let g = grads.get(v.as_tensor()).expect("gradient");
                v.set(&(v.as_tensor() - (g * 2.0).unwrap()).unwrap())
                    .unwrap();
            }
        }
        assert!(
            losses.windows(2).all(|w| w[1] < w[0]) && losses[4] < 0.8 * losses[0],
            "losses {losses:?}"
        );
    }

    #[test]
    fn bad_tensors_are_errors() {
        let dev = Device::Cpu;
        let t = |s: &[usize]| Tensor::zeros(s, DType::F32, &dev).unwrap();
        let (x, dt, a, bc) = (t(&[2, 5, 4, 3]), t(&[2, 5, 4]), t(&[4]), t(&[2, 5, 2, 6]));
        assert!(ssd_tensor(&SsdTensors::new(&x, &dt, &a, &bc, &bc), 2).is_ok());
        let bad_a = t(&[3]);
        assert!(ssd_tensor(&SsdTensors::new(&x, &dt, &bad_a, &bc, &bc), 2).is_err());
        let bad_c = t(&[2, 5, 2, 5]);
        assert!(ssd_tensor(&SsdTensors::new(&x, &dt, &a, &bc, &bad_c), 2).is_err());
        let bad_d = t(&[4, 2]);
        let args = SsdTensors::new(&x, &dt, &a, &bc, &bc).with_d(&bad_d);
        assert!(ssd_tensor(&args, 2).is_err());
        assert!(ssd_tensor(&SsdTensors::new(&x, &dt, &a, &bc, &bc), 0).is_err());
        let seq = [0i32; 9];
        let args = SsdTensors::new(&x, &dt, &a, &bc, &bc).with_seq_idx(&seq);
        assert!(ssd_tensor(&args, 2).is_err());
        let x16 = x.to_dtype(DType::F16).unwrap();
        assert!(ssd_tensor(&SsdTensors::new(&x16, &dt, &a, &bc, &bc), 2).is_err());
        let x64 = x.to_dtype(DType::F64).unwrap();
        assert!(ssd_tensor(&SsdTensors::new(&x64, &dt, &a, &bc, &bc), 2).is_err());
    }
}
