//! The three foundation layers together, as a library user would call them:
//! tokenize the bundled Hamlet with the real GPT-2 tokenizer into token shards, read seeded
//! batches from the memory-mapped train split, count a bigram model
//! p(next | prev) = count(prev, next) / count(prev), and sample text from it with the shared
//! sampler (temperature, top-p, no-repeat-trigram, f64 draws).
//!
//! Run: `cargo run --release --example bigram_sample [-- SEED]`

use seqlab::data::{prepare_text, BatchSampler, Split, TextOptions, TokenDataset};
use seqlab::tensor::{Sampler, SamplerConfig};
use seqlab::tokenizer;
use std::collections::HashMap;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed: u64 = std::env::args().nth(1).map_or(Ok(7), |s| s.parse())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tokenizer_path = root.join("datasets/tokenizers/gpt2/encoder.json");
    let tok = tokenizer::load(&tokenizer_path)?;

    // 1. Text → shards (u16 ids, 95 % train / 5 % val) in a temporary directory.
    let dir = tempfile::tempdir()?;
    let meta = prepare_text(
        tok.as_ref(),
        &tokenizer_path,
        &[root.join("datasets/sample/hamlet.txt")],
        dir.path(),
        &TextOptions::default(),
    )?;
    println!(
        "prepared {} train / {} val tokens ({:?} ids)",
        meta.splits.train.tokens, meta.splits.val.tokens, meta.dtype
    );

    // 2. Seeded random windows from the memory-mapped train split → bigram counts.
    let dataset = TokenDataset::open(dir.path())?;
    let mut batches = BatchSampler::new(dataset.split(Split::Train)?, 16, 128, seed)?;
    let mut bigrams: HashMap<u32, HashMap<u32, u32>> = HashMap::new();
    for _ in 0..200 {
        let batch = batches.next_batch();
        for (&prev, &next) in batch.inputs.iter().zip(&batch.targets) {
            *bigrams.entry(prev).or_default().entry(next).or_default() += 1;
        }
    }

    // 3. Sample 60 tokens: logits = log count(prev, ·), −∞ for unseen successors.
    let config = SamplerConfig {
        temperature: 0.8,
        top_p: Some(0.9),
        no_repeat_ngram: Some(3),
        ..SamplerConfig::default()
    };
    let mut sampler = Sampler::new(config, seed)?;
    let mut ids = tok.encode("HAMLET.")?;
    let mut logits = vec![f32::NEG_INFINITY; tok.vocab_size()];
    for _ in 0..60 {
        let prev = *ids.last().expect("prompt is not empty");
        let Some(next_counts) = bigrams.get(&prev) else {
            break; // a token never followed by anything in the sample
        };
        logits.fill(f32::NEG_INFINITY);
        for (&next, &count) in next_counts {
            logits[next as usize] = (count as f32).ln();
        }
        match sampler.sample(&logits, &ids) {
            Ok(next) => ids.push(next),
            Err(_) => break, // every successor is banned by the no-repeat rule
        }
    }
    println!("{}", tok.decode(&ids)?);
    Ok(())
}
