//! [`GgufTokenizer`]: the byte-level BPE tokenizer a GGUF file embeds (`tokenizer.ggml.model` =
//! `gpt2`), rebuilt as a Hugging Face `tokenizers::Tokenizer` behind seqlab's
//! [`Tokenizer`] trait.
//!
//! Metadata read (llama.cpp's names):
//! - `tokenizer.ggml.tokens` (id → token string, GPT-2 byte-to-char form: `Ġthe`),
//!   `tokenizer.ggml.merges` (`"left right"` by rank), `tokenizer.ggml.token_type`
//!   (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte);
//! - `tokenizer.ggml.pre`: the pre-tokenizer's split rules. llama.cpp splits with
//!   - `gpt2` family (and unset): GPT-2's regex
//!     `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
//!   - `smollm`, `starcoder`, `refact`, `codeshell`, `command-r`, `exaone`, `minerva`: first
//!     `\p{N}` (every digit alone), then GPT-2's regex. HF writes this as
//!     `Sequence[Digits(individual_digits = true), ByteLevel]`, which is what is built here;
//!   - other names are refused (their regexes differ and would give other ids);
//! - `tokenizer.ggml.{bos,eos,unknown,padding}_token_id`, `tokenizer.ggml.add_bos_token`,
//!   `tokenizer.chat_template`.
//!
//! The tokenizer: BPE with the ranked merges (no unk token, no byte fallback), ByteLevel
//! pre-tokenizer (`add_prefix_space = false`) and decoder; control tokens are added as special
//! tokens (matched whole in text, e.g. `<|im_start|>`), user-defined ones as plain added tokens.

use crate::error::{LmError, Result};
use crate::gguf::reader::{corrupt, value_int, GgufFile};
use seqlab_tokenizer::{HfTokenizer, SpecialIds, Tokenizer, TokenizerError};
use std::path::Path;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::AddedToken;

/// `tokenizer.ggml.pre` values whose split is GPT-2's regex alone.
const PRE_GPT2: &[&str] = &[
    "default",
    "gpt2",
    "gpt-2",
    "phi-2",
    "jina-es",
    "jina-de",
    "jina-v2-es",
    "jina-v2-de",
];
/// `tokenizer.ggml.pre` values that isolate every digit, then apply GPT-2's regex.
const PRE_DIGITS_GPT2: &[&str] = &[
    "smollm",
    "starcoder",
    "refact",
    "codeshell",
    "command-r",
    "exaone",
    "minerva-7b",
];

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const TOKEN_CONTROL: i128 = 3;
const TOKEN_USER_DEFINED: i128 = 4;

/// The tokenizer embedded in a GGUF file, with the special ids and chat template its metadata
/// names (which can differ from the ids [`HfTokenizer`] finds by token names: SmolLM2-Instruct's
/// BOS is `<|im_start|>` = 1 and EOS `<|im_end|>` = 2, not `<|endoftext|>` = 0).
#[derive(Debug, Clone)]
pub struct GgufTokenizer {
    hf: HfTokenizer,
    special: SpecialIds,
    add_bos: bool,
    chat_template: Option<String>,
    pre: String,
}

