//! Golden parity of the S4 / S4D code with the float64 formulas of `s4/index.json` (cross-checked
//! upstream against state-spaces/s4): every listed file is run according to its `kind` —
//! HiPPO / S4D init matrices and NPLR eigenvalues, S4D kernels (ZOH / bilinear, every init,
//! N=64 L=1024) with their convolution output and recurrent final state, and S4 LegS kernels
//! (DPLR Cauchy + Woodbury + iFFT with C̃, in f64) against the dense brute-force kernel. A file
//! of a kind this test does not know, or an init tensor it does not know, fails the test.
//!
//! Directory: `$SEQLAB_GOLDEN_DIR/s4` if set, else `<repo>/tests/golden/s4`.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors};
use seqlab_ssm::s4::{
    fft_conv, nplr, rank_correction, s4_c_tilde, s4_kernel, s4d_init_a, s4d_kernel,
    s4d_kernel_tensor, transition, Disc, DplrParams, FftConvPlan, Measure, S4Recurrence, S4dInit,
    S4dParams, S4dRecurrence, C64,
};
use serde_json::Value;

/// f64 paths: max|diff| / max|ref|.
const TOL_S4D_F64: f64 = 1e-10;
const TOL_S4_F64: f64 = 1e-9;
const TOL_INIT: f64 = 1e-10;
/// f32 tensor path of the S4D kernel.
const TOL_F32: f64 = 1e-5;

fn golden_dir() -> PathBuf {
    match std::env::var_os("SEQLAB_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d).join("s4"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/s4"),
    }
}

struct Arr {
    shape: Vec<usize>,
    data: Vec<f64>,
}

struct File {
    name: String,
    meta: Value,
    t: HashMap<String, Arr>,
}

