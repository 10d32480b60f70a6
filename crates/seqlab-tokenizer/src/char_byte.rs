//! Character- and byte-level vocabularies (as in char-RNN and ByT5-style models).
//!
//! Both put the special tokens first (ids `0..k`, in the order given), then the symbols:
//! - [`CharTokenizer`]: the sorted distinct characters (Unicode scalar values) of a corpus;
//! - [`ByteTokenizer`]: the 256 byte values, byte `b` has id `k + b`.
//!
//! Special tokens written in the text (e.g. `<|endoftext|>`) are matched whole, longest first,
//! so `decode(encode(s)) == s` for every text the vocabulary covers. Both save a small JSON
//! with a type tag, `{"seqlab_tokenizer": "char" | "byte", "version": 1, ...}`.

use crate::error::describe_files;
use crate::special::validate_specials;
use crate::{special, Result, SpecialIds, Tokenizer, TokenizerError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Format version written in the JSON files.
const FORMAT_VERSION: u32 = 1;

/// Default special tokens of a [`CharTokenizer`]: a document separator and the unknown char.
pub const CHAR_DEFAULT_SPECIALS: &[&str] = &["<|endoftext|>", "<unk>"];
/// Default special tokens of a [`ByteTokenizer`]: a document separator (bytes need no `<unk>`).
pub const BYTE_DEFAULT_SPECIALS: &[&str] = &["<|endoftext|>"];

/// Finds special tokens in text: longest match first at each position.
#[derive(Debug, Clone)]
struct SpecialMatcher {
    /// (token, id), longest tokens first.
    by_length: Vec<(String, u32)>,
}

impl SpecialMatcher {
    fn new(specials: &[String]) -> Self {
        let mut by_length: Vec<(String, u32)> = specials
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        by_length.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Self { by_length }
    }

    /// The special token that `rest` starts with: (id, byte length).
    fn match_start(&self, rest: &str) -> Option<(u32, usize)> {
        self.by_length
            .iter()
            .find(|(s, _)| rest.starts_with(s.as_str()))
            .map(|(s, id)| (*id, s.len()))
    }
}

fn specials_of(specials: &[String]) -> SpecialIds {
    special::detect(|t| specials.iter().position(|s| s == t).map(|i| i as u32))
}

fn owned(specials: &[&str]) -> Vec<String> {
    specials.iter().map(|s| (*s).to_owned()).collect()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CharFile {
    seqlab_tokenizer: String,
    version: u32,
    special_tokens: Vec<String>,
    chars: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ByteFile {
    seqlab_tokenizer: String,
    version: u32,
    special_tokens: Vec<String>,
}

fn check_version(path: &Path, version: u32) -> Result<()> {
    if version != FORMAT_VERSION {
        return Err(TokenizerError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "format version {version} is not supported (expected {FORMAT_VERSION})"
            ),
        });
    }
    Ok(())
}

/// Character-level vocabulary: special tokens, then the sorted distinct characters.
///
/// A character outside the vocabulary encodes to `<unk>` when the vocabulary has one (the
/// defaults do), and is an [`TokenizerError::UnknownChar`] error otherwise; `<unk>` decodes to
/// the literal text `<unk>`.
#[derive(Debug, Clone)]
pub struct CharTokenizer {
    specials: Vec<String>,
    chars: Vec<char>,
    char_ids: HashMap<char, u32>,
    matcher: SpecialMatcher,
    special_ids: SpecialIds,
}

impl CharTokenizer {
    /// Vocabulary of the given characters (sorted and deduplicated) and special tokens.
    pub fn new(chars: impl IntoIterator<Item = char>, specials: &[String]) -> Result<Self> {
        validate_specials(specials)?;
        let mut chars: Vec<char> = chars.into_iter().collect();
        chars.sort_unstable();
        chars.dedup();
        let k = specials.len() as u32;
        let char_ids = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, k + i as u32))
            .collect();
        Ok(Self {
            matcher: SpecialMatcher::new(specials),
            special_ids: specials_of(specials),
            specials: specials.to_vec(),
            chars,
            char_ids,
        })
    }

    /// Vocabulary of every character in `texts`, with [`CHAR_DEFAULT_SPECIALS`].
    pub fn from_texts<S: AsRef<str>>(texts: &[S]) -> Result<Self> {
        Self::from_texts_with(texts, &owned(CHAR_DEFAULT_SPECIALS), None)
    }

    /// Vocabulary of the characters of `texts` with the given special tokens. With `max_vocab`,
    /// only the most frequent characters are kept (ties: smaller code point first) so that the
    /// whole vocabulary has at most `max_vocab` ids; the others encode to `<unk>`.
    pub fn from_texts_with<S: AsRef<str>>(
        texts: &[S],
        specials: &[String],
        max_vocab: Option<usize>,
    ) -> Result<Self> {
        validate_specials(specials)?;
        let mut counts: HashMap<char, u64> = HashMap::new();
        for t in texts {
            for c in t.as_ref().chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        if counts.is_empty() {
            return Err(TokenizerError::EmptyCorpus {
                files: "the given texts".into(),
            });
        }
        let mut chars: Vec<(char, u64)> = counts.into_iter().collect();
        if let Some(max) = max_vocab {
            let minimum = specials.len() + 1;
            if max < minimum {
                return Err(TokenizerError::VocabTooSmall {
                    requested: max,
                    minimum,
                    what: format!("{} special token(s) and one character", specials.len()),
                });
            }
            chars.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            chars.truncate(max - specials.len());
        }
        Self::new(chars.into_iter().map(|(c, _)| c), specials)
    }

    /// Vocabulary of the characters of UTF-8 text files (see [`Self::from_texts_with`]).
    /// Errors: no files, a missing or non-UTF-8 file (named), no text at all.
    pub fn from_files<P: AsRef<Path>>(
        files: &[P],
        specials: &[String],
        max_vocab: Option<usize>,
    ) -> Result<Self> {
        if files.is_empty() {
            return Err(TokenizerError::NoFiles);
        }
        let texts = files
            .iter()
            .map(|p| Ok(seqlab_io::read_text(p.as_ref())?))
            .collect::<Result<Vec<_>>>()?;
        if texts.iter().all(|t| t.is_empty()) {
            return Err(TokenizerError::EmptyCorpus {
                files: describe_files(files),
            });
        }
        Self::from_texts_with(&texts, specials, max_vocab)
    }

    /// The special tokens, in id order.
    pub fn special_tokens(&self) -> &[String] {
        &self.specials
    }

    /// The characters, in id order (the first has id `special_tokens().len()`).
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    pub(crate) fn from_file_content(path: &Path, file: CharFile) -> Result<Self> {
        check_version(path, file.version)?;
        let invalid = |message: String| TokenizerError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut chars = Vec::with_capacity(file.chars.len());
        for s in &file.chars {
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => chars.push(c),
                _ => {
                    return Err(invalid(format!(
                        "entry {s:?} of \"chars\" is not one character"
                    )))
                }
            }
        }
        if chars.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid("\"chars\" must be sorted and distinct".into()));
        }
        validate_specials(&file.special_tokens).map_err(|e| invalid(e.to_string()))?;
        Self::new(chars, &file.special_tokens)
    }
}

