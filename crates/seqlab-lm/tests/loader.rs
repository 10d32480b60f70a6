//! Checkpoint loading: the original mamba_ssm layout, sharded checkpoints, and bad checkpoints
//! reported by name. All built from the mamba-tiny golden checkpoint in temporary directories.

use crate::common;

use common::*;
use seqlab_lm::{LmError, MambaLm};
use seqlab_tensor::candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

fn hf_tensors() -> HashMap<String, Tensor> {
    seqlab_tensor::load(
        golden_dir().join("model.safetensors"),
        &seqlab_tensor::candle_core::Device::Cpu,
    )
    .unwrap()
}

/// Logits of the golden prompt under the model in `dir`, and the golden logits.
fn logits_vs_golden(dir: &Path) -> f32 {
    let g = golden_tensors(&golden_dir());
    let model = MambaLm::load(dir).unwrap();
    let got = f32s(&model.forward(&ids(&g["input_ids"]), 1).unwrap());
    max_abs("logits", &got, &f32s(&g["logits"]))
}

/// Layers of the golden model.
fn golden_n_layer() -> usize {
    MambaLm::load(golden_dir()).unwrap().config().n_layer
}

fn load_err(dir: &Path) -> String {
    match MambaLm::load(dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn original_mamba_ssm_layout_gives_the_same_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = hf_tensors();
    let emb = t.remove("backbone.embeddings.weight").unwrap();
    t.insert("backbone.embedding.weight".into(), emb);
    seqlab_tensor::save_atomic(tmp.path().join("model.safetensors"), &t).unwrap();
    // The golden model's dimensions in mamba_ssm's keys. The vocabulary is given unpadded and
    // padded on load to the checkpoint's rows: mamba-tiny's 256 as 251 padded to a multiple of
    // 8; a vocabulary that is no multiple of 8 as V − 1 padded to a multiple of V.
    let c = MambaLm::load(golden_dir()).unwrap().config().clone();
    let v = c.vocab_size;
    let (vocab, pad) = if v.is_multiple_of(8) && v > 8 {
        (v - 5, 8)
    } else {
        (v - 1, v)
    };
    let dt_rank = if c.dt_rank == c.d_model.div_ceil(16) {
        serde_json::json!("auto")
    } else {
        serde_json::json!(c.dt_rank)
    };
    let config = serde_json::json!({
        "d_model": c.d_model, "d_intermediate": 0, "n_layer": c.n_layer, "vocab_size": vocab,
        "ssm_cfg": {"d_state": c.d_state, "d_conv": c.d_conv, "expand": c.d_inner / c.d_model,
                    "dt_rank": dt_rank},
        "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": true, "residual_in_fp32": true,
        "fused_add_norm": true, "pad_vocab_size_multiple": pad, "tie_embeddings": true
    });
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    let model = MambaLm::load(tmp.path()).unwrap();
    assert_eq!(model.vocab_size(), v);
    let e = logits_vs_golden(tmp.path());
    assert!(e <= 1e-4, "original layout: {e}");
}

#[test]
fn sharded_checkpoint_gives_the_same_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let t = hf_tensors();
    // The last layer and the final norm go to the second shard.
    let last = format!("layers.{}.", golden_n_layer() - 1);
    let (mut a, mut b) = (HashMap::new(), HashMap::new());
    let mut map = serde_json::Map::new();
    for (name, tensor) in t {
        let (shard, file) = if name.contains(&last) || name.contains("norm_f") {
            (&mut b, "model-00002-of-00002.safetensors")
        } else {
            (&mut a, "model-00001-of-00002.safetensors")
        };
        map.insert(name.clone(), file.into());
        shard.insert(name, tensor);
    }
    seqlab_tensor::save_atomic(tmp.path().join("model-00001-of-00002.safetensors"), &a).unwrap();
    seqlab_tensor::save_atomic(tmp.path().join("model-00002-of-00002.safetensors"), &b).unwrap();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    std::fs::copy(
        golden_dir().join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let e = logits_vs_golden(tmp.path());
    assert!(e <= 1e-4, "sharded: {e}");

    // A tensor missing from the index is named.
    let missing = format!("backbone.{last}mixer.D");
    let mut map2 = map.clone();
    map2.remove(&missing);
    let index = serde_json::json!({"weight_map": map2});
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains(&missing), "{msg}");
}

