//! Parity of the Mamba LM with HF transformers' `MambaForCausalLM` on the mamba-tiny golden
//! checkpoint. Data-driven: every tensor listed under `golden_tensors` in golden.json is checked,
//! and a field this test does not know fails it (nothing is skipped silently).
//!
//! Directory: see `common::golden_dir` (`SEQLAB_GOLDEN_DIR`, else `<repo>/tests/golden/mamba-tiny`).

use crate::common;

use common::*;
use seqlab_lm::{generate, GenerateConfig, LogitsMode, MambaLm};

/// Max abs error allowed on logits, hidden states and cached states.
const TOL: f32 = 1e-4;

/// max |a − b| / max |b|.
pub(crate) fn rel_err(what: &str, a: &[f32], b: &[f32]) -> f32 {
    let scale = b
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    max_abs(what, a, b) / scale
}

/// How [`check_every_field`] measures a field's error and how much it allows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tolerance {
    /// max |a − b| ≤ the bound.
    Abs(f32),
    /// max |a − b| / max |b| ≤ the bound.
    Rel(f32),
}

impl Tolerance {
    /// The error of `a` against the reference `b` in this tolerance's measure.
    fn err(self, what: &str, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Tolerance::Abs(_) => max_abs(what, a, b),
            Tolerance::Rel(_) => rel_err(what, a, b),
        }
    }

    fn bound(self) -> f32 {
        match self {
            Tolerance::Abs(t) | Tolerance::Rel(t) => t,
        }
    }
}

#[test]
fn golden_mamba_tiny_every_field() {
    check_every_field(&golden_dir(), "mamba-tiny", Tolerance::Abs(TOL));
}

