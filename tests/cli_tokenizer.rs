//! End-to-end tests of `seqlab tokenizer` through the built binary.

use crate::common;

use common::{fails, s, stdout};
use std::path::{Path, PathBuf};

/// Runs a command that must succeed; returns its standard output.
fn ok(args: &[&str]) -> String {
    stdout(&common::ok(args))
}

fn tokenizers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/tokenizers")
}

fn corpus(dir: &Path) -> PathBuf {
    let line = "It was the best of times, it was the worst of times, it was the age of wisdom,\n\
                it was the age of foolishness, it was the epoch of belief — naïve café 🦀\n";
    let p = dir.join("corpus.txt");
    std::fs::write(&p, line.repeat(40)).unwrap();
    p
}

#[test]
fn train_bpe_then_encode_decode_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let text = corpus(dir.path());
    let tok = dir.path().join("tok.json");
    let out = ok(&[
        "tokenizer",
        "train",
        "--vocab-size",
        "300",
        s(&text),
        "-o",
        s(&tok),
    ]);
    assert!(out.contains("vocab size 300"), "{out}");
    assert!(out.contains("bytes/token"), "{out}");

    let sample = "it was the age of wisdom, naïve 🦀\n\tand unseen words";
    let ids = ok(&["tokenizer", "encode", "--tokenizer", s(&tok), sample]);
    let ids = ids.trim();
    assert!(
        ids.split(',').all(|i| i.parse::<u32>().unwrap() < 300),
        "{ids}"
    );
    let back = ok(&["tokenizer", "decode", "--tokenizer", s(&tok), ids]);
    assert_eq!(back.strip_suffix('\n').unwrap(), sample);

    let json = ok(&["tokenizer", "encode", "-t", s(&tok), "--json", sample]);
    let parsed: Vec<u32> = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        parsed
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        ids
    );

    let info = ok(&["tokenizer", "info", s(&tok)]);
    assert!(
        info.contains("kind: hf-bpe") && info.contains("vocab size: 300"),
        "{info}"
    );
    assert!(info.contains("eos: 0 \"<|endoftext|>\""), "{info}");

    // Same corpus, same options: byte-identical file from a second process.
    let tok2 = dir.path().join("tok2.json");
    ok(&[
        "tokenizer",
        "train",
        "--vocab-size",
        "300",
        s(&text),
        "-o",
        s(&tok2),
    ]);
    assert_eq!(std::fs::read(&tok).unwrap(), std::fs::read(&tok2).unwrap());
}

#[test]
fn char_and_byte_kinds_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let text = corpus(dir.path());
    let sample = "the age of belief — café 🦀";
    for kind in ["char", "byte"] {
        let tok = dir.path().join(format!("{kind}.json"));
        let out = ok(&[
            "tokenizer",
            "train",
            "--kind",
            kind,
            s(&text),
            "-o",
            s(&tok),
        ]);
        assert!(out.contains(&format!("trained {kind} tokenizer")), "{out}");
        let ids = ok(&["tokenizer", "encode", "-t", s(&tok), sample]);
        let back = ok(&["tokenizer", "decode", "-t", s(&tok), ids.trim()]);
        assert_eq!(back.strip_suffix('\n').unwrap(), sample, "{kind}");
    }
}

#[test]
fn real_gpt2_and_neox_files() {
    let d = tokenizers_dir();
    let gpt2 = d.join("gpt2/encoder.json");
    assert_eq!(
        ok(&["tokenizer", "encode", "-t", s(&gpt2), "Hello world"]).trim(),
        "15496,995"
    );
    assert_eq!(
        ok(&["tokenizer", "decode", "-t", s(&gpt2), "15496,995"]),
        "Hello world\n"
    );
    let info = ok(&["tokenizer", "info", s(&gpt2)]);
    assert!(
        info.contains("vocab size: 50257") && info.contains("eos: 50256"),
        "{info}"
    );
    let neox = d.join("gpt-neox/tokenizer.json");
    assert_eq!(
        ok(&["tokenizer", "encode", "-t", s(&neox), "Hello world"]).trim(),
        "12092,1533"
    );
    let info = ok(&["tokenizer", "info", "--json", s(&neox)]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["vocab_size"], 50280);
    assert_eq!(v["special_ids"]["pad"], 1);
}

#[test]
fn bad_inputs_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = corpus(dir.path());
    let out = dir.path().join("tok.json");
    let missing = dir.path().join("missing.txt");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9\n").unwrap();
    let plain = dir.path().join("plain-file");
    std::fs::write(&plain, "x").unwrap();
    let under_file = plain.join("tok.json");

    for kind in ["bpe", "char", "byte"] {
        let train = |file: &Path, output: &Path| -> Vec<String> {
            [
                "tokenizer",
                "train",
                "--kind",
                kind,
                "--vocab-size",
                "300",
                s(file),
                "-o",
                s(output),
            ]
            .iter()
            .map(|a| a.to_string())
            .collect()
        };
        let run = |file: &Path, output: &Path, names: &[&str]| {
            let args = train(file, output);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            fails(&args, names)
        };
        run(&missing, &out, &["missing.txt", "No such file"]);
        run(&empty, &out, &["empty corpus", "empty.txt"]);
        run(&latin1, &out, &["latin1.txt", "UTF-8", "offset 3"]);
        run(&good, &under_file, &["cannot write", "plain-file"]);
        assert!(!out.exists(), "nothing is written after a failure");
    }

    fails(
        &["tokenizer", "train", s(&good), "-o", s(&out)],
        &["--vocab-size"],
    );
    fails(
        &["tokenizer", "encode", "-t", s(&missing), "hi"],
        &["missing.txt"],
    );
    fails(
        &["tokenizer", "encode", "-t", s(&latin1), "hi"],
        &["latin1.txt", "UTF-8"],
    );
    fails(&["tokenizer", "info", s(&good)], &["corpus.txt", "JSON"]);
    let gpt2 = tokenizers_dir().join("gpt2/encoder.json");
    fails(
        &["tokenizer", "decode", "-t", s(&gpt2), "15496,x"],
        &["invalid token id \"x\""],
    );
    fails(
        &["tokenizer", "decode", "-t", s(&gpt2), "50257"],
        &["token id 50257 is out of range"],
    );
}
