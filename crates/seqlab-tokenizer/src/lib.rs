//! seqlab's tokenizer layer.
//!
//! One [`Tokenizer`] trait, implemented by
//! - [`HfTokenizer`]: any Hugging Face `tokenizer.json` (GPT-2, GPT-NeoX, ...), and GPT-2's
//!   original `encoder.json` + `vocab.bpe` pair, loaded unchanged;
//! - [`train_bpe`]: a byte-level BPE trained from text files, saved as a `tokenizer.json`;
//! - [`CharTokenizer`] and [`ByteTokenizer`]: character- and byte-level vocabularies;
//! - [`MuLaw`]: the 8-bit mu-law codec mapping audio samples to 256 tokens and back.
//!
//! [`load`] opens any file this crate writes or reads, telling formats apart by content.
//!
//! Conventions shared by every implementation:
//! - `encode` adds no BOS/EOS, and special tokens written in the text (`<|endoftext|>`) are
//!   matched whole, so `decode(encode(s)) == s` for any text the vocabulary covers (NFC text for
//!   tokenizers with an NFC normalizer such as GPT-NeoX's);
//! - special ids are found by their conventional names (`<|endoftext|>`, `<s>`, `</s>`, `<pad>`,
//!   `<unk>`, `<mask>`, `[MASK]`, ...); a GPT-style `<|endoftext|>` serves as both BOS and EOS;
//! - byte-level decodes of ids that split a UTF-8 character give U+FFFD for the partial bytes;
//! - errors are [`TokenizerError`]s whose one-line messages name the file; saves are atomic.

mod bpe_train;
mod char_byte;
mod error;
mod gpt2;
mod hf;
mod identity;
mod load;
mod mulaw;
mod special;

pub use bpe_train::{train_bpe, train_bpe_from_texts, BpeTrainOptions, BYTE_ALPHABET};
pub use char_byte::{ByteTokenizer, CharTokenizer, BYTE_DEFAULT_SPECIALS, CHAR_DEFAULT_SPECIALS};
pub use error::TokenizerError;
pub use gpt2::GPT2_ENDOFTEXT;
pub use hf::HfTokenizer;
pub use identity::{check_model_vocabulary, same_vocabulary, IDENTITY_PROBE};
pub use mulaw::MuLaw;

use std::path::Path;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TokenizerError>;

/// The ids a model or sampler needs to treat specially. `None` when the vocabulary has no such token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub unk: Option<u32>,
    pub mask: Option<u32>,
}

/// Text <-> token ids. Every generator, data pipeline and evaluator in seqlab goes through this.
pub trait Tokenizer: Send + Sync + std::fmt::Debug {
    /// Token ids of `text`, without adding BOS/EOS.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Text of `ids`. Ids outside the vocabulary are an error, never a panic.
    fn decode(&self, ids: &[u32]) -> Result<String>;
    /// Number of ids, including special tokens: every id is `< vocab_size()`.
    fn vocab_size(&self) -> usize;
    /// The special tokens of this vocabulary.
    fn special_ids(&self) -> SpecialIds;
    /// Short description of the kind, e.g. `"hf-bpe"`, `"char"`, `"byte"`.
    fn kind(&self) -> &'static str;
    /// Write the tokenizer to `path` (atomically: a temporary file renamed into place) in a
    /// format that [`load`] reads back to an identical tokenizer.
    fn save(&self, path: &Path) -> Result<()>;
}

/// Open a tokenizer file written by [`Tokenizer::save`], any HF `tokenizer.json`, or a GPT-2
/// `encoder.json` (whose `vocab.bpe` must sit beside it). The format is detected from the content.
///
/// Errors name the file: missing or unreadable, not UTF-8 / not JSON, an unknown format, an
/// inconsistent vocabulary, or a GPT-2 `encoder.json` whose `vocab.bpe` is missing.
pub fn load(path: &Path) -> Result<Box<dyn Tokenizer>> {
    load::load(path)
}
