//! End-to-end tests of `seqlab generate` through the built binary, on the mamba-tiny golden
//! checkpoint (`tests/golden/mamba-tiny`, or `$SEQLAB_GOLDEN_DIR[/mamba-tiny]`).

use crate::common;

use common::{fails, ok, seqlab, stdout};
use seqlab::tensor::candle_core::{Device, Tensor};
use seqlab::tokenizer::{ByteTokenizer, CharTokenizer, Tokenizer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    match std::env::var_os("SEQLAB_GOLDEN_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.join("golden.json").is_file() {
                d
            } else {
                d.join("mamba-tiny")
            }
        }
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/mamba-tiny"),
    }
}

fn golden_ids(name: &str) -> Vec<u32> {
    let g = seqlab::tensor::load(golden_dir().join("golden.safetensors"), &Device::Cpu).unwrap();
    g[name]
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

/// The golden model's vocabulary size (`vocab_size` in its config.json; 256 for mamba-tiny).
fn golden_vocab() -> usize {
    let text = std::fs::read_to_string(golden_dir().join("config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    cfg["vocab_size"].as_u64().expect("vocab_size") as usize
}

fn ids_arg(ids: &[u32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let stdout = stdout(&ok(args));
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout:?}");
    serde_json::from_str(&stdout).unwrap()
}

fn copy_checkpoint(dst: &Path) {
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(golden_dir().join(f), dst.join(f)).unwrap();
    }
}

#[test]
fn greedy_json_matches_the_golden_tokens() {
    let prompt = golden_ids("input_ids");
    let want = golden_ids("generated_ids");
    let dir = golden_dir();
    let p = ids_arg(&prompt);
    let n = want.len().to_string();
    let v = ok_json(&[
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
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    for k in [
        "prompt_ids",
        "generated_ids",
        "text",
        "prefill_ms",
        "decode_tokens_per_s",
        "device",
    ] {
        assert!(keys.contains(&k), "missing {k} in {v}");
    }
    let got: Vec<u32> = serde_json::from_value(v["generated_ids"].clone()).unwrap();
    assert_eq!(got, want, "greedy tokens differ from HF transformers");
    let echoed: Vec<u32> = serde_json::from_value(v["prompt_ids"].clone()).unwrap();
    assert_eq!(echoed, prompt);
    assert!(v["text"].is_null(), "no tokenizer → text null: {v}");
    assert!(v["prefill_ms"].as_f64().unwrap() >= 0.0);
    assert!(v["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["device"], "cpu", "{v}");
}

#[test]
fn stop_ids_and_sampling_are_honoured() {
    let dir = golden_dir();
    let want = golden_ids("generated_ids");
    let p = ids_arg(&golden_ids("input_ids"));
    let stop = want[4].to_string();
    let n = want.len().to_string();
    let v = ok_json(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt-ids",
        &p,
        "--json",
        "--max-new-tokens",
        &n,
        "--stop-id",
        &stop,
    ]);
    let got: Vec<u32> = serde_json::from_value(v["generated_ids"].clone()).unwrap();
    let first = want.iter().position(|&t| t == want[4]).unwrap();
    assert_eq!(got, want[..=first].to_vec());

    let sample = |seed: &str| -> Vec<u32> {
        let v = ok_json(&[
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--prompt-ids",
            &p,
            "--json",
            "--max-new-tokens",
            "16",
            "--temperature",
            "1.5",
            "--top-k",
            "50",
            "--top-p",
            "0.95",
            "--seed",
            seed,
        ]);
        serde_json::from_value(v["generated_ids"].clone()).unwrap()
    };
    let (a, b, c) = (sample("7"), sample("7"), sample("8"));
    assert_eq!(a.len(), 16);
    assert_eq!(a, b, "same seed, same tokens");
    assert_ne!(a, c, "another seed, other tokens");
}

#[test]
fn text_prompt_with_a_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    copy_checkpoint(tmp.path());
    // A tokenizer of exactly the model's vocabulary size: the 256 byte ids (mamba-tiny's
    // vocabulary), with special tokens after them for a larger model; the characters of
    // "hello" and specials for a smaller one.
    let v = golden_vocab();
    let tok: Box<dyn Tokenizer> = if v >= 256 {
        let specials: Vec<String> = (0..v - 256).map(|i| format!("<|special{i}|>")).collect();
        Box::new(ByteTokenizer::new(&specials).unwrap())
    } else {
        let specials: Vec<String> = (0..v.saturating_sub(4))
            .map(|i| format!("<|special{i}|>"))
            .collect();
        Box::new(CharTokenizer::new("helo".chars(), &specials).unwrap())
    };
    assert_eq!(tok.vocab_size(), v);
    tok.save(&tmp.path().join("tokenizer.json")).unwrap();
    let v = ok_json(&[
        "generate",
        "--model",
        tmp.path().to_str().unwrap(),
        "--prompt",
        "hello",
        "--json",
        "--max-new-tokens",
        "5",
    ]);
    let prompt: Vec<u32> = serde_json::from_value(v["prompt_ids"].clone()).unwrap();
    assert_eq!(prompt, tok.encode("hello").unwrap());
    if golden_vocab() == 256 {
        assert_eq!(
            prompt,
            b"hello".iter().map(|&b| b as u32).collect::<Vec<_>>()
        );
    }
    let ids: Vec<u32> = serde_json::from_value(v["generated_ids"].clone()).unwrap();
    assert_eq!(v["text"].as_str().unwrap(), tok.decode(&ids).unwrap());

    // Streaming mode prints the text.
    let out = seqlab(&[
        "generate",
        "--model",
        tmp.path().to_str().unwrap(),
        "--prompt",
        "hello",
        "--max-new-tokens",
        "5",
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end_matches('\n'),
        tok.decode(&ids).unwrap()
    );
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-model");
    fails(
        &[
            "generate",
            "--model",
            missing.to_str().unwrap(),
            "--prompt-ids",
            "1",
        ],
        &["no-such-model", "does not exist"],
    );

    let golden = golden_dir();
    let g = golden.to_str().unwrap();
    fails(
        &["generate", "--model", g, "--prompt", "hi"],
        &["--prompt needs a tokenizer", "--prompt-ids"],
    );
    // The first id past the vocabulary (256 for mamba-tiny).
    let v = golden_vocab();
    let (ids, id_msg, vocab_msg) = (
        format!("1,{v}"),
        format!("token id {v}"),
        format!("{v} ids"),
    );
    fails(
        &["generate", "--model", g, "--prompt-ids", &ids],
        &[&id_msg, &vocab_msg],
    );
    fails(&["generate", "--model", g, "--prompt-ids", "1,x"], &["`x`"]);
    fails(
        &[
            "generate",
            "--model",
            g,
            "--prompt-ids",
            "1",
            "--temperature",
            "0",
        ],
        &["temperature"],
    );
    fails(
        &[
            "generate",
            "--model",
            g,
            "--prompt-ids",
            "1",
            "--top-p",
            "1.5",
        ],
        &["top-p"],
    );

    // A checkpoint with one tensor renamed: the error names the tensor the model needs.
    let renamed = tmp.path().join("renamed");
    std::fs::create_dir(&renamed).unwrap();
    copy_checkpoint(&renamed);
    let mut t: HashMap<String, Tensor> =
        seqlab::tensor::load(golden.join("model.safetensors"), &Device::Cpu).unwrap();
    let w = t.remove("backbone.layers.0.mixer.dt_proj.weight").unwrap();
    t.insert("backbone.layers.0.mixer.dt_proj.w".into(), w);
    seqlab::tensor::save_atomic(renamed.join("model.safetensors"), &t).unwrap();
    fails(
        &[
            "generate",
            "--model",
            renamed.to_str().unwrap(),
            "--prompt-ids",
            "1",
        ],
        &["backbone.layers.0.mixer.dt_proj.weight"],
    );

    // A truncated model.safetensors.
    let trunc = tmp.path().join("truncated");
    std::fs::create_dir(&trunc).unwrap();
    copy_checkpoint(&trunc);
    let bytes = std::fs::read(golden.join("model.safetensors")).unwrap();
    std::fs::write(trunc.join("model.safetensors"), &bytes[..bytes.len() - 100]).unwrap();
    fails(
        &[
            "generate",
            "--model",
            trunc.to_str().unwrap(),
            "--prompt-ids",
            "1",
        ],
        &["model.safetensors", "truncated"],
    );

    // A corrupt config.json.
    std::fs::write(trunc.join("config.json"), "{\"hidden_size\": 64").unwrap();
    fails(
        &[
            "generate",
            "--model",
            trunc.to_str().unwrap(),
            "--prompt-ids",
            "1",
        ],
        &["config.json"],
    );
}

/// The bundled models (`models/`): the CLI's greedy continuation is the library's, decoded with
/// the model's tokenizer; seeded sampling repeats for one seed and differs across seeds.
#[test]
fn bundled_models_generate_what_the_library_generates() {
    use seqlab::lm::{generate, load_lm, GenerateConfig};
    for name in [
        "mamba-little",
        "mamba-big",
        "transformer-little",
        "transformer-big",
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(name);
        let model = dir.to_str().unwrap();
        let prompt = "HAMLET. To be, or not to be";
        let greedy = ok_json(&[
            "generate",
            "--model",
            model,
            "--prompt",
            prompt,
            "--max-new-tokens",
            "24",
            "--json",
        ]);
        let lm = load_lm(&dir).unwrap();
        let tok = lm.tokenizer.as_ref().unwrap();
        let ids = tok.encode(prompt).unwrap();
        assert_eq!(greedy["prompt_ids"], serde_json::json!(ids), "{name}");
        let cfg = GenerateConfig {
            max_new_tokens: 24,
            stop_ids: tok.special_ids().eos.into_iter().collect(),
            ..GenerateConfig::default()
        };
        let want = generate(&lm.model, &ids, &cfg, |_| Ok(())).unwrap();
        assert_eq!(
            greedy["generated_ids"],
            serde_json::json!(want.generated_ids),
            "{name}"
        );
        let text = greedy["text"].as_str().unwrap();
        assert_eq!(text, tok.decode(&want.generated_ids).unwrap(), "{name}");
        assert!(text.trim().len() > 10, "{name}: {text:?}");

        let sample = |seed: &str| {
            ok_json(&[
                "generate",
                "--model",
                model,
                "--prompt",
                prompt,
                "--max-new-tokens",
                "24",
                "--temperature",
                "1.0",
                "--seed",
                seed,
                "--ignore-eos",
                "--json",
            ])["generated_ids"]
                .clone()
        };
        assert_eq!(sample("1"), sample("1"), "{name}");
        assert_ne!(sample("1"), sample("2"), "{name}");
    }
}