/// Every field of the golden set in `dir` (`what` names it in messages) against the model loaded
/// from the same directory, within `tol`: also run on falcon-mamba-tiny and mamba2-tiny.
pub(crate) fn check_every_field(dir: &std::path::Path, what: &str, tol: Tolerance) {
    let meta = golden_json(dir);
    let g = golden_tensors(dir);
    let model = MambaLm::load(dir).unwrap_or_else(|e| panic!("load {what}: {e}"));
    let cfg = model.config().clone();
    let prompt = ids(&g["input_ids"]);
    let plen = prompt.len();
    let v = cfg.vocab_size;

    let fwd = model
        .forward_with(&prompt, 1, None, LogitsMode::All, true)
        .unwrap();
    let logits = f32s(&fwd.logits.unwrap());
    let hidden = fwd.hidden_states.unwrap();
    let (_, state) = model.prefill(&prompt, 1, LogitsMode::Skip).unwrap();

    let gen_ids = ids(&g["generated_ids"]);
    let out = generate(
        &model,
        &prompt,
        &GenerateConfig {
            max_new_tokens: gen_ids.len(),
            ..GenerateConfig::default()
        },
        |_| Ok(()),
    )
    .unwrap();

    // Step logits: step 0 from the prefill, step j ≥ 1 after feeding generated token j − 1.
    let mut step_logits: Vec<f32> = logits[(plen - 1) * v..].to_vec();
    let mut st = state.clone();
    for &id in &gen_ids[..gen_ids.len() - 1] {
        step_logits.extend(f32s(&model.step(&mut st, &[id]).unwrap()));
    }

    let fields = meta["golden_tensors"].as_object().expect("golden_tensors");
    let mut report = Vec::new();
    for (name, spec) in fields {
        let shape: Vec<usize> = spec["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let gt = &g[name.as_str()];
        assert_eq!(gt.dims(), shape.as_slice(), "{name}: shape in golden.json");
        let err = if name == "input_ids" {
            0.0 // the prompt itself: the input of every other check
        } else if name == "logits" {
            tol.err(name, &logits, &f32s(gt))
        } else if name == "step_logits" {
            tol.err(name, &step_logits, &f32s(gt))
        } else if name == "generated_ids" {
            assert_eq!(out.generated_ids, gen_ids, "greedy tokens differ");
            0.0
        } else if name == "full_sequence" {
            let mut full = prompt.clone();
            full.extend(&out.generated_ids);
            assert_eq!(full, ids(gt), "full_sequence");
            0.0
        } else if let Some(i) = name.strip_prefix("hidden_states.") {
            let i: usize = i.parse().unwrap();
            tol.err(name, &hidden[i], &f32s(gt))
        } else if let Some(l) = name.strip_prefix("prefill_conv_state.") {
            let l: usize = l.parse().unwrap();
            tol.err(name, &state.conv[l], &f32s(gt))
        } else if let Some(l) = name.strip_prefix("prefill_ssm_state.") {
            let l: usize = l.parse().unwrap();
            tol.err(name, &state.ssm[l], &f32s(gt))
        } else {
            panic!("golden field `{name}` is not checked by this test: add a check for it");
        };
        report.push(format!("{name}: {tol:?} error {err:.3e}"));
        assert!(err <= tol.bound(), "{name}: error {err} above {tol:?}");
    }
    assert_eq!(
        hidden.len(),
        cfg.n_layer + 1,
        "hidden states per layer + norm_f"
    );
    eprintln!("{what} parity:\n  {}", report.join("\n  "));
}

#[test]
fn prefill_then_step_equals_parallel_forward() {
    let dir = golden_dir();
    let g = golden_tensors(&dir);
    let model = MambaLm::load(&dir).unwrap();
    let full = ids(&g["full_sequence"]);
    // Splits from the golden set's own lengths: the first token, a quarter of the prompt, the
    // whole prompt (1, 17, 64 for mamba-tiny's 64-token prompt).
    let plen = ids(&g["input_ids"]).len();
    let mut splits = vec![1, plen / 4 + 1, plen];
    splits.retain(|&s| s < full.len());
    splits.dedup();
    check_steps_equal_parallel(&model, &full, &splits, Tolerance::Abs(TOL));
}

/// Prefill of `full[..split]` then one step per remaining token, on two rows (`full` and its
/// reverse, to exercise the batch dimension), equals the parallel forward at every position,
/// for each split, within `tol`: also run on mamba2-tiny.
pub(crate) fn check_steps_equal_parallel(
    model: &MambaLm,
    full: &[u32],
    splits: &[usize],
    tol: Tolerance,
) {
    let v = model.vocab_size();
    let mut rev = full.to_vec();
    rev.reverse();
    let batch: Vec<u32> = full.iter().chain(&rev).copied().collect();
    let len = full.len();
    let parallel = f32s(&model.forward(&batch, 2).unwrap());
    for &split in splits {
        let pre: Vec<u32> = [&full[..split], &rev[..split]].concat();
        let (last, mut st) = model.prefill(&pre, 2, LogitsMode::Last).unwrap();
        let last = f32s(&last.unwrap());
        let mut worst = 0f32;
        for r in 0..2 {
            let want = &parallel[(r * len + split - 1) * v..][..v];
            worst = worst.max(tol.err("prefill last", &last[r * v..][..v], want));
        }
        for t in split..len {
            let step = f32s(&model.step(&mut st, &[full[t], rev[t]]).unwrap());
            for r in 0..2 {
                let want = &parallel[(r * len + t) * v..][..v];
                worst = worst.max(tol.err("step", &step[r * v..][..v], want));
            }
        }
        assert!(
            worst <= tol.bound(),
            "split {split}: step vs parallel {worst} ({tol:?})"
        );
    }
}

#[test]
fn chunked_prefill_with_state_equals_one_prefill() {
    let dir = golden_dir();
    let g = golden_tensors(&dir);
    let model = MambaLm::load(&dir).unwrap();
    let full = ids(&g["full_sequence"]);
    // Three chunks cut from the golden sequence's own length (2 and 40 of mamba-tiny's 96).
    let cut = full.len() * 5 / 12;
    assert!(
        cut > 2 && cut < full.len(),
        "golden sequence too short to chunk"
    );
    check_chunked_prefill_equals_one(&model, &full, (2, cut), Tolerance::Abs(TOL));
}

/// Prefill of `full` in three chunks (cut at `cuts`), carrying the state, equals one prefill:
/// last logits, position count and every layer's SSM and conv state, within `tol`.
pub(crate) fn check_chunked_prefill_equals_one(
    model: &MambaLm,
    full: &[u32],
    (a, b): (usize, usize),
    tol: Tolerance,
) {
    let (one, s_one) = model.prefill(full, 1, LogitsMode::Last).unwrap();
    let mut st = model.new_state(1);
    let mut last = None;
    for chunk in [&full[..a], &full[a..b], &full[b..]] {
        last = model
            .forward_with(chunk, 1, Some(&mut st), LogitsMode::Last, false)
            .unwrap()
            .logits;
    }
    let e = tol.err("chunked", &f32s(&last.unwrap()), &f32s(&one.unwrap()));
    assert!(
        e <= tol.bound(),
        "chunked prefill logits differ by {e} ({tol:?})"
    );
    assert_eq!(st.seqlen, s_one.seqlen);
    for l in 0..st.ssm.len() {
        assert!(tol.err("ssm", &st.ssm[l], &s_one.ssm[l]) <= tol.bound());
        assert!(tol.err("conv", &st.conv[l], &s_one.conv[l]) <= tol.bound());
    }
}
