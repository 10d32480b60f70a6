//! `meta.json`: the one file that describes a prepared dataset directory.
//!
//! It is written last (atomically), so a directory whose preparation was interrupted has no
//! `meta.json` and is never mistaken for a valid dataset. Example (text):
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "kind": "text",
//!   "created_by": "seqlab-data 0.1.0",
//!   "dtype": "u16",
//!   "vocab_size": 50257,
//!   "tokenizer": { "file": "tokenizer.json", "kind": "hf-bpe", "vocab_size": 50257, ... },
//!   "splits": {
//!     "train": { "tokens": 41000, "shards": [{ "file": "train_000.bin", "tokens": 41000 }],
//!                "docs_file": "train_docs.u64", "docs": 1 },
//!     "val":   { ... }
//!   },
//!   "text": { "val_fraction": 0.05, "split_rule": "...", "sources": [ ... ] }
//! }
//! ```

use crate::error::{DataError, Result};
use seqlab_tokenizer::SpecialIds;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// Version of the on-disk layout this code writes and reads. Bump it when the layout changes.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the metadata file inside a dataset directory.
pub const META_FILE: &str = "meta.json";

/// What seqlab wrote into `created_by`.
pub(crate) fn created_by() -> String {
    format!("seqlab-data {}", env!("CARGO_PKG_VERSION"))
}

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Validation data (model selection, early stopping, reported loss).
    Val,
    /// Held-out test data (audio datasets; text datasets have none).
    Test,
}

impl Split {
    /// All splits, in file order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// `"train"`, `"val"` or `"test"`: the prefix of the split's shard files.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// Index into [`Split::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a dataset holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// Token ids of text.
    Text,
    /// 8-bit mu-law codes of 16 kHz audio, in fixed-length clips.
    Audio,
}

/// Element type of the shard files, always little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// One byte per token (mu-law audio codes).
    U8,
    /// Two bytes per token: vocabularies of at most 65,536 ids.
    U16,
    /// Four bytes per token: larger vocabularies.
    U32,
}

impl Dtype {
    /// Bytes per token.
    pub fn width(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::U16 => 2,
            Dtype::U32 => 4,
        }
    }

    /// The narrowest text dtype that holds every id of a `vocab_size` vocabulary: `U16` when
    /// `vocab_size <= 65536`, else `U32`.
    pub fn for_vocab(vocab_size: usize) -> Dtype {
        if vocab_size <= 1 << 16 {
            Dtype::U16
        } else {
            Dtype::U32
        }
    }

    /// Number of distinct values this dtype holds.
    pub(crate) fn capacity(self) -> u64 {
        1u64 << (8 * self.width())
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::U8 => "u8",
            Dtype::U16 => "u16",
            Dtype::U32 => "u32",
        })
    }
}

/// The tokenizer (or codec) that produced the ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerMeta {
    /// File inside the dataset directory holding a copy of the tokenizer (`tokenizer.json`);
    /// `None` for the mu-law codec, which needs no file.
    pub file: Option<String>,
    /// [`seqlab_tokenizer::Tokenizer::kind`], or `"mu-law"` for audio.
    pub kind: String,
    /// Vocabulary size: every id is below it.
    pub vocab_size: usize,
    /// The vocabulary's special ids.
    pub special_ids: SpecialIds,
    /// Where the tokenizer was loaded from when the dataset was prepared (informational).
    #[serde(default)]
    pub source: Option<String>,
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// File name inside the dataset directory, e.g. `train_000.bin`.
    pub file: String,
    /// Tokens in the file (its size is `tokens * dtype width` bytes).
    pub tokens: u64,
}

/// One split: its shards in order, and where documents start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SplitMeta {
    /// Tokens in the split (sum over shards).
    pub tokens: u64,
    /// Shards, concatenated in this order.
    pub shards: Vec<ShardMeta>,
    /// File of little-endian `u64` token offsets where each document starts within the split
    /// (text only; for audio every clip starts at a multiple of the clip length).
    #[serde(default)]
    pub docs_file: Option<String>,
    /// Number of documents (text) or clips (audio) in the split.
    #[serde(default)]
    pub docs: u64,
}

/// One input text file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSource {
    /// Path as given to `prepare`.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Tokens produced (including the end-of-document token, if any).
    pub tokens: u64,
    /// Of which went to the train split.
    pub train_tokens: u64,
    /// Of which went to the val split (the file's last tokens).
    pub val_tokens: u64,
}

/// Text-specific metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextMeta {
    /// Requested fraction of each file's tokens that goes to the val split.
    pub val_fraction: f64,
    /// Maximum tokens per shard file.
    pub shard_tokens: u64,
    /// Whether the end-of-sequence token was appended after each file.
    pub eos_between_docs: bool,
    /// The id appended after each document, if any.
    pub eos_id: Option<u32>,
    /// The split rule, in words.
    pub split_rule: String,
    /// Input files in order.
    pub sources: Vec<TextSource>,
}

/// One input WAV file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioSource {
    /// Path relative to the WAV directory, with `/` separators.
    pub path: String,
    /// Split its clips went to.
    pub split: Split,
    /// Samples in the file.
    pub samples: u64,
    /// Clips made from it.
    pub clips: u64,
    /// Index of its first clip within its split.
    pub first_clip: u64,
    /// The file's sample format, e.g. `"int16"` or `"float32"`.
    pub format: String,
}