#[test]
fn renamed_tensor_is_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&golden_dir(), tmp.path());
    let mut t = hf_tensors();
    let name = format!(
        "backbone.layers.{}.mixer.x_proj.weight",
        golden_n_layer() - 1
    );
    let x = t.remove(&name).unwrap();
    t.insert(format!("{name}s"), x);
    seqlab_tensor::save_atomic(tmp.path().join("model.safetensors"), &t).unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains(&format!("missing tensor `{name}`")), "{msg}");
}

#[test]
fn wrong_shape_is_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&golden_dir(), tmp.path());
    let mut t = hf_tensors();
    // A_log [d_inner, d_state] cut to half its states: [128, 8] instead of [128, 16].
    let (d_inner, d_state) = t["backbone.layers.0.mixer.A_log"].dims2().unwrap();
    let a = t["backbone.layers.0.mixer.A_log"]
        .narrow(1, 0, d_state / 2)
        .unwrap();
    t.insert("backbone.layers.0.mixer.A_log".into(), a);
    seqlab_tensor::save_atomic(tmp.path().join("model.safetensors"), &t).unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains("backbone.layers.0.mixer.A_log"), "{msg}");
    let (found, want) = (
        format!("[{d_inner}, {}]", d_state / 2),
        format!("[{d_inner}, {d_state}]"),
    );
    assert!(msg.contains(&found) && msg.contains(&want), "{msg}");
}

#[test]
fn untied_lm_head_is_required_and_used() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&golden_dir(), tmp.path());
    let cfg = std::fs::read_to_string(tmp.path().join("config.json")).unwrap();
    let cfg = cfg.replace(
        "\"tie_word_embeddings\": true",
        "\"tie_word_embeddings\": false",
    );
    std::fs::write(tmp.path().join("config.json"), cfg).unwrap();
    let msg = load_err(tmp.path());
    assert!(msg.contains("lm_head.weight"), "{msg}");
    let mut t = hf_tensors();
    let head = t["backbone.embeddings.weight"].clone();
    t.insert("lm_head.weight".into(), head);
    seqlab_tensor::save_atomic(tmp.path().join("model.safetensors"), &t).unwrap();
    let e = logits_vs_golden(tmp.path());
    assert!(e <= 1e-4, "untied: {e}");
}

#[test]
fn bad_directories_and_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert!(matches!(
        MambaLm::load(&missing),
        Err(LmError::ModelDirNotFound { .. })
    ));

    // No config.json.
    let dir = tmp.path().join("noconfig");
    std::fs::create_dir(&dir).unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("config.json"), "{msg}");

    // Corrupt config.json.
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("config.json") && msg.contains("JSON"), "{msg}");

    // Config but no weights.
    std::fs::copy(golden_dir().join("config.json"), dir.join("config.json")).unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("model.safetensors"), "{msg}");

    // Truncated weights.
    let bytes = std::fs::read(golden_dir().join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn out_of_range_tokens_and_bad_states_are_errors() {
    let model = MambaLm::load(golden_dir()).unwrap();
    // The first id past the vocabulary (256 for mamba-tiny).
    let v = model.vocab_size();
    let e = model.forward(&[1, 2, v as u32], 1).unwrap_err();
    assert!(
        matches!(e, LmError::TokenOutOfRange { id, vocab } if id == v as u32 && vocab == v),
        "{e}"
    );
    assert!(model.forward(&[], 1).is_err());
    assert!(model.forward(&[1, 2, 3], 2).is_err());
    let mut st = model.new_state(2);
    assert!(model.step(&mut st, &[1]).is_err());
    assert!(model.step(&mut st, &[1, v as u32 + 743]).is_err());
}
