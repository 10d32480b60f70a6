//! GPT-2's original tokenizer files, `encoder.json` + `vocab.bpe` (Radford et al., 2019), turned
//! into the same byte-level BPE that HF's `gpt2/tokenizer.json` describes:
//!
//! - pre-tokenizer: ByteLevel (GPT-2's split regex, each byte mapped to a printable char,
//!   `add_prefix_space = false`),
//! - model: BPE with the ranked merges of `vocab.bpe`, no unk token,
//! - decoder: ByteLevel (chars back to bytes, then UTF-8),
//! - `<|endoftext|>` (50256) as a special added token: it is matched in text and is the
//!   EOS/BOS id. (tiktoken instead refuses it in text unless allowed; HF behaviour is kept.)

use crate::{HfTokenizer, Result, TokenizerError};
use std::path::Path;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

/// The single special token of GPT-2.
pub const GPT2_ENDOFTEXT: &str = "<|endoftext|>";

/// Build GPT-2's tokenizer from its two files.
pub(crate) fn from_files(encoder_json: &Path, vocab_bpe: &Path) -> Result<HfTokenizer> {
    let vocab = read_encoder(encoder_json)?;
    if !vocab_bpe.exists() {
        return Err(TokenizerError::MissingMerges {
            encoder: encoder_json.to_path_buf(),
            merges: vocab_bpe.to_path_buf(),
        });
    }
    let merges = read_merges(vocab_bpe)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| TokenizerError::Invalid {
            path: vocab_bpe.to_path_buf(),
            message: format!("merges do not fit {}: {e}", encoder_json.display()),
        })?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_post_processor(Some(ByteLevel::new(true, false, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    if tok.token_to_id(GPT2_ENDOFTEXT).is_some() {
        tok.add_special_tokens([AddedToken::from(GPT2_ENDOFTEXT, true)])
            .map_err(|error| TokenizerError::Hf {
                context: format!("cannot add {GPT2_ENDOFTEXT}"),
                error,
            })?;
    }
    Ok(HfTokenizer::from_tokenizer(tok))
}

/// `encoder.json`: one flat JSON object, token string -> id.
pub(crate) fn read_encoder(path: &Path) -> Result<Vocab> {
    let text = seqlab_io::read_text(path)?;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|error| TokenizerError::Json {
            path: path.to_path_buf(),
            error,
        })?;
    map.into_iter()
        .map(
            |(token, id)| match id.as_u64().and_then(|i| u32::try_from(i).ok()) {
                Some(id) => Ok((token, id)),
                None => Err(TokenizerError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("token {token:?} has id {id}, expected an integer id"),
                }),
            },
        )
        .collect()
}

/// `vocab.bpe`: a `#version` header, then one merge `left right` per line, by rank.
fn read_merges(path: &Path) -> Result<Vec<(String, String)>> {
    let text = seqlab_io::read_text(path)?;
    let mut merges = Vec::with_capacity(50_000);
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("#version") || line.is_empty() {
            continue;
        }
        match line.split(' ').collect::<Vec<_>>()[..] {
            [a, b] if !a.is_empty() && !b.is_empty() => merges.push((a.to_owned(), b.to_owned())),
            _ => {
                return Err(TokenizerError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "line {}: expected a merge `left right`, got {line:?}",
                        i + 1
                    ),
                })
            }
        }
    }
    Ok(merges)
}
