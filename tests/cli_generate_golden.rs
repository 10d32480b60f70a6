//! `seqlab generate` through the built binary on the golden checkpoints of the Mamba variants:
//! HF transformers' greedy tokens, identical — `Mamba2ForCausalLM` on `tests/golden/mamba2-tiny`
//! (or `$SEQLAB_GOLDEN_MAMBA2_DIR`), `FalconMambaForCausalLM` on
//! `tests/golden/falcon-mamba-tiny`.

use crate::common;

use common::ok;
use seqlab::tensor::candle_core::Device;
use std::path::PathBuf;

fn mamba2_dir() -> PathBuf {
    match std::env::var_os("SEQLAB_GOLDEN_MAMBA2_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mamba2-tiny"),
    }
}

fn falcon_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/falcon-mamba-tiny")
}

fn golden_ids(dir: &std::path::Path, name: &str) -> Vec<u32> {
    let g = seqlab::tensor::load(dir.join("golden.safetensors"), &Device::Cpu).unwrap();
    g[name]
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| u32::try_from(v).unwrap())
        .collect()
}

#[test]
fn mamba2_greedy_json_matches_the_golden_tokens() {
    greedy_json_matches_the_golden_tokens(&mamba2_dir(), "Mamba2");
}

#[test]
fn falcon_mamba_greedy_json_matches_the_golden_tokens() {
    greedy_json_matches_the_golden_tokens(&falcon_dir(), "FalconMamba");
}

/// `generate --prompt-ids <golden prompt> --greedy --json` on the checkpoint in `dir` prints the
/// golden continuation (`what` names the reference model in the message).
fn greedy_json_matches_the_golden_tokens(dir: &std::path::Path, what: &str) {
    let prompt = golden_ids(dir, "input_ids");
    let want = golden_ids(dir, "generated_ids");
    let p = prompt
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let n = want.len().to_string();
    let out = ok(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt-ids",
        &p,
        "--greedy",
        "--json",
        "--max-new-tokens",
        &n,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let got: Vec<u32> = serde_json::from_value(v["generated_ids"].clone()).unwrap();
    assert_eq!(
        got, want,
        "greedy tokens differ from HF transformers' {what}"
    );
    let echoed: Vec<u32> = serde_json::from_value(v["prompt_ids"].clone()).unwrap();
    assert_eq!(echoed, prompt);
}
