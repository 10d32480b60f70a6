//! `prepare_text`: text files → token shards + `meta.json`.
//!
//! Each input file is one document. Its tokens (plus the tokenizer's end-of-sequence id when
//! [`TextOptions::eos_between_docs`] is set and the vocabulary has one) are split
//! deterministically: the **last** `ceil(n · val_fraction)` tokens of a file of `n` tokens go to
//! the val split and the rest to train, with at least one token kept for train. So a file of two
//! or more tokens gives at least one val token whenever `val_fraction > 0`. Nothing is random.
//!
//! Train and val token streams are the files' parts concatenated in input order, written as
//! little-endian `u16` (vocabularies of at most 65,536 ids) or `u32` shards of at most
//! [`TextOptions::shard_tokens`] tokens. `<split>_docs.u64` records where each file's part starts,
//! so packed-sequence training can find document boundaries.

use crate::error::{DataError, Result};
use crate::meta::{
    created_by, DataKind, Dtype, Meta, Split, Splits, TextMeta, TextSource, TokenizerMeta,
    FORMAT_VERSION,
};
use crate::shards::{clear_previous, ShardWriter};
use seqlab_tokenizer::Tokenizer;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Name of the tokenizer copy saved in a text dataset directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The split rule, as recorded in `meta.json`.
const SPLIT_RULE: &str =
    "per file: the last ceil(n * val_fraction) of its n tokens (at most n - 1) go to val, \
     the rest to train; files in input order";

/// One input document of [`prepare_text_inputs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextInput {
    /// A UTF-8 text file.
    File(PathBuf),
    /// Text compiled into the program, such as [`TextInput::sample`]; `name` is recorded as its
    /// path in `meta.json`.
    Embedded {
        /// Name recorded as the source path.
        name: &'static str,
        /// The text.
        text: &'static str,
    },
}

impl TextInput {
    /// The bundled sample ([`crate::SAMPLE_TEXT`], Shakespeare's *Hamlet*).
    pub fn sample() -> TextInput {
        TextInput::Embedded {
            name: crate::SAMPLE_NAME,
            text: crate::SAMPLE_TEXT,
        }
    }

    /// The path or name, for messages and `meta.json`.
    pub fn name(&self) -> String {
        match self {
            TextInput::File(p) => p.display().to_string(),
            TextInput::Embedded { name, .. } => (*name).to_string(),
        }
    }

    /// Path used in error messages.
    fn path(&self) -> PathBuf {
        match self {
            TextInput::File(p) => p.clone(),
            TextInput::Embedded { name, .. } => PathBuf::from(name),
        }
    }
}

/// Options of [`prepare_text`].
#[derive(Debug, Clone)]
pub struct TextOptions {
    /// Fraction of each file's tokens (its end) that goes to the val split, in `[0, 1)`.
    /// Default 0.05.
    pub val_fraction: f64,
    /// Maximum tokens per shard file. Default 8,388,608 (16 MiB of `u16`).
    pub shard_tokens: usize,
    /// Append the tokenizer's end-of-sequence id (if it has one) after each file. Default true.
    pub eos_between_docs: bool,
    /// Draw a progress bar on stderr (only when stderr is a terminal). Default false.
    pub progress: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            val_fraction: 0.05,
            shard_tokens: 8 << 20,
            eos_between_docs: true,
            progress: false,
        }
    }
}

