//! Fuzzing `seqlab_tokenizer::load` (HF `tokenizer.json`, our char and byte vocabularies): seeds
//! are a bundled model's BPE `tokenizer.json`, a small BPE trained here on the sample text, and
//! the char and byte formats; the mutations replace values by wrong types and absurd numbers,
//! drop and rename keys, repeat vocabularies and merges, nest deeply and damage bytes. Each
//! input loads or is one clean error; a tokenizer that loads also encodes and decodes without
//! a panic. More cases: `SEQLAB_FUZZ_CASES=20000 cargo test -p seqlab-tokenizer --test
//! tokenizer fuzz_`.

use seqlab_fuzz::{fuzz, Seed, Target};
use seqlab_tokenizer::{
    train_bpe_from_texts, BpeTrainOptions, ByteTokenizer, CharTokenizer, Tokenizer,
};
use std::path::Path;

#[global_allocator]
static ALLOC: seqlab_fuzz::MeteredAlloc = seqlab_fuzz::MeteredAlloc;

#[test]
fn fuzz_tokenizer_json() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let hamlet = std::fs::read_to_string(repo.join("datasets/sample/hamlet.txt")).unwrap();
    let text = &hamlet[..hamlet.len().min(20_000)];
    let small_bpe = dir.path().join("small_bpe.json");
    train_bpe_from_texts(&[text], &BpeTrainOptions::with_vocab_size(300))
        .unwrap()
        .save(&small_bpe)
        .unwrap();
    let chars = dir.path().join("chars.json");
    CharTokenizer::from_texts(&[text])
        .unwrap()
        .save(&chars)
        .unwrap();
    let bytes = dir.path().join("bytes.json");
    ByteTokenizer::new(&["<|endoftext|>".to_string()])
        .unwrap()
        .save(&bytes)
        .unwrap();
    let seeds = vec![
        Seed::file(repo.join("models/mamba-little/tokenizer.json")),
        Seed::file(&small_bpe),
        Seed::file(&chars),
        Seed::file(&bytes),
    ];
    let mut target = Target::new("tokenizer", seeds, 300);
    target.cut_stride = 2048;
    let path = dir.path().join("tokenizer.json");
    let report = fuzz(&target, |input| {
        std::fs::write(&path, input.bytes).unwrap();
        let tok = seqlab_tokenizer::load(&path)?;
        // A tokenizer that loads is usable: encoding and decoding end in Ok or an error.
        if let Ok(ids) = tok.encode("To be, or not to be: 1234 <|endoftext|> é") {
            let _ = tok.decode(&ids);
        }
        let n = tok.vocab_size().min(64) as u32;
        let _ = tok.decode(&(0..n).collect::<Vec<_>>());
        let _ = tok.decode(&[u32::MAX]);
        Ok::<(), seqlab_tokenizer::TokenizerError>(())
    });
    assert!(report.refused > 0 && report.accepted >= 4, "{report:?}");
}
