//! Golden parity with mamba_ssm's reference functions, driven by `selective_scan/index.json`:
//! every listed case is run (scan cases through `selective_scan_fwd`, step cases through
//! `selective_state_update`, the Mamba-2 SSD case through the scan with per-head scalar A), in
//! f32 against the f32 reference and in f64 against the f64 reference. A case of a kind this
//! test does not know fails the test.
//!
//! Directory: `$SEQLAB_GOLDEN_DIR/selective_scan` if set, else `<repo>/tests/golden/selective_scan`.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};
use seqlab_ssm::{
    selective_scan_fwd, selective_state_update, AMatrix, BcMatrix, Float, ScanArgs, ScanConfig,
    ScanDims, StepArgs, StepDims,
};
use serde_json::Value;

/// f32 results: max|a−b| / max|b| must stay within this, and every element within
/// `REL_TOL · max(|b|, FLOOR · max(1, max|b|))` (the floor keeps near-zero elements, whose f32
/// error is set by the magnitude of the terms summed, from failing on rounding alone; the worst
/// case, complex A, needs 0.04 on the state and 0.007·max on the output).
const REL_TOL: f64 = 1e-5;
const FLOOR: f64 = 0.1;
/// f64 twin vs the f64 reference.
const REL_TOL_F64: f64 = 1e-11;

fn golden_dir() -> PathBuf {
    match std::env::var_os("SEQLAB_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d).join("selective_scan"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/selective_scan"),
    }
}

struct Arr {
    shape: Vec<usize>,
    data: Vec<f64>,
}

struct Case {
    name: String,
    meta: Value,
    t: HashMap<String, Arr>,
}

impl Case {
    fn load(dir: &std::path::Path, meta: &Value) -> Case {
        let name = meta["name"].as_str().expect("case name").to_string();
        let file = meta["file"].as_str().expect("case file");
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut t = HashMap::new();
        for (k, v) in st.tensors() {
            let data: Vec<f64> = match v.dtype() {
                Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::F64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                other => panic!("{file}/{k}: unexpected dtype {other:?}"),
            };
            // The index lists every tensor; check it agrees with the file.
            let listed = &meta["tensors"][&k]["shape"];
            let shape = v.shape().to_vec();
            assert_eq!(
                listed.as_array().map(|a| a
                    .iter()
                    .map(|x| x.as_u64().unwrap() as usize)
                    .collect::<Vec<_>>()),
                Some(shape.clone()),
                "{file}/{k}: shape differs from index.json"
            );
            t.insert(k, Arr { shape, data });
        }
        Case {
            name,
            meta: meta.clone(),
            t,
        }
    }

    fn get(&self, k: &str) -> &Arr {
        self.t
            .get(k)
            .unwrap_or_else(|| panic!("{}: tensor {k} missing", self.name))
    }

    fn flag(&self, path: &[&str]) -> bool {
        let mut v = &self.meta;
        for p in path {
            v = &v[*p];
        }
        v.as_bool()
            .unwrap_or_else(|| panic!("{}: flag {path:?} missing or not a bool", self.name))
    }

    /// Complex tensor stored as NAME_re / NAME_im → interleaved (re, im) pairs.
    fn complex(&self, k: &str) -> Vec<f64> {
        let re = &self.get(&format!("{k}_re")).data;
        let im = &self.get(&format!("{k}_im")).data;
        re.iter().zip(im).flat_map(|(&r, &i)| [r, i]).collect()
    }
}

/// Max error stats and the per-element check of `got` (f32 run) against `want`.
fn check_f32(case: &str, what: &str, got: &[f64], want: &[f64]) -> (f64, f64) {
    let (abs, rel) = common::errs(got, want);
    assert!(
        rel <= REL_TOL,
        "{case}/{what}: max|diff|/max|ref| = {rel:e} > {REL_TOL:e}"
    );
    let scale = want.iter().map(|x| x.abs()).fold(0.0, f64::max);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = REL_TOL * w.abs().max(FLOOR * scale.max(1.0));
        assert!(
            (g - w).abs() <= tol,
            "{case}/{what}[{i}]: {g} vs {w} (|diff| {:e} > {tol:e})",
            (g - w).abs()
        );
    }
    (abs, rel)
}

fn check_f64(case: &str, what: &str, got: &[f64], want: &[f64]) -> f64 {
    let (_, rel) = common::errs(got, want);
    assert!(
        rel <= REL_TOL_F64,
        "{case}/{what} (f64 twin): rel {rel:e} > {REL_TOL_F64:e}"
    );
    rel
}