impl Tokenizer for CharTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len());
        let mut pos = 0;
        while let Some(c) = text[pos..].chars().next() {
            if let Some((id, len)) = self.matcher.match_start(&text[pos..]) {
                ids.push(id);
                pos += len;
                continue;
            }
            match (self.char_ids.get(&c), self.special_ids.unk) {
                (Some(&id), _) | (None, Some(id)) => ids.push(id),
                (None, None) => return Err(TokenizerError::UnknownChar { ch: c, offset: pos }),
            }
            pos += c.len_utf8();
        }
        Ok(ids)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        let k = self.specials.len();
        let mut out = String::with_capacity(ids.len());
        for &id in ids {
            let i = id as usize;
            if i < k {
                out.push_str(&self.specials[i]);
            } else if let Some(&c) = self.chars.get(i - k) {
                out.push(c);
            } else {
                return Err(TokenizerError::IdOutOfRange {
                    id,
                    vocab_size: self.vocab_size(),
                });
            }
        }
        Ok(out)
    }

    fn vocab_size(&self) -> usize {
        self.specials.len() + self.chars.len()
    }

    fn special_ids(&self) -> SpecialIds {
        self.special_ids
    }

    fn kind(&self) -> &'static str {
        "char"
    }

    fn save(&self, path: &Path) -> Result<()> {
        let file = CharFile {
            seqlab_tokenizer: "char".into(),
            version: FORMAT_VERSION,
            special_tokens: self.specials.clone(),
            chars: self.chars.iter().map(|c| c.to_string()).collect(),
        };
        let json = serde_json::to_string_pretty(&file).expect("plain data serialises");
        Ok(seqlab_io::write_atomic(path, json.as_bytes())?)
    }
}

