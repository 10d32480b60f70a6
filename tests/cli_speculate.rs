//! End-to-end tests of `seqlab speculate` through the built binary, on tiny random models saved
//! to a temporary directory (a Mamba big model, a Transformer little model: the mixed pair).

use crate::common;

use common::{fails, ok, s, stdout};
use seqlab::lm::{MambaDims, TrainMamba, TrainTransformer, TransformerConfig};
use seqlab::tensor::candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::Path;

const NEW: usize = 12;

/// Final-norm scale that turns near-uniform random logits into peaked ones.
fn sharpen(t: &mut HashMap<String, Tensor>, name: &str, d_model: usize) {
    let w = (&t[name] * (1.5 / 0.02 / (d_model as f64).sqrt())).unwrap();
    t.insert(name.into(), w);
}

fn save_mamba(dir: &Path, vocab: usize, seed: u64) {
    let cfg = MambaDims {
        vocab_size: vocab,
        d_model: 16,
        n_layer: 2,
        d_state: 4,
        d_conv: 4,
        expand: 2,
    }
    .config();
    let m = TrainMamba::init(&cfg, seed, DType::F32).unwrap();
    let mut t: HashMap<String, Tensor> = m
        .params()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    sharpen(&mut t, "backbone.norm_f.weight", 16);
    std::fs::create_dir_all(dir).unwrap();
    TrainMamba::from_tensors(&cfg, t)
        .unwrap()
        .save(dir)
        .unwrap();
}

fn save_transformer(dir: &Path, vocab: usize, seed: u64) {
    let cfg = TransformerConfig::new(vocab, 16, 1, 2, 32);
    let m = TrainTransformer::init(&cfg, seed, DType::F32).unwrap();
    let mut t: HashMap<String, Tensor> = m
        .params()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    sharpen(&mut t, "model.norm.weight", 16);
    std::fs::create_dir_all(dir).unwrap();
    TrainTransformer::from_tensors(&cfg, t)
        .unwrap()
        .save(dir)
        .unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    big: std::path::PathBuf,
    little: std::path::PathBuf,
    prompts: std::path::PathBuf,
    root: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (big, little) = (root.join("big"), root.join("little"));
    save_mamba(&big, 64, 1);
    save_transformer(&little, 64, 2);
    let prompts = root.join("prompts.txt");
    std::fs::write(&prompts, "# ids only: the tiny models have no tokenizer\nids: 5\n\nids: 1, 2, 3, 4\nids: 9,8,7,6,5,4,3,2\n").unwrap();
    Fixture {
        _dir: dir,
        big,
        little,
        prompts,
        root,
    }
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn run(f: &Fixture, extra: &[&str], out: &Path) -> std::process::Output {
    let new = NEW.to_string();
    let mut args = vec![
        "speculate",
        "--big",
        s(&f.big),
        "--little",
        s(&f.little),
        "--prompts",
        s(&f.prompts),
        "--max-new-tokens",
        &new,
        "--json",
        s(out),
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn spec_and_bild_report_consistent_numbers() {
    let f = fixture();
    for (extra, name) in [
        (vec!["--policy", "spec", "--gamma", "3"], "spec"),
        (vec!["--policy", "spec", "--adaptive"], "spec"),
        (vec!["--policy", "bild", "--alpha-rb", "0"], "bild"),
    ] {
        let out_path = f.root.join(format!("{name}.json"));
        let out = run(&f, &extra, &out_path);
        assert!(stdout(&out).contains("speedup"), "{}", stdout(&out));
        let v = read_json(&out_path);
        assert_eq!(v["policy"], name);
        let prompts = v["prompts"].as_array().unwrap();
        assert_eq!(prompts.len(), 3);
        let (mut drafted, mut accepted, mut tokens) = (0, 0, 0);
        for p in prompts {
            for key in [
                "wall_s",
                "first_token_s",
                "tokens_per_s",
                "baseline_tokens_per_s",
                "speedup",
                "acceptance_rate",
                "big_ppl",
            ] {
                let x = p[key].as_f64().unwrap_or_else(|| panic!("{key} in {p}"));
                assert!(x.is_finite() && x >= 0.0, "{key} = {x}");
            }
            for key in ["fallbacks", "rollbacks", "big_calls", "little_calls"] {
                assert!(p[key].is_u64(), "{key} in {p}");
            }
            // Greedy lossless decoding (and BiLD with α_RB = 0) is big-only greedy decoding.
            assert_eq!(p["agreement"], 1.0, "{p}");
            assert_eq!(p["new_tokens"], NEW as u64);
            assert_eq!(p["common_prefix"], NEW as u64);
            assert!(p["first_token_s"].as_f64().unwrap() <= p["wall_s"].as_f64().unwrap());
            assert!(p["big_calls"].as_u64().unwrap() >= 1);
            drafted += p["drafted"].as_u64().unwrap();
            accepted += p["accepted"].as_u64().unwrap();
            tokens += p["new_tokens"].as_u64().unwrap();
        }
        let o = &v["overall"];
        assert_eq!(o["agreement"], 1.0);
        assert_eq!(o["drafted"].as_u64().unwrap(), drafted);
        assert_eq!(o["accepted"].as_u64().unwrap(), accepted);
        assert_eq!(o["new_tokens"].as_u64().unwrap(), tokens);
        let rate = o["acceptance_rate"].as_f64().unwrap();
        assert!((rate - accepted as f64 / drafted.max(1) as f64).abs() < 1e-12);
        assert!(o["speedup"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn sweep_writes_table_json_and_png() {
    let f = fixture();
    let out_path = f.root.join("sweep.json");
    let out = run(&f, &["--policy", "spec", "--sweep"], &out_path);
    let md = stdout(&out);
    assert!(
        md.starts_with("| spec setting | speedup | agreement"),
        "{md}"
    );
    let v = read_json(&out_path);
    let rows = v["sweep"].as_array().unwrap();
    assert_eq!(rows.len(), md.lines().count() - 2);
    for r in rows {
        assert_eq!(r["agreement"], 1.0, "{r}");
    }
    let png = std::fs::read(f.root.join("sweep.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn bad_pairs_and_settings_are_one_line_errors() {
    let f = fixture();
    let other = f.root.join("other");
    save_transformer(&other, 32, 3);
    let out = f.root.join("x.json");
    let base = |little: &Path| {
        vec![
            "speculate".to_string(),
            "--big".into(),
            s(&f.big).into(),
            "--little".into(),
            s(little).into(),
            "--prompts".into(),
            s(&f.prompts).into(),
            "--json".into(),
            s(&out).into(),
        ]
    };
    fails(&base(&other), &["mismatched vocabularies", "64", "32"]);
    let mut a = base(&f.little);
    a.extend(["--policy", "bild", "--temperature", "0.8"].map(String::from));
    fails(&a, &["greedily"]);
    let mut a = base(&f.little);
    a.extend(["--gamma", "0"].map(String::from));
    fails(&a, &["gamma"]);
    let mut a = base(&f.little);
    a[6] = s(&f.root.join("missing.txt")).into();
    fails(&a, &["missing.txt"]);
    let text = f.root.join("text.txt");
    std::fs::write(&text, "hello there\n").unwrap();
    let mut a = base(&f.little);
    a[6] = s(&text).into();
    fails(&a, &["no tokenizer"]);
    assert!(!out.exists(), "no report after an error");
}