/// Owned inputs of a scan case in one precision.
struct ScanData<T> {
    dims: ScanDims,
    u: Vec<T>,
    delta: Vec<T>,
    a: Vec<T>,
    b: Vec<T>,
    c: Vec<T>,
    d: Option<Vec<T>>,
    z: Option<Vec<T>>,
    bias: Option<Vec<T>>,
    complex: bool,
    b_groups: Option<Option<usize>>, // None: const; Some(None): var; Some(Some(g)): grouped
    c_groups: Option<Option<usize>>,
    softplus: bool,
}

impl<T: Float> ScanData<T> {
    fn convert<U: Float>(&self) -> ScanData<U> {
        let cv = |v: &Vec<T>| common::cast::<T, U>(v);
        ScanData {
            dims: self.dims,
            u: cv(&self.u),
            delta: cv(&self.delta),
            a: cv(&self.a),
            b: cv(&self.b),
            c: cv(&self.c),
            d: self.d.as_ref().map(cv),
            z: self.z.as_ref().map(cv),
            bias: self.bias.as_ref().map(cv),
            complex: self.complex,
            b_groups: self.b_groups,
            c_groups: self.c_groups,
            softplus: self.softplus,
        }
    }

    fn run(&self, chunk_len: usize) -> (Vec<f64>, Vec<f64>) {
        fn bc<T>(data: &[T], g: Option<Option<usize>>) -> BcMatrix<'_, T> {
            match g {
                None => BcMatrix::Const(data),
                Some(None) => BcMatrix::Var(data),
                Some(Some(groups)) => BcMatrix::Grouped { data, groups },
            }
        }
        let a = if self.complex {
            AMatrix::Complex(&self.a)
        } else {
            AMatrix::Real(&self.a)
        };
        let mut args = ScanArgs::new(
            self.dims,
            &self.u,
            &self.delta,
            a,
            bc(&self.b, self.b_groups),
            bc(&self.c, self.c_groups),
        );
        args.d = self.d.as_deref();
        args.z = self.z.as_deref();
        args.delta_bias = self.bias.as_deref();
        let cfg = ScanConfig {
            delta_softplus: self.softplus,
            chunk_len,
            return_last_state: true,
        };
        let res = selective_scan_fwd(&args, &cfg).expect("scan");
        let f = |v: Vec<T>| v.into_iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
        (f(res.out), f(res.last_state.expect("last state")))
    }
}

fn bc_kind(case: &Case, key: &str) -> Option<Option<usize>> {
    match case.meta[key].as_str() {
        Some("var") => Some(None),
        Some("const") => None,
        Some("group") => Some(Some(
            case.meta["groups"]
                .as_u64()
                .unwrap_or_else(|| panic!("{}: grouped without `groups`", case.name))
                as usize,
        )),
        other => panic!("{}: unknown {key} {other:?}", case.name),
    }
}

/// One line of the report.
type Report = (String, Vec<(String, f64, f64)>);

