//! Parity of the Mamba LM in its Falcon-Mamba form (weightless RMS norms on δ, B and C; HF
//! `FalconMambaForCausalLM`) on the falcon-mamba-tiny golden set (tests/golden/gen/
//! gen_falcon_mamba_hf.py): every field, as for mamba-tiny, and the same checkpoint read as
//! plain Mamba must not match (the norms are what is tested).

use crate::common;
use crate::golden_mamba_tiny::{check_every_field, Tolerance};

use common::*;
use seqlab_lm::{LogitsMode, MambaLm};

#[test]
fn golden_falcon_mamba_tiny_every_field() {
    let dir = falcon_golden_dir();
    let model = MambaLm::load(&dir).unwrap();
    assert_eq!(model.config().bcdt_rms_eps, Some(1e-6), "mixer_rms_eps");
    check_every_field(&dir, "falcon-mamba-tiny", Tolerance::Rel(1e-5));
}

#[test]
fn falcon_checkpoint_read_as_plain_mamba_differs() {
    let dir = falcon_golden_dir();
    let g = golden_tensors(&dir);
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir, tmp.path());
    let cfg_path = tmp.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["model_type"] = "mamba".into();
    cfg["architectures"] = serde_json::json!(["MambaForCausalLM"]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let plain = MambaLm::load(tmp.path()).unwrap();
    assert_eq!(plain.config().bcdt_rms_eps, None);
    let prompt = ids(&g["input_ids"]);
    let out = plain
        .forward_with(&prompt, 1, None, LogitsMode::All, false)
        .unwrap();
    let logits = f32s(&out.logits.unwrap());
    let want = f32s(&g["logits"]);
    let err = logits
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        err > 1e-2,
        "without the norms the logits still match ({err})"
    );
}