impl GgufTokenizer {
    /// Builds the tokenizer from `file`'s `tokenizer.ggml.*` metadata (module docs). Errors name
    /// the missing or inconsistent key.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let path = file.path();
        let model = file.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(corrupt(
                path,
                format!(
                    "tokenizer.ggml.model `{model}` is not supported (only byte-level BPE, `gpt2`)"
                ),
            ));
        }
        let pre = file
            .get_str_opt("tokenizer.ggml.pre")?
            .unwrap_or("default")
            .to_string();
        let digits_first = if PRE_DIGITS_GPT2.contains(&pre.as_str()) {
            true
        } else if PRE_GPT2.contains(&pre.as_str()) {
            false
        } else {
            return Err(corrupt(
                path,
                format!(
                    "tokenizer.ggml.pre `{pre}` is not supported (known: {}, {})",
                    PRE_GPT2.join(", "),
                    PRE_DIGITS_GPT2.join(", ")
                ),
            ));
        };
        let tokens = file
            .get_str_array_opt("tokenizer.ggml.tokens")?
            .ok_or_else(|| corrupt(path, "missing metadata key `tokenizer.ggml.tokens`"))?;
        let merges = file
            .get_str_array_opt("tokenizer.ggml.merges")?
            .ok_or_else(|| corrupt(path, "missing metadata key `tokenizer.ggml.merges`"))?;
        let types: Vec<i128> = match file.get_array_opt("tokenizer.ggml.token_type")? {
            None => vec![1; tokens.len()],
            Some(a) => a
                .iter()
                .map(|v| {
                    value_int(v).ok_or_else(|| {
                        corrupt(
                            path,
                            "metadata array `tokenizer.ggml.token_type` must hold integers",
                        )
                    })
                })
                .collect::<Result<_>>()?,
        };
        if types.len() != tokens.len() {
            return Err(corrupt(
                path,
                format!(
                    "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                    types.len(),
                    tokens.len()
                ),
            ));
        }

        let mut vocab = Vocab::default();
        for (id, tok) in tokens.iter().enumerate() {
            // A repeated string keeps its first id, as llama.cpp's token → id map does.
            vocab.entry(tok.to_string()).or_insert(id as u32);
        }
        let merges = merges
            .iter()
            .enumerate()
            .map(|(i, m)| match m.split_once(' ') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() => {
                    Ok((a.to_string(), b.to_string()))
                }
                _ => Err(corrupt(
                    path,
                    format!("tokenizer.ggml.merges[{i}] = {m:?} is not a merge `left right`"),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| {
                corrupt(
                    path,
                    format!("tokenizer.ggml.merges do not fit tokenizer.ggml.tokens: {e}"),
                )
            })?;
        let mut tok = tokenizers::Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        if digits_first {
            tok.with_pre_tokenizer(Some(Sequence::new(vec![
                Digits::new(true).into(),
                byte_level.into(),
            ])));
        } else {
            tok.with_pre_tokenizer(Some(byte_level));
        }
        tok.with_decoder(Some(ByteLevel::default()));
        let added = |ty: i128, special: bool| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(&types)
                .filter(|(_, &t)| t == ty)
                .map(|(s, _)| AddedToken::from(s.to_string(), special).normalized(false))
                .collect()
        };
        let hf_err = |error| {
            LmError::Tokenizer(TokenizerError::Hf {
                context: format!("{}: cannot add the GGUF tokenizer's tokens", path.display()),
                error,
            })
        };
        tok.add_special_tokens(added(TOKEN_CONTROL, true))
            .map_err(hf_err)?;
        tok.add_tokens(added(TOKEN_USER_DEFINED, false))
            .map_err(hf_err)?;
        let hf = HfTokenizer::from_tokenizer(tok);

        let n = tokens.len();
        let id = |key: &str| -> Result<Option<u32>> {
            match file.get_usize_opt(key)? {
                None => Ok(None),
                Some(i) if i < n => Ok(Some(i as u32)),
                Some(i) => Err(corrupt(
                    path,
                    format!("metadata key `{key}` = {i} is outside the vocabulary of {n} tokens"),
                )),
            }
        };
        let named = hf.special_ids();
        let special = SpecialIds {
            bos: id("tokenizer.ggml.bos_token_id")?.or(named.bos),
            eos: id("tokenizer.ggml.eos_token_id")?.or(named.eos),
            pad: id("tokenizer.ggml.padding_token_id")?.or(named.pad),
            unk: id("tokenizer.ggml.unknown_token_id")?.or(named.unk),
            mask: named.mask,
        };
        Ok(Self {
            hf,
            special,
            add_bos: file
                .get_bool_opt("tokenizer.ggml.add_bos_token")?
                .unwrap_or(false),
            chat_template: file
                .get_str_opt("tokenizer.chat_template")?
                .map(str::to_string),
            pre: pre.to_string(),
        })
    }

    /// The Hugging Face tokenizer inside (token ↔ id look-ups, `tokenizer.json` export).
    pub fn hf(&self) -> &HfTokenizer {
        &self.hf
    }

    /// Whether the model expects a BOS token before a prompt (`tokenizer.ggml.add_bos_token`;
    /// false for SmolLM2). [`Tokenizer::encode`] never adds it.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The Jinja chat template of the file (`tokenizer.chat_template`), if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// `tokenizer.ggml.pre`: the pre-tokenizer family (`smollm` for SmolLM2).
    pub fn pre_tokenizer(&self) -> &str {
        &self.pre
    }
}

impl Tokenizer for GgufTokenizer {
    fn encode(&self, text: &str) -> seqlab_tokenizer::Result<Vec<u32>> {
        self.hf.encode(text)
    }

    fn decode(&self, ids: &[u32]) -> seqlab_tokenizer::Result<String> {
        self.hf.decode(ids)
    }

    fn vocab_size(&self) -> usize {
        self.hf.vocab_size()
    }

    /// The ids the GGUF metadata names (falling back to the conventional token names).
    fn special_ids(&self) -> SpecialIds {
        self.special
    }

    fn kind(&self) -> &'static str {
        "gguf-bpe"
    }

    /// Writes a standard HF `tokenizer.json` (same tokens, merges, pre-tokenizer and added
    /// tokens). Loading it back gives the same ids for every text; its special ids are then
    /// found by token names, as for any `tokenizer.json`.
    fn save(&self, path: &Path) -> seqlab_tokenizer::Result<()> {
        self.hf.save(path)
    }
}
