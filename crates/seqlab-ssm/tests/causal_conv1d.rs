//! Causal depthwise conv1d: forward vs a naive loop, backward vs finite differences, the update
//! form step by step vs the parallel conv, chunked prefill with a conv state, packed rows.

use crate::common;

use common::{assert_close, slice_last, slice_last_i32, uniform};
use seqlab_ssm::{
    causal_conv1d_bwd, causal_conv1d_final_state, causal_conv1d_fwd, causal_conv1d_update,
    Conv1dArgs, Conv1dDims, SsmError,
};

#[derive(Clone, Debug)]
struct Inputs {
    dims: Conv1dDims,
    x: Vec<f64>,
    w: Vec<f64>,
    bias: Option<Vec<f64>>,
    init: Option<Vec<f64>>,
    seq: Option<Vec<i32>>,
    silu: bool,
}

impl Inputs {
    fn random(
        dims: Conv1dDims,
        bias: bool,
        init: bool,
        seq: Option<&[usize]>,
        silu: bool,
        seed: u64,
    ) -> Self {
        let mut r = common::rng(seed);
        let Conv1dDims {
            batch,
            dim,
            len,
            width,
        } = dims;
        let seq = seq.map(|starts| {
            let mut s = vec![0i32; batch * len];
            for b in 0..batch {
                for t in 0..len {
                    // Row b > 0 gets its boundaries shifted by b (so rows differ).
                    s[b * len + t] = starts.iter().filter(|&&st| st + b <= t).count() as i32;
                }
            }
            s
        });
        Self {
            dims,
            x: uniform(&mut r, batch * dim * len, -1.0, 1.0),
            w: uniform(&mut r, dim * width, -1.0, 1.0),
            bias: bias.then(|| uniform(&mut r, dim, -1.0, 1.0)),
            init: init.then(|| uniform(&mut r, batch * dim * (width - 1), -1.0, 1.0)),
            seq,
            silu,
        }
    }

    fn args(&self) -> Conv1dArgs<'_, f64> {
        let mut a = Conv1dArgs::new(self.dims, &self.x, &self.w).with_silu(self.silu);
        a.bias = self.bias.as_deref();
        a.initial_state = self.init.as_deref();
        a.seq_idx = self.seq.as_deref();
        a
    }

    fn fwd(&self) -> Vec<f64> {
        causal_conv1d_fwd(&self.args()).expect("conv forward")
    }

    /// Positions [t0, t1), same initial state and weights.
    fn slice(&self, t0: usize, t1: usize) -> Inputs {
        let len = self.dims.len;
        Inputs {
            dims: Conv1dDims {
                len: t1 - t0,
                ..self.dims
            },
            x: slice_last(&self.x, len, t0, t1),
            seq: self.seq.as_ref().map(|s| slice_last_i32(s, len, t0, t1)),
            ..self.clone()
        }
    }
}

/// The definition, written as directly as possible.
fn naive(x: &Inputs) -> Vec<f64> {
    let Conv1dDims {
        batch,
        dim,
        len,
        width: k,
    } = x.dims;
    let mut out = vec![0.0; batch * dim * len];
    for b in 0..batch {
        let same_doc = |p: usize, t: usize| match &x.seq {
            Some(s) => (p..=t).all(|q| s[b * len + q] == s[b * len + t]),
            None => true,
        };
        for d in 0..dim {
            for t in 0..len {
                let mut acc = x.bias.as_ref().map_or(0.0, |v| v[d]);
                for j in 0..k {
                    let p = t as isize - (k as isize - 1) + j as isize;
                    let v = if p >= 0 {
                        if same_doc(p as usize, t) {
                            x.x[(b * dim + d) * len + p as usize]
                        } else {
                            0.0
                        }
                    } else if same_doc(0, t) {
                        x.init.as_ref().map_or(0.0, |s| {
                            s[(b * dim + d) * (k - 1) + (k as isize - 1 + p) as usize]
                        })
                    } else {
                        0.0
                    };
                    acc += x.w[d * k + j] * v;
                }
                out[(b * dim + d) * len + t] = if x.silu {
                    acc / (1.0 + (-acc).exp())
                } else {
                    acc
                };
            }
        }
    }
    out
}

fn dims(len: usize, width: usize) -> Conv1dDims {
    Conv1dDims {
        batch: 2,
        dim: 3,
        len,
        width,
    }
}