fn run_scan_case(case: &Case) -> Report {
    let name = &case.name;
    let dims_v: Vec<usize> = case.meta["batch_dim_len_dstate"]
        .as_array()
        .expect("batch_dim_len_dstate")
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    let dims = ScanDims {
        batch: dims_v[0],
        dim: dims_v[1],
        len: dims_v[2],
        dstate: dims_v[3],
    };
    let complex = case.flag(&["A_complex"]);
    let b_groups = bc_kind(case, "B_kind");
    let c_groups = bc_kind(case, "C_kind");
    let bc_data = |k: &str, g: Option<Option<usize>>| -> Vec<f64> {
        if complex && g.is_none() {
            case.complex(k) // constant complex B/C stored as re/im
        } else {
            case.get(k).data.clone() // var/grouped complex: already interleaved along len
        }
    };
    let present = |k: &str, tensor: &str| -> Option<Vec<f64>> {
        let on = case.flag(&["args_present", k]);
        assert_eq!(on, case.t.contains_key(tensor), "{name}: {k} flag vs file");
        on.then(|| case.get(tensor).data.clone())
    };
    let data = ScanData::<f64> {
        dims,
        u: case.get("u").data.clone(),
        delta: case.get("delta").data.clone(),
        a: if complex {
            case.complex("A")
        } else {
            case.get("A").data.clone()
        },
        b: bc_data("B", b_groups),
        c: bc_data("C", c_groups),
        d: present("D", "D"),
        z: present("z", "z"),
        bias: present("delta_bias", "delta_bias"),
        complex,
        b_groups,
        c_groups,
        softplus: case.flag(&["delta_softplus"]),
    };
    assert!(
        case.flag(&["return_last_state"]),
        "{name}: no last_state to check"
    );
    let (want_state, want_state64) = if complex {
        (case.complex("last_state"), case.complex("last_state_f64"))
    } else {
        (
            case.get("last_state").data.clone(),
            case.get("last_state_f64").data.clone(),
        )
    };
    let d32 = data.convert::<f32>();
    let mut rows = Vec::new();
    for chunk in [512, 7] {
        let (out, st) = d32.run(chunk);
        let (a, r) = check_f32(name, "out", &out, &case.get("out").data);
        let (sa, sr) = check_f32(name, "last_state", &st, &want_state);
        if chunk == 512 {
            rows.push(("out".into(), a, r));
            rows.push(("last_state".into(), sa, sr));
        }
    }
    let (out64, st64) = data.run(512);
    let r1 = check_f64(name, "out", &out64, &case.get("out_f64").data);
    let r2 = check_f64(name, "last_state", &st64, &want_state64);
    rows.push(("f64 out/state rel".into(), r1, r2));
    (name.clone(), rows)
}

fn run_step_case(case: &Case) -> Report {
    let name = &case.name;
    let state = case.get("state_in");
    let (dims, bshape) = match state.shape.len() {
        3 => (
            StepDims::mamba1(state.shape[0], state.shape[1], state.shape[2]),
            vec![state.shape[0], state.shape[2]],
        ),
        4 => {
            let ng = case.get("B").shape[1];
            (
                StepDims {
                    batch: state.shape[0],
                    nheads: state.shape[1],
                    headdim: state.shape[2],
                    dstate: state.shape[3],
                    ngroups: ng,
                },
                vec![state.shape[0], ng, state.shape[3]],
            )
        }
        r => panic!("{name}: state of rank {r}"),
    };
    assert_eq!(case.get("B").shape, bshape, "{name}: B layout");
    let present = |k: &str| -> Option<Vec<f64>> {
        let on = case.flag(&["args_present", k]);
        assert_eq!(on, case.t.contains_key(k), "{name}: {k} flag vs file");
        on.then(|| case.get(k).data.clone())
    };
    let (d, z, dtb) = (present("D"), present("z"), present("dt_bias"));
    let softplus = case.flag(&["dt_softplus"]);
    fn run<T: Float>(
        dims: StepDims,
        case: &Case,
        d: &Option<Vec<f64>>,
        z: &Option<Vec<f64>>,
        dtb: &Option<Vec<f64>>,
        softplus: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let cv = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let mut state = cv(&case.get("state_in").data);
        let (x, dt, a, b, c) = (
            cv(&case.get("x").data),
            cv(&case.get("dt").data),
            cv(&case.get("A").data),
            cv(&case.get("B").data),
            cv(&case.get("C").data),
        );
        let (d, z, dtb) = (
            d.as_deref().map(cv),
            z.as_deref().map(cv),
            dtb.as_deref().map(cv),
        );
        let mut args = StepArgs::new(dims, &x, &dt, &a, &b, &c).with_dt_softplus(softplus);
        args.d = d.as_deref();
        args.z = z.as_deref();
        args.dt_bias = dtb.as_deref();
        let out = selective_state_update(&mut state, &args).expect("step");
        let f = |v: Vec<T>| v.into_iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
        (f(out), f(state))
    }
    let (out, st) = run::<f32>(dims, case, &d, &z, &dtb, softplus);
    let (a, r) = check_f32(name, "out", &out, &case.get("out").data);
    let (sa, sr) = check_f32(name, "state_out", &st, &case.get("state_out").data);
    let (out64, st64) = run::<f64>(dims, case, &d, &z, &dtb, softplus);
    let r1 = check_f64(name, "out", &out64, &case.get("out_f64").data);
    let r2 = check_f64(name, "state_out", &st64, &case.get("state_out_f64").data);
    (
        name.clone(),
        vec![
            ("out".into(), a, r),
            ("state".into(), sa, sr),
            ("f64 out/state rel".into(), r1, r2),
        ],
    )
}

