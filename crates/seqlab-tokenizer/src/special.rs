//! Special tokens: finding their ids in a vocabulary by the names tokenizers conventionally
//! give them, and checking a user-given list.

use crate::{Result, SpecialIds, TokenizerError};

/// Names tried, in order, for each role. The first one present in the vocabulary wins.
const BOS: &[&str] = &[
    "<s>",
    "<bos>",
    "<|bos|>",
    "<|startoftext|>",
    "<|begin_of_text|>",
    "[CLS]",
];
const EOS: &[&str] = &[
    "</s>",
    "<eos>",
    "<|eos|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "[SEP]",
];
const PAD: &[&str] = &["<pad>", "<|pad|>", "<|padding|>", "[PAD]"];
const UNK: &[&str] = &["<unk>", "<|unk|>", "[UNK]"];
const MASK: &[&str] = &["<mask>", "<|mask|>", "[MASK]"];

/// Special ids of a vocabulary, looked up by conventional names through `id_of`.
///
/// GPT-style vocabularies have one `<|endoftext|>` that both ends a document and starts the next;
/// when no dedicated BOS token exists, BOS is the EOS id (GPT-2: 50256, GPT-NeoX: 0).
pub(crate) fn detect(id_of: impl Fn(&str) -> Option<u32>) -> SpecialIds {
    let first = |names: &[&str]| names.iter().find_map(|n| id_of(n));
    let eos = first(EOS);
    SpecialIds {
        bos: first(BOS).or(eos),
        eos,
        pad: first(PAD),
        unk: first(UNK),
        mask: first(MASK),
    }
}

/// Special tokens must be non-empty and distinct.
pub(crate) fn validate_specials(specials: &[String]) -> Result<()> {
    for (i, s) in specials.iter().enumerate() {
        if s.is_empty() {
            return Err(TokenizerError::InvalidOptions(
                "a special token is the empty string".into(),
            ));
        }
        if specials[..i].contains(s) {
            return Err(TokenizerError::InvalidOptions(format!(
                "special token {s:?} is given twice"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt_style_endoftext_is_bos_and_eos() {
        let ids = detect(|t| (t == "<|endoftext|>").then_some(7));
        assert_eq!(ids.bos, Some(7));
        assert_eq!(ids.eos, Some(7));
        assert_eq!(ids.pad, None);
    }

    #[test]
    fn sentencepiece_names() {
        let vocab = ["<unk>", "<s>", "</s>", "<pad>", "<mask>"];
        let ids = detect(|t| vocab.iter().position(|v| *v == t).map(|i| i as u32));
        assert_eq!(
            ids,
            SpecialIds {
                bos: Some(1),
                eos: Some(2),
                pad: Some(3),
                unk: Some(0),
                mask: Some(4)
            }
        );
    }
}
