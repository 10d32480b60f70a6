//! [`DataError`]: every way preparing or reading a dataset can fail, each rendered as one line that
//! names the file (or directory) at fault.

use std::path::{Path, PathBuf};

/// Errors of the data layer. None of them is a panic: bad files, bad flags and damaged datasets all
/// come back as one of these.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An input file or directory does not exist.
    #[error("{path}: no such file or directory")]
    MissingFile {
        /// The path as given.
        path: PathBuf,
    },
    /// An I/O operation on `path` failed; `action` says which ("read", "create directory", ...).
    #[error("cannot {action} {path}: {error}")]
    Io {
        /// What was being done, e.g. `"read"`, `"write"`, `"create directory"`.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error (part of the message, not a separate `source()`, so
        /// `anyhow`'s `{:#}` prints it once).
        error: std::io::Error,
    },
    /// A text file is not valid UTF-8.
    #[error("{path}: not valid UTF-8 at byte offset {offset}")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Offset of the first byte that is not part of a valid UTF-8 sequence.
        offset: usize,
    },
    /// The inputs hold no tokens at all.
    #[error("empty corpus: {what} produced 0 tokens")]
    EmptyCorpus {
        /// The inputs, e.g. `"a.txt"` or `"3 files (a.txt, ...)"`.
        what: String,
    },
    /// The corpus is too small for the requested train/val split.
    #[error(
        "corpus too small: {tokens} tokens cannot be split into a non-empty train and val split \
         (val fraction {val_fraction}); add text or use --val-fraction 0"
    )]
    CorpusTooSmall {
        /// Total tokens in the corpus.
        tokens: u64,
        /// The requested validation fraction.
        val_fraction: f64,
    },
    /// The tokenizer failed on a file.
    #[error("tokenizer failed on {path}: {error}")]
    Tokenizer {
        /// The file being encoded (or the tokenizer file being written).
        path: PathBuf,
        /// The tokenizer's error (part of the message).
        error: seqlab_tokenizer::TokenizerError,
    },
    /// The tokenizer returned an id outside its own vocabulary.
    #[error("{path}: tokenizer produced id {id}, outside its vocabulary of {vocab_size}")]
    IdOutOfVocab {
        /// The file being encoded.
        path: PathBuf,
        /// The offending id.
        id: u32,
        /// The tokenizer's vocabulary size.
        vocab_size: usize,
    },
    /// An option value is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A directory holds no `*.txt` (for text) or `*.wav` (for audio) files.
    #[error("{path}: no {what} files found")]
    NoInputFiles {
        /// The directory searched.
        path: PathBuf,
        /// `"*.wav"` or `"*.txt"`.
        what: &'static str,
    },
    /// A WAV file cannot be decoded.
    #[error("{path}: cannot read WAV: {msg}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        msg: String,
    },
    /// A WAV file is not 16 kHz mono (seqlab never resamples).
    #[error(
        "{path}: expected {expected}, found {found} (convert it first, e.g. \
         `sox in.wav -r 16000 -c 1 -b 16 out.wav`)"
    )]
    WavFormat {
        /// The file.
        path: PathBuf,
        /// What is required, e.g. `"16000 Hz mono"`.
        expected: String,
        /// What the file holds, e.g. `"44100 Hz, 2 channels"`.
        found: String,
    },
    /// A dataset directory has no `meta.json`.
    #[error("{dir} is not a prepared dataset: meta.json is missing (run `seqlab prepare` first)")]
    MissingMeta {
        /// The directory.
        dir: PathBuf,
    },
    /// `meta.json` cannot be parsed or contradicts itself.
    #[error("{path}: corrupt meta.json: {msg}")]
    BadMeta {
        /// The `meta.json` path.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// `meta.json` was written by an incompatible version of the format.
    #[error(
        "{path}: dataset format version {found}, this seqlab reads version {expected}; \
         re-run `seqlab prepare`"
    )]
    VersionMismatch {
        /// The `meta.json` path.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this code reads.
        expected: u32,
    },
    /// A shard's size does not match the token count recorded in `meta.json`.
    #[error(
        "{path}: holds {found} bytes but meta.json records {expected} bytes; the file is \
         truncated or was changed, re-run `seqlab prepare`"
    )]
    ShardSize {
        /// The shard (or document-offset) file.
        path: PathBuf,
        /// Bytes recorded in `meta.json`.
        expected: u64,
        /// Bytes on disk.
        found: u64,
    },
    /// The dataset has no such split (text datasets have no test split).
    #[error("this dataset has no {split} split")]
    NoSuchSplit {
        /// The split asked for.
        split: crate::Split,
    },
    /// A token range lies outside a split.
    #[error("range {start}..{end} is out of bounds for the {split} split of {len} tokens")]
    OutOfRange {
        /// The split.
        split: crate::Split,
        /// First index asked for.
        start: u64,
        /// One past the last index asked for.
        end: u64,
        /// Tokens in the split.
        len: u64,
    },
    /// A split is too short for the requested windows or batches.
    #[error("the {split} split has {len} tokens, too few: {need}")]
    SplitTooShort {
        /// The split.
        split: crate::Split,
        /// Tokens in the split.
        len: u64,
        /// What was needed, in words.
        need: String,
    },
}

impl DataError {
    /// Shorthand for [`DataError::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        error: std::io::Error,
    ) -> Self {
        DataError::Io {
            action,
            path: path.into(),
            error,
        }
    }

    /// `error` while reading `path`: "not found" is [`DataError::MissingFile`], anything else
    /// [`DataError::Io`] with action `"read"`.
    pub(crate) fn missing_or_io(path: &Path, error: std::io::Error) -> Self {
        seqlab_io::IoError::new(seqlab_io::Action::Read, path, error).into()
    }
}

impl From<seqlab_io::IoError> for DataError {
    /// A file that is not there when opening or reading it is [`DataError::MissingFile`]; every
    /// other failure (including every failure of an atomic write) is [`DataError::Io`] with the
    /// same action and path.
    fn from(e: seqlab_io::IoError) -> Self {
        let reading = matches!(
            e.action(),
            seqlab_io::Action::Open | seqlab_io::Action::Read
        );
        if reading && e.is_not_found() {
            return DataError::MissingFile {
                path: e.path().to_path_buf(),
            };
        }
        let (action, path, error) = e.into_parts();
        DataError::Io {
            action: action.as_str(),
            path,
            error,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DataError>;
