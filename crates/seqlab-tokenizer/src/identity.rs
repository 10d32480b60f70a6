//! Whether two tokenizers are the same vocabulary: the one check every place where two models,
//! or a model and a tokenizer, or a model and a dataset meet (speculative decoding's big and
//! little models, `eval`'s model and dataset, diffusion's AR model for EDLM and generative
//! perplexity, `generate --tokenizer`). Token ids only mean the same thing to both sides when
//! the vocabularies agree id by id: two byte-level BPEs of the same size trained on different
//! text share sizes but not merges, and would give meaningless scores without an error.

use crate::Tokenizer;

/// Text both tokenizers must encode identically: punctuation, digits, a non-ASCII letter, an
/// em dash and whitespace, so that different merges or normalisers show up.
pub const IDENTITY_PROBE: &str =
    "To be, or not to be: that is the question. 0123456789 — ¿Qué? \n\t";

/// `Ok` when `a` and `b` are the same vocabulary: the same number of ids, the same text for
/// every id (`decode(&[id])`, a failed decode counting as its own value) and the same encoding
/// of [`IDENTITY_PROBE`]. Otherwise the first difference, in words, for an error message that
/// names the two sides.
pub fn same_vocabulary(a: &dyn Tokenizer, b: &dyn Tokenizer) -> Result<(), String> {
    let (na, nb) = (a.vocab_size(), b.vocab_size());
    if na != nb {
        return Err(format!("{na} ids against {nb}"));
    }
    for id in 0..na as u32 {
        let (ta, tb) = (a.decode(&[id]).ok(), b.decode(&[id]).ok());
        if ta != tb {
            return Err(format!(
                "id {id} is {} in one and {} in the other",
                shown(ta.as_deref()),
                shown(tb.as_deref())
            ));
        }
    }
    let (ea, eb) = (a.encode(IDENTITY_PROBE).ok(), b.encode(IDENTITY_PROBE).ok());
    if ea != eb {
        return Err(
            "they encode the same text to different ids (other merges or normaliser)".into(),
        );
    }
    Ok(())
}

fn shown(text: Option<&str>) -> String {
    match text {
        Some(t) => format!("{t:?}"),
        None => "undecodable".into(),
    }
}

/// Whether a model with `model_vocab` logits rows can be driven by a tokenizer of
/// `tokenizer_vocab` ids: equal, or the model's vocabulary is the tokenizer's padded up for
/// efficient matrix shapes (a multiple of 8, at most 1/64 larger: Mamba's 50,280 rows for
/// GPT-NeoX's 50,277 ids, Pythia's 50,304, Qwen's 151,936 for 151,665). A tokenizer with more
/// ids than the model, or far fewer (a character vocabulary with a byte-level model), is
/// another vocabulary; the message says so.
pub fn check_model_vocabulary(model_vocab: usize, tokenizer_vocab: usize) -> Result<(), String> {
    if tokenizer_vocab == model_vocab {
        return Ok(());
    }
    if tokenizer_vocab > model_vocab {
        return Err(format!(
            "the tokenizer has {tokenizer_vocab} ids but the model only {model_vocab}"
        ));
    }
    let gap = model_vocab - tokenizer_vocab;
    if model_vocab.is_multiple_of(8) && gap.saturating_mul(64) < model_vocab {
        return Ok(());
    }
    Err(format!(
        "the tokenizer has {tokenizer_vocab} ids but the model {model_vocab}: more than \
         padding (a multiple of 8, at most 1/64 more), so it was trained on another vocabulary"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{train_bpe_from_texts, BpeTrainOptions, ByteTokenizer, CharTokenizer};

    #[test]
    fn same_size_bpes_with_other_merges_differ() {
        let opts = BpeTrainOptions::with_vocab_size(300);
        let cat = "the cat sat on the mat, the cat ate the rat ".repeat(50);
        let dog = "a dog ran in a fog; a frog dug a bog ".repeat(50);
        let a = train_bpe_from_texts(&[cat.as_str()], &opts).unwrap();
        let b = train_bpe_from_texts(&[dog.as_str()], &opts).unwrap();
        let a2 = train_bpe_from_texts(&[cat.as_str()], &opts).unwrap();
        assert_eq!(same_vocabulary(&a, &a2), Ok(()));
        if a.vocab_size() == b.vocab_size() {
            let e = same_vocabulary(&a, &b).unwrap_err();
            assert!(e.starts_with("id "), "{e}");
        } else {
            assert!(same_vocabulary(&a, &b).is_err());
        }
    }

    #[test]
    fn sizes_are_compared_first() {
        let byte = ByteTokenizer::default();
        let chars = CharTokenizer::from_texts(&["abc"]).unwrap();
        let e = same_vocabulary(&byte, &chars).unwrap_err();
        assert!(
            e.ends_with(&format!("ids against {}", chars.vocab_size())),
            "{e}"
        );
    }

    #[test]
    fn padding_is_accepted_another_vocabulary_is_not() {
        assert!(check_model_vocabulary(256, 256).is_ok());
        assert!(check_model_vocabulary(50_280, 50_277).is_ok());
        assert!(check_model_vocabulary(50_304, 50_277).is_ok());
        assert!(check_model_vocabulary(151_936, 151_665).is_ok());
        let e = check_model_vocabulary(256, 70).unwrap_err();
        assert!(e.contains("70 ids but the model 256"), "{e}");
        assert!(check_model_vocabulary(256, 300).is_err());
        assert!(check_model_vocabulary(50_281, 50_277).is_err());
    }
}
