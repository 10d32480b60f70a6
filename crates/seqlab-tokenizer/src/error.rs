//! The one error type of this crate. Every variant that concerns a file names it.
//!
//! Each message is one complete line, the underlying cause included (`cannot read x.json: No such
//! file or directory`), so the causes are not chained again through `Error::source`.

use seqlab_io::{Action, IoError, ReadTextError};
use std::path::{Path, PathBuf};

/// Everything that can go wrong when loading, training, saving or applying a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A file could not be opened or read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file could not be written (or renamed into place).
    #[error("cannot write {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A text file holds bytes that are not UTF-8.
    #[error("{} is not valid UTF-8 text (invalid byte at offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    /// A tokenizer file is not JSON.
    #[error("{} is not valid JSON: {error}", path.display())]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },
    /// A JSON file that is none of the formats [`crate::load`] knows.
    #[error(
        "{} is not a known tokenizer format ({detail}); expected an HF tokenizer.json, a seqlab \
         char/byte tokenizer, or a GPT-2 encoder.json",
        path.display()
    )]
    UnknownFormat { path: PathBuf, detail: String },
    /// A file of a known format whose content is inconsistent.
    #[error("invalid tokenizer file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// A GPT-2 `encoder.json` without its `vocab.bpe`.
    #[error(
        "GPT-2 encoder {} needs its merges file beside it: {} not found",
        encoder.display(),
        merges.display()
    )]
    MissingMerges { encoder: PathBuf, merges: PathBuf },
    /// An error reported by the Hugging Face `tokenizers` library.
    #[error("{context}: {error}")]
    Hf {
        context: String,
        error: tokenizers::Error,
    },
    /// Training was given no files.
    #[error("no training files given")]
    NoFiles,
    /// Training files that hold no text at all.
    #[error("empty corpus: no text in {files}")]
    EmptyCorpus { files: String },
    /// A requested vocabulary too small to hold the base alphabet and the special tokens.
    #[error("vocab size {requested} is too small: {what} need at least {minimum}")]
    VocabTooSmall {
        requested: usize,
        minimum: usize,
        what: String,
    },
    /// Options that contradict each other (duplicate special tokens, empty token, ...).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A token id at or beyond the vocabulary size.
    #[error("token id {id} is out of range for a vocabulary of {vocab_size}")]
    IdOutOfRange { id: u32, vocab_size: usize },
    /// A character that a char-level vocabulary without `<unk>` cannot encode.
    #[error(
        "character {ch:?} at byte offset {offset} is not in the vocabulary (and it has no <unk>)"
    )]
    UnknownChar { ch: char, offset: usize },
}

impl From<IoError> for TokenizerError {
    /// Failed reads become [`TokenizerError::Read`]; failed atomic writes (create, write, rename)
    /// become [`TokenizerError::Write`] naming the target.
    fn from(e: IoError) -> Self {
        let (action, path, error) = e.into_parts();
        match action {
            Action::Open | Action::Read => TokenizerError::Read { path, error },
            Action::Create | Action::Write | Action::Rename => {
                TokenizerError::Write { path, error }
            }
        }
    }
}

impl From<ReadTextError> for TokenizerError {
    fn from(e: ReadTextError) -> Self {
        match e {
            ReadTextError::Io(e) => e.into(),
            ReadTextError::NotUtf8 { path, offset } => TokenizerError::NotUtf8 { path, offset },
        }
    }
}

/// "a.txt" or "a.txt, b.txt" (at most a few names) for error messages.
pub(crate) fn describe_files<P: AsRef<Path>>(files: &[P]) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<String> = files
        .iter()
        .take(SHOWN)
        .map(|p| p.as_ref().display().to_string())
        .collect();
    if files.len() > SHOWN {
        names.push(format!("and {} more", files.len() - SHOWN));
    }
    names.join(", ")
}