#[test]
fn forward_matches_naive_loop() {
    let mut seed = 0;
    for width in [1, 2, 4] {
        for len in [1, 3, 9] {
            for (bias, init, silu) in [
                (false, false, false),
                (true, false, true),
                (true, true, true),
                (false, true, false),
            ] {
                for seq in [None, Some(&[2usize, 3, 6][..])] {
                    seed += 1;
                    let x = Inputs::random(dims(len, width), bias, init, seq, silu, seed);
                    assert_close(
                        &format!(
                            "width {width} len {len} bias {bias} init {init} silu {silu} seq {}",
                            seq.is_some()
                        ),
                        &x.fwd(),
                        &naive(&x),
                        1e-14,
                    );
                }
            }
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    for (silu, seq, init, width) in [
        (true, None, true, 4),
        (false, None, true, 4),
        (true, Some(&[3usize, 4][..]), true, 4),
        (true, None, false, 1),
        (false, Some(&[2usize][..]), true, 2),
    ] {
        let x = Inputs::random(dims(9, width), true, init, seq, silu, 100 + width as u64);
        let mut r = common::rng(7);
        let r1 = uniform(&mut r, x.x.len(), -1.0, 1.0);
        let g = causal_conv1d_bwd(&x.args(), &r1).expect("conv backward");
        let loss = |x: &Inputs| x.fwd().iter().zip(&r1).map(|(a, b)| a * b).sum::<f64>();
        let eps = 1e-6;
        type Field = fn(&mut Inputs) -> Option<&mut Vec<f64>>;
        let fields: [(&str, Field, Option<&Vec<f64>>); 4] = [
            ("x", |x| Some(&mut x.x), Some(&g.dx)),
            ("weight", |x| Some(&mut x.w), Some(&g.dweight)),
            ("bias", |x| x.bias.as_mut(), g.dbias.as_ref()),
            (
                "initial_state",
                |x| x.init.as_mut(),
                g.dinitial_state.as_ref(),
            ),
        ];
        for (name, field, an) in fields {
            let mut xp = x.clone();
            let Some(n) = field(&mut xp).map(|v| v.len()) else {
                assert!(an.is_none(), "{name}: gradient for an absent input");
                continue;
            };
            let an = an.unwrap_or_else(|| panic!("{name}: missing gradient"));
            let mut fd = vec![0.0; n];
            for (i, f) in fd.iter_mut().enumerate() {
                let orig = field(&mut xp).unwrap()[i];
                field(&mut xp).unwrap()[i] = orig + eps;
                let lp = loss(&xp);
                field(&mut xp).unwrap()[i] = orig - eps;
                let lm = loss(&xp);
                field(&mut xp).unwrap()[i] = orig;
                *f = (lp - lm) / (2.0 * eps);
            }
            if n > 0 {
                assert!(fd.iter().any(|v| v.abs() > 1e-6), "{name}: vacuous check");
            }
            assert_close(
                &format!("d{name} (silu {silu}, width {width})"),
                an,
                &fd,
                1e-7,
            );
        }
    }
}

#[test]
fn update_step_by_step_equals_parallel_conv() {
    let width = 4;
    for state_len in [width - 1, width, width + 2] {
        for with_init in [false, true] {
            let x = Inputs::random(
                dims(7, width),
                true,
                with_init,
                None,
                true,
                200 + state_len as u64,
            );
            let Conv1dDims {
                batch, dim, len, ..
            } = x.dims;
            // Start from the initial state placed at the end of the conv state.
            let mut state = vec![0.0; batch * dim * state_len];
            if let Some(init) = &x.init {
                for row in 0..batch * dim {
                    for j in 0..width - 1 {
                        state[row * state_len + state_len - (width - 1) + j] =
                            init[row * (width - 1) + j];
                    }
                }
            }
            let mut stepped = vec![0.0; x.x.len()];
            for t in 0..len {
                let xt: Vec<f64> = (0..batch * dim).map(|r| x.x[r * len + t]).collect();
                let one = Conv1dDims { len: 1, ..x.dims };
                let o = causal_conv1d_update(one, &xt, &mut state, &x.w, x.bias.as_deref(), true)
                    .expect("update");
                for (r, v) in o.into_iter().enumerate() {
                    stepped[r * len + t] = v;
                }
            }
            assert_close("stepped out", &stepped, &x.fwd(), 1e-14);
            // The state after stepping is the final state of the prefill.
            let fin = causal_conv1d_final_state(&x.args(), state_len).expect("final state");
            assert_eq!(state, fin, "state_len {state_len}");
            // Multi-token update in one call equals the parallel conv too.
            let mut state2 = vec![0.0; batch * dim * state_len];
            if let Some(init) = &x.init {
                for row in 0..batch * dim {
                    for j in 0..width - 1 {
                        state2[row * state_len + state_len - (width - 1) + j] =
                            init[row * (width - 1) + j];
                    }
                }
            }
            let all =
                causal_conv1d_update(x.dims, &x.x, &mut state2, &x.w, x.bias.as_deref(), true)
                    .unwrap();
            assert_eq!(all, stepped);
            assert_eq!(state2, state);
        }
    }
}

#[test]
fn chunked_prefill_with_conv_state_equals_one_pass() {
    let width = 4;
    for with_init in [false, true] {
        let x = Inputs::random(dims(11, width), true, with_init, None, true, 300);
        let whole = x.fwd();
        // Chunks [0, 1), [1, 6), [6, 11): the first is shorter than width − 1.
        let cuts = [0, 1, 6, 11];
        let mut state = x.init.clone();
        let mut pieces = Vec::new();
        for c in cuts.windows(2) {
            let mut p = x.slice(c[0], c[1]);
            p.init = Some(
                state
                    .clone()
                    .unwrap_or_else(|| vec![0.0; 2 * 3 * (width - 1)]),
            );
            pieces.push((p.fwd(), c[1] - c[0]));
            state = Some(causal_conv1d_final_state(&p.args(), width - 1).unwrap());
        }
        let joined: Vec<f64> = (0..6)
            .flat_map(|r| {
                pieces
                    .iter()
                    .flat_map(move |(v, l)| v[r * l..(r + 1) * l].iter().copied())
            })
            .collect();
        assert_eq!(joined, whole);
        assert_eq!(
            state.unwrap(),
            causal_conv1d_final_state(&x.args(), width - 1).unwrap()
        );
    }
}

#[test]
fn packed_rows_equal_separate_documents() {
    let width = 3;
    let docs = [4usize, 1, 5];
    let x = Inputs::random(
        Conv1dDims {
            batch: 1,
            dim: 3,
            len: 10,
            width,
        },
        true,
        true,
        Some(&[4, 5]),
        true,
        400,
    );
    let out = x.fwd();
    let mut r = common::rng(8);
    let r1 = uniform(&mut r, out.len(), -1.0, 1.0);
    let g = causal_conv1d_bwd(&x.args(), &r1).unwrap();
    let mut t0 = 0;
    let mut dw = vec![0.0; g.dweight.len()];
    for (k, &dl) in docs.iter().enumerate() {
        let mut p = x.slice(t0, t0 + dl);
        p.seq = None;
        if k > 0 {
            p.init = None;
        }
        assert_eq!(p.fwd(), slice_last(&out, 10, t0, t0 + dl), "document {k}");
        let gp = causal_conv1d_bwd(&p.args(), &slice_last(&r1, 10, t0, t0 + dl)).unwrap();
        assert_close("dx", &gp.dx, &slice_last(&g.dx, 10, t0, t0 + dl), 1e-14);
        dw = dw.iter().zip(&gp.dweight).map(|(a, b)| a + b).collect();
        if k == 0 {
            assert_close(
                "dinit",
                gp.dinitial_state.as_ref().unwrap(),
                g.dinitial_state.as_ref().unwrap(),
                1e-14,
            );
        }
        if k + 1 == docs.len() {
            for s in [width - 1, width, 7] {
                assert_eq!(
                    causal_conv1d_final_state(&p.args(), s).unwrap(),
                    causal_conv1d_final_state(&x.args(), s).unwrap(),
                    "final state of the last document, len {s}"
                );
            }
        }
        t0 += dl;
    }
    assert_close("dweight", &dw, &g.dweight, 1e-13);
}

#[test]
fn inconsistent_shapes_are_errors_not_panics() {
    let x = Inputs::random(dims(5, 4), true, true, None, false, 500);
    let mut a = x.args();
    a.x = &x.x[1..];
    assert!(matches!(
        causal_conv1d_fwd(&a),
        Err(SsmError::Shape { name: "x", .. })
    ));
    let mut a = x.args();
    a.weight = &x.w[1..];
    assert!(causal_conv1d_fwd(&a).is_err());
    let mut a = x.args();
    a.initial_state = Some(&x.x);
    assert!(matches!(
        causal_conv1d_fwd(&a),
        Err(SsmError::Shape {
            name: "initial_state",
            ..
        })
    ));
    let mut a = x.args();
    a.dims.width = 0;
    assert!(causal_conv1d_fwd(&a).is_err());
    assert!(causal_conv1d_bwd(&x.args(), &x.x[1..]).is_err());
    // Conv state shorter than width − 1.
    let mut state = vec![0.0; 2 * 3 * 2];
    let one = Conv1dDims { len: 1, ..x.dims };
    let xt = vec![0.0; 6];
    assert!(matches!(
        causal_conv1d_update(one, &xt, &mut state, &x.w, None, false),
        Err(SsmError::Shape {
            name: "conv_state",
            ..
        })
    ));
    let mut state = vec![0.0; 2 * 3 * 4 + 1];
    assert!(causal_conv1d_update(one, &xt, &mut state, &x.w, None, false).is_err());
}
