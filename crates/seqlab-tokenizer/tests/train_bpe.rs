//! Training a byte-level BPE: round trips, vocabulary size, determinism, HF compatibility, errors.

use seqlab_tokenizer::{
    load, train_bpe, train_bpe_from_texts, BpeTrainOptions, HfTokenizer, Tokenizer, TokenizerError,
};
use std::path::{Path, PathBuf};

/// A small English-like corpus with enough repetition for a few hundred merges.
fn corpus() -> String {
    let lines = [
        "To be, or not to be, that is the question:",
        "Whether 'tis nobler in the mind to suffer",
        "The slings and arrows of outrageous fortune,",
        "Or to take arms against a sea of troubles",
        "And by opposing end them. To die—to sleep,",
        "No more; and by a sleep to say we end",
        "The heart-ache and the thousand natural shocks",
        "That flesh is heir to: 'tis a consummation",
    ];
    let mut text = String::new();
    for i in 0..60 {
        text.push_str(lines[i % lines.len()]);
        text.push_str(if i % 5 == 4 { "\n\n" } else { "\n" });
    }
    text
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn opts(vocab_size: usize) -> BpeTrainOptions {
    BpeTrainOptions::with_vocab_size(vocab_size)
}

#[test]
fn trains_requested_size_and_round_trips() {
    let tok = train_bpe_from_texts(&[corpus()], &opts(400)).unwrap();
    assert_eq!(tok.vocab_size(), 400);
    assert_eq!(tok.kind(), "hf-bpe");
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(0));
    assert_eq!(tok.special_ids().eos, Some(0));
    assert_eq!(tok.special_ids().bos, Some(0));
    // Merges compress the training text well below one token per byte.
    let text = corpus();
    let ids = tok.encode(&text).unwrap();
    assert!(
        ids.len() * 2 < text.len(),
        "{} tokens for {} bytes",
        ids.len(),
        text.len()
    );
    for s in [
        text.as_str(),
        "unseen words: zebra, quixotic, 日本語, 🦀, tabs\tand\r\nCRLF",
        "<|endoftext|>The question<|endoftext|>",
        "   ",
        "",
    ] {
        let ids = tok.encode(s).unwrap();
        assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
        assert_eq!(tok.decode(&ids).unwrap(), s);
    }
    assert_eq!(tok.encode("<|endoftext|>").unwrap(), vec![0]);
}

#[test]
fn small_corpus_gives_a_smaller_vocab() {
    let tok = train_bpe_from_texts(&["abab abab\n"], &opts(5000)).unwrap();
    let n = tok.vocab_size();
    assert!(n > 257 && n < 5000, "vocab {n}");
    assert_eq!(
        tok.decode(&tok.encode("abab abab\n").unwrap()).unwrap(),
        "abab abab\n"
    );
}

#[test]
fn min_frequency_limits_merges() {
    let text = corpus();
    let loose = train_bpe_from_texts(&[&text], &opts(3000)).unwrap();
    let strict = BpeTrainOptions {
        min_frequency: 50,
        ..opts(3000)
    };
    let strict = train_bpe_from_texts(&[&text], &strict).unwrap();
    assert!(strict.vocab_size() < loose.vocab_size());
}

#[test]
fn deterministic_byte_identical_json() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "c.txt", corpus().as_bytes());
    let a = train_bpe(&[&f], &opts(350)).unwrap();
    let b = train_bpe(&[&f], &opts(350)).unwrap();
    assert_eq!(a.to_json(false).unwrap(), b.to_json(false).unwrap());
    let (pa, pb) = (dir.path().join("a.json"), dir.path().join("b.json"));
    a.save(&pa).unwrap();
    b.save(&pb).unwrap();
    assert_eq!(std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
}

#[test]
fn custom_specials_come_first() {
    let options = BpeTrainOptions {
        special_tokens: vec!["<|endoftext|>".into(), "<pad>".into(), "<mask>".into()],
        ..opts(300)
    };
    let tok = train_bpe_from_texts(&[corpus()], &options).unwrap();
    let s = tok.special_ids();
    assert_eq!(
        (s.eos, s.pad, s.mask, s.unk),
        (Some(0), Some(1), Some(2), None)
    );
    assert_eq!(tok.vocab_size(), 300);
}

#[test]
fn saved_file_is_a_standard_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    let tok = train_bpe_from_texts(&[corpus()], &opts(300)).unwrap();
    let path = dir.path().join("tok.json");
    tok.save(&path).unwrap();
    // Plain HF `tokenizers` reads it and agrees on ids.
    let hf = tokenizers::Tokenizer::from_file(&path).unwrap();
    let text = "Whether 'tis nobler in the mind";
    let hf_ids = hf.encode(text, false).unwrap().get_ids().to_vec();
    assert_eq!(hf_ids, tok.encode(text).unwrap());
    // And `load` opens it as the same tokenizer.
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.encode(text).unwrap(), hf_ids);
    assert_eq!(loaded.vocab_size(), 300);
    let again = HfTokenizer::from_file(&path).unwrap();
    assert_eq!(
        again.to_json(true).unwrap(),
        std::fs::read_to_string(&path).unwrap()
    );
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.txt", corpus().as_bytes());
    let empty = write(dir.path(), "empty.txt", b"");
    let bad = write(dir.path(), "latin1.txt", b"caf\xe9 au lait\n");
    let missing = dir.path().join("missing.txt");

    let err = train_bpe(&[&empty], &opts(300)).unwrap_err();
    assert!(matches!(err, TokenizerError::EmptyCorpus { .. }), "{err}");
    assert!(err.to_string().contains("empty.txt"), "{err}");

    let err = train_bpe(&[&good, &bad], &opts(300)).unwrap_err();
    assert!(
        matches!(err, TokenizerError::NotUtf8 { offset: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("latin1.txt"), "{err}");

    let err = train_bpe(&[&missing], &opts(300)).unwrap_err();
    assert!(err.to_string().starts_with("cannot read ") && err.to_string().contains("missing.txt"));

    let err = train_bpe::<PathBuf>(&[], &opts(300)).unwrap_err();
    assert!(matches!(err, TokenizerError::NoFiles));

    let err = train_bpe(&[&good], &opts(256)).unwrap_err();
    assert!(
        matches!(err, TokenizerError::VocabTooSmall { minimum: 257, .. }),
        "{err}"
    );

    let dup = BpeTrainOptions {
        special_tokens: vec!["<s>".into(), "<s>".into()],
        ..opts(300)
    };
    assert!(matches!(
        train_bpe(&[&good], &dup).unwrap_err(),
        TokenizerError::InvalidOptions(_)
    ));
}
