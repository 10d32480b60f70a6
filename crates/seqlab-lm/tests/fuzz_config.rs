//! Fuzzing `config.json` through `seqlab_lm::load_lm`: the configs of every bundled model
//! (Mamba, Llama-style Transformer, SaShiMi, the SmolLM2 drafter), the golden mamba-tiny, an
//! original `mamba_ssm` config and an S4 LM config, each mutated (wrong types, absurd sizes,
//! removed or renamed keys, deep nesting, byte damage) and loaded beside the seed model's own
//! weights: the load succeeds or is one clean error; never a panic, never an allocation out of
//! proportion to the files.
//! More cases: `SEQLAB_FUZZ_CASES=20000 cargo test -p seqlab-lm --test lm fuzz_config::`.

use seqlab_fuzz::{fuzz, Seed, Target};
use std::path::{Path, PathBuf};

// One metered allocator for the whole `lm` test binary (used by every `fuzz_*` module).
#[global_allocator]
static ALLOC: seqlab_fuzz::MeteredAlloc = seqlab_fuzz::MeteredAlloc;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn fuzz_config_json_of_every_lm_kind() {
    let tmp = tempfile::tempdir().unwrap();
    // (seed config, directory holding the weights the config is loaded beside, if any)
    let mut seeds = Vec::new();
    let mut dirs = Vec::new();
    for (i, model) in [
        "tests/golden/mamba-tiny",
        "tests/golden/mamba2-tiny",
        "tests/golden/falcon-mamba-tiny",
        "models/mamba-little",
        "models/transformer-little",
        "models/sashimi-digits",
    ]
    .iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("seed{i}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(
            repo(model).join("model.safetensors"),
            dir.join("model.safetensors"),
        )
        .unwrap();
        seeds.push(Seed::file(repo(model).join("config.json")));
        dirs.push(dir);
    }
    let original_mamba_ssm = r#"{"d_model": 64, "d_intermediate": 0, "n_layer": 2,
        "vocab_size": 251, "ssm_cfg": {"d_state": 16, "d_conv": 4, "expand": 2,
        "dt_rank": "auto"}, "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": true,
        "residual_in_fp32": true, "fused_add_norm": true, "pad_vocab_size_multiple": 8,
        "tie_embeddings": true}"#;
    let s4 = serde_json::to_string_pretty(&seqlab_lm::S4LmConfig::new(
        64,
        16,
        2,
        8,
        seqlab_lm::SsmName::S4d,
        128,
    ))
    .unwrap();
    for (name, text) in [
        (
            "smollm2-drafter",
            std::fs::read_to_string(repo("models/smollm2-drafter/config.json")).unwrap(),
        ),
        ("original mamba_ssm", original_mamba_ssm.to_string()),
        ("s4", s4),
    ] {
        let dir = tmp.path().join(format!("seed{}", dirs.len()));
        std::fs::create_dir(&dir).unwrap();
        seeds.push(Seed::bytes(name, text.into_bytes()));
        dirs.push(dir);
    }
    let mut target = Target::new("config", seeds, 400);
    target.cut_stride = 16;
    let report = fuzz(&target, |input| {
        let dir = &dirs[input.seed];
        std::fs::write(dir.join("config.json"), input.bytes).unwrap();
        seqlab_lm::load_lm(dir).map(|_| ())
    });
    assert!(report.refused > 0 && report.accepted >= 4, "{report:?}");
}