/// Expand `inputs` into the list of text files to prepare: files are kept as given (in order); a
/// directory contributes every `*.txt` file below it (recursively), sorted by path. A missing
/// path, or a directory without `*.txt` files, is an error naming it.
pub fn collect_text_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| DataError::missing_or_io(input, e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(input, &mut found, &|p| has_extension(p, "txt"))?;
            if found.is_empty() {
                return Err(DataError::NoInputFiles {
                    path: input.clone(),
                    what: "*.txt",
                });
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// `path` has extension `ext` (ASCII case-insensitive).
pub(crate) fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Push every file below `dir` accepted by `keep` (recursively, following no order).
pub(crate) fn walk(dir: &Path, out: &mut Vec<PathBuf>, keep: &dyn Fn(&Path) -> bool) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io("list", dir, e))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|e| DataError::io("inspect", &path, e))?;
        // Follow symlinks to decide file vs directory.
        let is_dir = file_type.is_dir() || (file_type.is_symlink() && path.is_dir());
        if is_dir {
            walk(&path, out, keep)?;
        } else if keep(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// How many of a file's `n` tokens go to val: `ceil(n * f)`, at most `n - 1`.
fn val_count(n: usize, f: f64) -> usize {
    if n < 2 || f <= 0.0 {
        return 0;
    }
    // The small slack keeps products like 20 * 0.05 = 1.0000000000000002 from rounding up.
    let v = ((n as f64) * f - 1e-9).ceil().max(0.0) as usize;
    v.min(n - 1)
}

/// Tokenize `files` with `tokenizer` and write a text dataset into `out_dir` (created if needed).
///
/// Writes `train_000.bin, ...`, `val_000.bin, ...` (see the module docs for the split rule and
/// layout), `train_docs.u64`/`val_docs.u64`, the tokenizer as `tokenizer.json` (via
/// [`Tokenizer::save`]), and finally `meta.json`. `tokenizer_path` is only recorded. If `out_dir`
/// already holds a dataset, its `meta.json` is removed first, so an interrupted run never leaves a
/// directory that looks valid.
///
/// Errors (each names the file): a missing input, a file that is not UTF-8 (with the byte
/// offset), a tokenizer failure, 0 tokens in total, a corpus too small to give both splits a
/// token, an output directory that cannot be created or written.
pub fn prepare_text(
    tokenizer: &dyn Tokenizer,
    tokenizer_path: &Path,
    files: &[PathBuf],
    out_dir: &Path,
    options: &TextOptions,
) -> Result<Meta> {
    let inputs: Vec<TextInput> = files.iter().cloned().map(TextInput::File).collect();
    prepare_text_inputs(tokenizer, tokenizer_path, &inputs, out_dir, options)
}

/// [`prepare_text`] over files and embedded texts (e.g. [`TextInput::sample`]).
pub fn prepare_text_inputs(
    tokenizer: &dyn Tokenizer,
    tokenizer_path: &Path,
    files: &[TextInput],
    out_dir: &Path,
    options: &TextOptions,
) -> Result<Meta> {
    if !(options.val_fraction.is_finite() && (0.0..1.0).contains(&options.val_fraction)) {
        return Err(DataError::InvalidOption(format!(
            "val fraction must be in [0, 1), got {}",
            options.val_fraction
        )));
    }
    if options.shard_tokens == 0 {
        return Err(DataError::InvalidOption(
            "shard size must be at least 1 token".into(),
        ));
    }
    if files.is_empty() {
        return Err(DataError::InvalidOption("no input files given".into()));
    }
    let vocab_size = tokenizer.vocab_size();
    if vocab_size == 0 || vocab_size as u64 > 1 << 32 {
        return Err(DataError::InvalidOption(format!(
            "tokenizer vocabulary size {vocab_size} is not usable"
        )));
    }
    // Check every input before writing anything.
    let mut sizes = Vec::with_capacity(files.len());
    for input in files {
        let file = match input {
            TextInput::File(file) => file,
            TextInput::Embedded { text, .. } => {
                sizes.push(text.len() as u64);
                continue;
            }
        };
        let meta = std::fs::metadata(file).map_err(|e| DataError::missing_or_io(file, e))?;
        if meta.is_dir() {
            return Err(DataError::InvalidOption(format!(
                "{} is a directory; pass files (the CLI expands directories to their *.txt)",
                file.display()
            )));
        }
        sizes.push(meta.len());
    }
    std::fs::create_dir_all(out_dir)
        .map_err(|e| DataError::io("create output directory", out_dir, e))?;
    clear_previous(out_dir)?;

    let dtype = Dtype::for_vocab(vocab_size);
    let shard_tokens = options.shard_tokens as u64;
    let mut train = ShardWriter::new(out_dir, Split::Train, dtype, shard_tokens);
    let mut val = ShardWriter::new(out_dir, Split::Val, dtype, shard_tokens);
    let result = write_text(
        tokenizer,
        tokenizer_path,
        files,
        &sizes,
        out_dir,
        options,
        dtype,
        &mut train,
        &mut val,
    );
    if result.is_err() {
        train.remove_written();
        val.remove_written();
        let _ = std::fs::remove_file(out_dir.join(TOKENIZER_FILE));
    }
    result
}

/// The body of [`prepare_text`] after the checks; on error the caller removes what was written.
#[allow(clippy::too_many_arguments)]
fn write_text(
    tokenizer: &dyn Tokenizer,
    tokenizer_path: &Path,
    files: &[TextInput],
    sizes: &[u64],
    out_dir: &Path,
    options: &TextOptions,
    dtype: Dtype,
    train: &mut ShardWriter,
    val: &mut ShardWriter,
) -> Result<Meta> {
    // Fail on an unwritable directory before the (possibly long) tokenization.
    seqlab_io::AtomicFile::create(out_dir.join(crate::meta::META_FILE))?;

    let vocab_size = tokenizer.vocab_size();
    let special_ids = tokenizer.special_ids();
    let eos = if options.eos_between_docs {
        special_ids.eos
    } else {
        None
    };
    let total_bytes: u64 = sizes.iter().sum();
    let bar = crate::progress::progress_bar(
        options.progress,
        total_bytes,
        "{spinner} tokenizing [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
    );

    let mut sources = Vec::with_capacity(files.len());
    for (input, &size) in files.iter().zip(sizes) {
        let file = &input.path();
        bar.set_message(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let bytes: Cow<[u8]> = match input {
            TextInput::File(path) => Cow::Owned(seqlab_io::read_bytes(path)?),
            TextInput::Embedded { text, .. } => Cow::Borrowed(text.as_bytes()),
        };
        let (body, bom) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => (rest, 3),
            None => (&bytes[..], 0),
        };
        let text = std::str::from_utf8(body).map_err(|e| DataError::NotUtf8 {
            path: file.clone(),
            offset: e.valid_up_to() + bom,
        })?;
        let mut ids = tokenizer
            .encode(text)
            .map_err(|error| DataError::Tokenizer {
                path: file.clone(),
                error,
            })?;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(DataError::IdOutOfVocab {
                path: file.clone(),
                id,
                vocab_size,
            });
        }
        if !ids.is_empty() {
            if let Some(eos) = eos {
                ids.push(eos);
            }
        }
        let n_val = val_count(ids.len(), options.val_fraction);
        let (train_ids, val_ids) = ids.split_at(ids.len() - n_val);
        if !train_ids.is_empty() {
            train.start_doc();
            train.push(train_ids)?;
        }
        if !val_ids.is_empty() {
            val.start_doc();
            val.push(val_ids)?;
        }
        sources.push(TextSource {
            path: input.name(),
            bytes: bytes.len() as u64,
            tokens: ids.len() as u64,
            train_tokens: train_ids.len() as u64,
            val_tokens: val_ids.len() as u64,
        });
        bar.inc(size);
    }
    bar.finish_and_clear();

    let total = train.len() + val.len();
    if total == 0 {
        let what = match files {
            [one] => one.name(),
            [first, ..] => format!("{} files ({}, ...)", files.len(), first.name()),
            [] => "no input files".into(),
        };
        return Err(DataError::EmptyCorpus { what });
    }
    if options.val_fraction > 0.0 && val.len() == 0 {
        return Err(DataError::CorpusTooSmall {
            tokens: total,
            val_fraction: options.val_fraction,
        });
    }
    let train_meta = train.finish(true)?;
    let val_meta = val.finish(true)?;
    tokenizer
        .save(&out_dir.join(TOKENIZER_FILE))
        .map_err(|error| DataError::Tokenizer {
            path: out_dir.join(TOKENIZER_FILE),
            error,
        })?;

    let meta = Meta {
        format_version: FORMAT_VERSION,
        kind: DataKind::Text,
        created_by: created_by(),
        dtype,
        vocab_size,
        tokenizer: TokenizerMeta {
            file: Some(TOKENIZER_FILE.into()),
            kind: tokenizer.kind().into(),
            vocab_size,
            special_ids,
            source: Some(tokenizer_path.display().to_string()),
        },
        splits: Splits {
            train: train_meta,
            val: val_meta,
            test: None,
        },
        text: Some(TextMeta {
            val_fraction: options.val_fraction,
            shard_tokens: options.shard_tokens as u64,
            eos_between_docs: options.eos_between_docs,
            eos_id: eos,
            split_rule: SPLIT_RULE.into(),
            sources,
        }),
        audio: None,
    };
    meta.write(out_dir)?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn val_count_rule() {
        assert_eq!(val_count(0, 0.05), 0);
        assert_eq!(val_count(1, 0.05), 0);
        assert_eq!(val_count(2, 0.05), 1);
        assert_eq!(val_count(20, 0.05), 1);
        assert_eq!(val_count(21, 0.05), 2);
        assert_eq!(val_count(1000, 0.05), 50);
        assert_eq!(val_count(1000, 0.0), 0);
        assert_eq!(val_count(3, 0.99), 2);
    }
}
