//! Parity of the Mamba-2 LM with HF transformers' `Mamba2ForCausalLM` (its chunked SSD torch
//! path) on the mamba2-tiny golden checkpoint. Data-driven: every tensor listed under
//! `golden_tensors` in golden.json is checked, a field this test does not know fails it, and
//! every size comes from the golden files, so another golden set of the same layout passes
//! unchanged.
//!
//! Directory: `$SEQLAB_GOLDEN_MAMBA2_DIR` when set, else `$SEQLAB_GOLDEN_DIR/mamba2-tiny` when
//! that exists, else `<repo>/tests/golden/mamba2-tiny`.

use crate::common;
use crate::golden_mamba_tiny::{
    check_chunked_prefill_equals_one, check_every_field, check_steps_equal_parallel, rel_err,
    Tolerance,
};

use common::*;
use seqlab_lm::conformance::check_causal_lm;
use seqlab_lm::mamba::weights::expected_specs;
use seqlab_lm::mamba::{MambaDeviceLm, MambaWeights};
use seqlab_lm::{CausalLm, MambaConfig, MambaLm};
use seqlab_tensor::candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Largest error allowed, relative to the largest magnitude of the reference tensor.
const REL_TOL: f32 = 1e-5;

/// The golden prompt followed by its greedy continuation.
fn golden_sequence(g: &HashMap<String, Tensor>) -> Vec<u32> {
    let mut t = ids(&g["input_ids"]);
    t.extend(ids(&g["generated_ids"]));
    t
}

#[test]
fn golden_mamba2_tiny_every_field() {
    let dir = mamba2_golden_dir();
    let model = MambaLm::load(&dir).expect("load mamba2-tiny");
    assert!(
        model.config().mamba2.is_some(),
        "the golden config is a Mamba-2 config"
    );
    check_every_field(&dir, "mamba2-tiny", Tolerance::Rel(REL_TOL));
}

#[test]
fn mamba2_prefill_then_step_equals_parallel_forward() {
    let dir = mamba2_golden_dir();
    let g = golden_tensors(&dir);
    let model = MambaLm::load(&dir).unwrap();
    let full = golden_sequence(&g);
    let len = full.len();
    check_steps_equal_parallel(
        &model,
        &full,
        &[1, len / 3, len - 1],
        Tolerance::Rel(REL_TOL),
    );
}

#[test]
fn mamba2_chunked_prefill_with_state_equals_one_prefill() {
    let dir = mamba2_golden_dir();
    let g = golden_tensors(&dir);
    let model = MambaLm::load(&dir).unwrap();
    let full = golden_sequence(&g);
    let cuts = (2.min(full.len() - 2), full.len() / 2);
    check_chunked_prefill_equals_one(&model, &full, cuts, Tolerance::Rel(REL_TOL));
}

/// The tensor-op recurrent step (the device LM's path) on the CPU equals the CPU fast path.
#[test]
fn mamba2_tensor_step_equals_the_cpu_path() {
    let dir = mamba2_golden_dir();
    let g = golden_tensors(&dir);
    let cpu = MambaLm::load(&dir).unwrap();
    let dev = MambaDeviceLm::load(&dir, &Device::Cpu).unwrap();
    let tokens = golden_sequence(&g);
    let n = 12.min(tokens.len());
    let (a, mut sa) = CausalLm::prefill(&cpu, &tokens[..n]).unwrap();
    let (b, mut sb) = CausalLm::prefill(&dev, &tokens[..n]).unwrap();
    let mut worst = seqlab_lm::conformance::max_rel_diff(&b, &a);
    for &t in &tokens[n..n + 6] {
        let a = CausalLm::step(&cpu, &mut sa, t).unwrap();
        let b = CausalLm::step(&dev, &mut sb, t).unwrap();
        worst = worst.max(seqlab_lm::conformance::max_rel_diff(&b, &a));
    }
    assert!(worst < 1e-5, "tensor step vs CPU: {worst}");
    check_causal_lm(&dev, &tokens[..8], 2, 1e-4).unwrap();
}

/// The same weights under mamba_ssm's names and config (`ssm_cfg.layer = "Mamba2"`) give the
/// golden logits.
#[test]
fn mamba2_original_layout_gives_the_same_logits() {
    let dir = mamba2_golden_dir();
    let hf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut t = seqlab_tensor::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let emb = t.remove("backbone.embeddings.weight").unwrap();
    t.insert("backbone.embedding.weight".into(), emb);
    seqlab_tensor::save_atomic(tmp.path().join("model.safetensors"), &t).unwrap();
    let cfg = serde_json::json!({
        "d_model": hf["hidden_size"], "d_intermediate": 0, "n_layer": hf["num_hidden_layers"],
        "vocab_size": hf["vocab_size"], "pad_vocab_size_multiple": 1,
        "ssm_cfg": {"layer": "Mamba2", "d_state": hf["state_size"], "d_conv": hf["conv_kernel"],
                    "expand": hf["expand"], "headdim": hf["head_dim"], "ngroups": hf["n_groups"],
                    "chunk_size": hf["chunk_size"], "bias": hf["use_bias"],
                    "conv_bias": hf["use_conv_bias"]},
        "rms_norm": true, "residual_in_fp32": true, "fused_add_norm": true,
        "tie_embeddings": hf["tie_word_embeddings"],
    });
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let g = golden_tensors(&dir);
    let model = MambaLm::load(tmp.path()).unwrap();
    let got = f32s(&model.forward(&ids(&g["input_ids"]), 1).unwrap());
    let e = rel_err("original layout logits", &got, &f32s(&g["logits"]));
    assert!(e <= REL_TOL, "original layout: {e}");
}

