//! [`HfTokenizer`]: any Hugging Face `tokenizer.json` (byte-level BPE such as GPT-2 and GPT-NeoX,
//! but also WordPiece, WordLevel and Unigram files), wrapped behind seqlab's [`Tokenizer`] trait.

use crate::{special, Result, SpecialIds, Tokenizer, TokenizerError};
use std::path::Path;
use tokenizers::models::ModelWrapper;
use tokenizers::Model;

/// A Hugging Face tokenizer, loaded from a `tokenizer.json` without changing it.
///
/// `encode` applies the file's whole pipeline (normalizer, pre-tokenizer, model, added tokens)
/// but no post-processor template, so no BOS/EOS is added; special tokens written in the text
/// (e.g. `<|endoftext|>`) are recognised as in HF `tokenizers`. `decode` keeps special tokens.
/// Truncation and padding settings of the file are dropped: `encode` returns every id.
/// A byte-level `decode` of ids that split a UTF-8 character yields U+FFFD for the partial bytes.
#[derive(Clone)]
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    vocab_size: usize,
    special: SpecialIds,
    kind: &'static str,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("kind", &self.kind)
            .field("vocab_size", &self.vocab_size)
            .field("special", &self.special)
            .finish_non_exhaustive()
    }
}

impl HfTokenizer {
    /// Load a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = seqlab_io::read_text(path)?;
        Self::from_json_str(&text, path)
    }

    /// Parse the content of a `tokenizer.json`; `path` only names the source in errors.
    pub(crate) fn from_json_str(json: &str, path: &Path) -> Result<Self> {
        let inner: tokenizers::Tokenizer =
            serde_json::from_str(json).map_err(|e| TokenizerError::Invalid {
                path: path.to_path_buf(),
                message: format!("not a valid HF tokenizer.json: {e}"),
            })?;
        Ok(Self::from_tokenizer(inner))
    }

    /// GPT-2's original files: `encoder.json` (token -> id) and `vocab.bpe` (merges, by rank).
    /// Builds exactly GPT-2's byte-level BPE, as HF's `gpt2/tokenizer.json` describes it:
    /// ByteLevel pre-tokenizer (GPT-2's split regex, `add_prefix_space = false`), BPE with the
    /// ranked merges and no unk token, ByteLevel decoder, and `<|endoftext|>` (50256) as a special
    /// token that is matched in text and serves as EOS and BOS.
    pub fn from_gpt2_files(encoder_json: &Path, vocab_bpe: &Path) -> Result<Self> {
        crate::gpt2::from_files(encoder_json, vocab_bpe)
    }

    /// Wrap an in-memory HF tokenizer (truncation and padding are switched off).
    pub fn from_tokenizer(mut inner: tokenizers::Tokenizer) -> Self {
        // `with_truncation(None)` cannot fail: only a Some(params) is validated.
        let _ = inner.with_truncation(None);
        inner.with_padding(None);
        let model_max = inner.get_model().get_vocab().into_values().max();
        let added_max = inner.get_added_tokens_decoder().into_keys().max();
        let max_id = model_max.max(added_max);
        let vocab_size = inner
            .get_vocab_size(true)
            .max(max_id.map_or(0, |m| m as usize + 1));
        let mut special = special::detect(|t| inner.token_to_id(t));
        if special.unk.is_none() {
            if let ModelWrapper::BPE(bpe) = inner.get_model() {
                special.unk = bpe
                    .get_unk_token()
                    .as_deref()
                    .and_then(|t| inner.token_to_id(t));
            }
        }
        let kind = match inner.get_model() {
            ModelWrapper::BPE(_) => "hf-bpe",
            ModelWrapper::WordPiece(_) => "hf-wordpiece",
            ModelWrapper::WordLevel(_) => "hf-wordlevel",
            ModelWrapper::Unigram(_) => "hf-unigram",
        };
        Self {
            inner,
            vocab_size,
            special,
            kind,
        }
    }

    /// The wrapped HF tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Unwrap the HF tokenizer.
    pub fn into_inner(self) -> tokenizers::Tokenizer {
        self.inner
    }

    /// Id of a token string (model vocabulary or added token), as in the vocabulary file.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token string of an id (byte-level tokens use GPT-2's byte-to-char map, e.g. `Ġthe`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The `tokenizer.json` text; `pretty` indents it as HF's `save(pretty=True)` does.
    pub fn to_json(&self, pretty: bool) -> Result<String> {
        self.inner
            .to_string(pretty)
            .map_err(|error| TokenizerError::Hf {
                context: "cannot serialise tokenizer".into(),
                error,
            })
    }
}

impl Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|error| TokenizerError::Hf {
                context: "cannot encode text".into(),
                error,
            })?;
        Ok(enc.get_ids().to_vec())
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        // HF skips unknown ids silently; seqlab treats them as errors.
        if let Some(&id) = ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            return Err(TokenizerError::IdOutOfRange {
                id,
                vocab_size: self.vocab_size,
            });
        }
        self.inner
            .decode(ids, false)
            .map_err(|error| TokenizerError::Hf {
                context: "cannot decode ids".into(),
                error,
            })
    }

    /// One past the largest id (model vocabulary and added tokens): the count of ids for the
    /// contiguous vocabularies of real tokenizers (GPT-2: 50257, GPT-NeoX PII file: 50280).
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn special_ids(&self) -> SpecialIds {
        self.special
    }

    fn kind(&self) -> &'static str {
        self.kind
    }

    /// Writes a standard, pretty-printed `tokenizer.json` that HF `tokenizers` reads.
    fn save(&self, path: &Path) -> Result<()> {
        let json = self.to_json(true)?;
        Ok(seqlab_io::write_atomic(path, json.as_bytes())?)
    }
}
