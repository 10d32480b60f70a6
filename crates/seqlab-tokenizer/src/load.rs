//! [`load`](crate::load): open any tokenizer file, telling the formats apart by content.

use crate::char_byte::{ByteFile, CharFile};
use crate::{ByteTokenizer, CharTokenizer, HfTokenizer, Result, Tokenizer, TokenizerError};
use serde_json::Value;
use std::path::Path;

/// Names tried for the merges file that sits beside a GPT-2 `encoder.json`.
const MERGES_NAMES: &[&str] = &["vocab.bpe", "merges.txt"];

/// Detect the format of `path` and load it:
/// - an object with `"seqlab_tokenizer": "char" | "byte"`: [`CharTokenizer`] / [`ByteTokenizer`];
/// - an object whose `"model"` is an object: a Hugging Face `tokenizer.json` ([`HfTokenizer`]);
/// - a flat object of string -> integer: GPT-2's `encoder.json`, with `vocab.bpe` (or
///   `merges.txt`) from the same folder.
pub(crate) fn load(path: &Path) -> Result<Box<dyn Tokenizer>> {
    let text = seqlab_io::read_text(path)?;
    let value: Value = serde_json::from_str(&text).map_err(|error| TokenizerError::Json {
        path: path.to_path_buf(),
        error,
    })?;
    let unknown = |detail: &str| TokenizerError::UnknownFormat {
        path: path.to_path_buf(),
        detail: detail.to_owned(),
    };
    let Value::Object(map) = &value else {
        return Err(unknown("the top level is not a JSON object"));
    };
    if let Some(tag) = map.get("seqlab_tokenizer") {
        let invalid = |e: serde_json::Error| TokenizerError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        return match tag.as_str() {
            Some("char") => {
                let file: CharFile = serde_json::from_value(value).map_err(invalid)?;
                Ok(Box::new(CharTokenizer::from_file_content(path, file)?))
            }
            Some("byte") => {
                let file: ByteFile = serde_json::from_value(value).map_err(invalid)?;
                Ok(Box::new(ByteTokenizer::from_file_content(path, file)?))
            }
            _ => Err(TokenizerError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "unknown \"seqlab_tokenizer\" type {tag}, expected \"char\" or \"byte\""
                ),
            }),
        };
    }
    // GPT-2's vocabulary has a token "model" (id 19849): an HF file's "model" is an object.
    if map.get("model").is_some_and(Value::is_object) {
        drop(value);
        return Ok(Box::new(HfTokenizer::from_json_str(&text, path)?));
    }
    if !map.is_empty() && map.values().all(|v| v.is_u64()) {
        let dir = path.parent().unwrap_or(Path::new(""));
        let merges = MERGES_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| TokenizerError::MissingMerges {
                encoder: path.to_path_buf(),
                merges: dir.join(MERGES_NAMES[0]),
            })?;
        return Ok(Box::new(HfTokenizer::from_gpt2_files(path, &merges)?));
    }
    Err(unknown(
        "no \"model\", no \"seqlab_tokenizer\" tag, and not a token -> id map",
    ))
}