fn load_err(dir: &Path) -> String {
    match MambaLm::load(dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn mamba2_missing_or_misshapen_tensor_is_named() {
    let dir = mamba2_golden_dir();
    let t = seqlab_tensor::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    for (name, what) in [
        ("backbone.layers.1.mixer.dt_bias", "missing"),
        ("backbone.layers.0.mixer.norm.weight", "missing"),
        ("backbone.layers.1.mixer.in_proj.weight", "shape"),
        ("backbone.layers.0.mixer.conv1d.weight", "shape"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
        let mut t = t.clone();
        let old = t.remove(name).unwrap();
        if what == "shape" {
            let rows = old.dims()[0] - 1;
            t.insert(name.into(), old.narrow(0, 0, rows).unwrap());
        }
        seqlab_tensor::save_atomic(tmp.path().join("model.safetensors"), &t).unwrap();
        let msg = load_err(tmp.path());
        assert!(msg.contains(name), "{what} {name}: {msg}");
        assert_eq!(msg.lines().count(), 1, "one line: {msg}");
    }
    // A config whose heads do not tile the inner width is refused before any weight is read.
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["head_dim"] = serde_json::json!(cfg["head_dim"].as_u64().unwrap() + 1);
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        dir.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains("head_dim"), "{msg}");
}

/// A random Mamba-2 with every option the golden model leaves off: the gated-MLP part
/// (d_ssm < d_inner), D per channel, the norm before the gate, a finite Δ limit, projection
/// biases, tied embeddings. The CPU prefill, the CPU steps, the block scorer and the tensor-op
/// steps are four computations of the same function and must agree.
#[test]
fn mamba2_options_agree_across_paths() {
    let cfg = MambaConfig::from_json_str(
        r#"{"d_model": 24, "n_layer": 2, "vocab_size": 40, "pad_vocab_size_multiple": 8,
            "ssm_cfg": {"layer": "Mamba2", "d_state": 8, "d_conv": 3, "expand": 2,
                        "headdim": 8, "ngroups": 2, "d_ssm": 32, "D_has_hdim": true,
                        "norm_before_gate": true, "dt_limit": [0.01, 0.2], "bias": true},
            "rms_norm": true, "tie_embeddings": true}"#,
    )
    .unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut t = HashMap::new();
    for spec in expected_specs(&cfg) {
        let n = spec.elem_count();
        let scale = if spec.name.ends_with("A_log") {
            1.0
        } else {
            0.4
        };
        let data: Vec<f32> = (0..n)
            .map(|_| {
                let v = next() * scale;
                if spec.name.contains("norm") {
                    1.0 + v as f32
                } else {
                    v as f32
                }
            })
            .collect();
        t.insert(
            spec.name.clone(),
            Tensor::from_vec(data, spec.shape.clone(), &Device::Cpu).unwrap(),
        );
    }
    let params: HashMap<String, Tensor> = t.clone();
    let w = MambaWeights::from_tensors(&mut t, &cfg).unwrap();
    let model = MambaLm::from_parts(cfg.clone(), w).unwrap();
    let tokens: Vec<u32> = (0..20).map(|i| (i * 7 + 3) % 40).collect();
    check_causal_lm(&model, &tokens, 3, 1e-4).unwrap();

    // Tensor-op steps (the device LM) against the CPU path.
    let train = seqlab_lm::TrainMamba::from_tensors(&cfg, params).unwrap();
    let dev = MambaDeviceLm::new(train).unwrap();
    let (a, mut sa) = CausalLm::prefill(&model, &tokens[..6]).unwrap();
    let (b, mut sb) = CausalLm::prefill(&dev, &tokens[..6]).unwrap();
    let mut worst = seqlab_lm::conformance::max_rel_diff(&b, &a);
    for &tok in &tokens[6..] {
        let a = CausalLm::step(&model, &mut sa, tok).unwrap();
        let b = CausalLm::step(&dev, &mut sb, tok).unwrap();
        worst = worst.max(seqlab_lm::conformance::max_rel_diff(&b, &a));
    }
    assert!(
        worst < 1e-5,
        "tensor step vs CPU with every option: {worst}"
    );
}

/// The gated norm's grouping matters and the golden set pins it: normalising the whole H·P
/// width at once (one group) instead of d_ssm / n_groups channels moves the logits far past the
/// tolerance. (Only meaningful when the golden model has more than one group.)
#[test]
fn mamba2_gated_norm_groups_are_the_references() {
    let dir = mamba2_golden_dir();
    let g = golden_tensors(&dir);
    let model = MambaLm::load(&dir).unwrap();
    let mut cfg = model.config().clone();
    let m = cfg.mamba2.as_mut().unwrap();
    if m.ngroups == 1 {
        return;
    }
    m.norm_group_size = m.d_ssm;
    let whole = MambaLm::from_parts(cfg, model.weights().clone()).unwrap();
    let got = f32s(&whole.forward(&ids(&g["input_ids"]), 1).unwrap());
    let e = rel_err("one-group logits", &got, &f32s(&g["logits"]));
    assert!(
        e > 100.0 * REL_TOL,
        "one norm group is as close as the reference's: {e}"
    );
}