/// Audio-specific metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioMeta {
    /// Sample rate in Hz (always 16000).
    pub sample_rate: u32,
    /// Samples (= tokens) per clip.
    pub clip_samples: u64,
    /// Distance between the starts of consecutive clips cut from one long file.
    pub hop_samples: u64,
    /// Mu-law parameter (255).
    pub mu: u32,
    /// The code of a zero sample, used to pad short clips.
    pub silence_code: u8,
    /// How files were assigned to splits, in words.
    pub split_rule: String,
    /// How files were cut into clips, in words.
    pub clip_rule: String,
    /// Input files, grouped by split (train, val, test), each group sorted by path.
    pub sources: Vec<AudioSource>,
}

/// The splits of a dataset. Text datasets have `train` and `val`; audio datasets also `test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Splits {
    /// Training split.
    pub train: SplitMeta,
    /// Validation split (may hold 0 tokens when prepared with a val fraction of 0).
    pub val: SplitMeta,
    /// Test split, audio only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<SplitMeta>,
}

/// Contents of `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Layout version, [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Text or audio.
    pub kind: DataKind,
    /// Program and version that wrote the dataset.
    pub created_by: String,
    /// Element type of every shard.
    pub dtype: Dtype,
    /// Every id is below this.
    pub vocab_size: usize,
    /// Tokenizer or codec.
    pub tokenizer: TokenizerMeta,
    /// Split layout.
    pub splits: Splits,
    /// Text details (kind `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextMeta>,
    /// Audio details (kind `audio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioMeta>,
}

impl Meta {
    /// The metadata of `split`, if the dataset has it.
    pub fn split(&self, split: Split) -> Option<&SplitMeta> {
        match split {
            Split::Train => Some(&self.splits.train),
            Split::Val => Some(&self.splits.val),
            Split::Test => self.splits.test.as_ref(),
        }
    }

    /// Total tokens over all splits.
    pub fn total_tokens(&self) -> u64 {
        Split::ALL
            .iter()
            .filter_map(|s| self.split(*s))
            .map(|s| s.tokens)
            .sum()
    }

    /// Read and check `dir/meta.json`: missing file, unparsable JSON, an unknown format version
    /// and self-contradictions (shard counts that do not add up, a dtype too narrow for the
    /// vocabulary, file names that leave the directory) are each a clear error.
    pub fn read(dir: &Path) -> Result<Meta> {
        let path = dir.join(META_FILE);
        let bytes = match seqlab_io::read_bytes(&path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(if dir.is_dir() {
                    DataError::MissingMeta {
                        dir: dir.to_path_buf(),
                    }
                } else {
                    DataError::MissingFile {
                        path: dir.to_path_buf(),
                    }
                })
            }
            Err(e) => return Err(e.into()),
        };
        let bad = |msg: String| DataError::BadMeta {
            path: path.clone(),
            msg,
        };
        // Check the version before the schema, so a future layout reports a version mismatch
        // rather than a confusing missing field.
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let version = value
            .get("format_version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| bad("no integer \"format_version\" field".into()))?;
        if version != u64::from(FORMAT_VERSION) {
            return Err(DataError::VersionMismatch {
                path,
                found: u32::try_from(version).unwrap_or(u32::MAX),
                expected: FORMAT_VERSION,
            });
        }
        let meta: Meta = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        meta.check().map_err(bad)?;
        Ok(meta)
    }

    /// Write `dir/meta.json` atomically.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(self).expect("Meta serializes");
        json.push(b'\n');
        Ok(seqlab_io::write_atomic(dir.join(META_FILE), &json)?)
    }

    /// Internal consistency; the message says what is wrong.
    fn check(&self) -> std::result::Result<(), String> {
        if self.vocab_size == 0 {
            return Err("vocab_size is 0".into());
        }
        if self.vocab_size as u64 > self.dtype.capacity() {
            return Err(format!(
                "dtype {} cannot hold a vocabulary of {}",
                self.dtype, self.vocab_size
            ));
        }
        match (self.kind, &self.text, &self.audio) {
            (DataKind::Text, Some(_), None) => {}
            (DataKind::Audio, None, Some(audio)) => {
                if self.dtype != Dtype::U8 {
                    return Err(format!("audio dataset with dtype {}", self.dtype));
                }
                if audio.clip_samples == 0 {
                    return Err("clip_samples is 0".into());
                }
            }
            (kind, _, _) => {
                return Err(format!(
                    "kind {kind:?} needs exactly its own \"text\"/\"audio\" section"
                ))
            }
        }
        for split in Split::ALL {
            let Some(s) = self.split(split) else { continue };
            let sum: u64 = s.shards.iter().map(|sh| sh.tokens).sum();
            if sum != s.tokens {
                return Err(format!(
                    "{split} split records {} tokens but its shards add up to {sum}",
                    s.tokens
                ));
            }
            let names = s
                .shards
                .iter()
                .map(|sh| &sh.file)
                .chain(s.docs_file.as_ref());
            for name in names {
                if !is_plain_file_name(name) {
                    return Err(format!("file name {name:?} is not a plain file name"));
                }
            }
            if let Some(audio) = &self.audio {
                if s.tokens % audio.clip_samples != 0 {
                    return Err(format!(
                        "{split} split holds {} samples, not a whole number of {}-sample clips",
                        s.tokens, audio.clip_samples
                    ));
                }
            }
        }
        if let Some(file) = &self.tokenizer.file {
            if !is_plain_file_name(file) {
                return Err(format!("file name {file:?} is not a plain file name"));
            }
        }
        Ok(())
    }
}

/// A file name with no directory part, so `dir.join(name)` stays inside `dir`.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}
