//! `load` on files it must refuse: each error names the file and the problem.

use seqlab_tokenizer::{load, TokenizerError};
use std::path::Path;

fn err_of(path: &Path) -> TokenizerError {
    load(path).expect_err("load must fail")
}

fn write(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = err_of(&dir.path().join("nope.json"));
    assert!(matches!(err, TokenizerError::Read { .. }));
    assert!(err.to_string().contains("nope.json"), "{err}");
}

#[test]
fn not_json_and_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "text.json", b"hello");
    let err = err_of(&p);
    assert!(matches!(err, TokenizerError::Json { .. }), "{err}");
    assert!(err.to_string().contains("text.json"));
    let p = write(dir.path(), "bin.json", b"\xff\xfe{}");
    assert!(matches!(err_of(&p), TokenizerError::NotUtf8 { .. }));
}

#[test]
fn unknown_json_shapes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("array.json", "[1, 2]"),
        ("empty.json", "{}"),
        ("other.json", r#"{"vocab": "x", "n": 1}"#),
    ] {
        let err = err_of(&write(dir.path(), name, content.as_bytes()));
        assert!(
            matches!(err, TokenizerError::UnknownFormat { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name));
    }
}

#[test]
fn corrupt_known_formats() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("hf.json", r#"{"model": {"type": "BPE", "vocab": 3}}"#),
        ("tag.json", r#"{"seqlab_tokenizer": "word", "version": 1}"#),
        (
            "ver.json",
            r#"{"seqlab_tokenizer": "byte", "version": 9, "special_tokens": []}"#,
        ),
        (
            "chars.json",
            r#"{"seqlab_tokenizer": "char", "version": 1, "special_tokens": [], "chars": ["ab"]}"#,
        ),
        (
            "dup.json",
            r#"{"seqlab_tokenizer": "byte", "version": 1, "special_tokens": ["<s>", "<s>"]}"#,
        ),
    ] {
        let err = err_of(&write(dir.path(), name, content.as_bytes()));
        assert!(
            matches!(err, TokenizerError::Invalid { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn gpt2_encoder_without_merges() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "encoder.json", br#"{"a": 0, "b": 1, "ab": 2}"#);
    let err = err_of(&p);
    assert!(matches!(err, TokenizerError::MissingMerges { .. }), "{err}");
    assert!(err.to_string().contains("vocab.bpe"), "{err}");
    // With a merges file beside it, the tiny GPT-2-style vocabulary loads and merges "ab".
    write(dir.path(), "vocab.bpe", b"#version: 0.2\na b\n");
    let tok = load(&p).unwrap();
    assert_eq!(tok.encode("ab").unwrap(), vec![2]);
    // A merge of tokens that are not in the vocabulary is reported against the merges file.
    write(dir.path(), "vocab.bpe", b"#version: 0.2\na c\n");
    let err = err_of(&p);
    assert!(err.to_string().contains("vocab.bpe"), "{err}");
    write(dir.path(), "vocab.bpe", b"#version: 0.2\nabc\n");
    let err = err_of(&p);
    assert!(err.to_string().contains("line 2"), "{err}");
}
