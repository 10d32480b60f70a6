//! End-to-end tests of `seqlab eval ppl` on the bundled models (`models/`): perplexities that
//! beat a unigram model of the same data, a bigger model beating a smaller one, and clear
//! errors for mismatched vocabularies and tokenizers.

use crate::common;

use common::{fails, ok, s, stdout};
use std::path::{Path, PathBuf};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Hamlet tokenized with `tokenizer`, into `dir`.
fn prepare(tokenizer: &Path, dir: &Path) {
    ok(&[
        "prepare",
        "text",
        "-t",
        s(tokenizer),
        s(&repo("datasets/sample/hamlet.txt")),
        "-o",
        s(dir),
        "--val-fraction",
        "0.1",
    ]);
}

fn ppl(model: &Path, data: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "eval",
        "ppl",
        "--model",
        s(model),
        "--data",
        s(data),
        "--json",
        "--window",
        "128",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(stdout(&ok(&args)).trim()).unwrap()
}

/// Perplexity of the val split under unigram frequencies of the train split (add-one smoothed).
fn unigram_ppl(data: &Path) -> f64 {
    let ds = seqlab::data::TokenDataset::open(data).unwrap();
    let count = |split| {
        let v = ds.split(split).unwrap();
        v.get(0..v.len()).unwrap()
    };
    let train = count(seqlab::data::Split::Train);
    let val = count(seqlab::data::Split::Val);
    let mut freq = vec![1.0f64; ds.vocab_size()];
    for &t in &train {
        freq[t as usize] += 1.0;
    }
    let total: f64 = freq.iter().sum();
    let nll: f64 = val[1..]
        .iter()
        .map(|&t| -(freq[t as usize] / total).ln())
        .sum();
    (nll / (val.len() - 1) as f64).exp()
}

#[test]
fn bundled_models_beat_unigram_and_big_beats_little() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hamlet");
    prepare(&repo("models/mamba-little/tokenizer.json"), &data);
    let uni = unigram_ppl(&data);
    let little = ppl(&repo("models/mamba-little"), &data, &[]);
    let big = ppl(&repo("models/mamba-big"), &data, &["--max-tokens", "4000"]);
    let (pl, pb) = (
        little["perplexity"].as_f64().unwrap(),
        big["perplexity"].as_f64().unwrap(),
    );
    assert!(pl < 0.5 * uni, "little {pl} vs unigram {uni}");
    assert!(pb < pl, "big {pb} vs little {pl}");
    assert_eq!(big["split"], "val");
    assert!(big["predictions"].as_u64().unwrap() >= 3900);
    assert!(big["tokens_per_s"].as_f64().unwrap() > 0.0);
    let bits = big["bits_per_token"].as_f64().unwrap();
    assert!((bits - pb.log2()).abs() < 1e-9);
}

#[test]
fn mismatched_vocabularies_and_tokenizers_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // A 2048-id dataset for the 256-id golden model.
    let data = tmp.path().join("bpe");
    prepare(&repo("models/mamba-little/tokenizer.json"), &data);
    let golden = repo("tests/golden/mamba-tiny");
    let args = ["eval", "ppl", "--model", s(&golden), "--data", s(&data)];
    let e = fails(&args, &["mismatched vocabularies"]);
    assert!(e.contains("2048"), "{e}");
    // Same sizes, different tokenizer: bytes (with <|endoftext|>) vs the bundled BPE.
    let bytes = tmp.path().join("bytes.json");
    ok(&[
        "tokenizer",
        "train",
        "--kind",
        "byte",
        s(&repo("datasets/sample/hamlet.txt")),
        "-o",
        s(&bytes),
    ]);
    let little = repo("models/mamba-little");
    let bdata = tmp.path().join("bytes");
    prepare(&bytes, &bdata);
    let args = ["eval", "ppl", "--model", s(&little), "--data", s(&bdata)];
    fails(&args, &["mismatched tokenizers"]);
    fails(
        &[
            "eval",
            "ppl",
            "--model",
            s(&little),
            "--data",
            s(&data),
            "--window",
            "1",
        ],
        &["--window"],
    );
    fails(
        &[
            "eval",
            "ppl",
            "--model",
            s(&tmp.path().join("nope")),
            "--data",
            s(&data),
        ],
        &["nope"],
    );
}