/// Mamba-2 SSD (ssd_minimal_discrete) checked through the selective scan: channel (h, p) with
/// u = X[.., h, p], δ = dt[.., h] (already softplus'ed), A = A_h for every n, grouped B/C.
fn run_ssd_case(case: &Case) -> Report {
    let name = &case.name;
    let xs = case.get("X");
    let (bsz, len, nh, hd) = (xs.shape[0], xs.shape[1], xs.shape[2], xs.shape[3]);
    let bs = case.get("B");
    let (ng, n) = (bs.shape[2], bs.shape[3]);
    let dim = nh * hd;
    let dims = ScanDims {
        batch: bsz,
        dim,
        len,
        dstate: n,
    };
    let mut u = vec![0.0; bsz * dim * len];
    let mut delta = vec![0.0; bsz * dim * len];
    let dt = &case.get("dt").data;
    for b in 0..bsz {
        for t in 0..len {
            for h in 0..nh {
                for p in 0..hd {
                    let ch = h * hd + p;
                    u[(b * dim + ch) * len + t] = xs.data[((b * len + t) * nh + h) * hd + p];
                    delta[(b * dim + ch) * len + t] = dt[(b * len + t) * nh + h];
                }
            }
        }
    }
    let a_h = &case.get("A").data;
    let a: Vec<f64> = (0..dim * n).map(|i| a_h[(i / n) / hd]).collect();
    let group_major = |k: &str| -> Vec<f64> {
        let src = &case.get(k).data;
        let mut out = vec![0.0; bsz * ng * n * len];
        for b in 0..bsz {
            for t in 0..len {
                for g in 0..ng {
                    for k in 0..n {
                        out[((b * ng + g) * n + k) * len + t] =
                            src[((b * len + t) * ng + g) * n + k];
                    }
                }
            }
        }
        out
    };
    let data = ScanData::<f64> {
        dims,
        u,
        delta,
        a,
        b: group_major("B"),
        c: group_major("C"),
        d: None,
        z: None,
        bias: None,
        complex: false,
        b_groups: Some(Some(ng)),
        c_groups: Some(Some(ng)),
        softplus: false,
    };
    // Back to (batch, len, nheads, headdim); the state (batch, dim, N) is (batch, nh, hd, N) already.
    let to_y = |out: &[f64]| -> Vec<f64> {
        let mut y = vec![0.0; out.len()];
        for b in 0..bsz {
            for ch in 0..dim {
                for t in 0..len {
                    y[(b * len + t) * dim + ch] = out[(b * dim + ch) * len + t];
                }
            }
        }
        y
    };
    let (out, st) = data.convert::<f32>().run(512);
    let (a, r) = check_f32(name, "Y", &to_y(&out), &case.get("Y").data);
    let (sa, sr) = check_f32(name, "final_state", &st, &case.get("final_state").data);
    let (out64, st64) = data.run(512);
    // The f64 reference is the chunked SSD algorithm: equal to the scan up to rounding.
    let r1 = check_f64(name, "Y", &to_y(&out64), &case.get("Y_f64").data);
    let r2 = check_f64(
        name,
        "final_state",
        &st64,
        &case.get("final_state_f64").data,
    );
    (
        name.clone(),
        vec![
            ("Y".into(), a, r),
            ("final_state".into(), sa, sr),
            ("f64 Y/state rel".into(), r1, r2),
        ],
    )
}

#[test]
fn golden_selective_scan_every_case() {
    let dir = golden_dir();
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("index.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join("index.json").display())),
    )
    .expect("index.json parses");
    assert!(
        index["signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("selective_scan_ref(")),
        "top-level signature is not selective_scan_ref"
    );
    let cases = index["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "no cases listed");
    let mut ran = 0;
    for meta in cases {
        let case = Case::load(&dir, meta);
        let report = match meta.get("function").and_then(Value::as_str) {
            None => run_scan_case(&case),
            Some("selective_state_update_ref") => run_step_case(&case),
            Some("ssd_minimal_discrete") => run_ssd_case(&case),
            Some(other) => panic!("{}: unknown golden function {other}", case.name),
        };
        let (name, rows) = report;
        let line: Vec<String> = rows
            .iter()
            .map(|(w, a, r)| format!("{w}: {a:.2e} / {r:.2e}"))
            .collect();
        println!("{name:<28} max|diff| / rel: {}", line.join("; "));
        ran += 1;
    }
    assert_eq!(ran, cases.len());
    println!("{ran} golden cases checked from {}", dir.display());
}