impl File {
    fn load(dir: &Path, meta: &Value) -> File {
        let name = meta["file"].as_str().expect("file name").to_string();
        let bytes = std::fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
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
                other => panic!("{name}/{k}: unexpected dtype {other:?}"),
            };
            let listed: Option<Vec<usize>> = meta["tensors"][&k]["shape"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_u64().unwrap() as usize).collect());
            assert_eq!(
                listed.as_deref(),
                Some(v.shape()),
                "{name}/{k}: shape differs from index.json"
            );
            t.insert(
                k,
                Arr {
                    shape: v.shape().to_vec(),
                    data,
                },
            );
        }
        assert_eq!(
            t.len(),
            meta["tensors"].as_object().map_or(0, |o| o.len()),
            "{name}: tensor count differs from index.json"
        );
        File {
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

    fn usize(&self, k: &str) -> usize {
        self.meta[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: {k} missing", self.name)) as usize
    }
}

/// max|a − b| / max|b|, asserted ≤ tol.
fn check(what: &str, got: &[f64], want: &[f64], tol: f64) -> f64 {
    let (_, rel) = common::errs(got, want);
    assert!(
        rel <= tol && got.iter().all(|x| x.is_finite()),
        "{what}: rel {rel:e} > {tol:e}"
    );
    rel
}

type Rows = Vec<(String, f64)>;

fn run_inits(f: &File) -> Rows {
    let mut rows = Rows::new();
    let mut names: Vec<&String> = f.t.keys().collect();
    names.sort();
    for k in names {
        let arr = &f.t[k];
        // name_N{n}[_re|_im]
        let (stem, part) = match k.strip_suffix("_re") {
            Some(s) => (s, Some(0)),
            None => match k.strip_suffix("_im") {
                Some(s) => (s, Some(1)),
                None => (k.as_str(), None),
            },
        };
        let (base, n) = stem
            .rsplit_once("_N")
            .unwrap_or_else(|| panic!("inits: tensor name {k} has no _N<size>"));
        let n: usize = n
            .parse()
            .unwrap_or_else(|_| panic!("inits: bad size in {k}"));
        let cplx = |v: Vec<C64>| -> Vec<f64> {
            v.iter()
                .map(|z| if part == Some(1) { z.im } else { z.re })
                .collect()
        };
        let got: Vec<f64> = match (base, part) {
            ("hippo_legs_A", None) => transition(Measure::LegS, n).unwrap().0,
            ("hippo_legs_B", None) => transition(Measure::LegS, n).unwrap().1,
            ("legs_P", None) => rank_correction(Measure::LegS, n, 1).unwrap(),
            ("s4d_lin_A", Some(_)) => cplx(s4d_init_a(S4dInit::Lin, n).unwrap()),
            ("s4d_inv_A", Some(_)) => cplx(s4d_init_a(S4dInit::Inv, n).unwrap()),
            ("legs_normal_eigs", Some(_)) => cplx(nplr(Measure::LegS, n, 1, None).unwrap().lambda),
            _ => panic!("inits: unknown golden tensor {k}"),
        };
        assert_eq!(got.len(), arr.data.len(), "inits/{k}: length");
        // Eigenvalues are O(N²/π); compare relative to the largest.
        rows.push((
            k.clone(),
            check(&format!("inits/{k}"), &got, &arr.data, TOL_INIT),
        ));
    }
    rows
}

fn run_s4d(f: &File) -> Rows {
    let (h, m, l) = (f.usize("H"), f.usize("M_modes"), f.usize("L"));
    assert_eq!(f.usize("N_state"), 2 * m);
    let disc = match f.meta["disc"].as_str() {
        Some("zoh") => Disc::Zoh,
        Some("bilinear") => Disc::Bilinear,
        other => panic!("{}: unknown disc {other:?}", f.name),
    };
    let g = |k: &str| f.get(k).data.as_slice();
    let p = S4dParams {
        h,
        n: m,
        a_re: g("A_re"),
        a_im: g("A_im"),
        b_re: g("B_re"),
        b_im: g("B_im"),
        c_re: g("C_re"),
        c_im: g("C_im"),
        dt: g("dt"),
    };
    let mut rows = Rows::new();
    let k = s4d_kernel(&p, disc, l, 1.0).unwrap();
    rows.push((
        "K f64".into(),
        check(&format!("{}/K", f.name), &k, g("K"), TOL_S4D_F64),
    ));

    // f32 tensor path (candle op).
    let dev = Device::Cpu;
    let t = |k: &str| {
        let a = f.get(k);
        Tensor::from_vec(common::f32s(&a.data), a.shape.as_slice(), &dev).unwrap()
    };
    let k32 = s4d_kernel_tensor(
        &t("A_re"),
        &t("A_im"),
        &t("B_re"),
        &t("B_im"),
        &t("C_re"),
        &t("C_im"),
        &t("dt"),
        disc,
        l,
        1.0,
    )
    .unwrap();
    let k32 = common::f64s(&k32.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    rows.push((
        "K f32".into(),
        check(&format!("{}/K f32", f.name), &k32, g("K"), TOL_F32),
    ));

    // Convolution mode (FFT) and recurrent mode against y and the final state.
    let u = f.get("u");
    let batch = u.shape[0];
    let plan = FftConvPlan::<f64>::new(l).unwrap();
    let mut y = vec![0.0; batch * h * l];
    fft_conv(&plan, &u.data, &k, Some(g("D")), batch, h, &mut y).unwrap();
    rows.push((
        "y fft".into(),
        check(&format!("{}/y", f.name), &y, g("y"), TOL_S4D_F64),
    ));
    let rec = S4dRecurrence::new(&p, disc, 1.0).unwrap();
    let mut st = rec.zero_state(batch);
    let ys = rec.scan(&u.data, Some(g("D")), batch, l, &mut st).unwrap();
    rows.push((
        "y step".into(),
        check(&format!("{}/y step", f.name), &ys, g("y"), TOL_S4D_F64),
    ));
    let st_flat: Vec<f64> = st.iter().flat_map(|z| [z.re, z.im]).collect();
    let want: Vec<f64> = g("final_state_re")
        .iter()
        .zip(g("final_state_im"))
        .flat_map(|(&r, &i)| [r, i])
        .collect();
    rows.push((
        "final state".into(),
        check(
            &format!("{}/final_state", f.name),
            &st_flat,
            &want,
            TOL_S4D_F64,
        ),
    ));
    rows
}

fn run_s4(f: &File) -> Rows {
    let (h, n, l) = (f.usize("H"), f.usize("N_state"), f.usize("L"));
    let g = |k: &str| f.get(k).data.as_slice();
    let mut rows = Rows::new();
    // The dense A, B are HiPPO-LegS.
    let (a, b) = transition(Measure::LegS, n).unwrap();
    rows.push((
        "A".into(),
        check(&format!("{}/A", f.name), &a, g("A"), 1e-14),
    ));
    rows.push((
        "B".into(),
        check(&format!("{}/B", f.name), &b, g("B"), 1e-14),
    ));
    let d = nplr(Measure::LegS, n, 1, None).unwrap();
    let half = n / 2;
    // Module mapping: C (true, complex) = C·V_h; Λ, P̃ = V*P, B̃ = V*B shared by the channels.
    let c = g("C");
    let mut c_re = Vec::new();
    let mut c_im = Vec::new();
    for hi in 0..h {
        for col in 0..half {
            let z: C64 = (0..n).map(|r| d.v[r * half + col] * c[hi * n + r]).sum();
            c_re.push(z.re);
            c_im.push(z.im);
        }
    }
    let rep = |v: &[C64], im: bool| -> Vec<f64> {
        (0..h)
            .flat_map(|_| v.iter().map(move |z| if im { z.im } else { z.re }))
            .collect()
    };
    let (lr, li) = (rep(&d.lambda, false), rep(&d.lambda, true));
    let (pr, pi) = (rep(&d.p, false), rep(&d.p, true));
    let (br, bi) = (rep(&d.b, false), rep(&d.b, true));
    let true_p = DplrParams {
        h,
        n: half,
        lambda_re: &lr,
        lambda_im: &li,
        p_re: &pr,
        p_im: &pi,
        b_re: &br,
        b_im: &bi,
        c_re: &c_re,
        c_im: &c_im,
        dt: g("dt"),
    };
    let (ct_re, ct_im) = s4_c_tilde(&true_p, l).unwrap();
    let kp = DplrParams {
        c_re: &ct_re,
        c_im: &ct_im,
        ..true_p
    };
    let k = s4_kernel(&kp, l, 1.0).unwrap();
    rows.push((
        "K f64".into(),
        check(&format!("{}/K", f.name), &k, g("K"), TOL_S4_F64),
    ));

    let u = f.get("u");
    let batch = u.shape[0];
    let plan = FftConvPlan::<f64>::new(l).unwrap();
    let mut y = vec![0.0; batch * h * l];
    fft_conv(&plan, &u.data, &k, Some(g("D")), batch, h, &mut y).unwrap();
    rows.push((
        "y fft".into(),
        check(&format!("{}/y", f.name), &y, g("y"), TOL_S4_F64),
    ));
    let rec = S4Recurrence::new(&true_p, 1.0).unwrap();
    let mut st = rec.zero_state(batch);
    let ys = rec.scan(&u.data, Some(g("D")), batch, l, &mut st).unwrap();
    rows.push((
        "y step".into(),
        check(&format!("{}/y step", f.name), &ys, g("y"), TOL_S4_F64),
    ));
    // Dense real state x = V_f x̃ = 2·Re(V_h x̃_h).
    let mut xs = Vec::new();
    for bh in 0..batch * h {
        let xt = &st[bh * n..bh * n + half];
        for r in 0..n {
            let s: C64 = (0..half).map(|cc| d.v[r * half + cc] * xt[cc]).sum();
            xs.push(2.0 * s.re);
        }
    }
    rows.push((
        "final state".into(),
        check(
            &format!("{}/final_state", f.name),
            &xs,
            g("final_state"),
            TOL_S4_F64,
        ),
    ));
    rows
}

/// Runs every file listed in `dir/index.json`; panics on any mismatch or unknown kind.
fn run_dir(dir: &Path) {
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("index.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join("index.json").display())),
    )
    .expect("index.json parses");
    let files = index["files"].as_array().expect("files");
    assert!(!files.is_empty(), "no files listed");
    let mut ran = 0;
    for meta in files {
        let f = File::load(dir, meta);
        let kind = meta["kind"].as_str().expect("kind");
        let rows = match kind {
            "init matrices from formulas" => run_inits(&f),
            "S4D kernel" => run_s4d(&f),
            k if k.starts_with("S4 kernel (HiPPO-LegS, bilinear)") => run_s4(&f),
            other => panic!("{}: unknown golden kind {other:?}", f.name),
        };
        let line: Vec<String> = rows.iter().map(|(w, r)| format!("{w} {r:.1e}")).collect();
        println!("{:<36} max rel: {}", f.name, line.join(", "));
        ran += 1;
    }
    assert_eq!(ran, files.len());
    println!("{ran} golden files checked from {}", dir.display());
}

#[test]
fn golden_s4_every_file() {
    run_dir(&golden_dir());
}

/// A kind the runner does not know must fail, not be skipped.
#[test]
#[should_panic(expected = "unknown golden kind")]
fn golden_s4_unknown_kind_fails() {
    let src = golden_dir();
    let dir = std::env::temp_dir().join(format!("seqlab_s4_golden_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut index: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("index.json")).unwrap()).unwrap();
    let first = index["files"][0].clone();
    let file = first["file"].as_str().unwrap().to_string();
    std::fs::copy(src.join(&file), dir.join(&file)).unwrap();
    let mut bogus = first;
    bogus["kind"] = Value::from("S5 kernel from the future");
    index["files"] = Value::from(vec![bogus]);
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    run_dir(&dir);
}
