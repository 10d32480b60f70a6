//! `perplexity` against a second formulation: the same windows through the model's full
//! parallel forward, with the log-softmax written out here.

use crate::common;

use common::*;
use seqlab_data::{prepare_text_inputs, Split, TextInput, TextOptions, TokenDataset};
use seqlab_lm::{perplexity, MambaLm};
use seqlab_tokenizer::{ByteTokenizer, CharTokenizer, Tokenizer};

/// Hamlet as token ids the golden model can score, prepared into `dir`: raw bytes (256 ids,
/// mamba-tiny's vocabulary) when the model has at least 256 ids, else its characters.
fn byte_dataset(dir: &std::path::Path, vocab: usize) -> TokenDataset {
    let tok: Box<dyn Tokenizer> = if vocab >= 256 {
        Box::new(ByteTokenizer::new(&[]).unwrap())
    } else {
        Box::new(CharTokenizer::from_texts(&[seqlab_data::SAMPLE_TEXT]).unwrap())
    };
    assert!(
        tok.vocab_size() <= vocab,
        "no tokenizer fits vocabulary {vocab}"
    );
    let tok_path = dir.join("bytes.json");
    tok.save(&tok_path).unwrap();
    prepare_text_inputs(
        tok.as_ref(),
        &tok_path,
        &[TextInput::sample()],
        &dir.join("data"),
        &TextOptions::default(),
    )
    .unwrap();
    TokenDataset::open(&dir.join("data")).unwrap()
}

#[test]
fn perplexity_equals_the_parallel_forward_nll() {
    let tmp = tempfile::tempdir().unwrap();
    let model = MambaLm::load(golden_dir()).unwrap();
    let v = model.vocab_size();
    let ds = byte_dataset(tmp.path(), v);
    let val = ds.split(Split::Val).unwrap();
    let (window, max) = (50, 333);
    let mut seen = Vec::new();
    let r = perplexity(&model, &val, window, Some(max), |n| seen.push(n)).unwrap();
    assert_eq!(seen, vec![50, 100, 150, 200, 250, 300, 333]);
    assert_eq!(r.windows, 7);
    assert_eq!(r.predictions, 6 * 49 + 32);

    let (mut nll, mut m) = (0.0f64, 0usize);
    for start in (0..max).step_by(window) {
        let w = val.get(start..(start + window).min(max)).unwrap();
        let logits = f32s(&model.forward(&w, 1).unwrap());
        for (t, row) in logits.chunks_exact(v).take(w.len() - 1).enumerate() {
            let mx = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let lse = row.iter().map(|&x| (x as f64 - mx).exp()).sum::<f64>().ln() + mx;
            nll += lse - row[w[t + 1] as usize] as f64;
            m += 1;
        }
    }
    assert_eq!(m, r.predictions);
    let want = nll / m as f64;
    assert!(
        (r.nll - want).abs() / want < 1e-5,
        "nll {} vs forward {want}",
        r.nll
    );
    assert!((r.perplexity - want.exp()).abs() / want.exp() < 1e-5);
    assert!((r.bits_per_token - want / std::f64::consts::LN_2).abs() < 1e-5);
    // A random tiny model is no better than uniform over bytes by much, and finite.
    assert!(r.perplexity > 1.0 && r.perplexity < 1e4, "{}", r.perplexity);
}

#[test]
fn perplexity_rejects_what_it_cannot_score() {
    let tmp = tempfile::tempdir().unwrap();
    let model = MambaLm::load(golden_dir()).unwrap();
    let ds = byte_dataset(tmp.path(), model.vocab_size());
    let val = ds.split(Split::Val).unwrap();
    let e = perplexity(&model, &val, 1, None, |_| {}).unwrap_err();
    assert!(e.to_string().contains("at least 2 tokens"), "{e}");
    let e = perplexity(&model, &val, 8, Some(1), |_| {}).unwrap_err();
    assert!(e.to_string().contains("nothing to predict"), "{e}");
}