/// Byte-level vocabulary: special tokens, then the 256 byte values (byte `b` has id `k + b`).
///
/// Every text is encodable (UTF-8 bytes). `decode` of ids whose bytes are not valid UTF-8 (a
/// model can emit any byte sequence) replaces each invalid sequence with U+FFFD, as
/// `String::from_utf8_lossy` does; [`ByteTokenizer::decode_bytes`] returns the exact bytes.
#[derive(Debug, Clone)]
pub struct ByteTokenizer {
    specials: Vec<String>,
    matcher: SpecialMatcher,
    special_ids: SpecialIds,
}

impl Default for ByteTokenizer {
    /// 256 bytes with [`BYTE_DEFAULT_SPECIALS`].
    fn default() -> Self {
        Self::new(&owned(BYTE_DEFAULT_SPECIALS)).expect("default specials are valid")
    }
}

impl ByteTokenizer {
    /// 256 bytes after the given special tokens.
    pub fn new(specials: &[String]) -> Result<Self> {
        validate_specials(specials)?;
        Ok(Self {
            matcher: SpecialMatcher::new(specials),
            special_ids: specials_of(specials),
            specials: specials.to_vec(),
        })
    }

    /// The special tokens, in id order.
    pub fn special_tokens(&self) -> &[String] {
        &self.specials
    }

    /// Id of byte `b`.
    pub fn byte_id(&self, b: u8) -> u32 {
        self.specials.len() as u32 + u32::from(b)
    }

    /// The exact bytes of `ids` (special tokens as their UTF-8 text).
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let k = self.specials.len();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let i = id as usize;
            if i < k {
                out.extend_from_slice(self.specials[i].as_bytes());
            } else if i < k + 256 {
                out.push((i - k) as u8);
            } else {
                return Err(TokenizerError::IdOutOfRange {
                    id,
                    vocab_size: self.vocab_size(),
                });
            }
        }
        Ok(out)
    }

    pub(crate) fn from_file_content(path: &Path, file: ByteFile) -> Result<Self> {
        check_version(path, file.version)?;
        Self::new(&file.special_tokens).map_err(|e| TokenizerError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

impl Tokenizer for ByteTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len());
        let mut pos = 0;
        while let Some(c) = text[pos..].chars().next() {
            if let Some((id, len)) = self.matcher.match_start(&text[pos..]) {
                ids.push(id);
                pos += len;
                continue;
            }
            let end = pos + c.len_utf8();
            ids.extend(text.as_bytes()[pos..end].iter().map(|&b| self.byte_id(b)));
            pos = end;
        }
        Ok(ids)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }

    fn vocab_size(&self) -> usize {
        self.specials.len() + 256
    }

    fn special_ids(&self) -> SpecialIds {
        self.special_ids
    }

    fn kind(&self) -> &'static str {
        "byte"
    }

    fn save(&self, path: &Path) -> Result<()> {
        let file = ByteFile {
            seqlab_tokenizer: "byte".into(),
            version: FORMAT_VERSION,
            special_tokens: self.specials.clone(),
        };
        let json = serde_json::to_string_pretty(&file).expect("plain data serialises");
        Ok(seqlab_io::write_atomic(path, json.as_bytes())?)
    }
}
