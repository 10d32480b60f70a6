//! Shard files: a split's token stream cut into files of at most `shard_tokens` little-endian
//! ids, named `<split>_000.bin`, `<split>_001.bin`, ...; plus `<split>_docs.u64`, the
//! little-endian `u64` offsets where documents start.

use crate::error::Result;
use crate::meta::{Dtype, ShardMeta, Split, SplitMeta};
use seqlab_io::{write_atomic, AtomicFile};
use std::path::{Path, PathBuf};

/// File name of shard `index` of `split`.
pub(crate) fn shard_name(split: Split, index: usize) -> String {
    format!("{}_{index:03}.bin", split.name())
}

/// File name of the document-offset file of `split`.
pub(crate) fn docs_name(split: Split) -> String {
    format!("{}_docs.u64", split.name())
}

/// Append little-endian `dtype` encodings of `ids` to `out`. Ids must fit the dtype (checked by
/// the caller).
pub(crate) fn encode_ids(dtype: Dtype, ids: &[u32], out: &mut Vec<u8>) {
    out.reserve(ids.len() * dtype.width());
    match dtype {
        Dtype::U8 => out.extend(ids.iter().map(|&id| id as u8)),
        Dtype::U16 => {
            for &id in ids {
                out.extend_from_slice(&(id as u16).to_le_bytes());
            }
        }
        Dtype::U32 => {
            for &id in ids {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
    }
}

/// Decode little-endian `dtype` values from `bytes` into `out` (`bytes.len() == out.len() * width`).
pub(crate) fn decode_ids(dtype: Dtype, bytes: &[u8], out: &mut [u32]) {
    debug_assert_eq!(bytes.len(), out.len() * dtype.width());
    match dtype {
        Dtype::U8 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = u32::from(b);
            }
        }
        Dtype::U16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = u32::from(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        Dtype::U32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
}

/// Streams one split's tokens into shard files. Each shard is written under a temporary name and
/// renamed when full (or at [`ShardWriter::finish`]).
#[derive(Debug)]
pub(crate) struct ShardWriter {
    dir: PathBuf,
    split: Split,
    dtype: Dtype,
    shard_tokens: u64,
    current: Option<AtomicFile>,
    current_tokens: u64,
    shards: Vec<ShardMeta>,
    total: u64,
    doc_starts: Vec<u64>,
    buf: Vec<u8>,
    /// Every final path this writer has renamed into place (for cleanup after an error).
    written: Vec<PathBuf>,
}

impl ShardWriter {
    /// A writer for `split` in `dir`; `shard_tokens >= 1`.
    pub(crate) fn new(dir: &Path, split: Split, dtype: Dtype, shard_tokens: u64) -> Self {
        assert!(shard_tokens >= 1, "shard_tokens must be positive");
        ShardWriter {
            dir: dir.to_path_buf(),
            split,
            dtype,
            shard_tokens,
            current: None,
            current_tokens: 0,
            shards: Vec::new(),
            total: 0,
            doc_starts: Vec::new(),
            buf: Vec::new(),
            written: Vec::new(),
        }
    }

    /// Tokens written so far.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// Mark the current position as the start of a document.
    pub(crate) fn start_doc(&mut self) {
        self.doc_starts.push(self.total);
    }

    /// Append `ids` (each must fit the dtype), opening new shards as needed.
    pub(crate) fn push(&mut self, mut ids: &[u32]) -> Result<()> {
        while !ids.is_empty() {
            if self.current.is_none() {
                let path = self.dir.join(shard_name(self.split, self.shards.len()));
                self.current = Some(AtomicFile::create(&path)?);
                self.current_tokens = 0;
            }
            let room = (self.shard_tokens - self.current_tokens) as usize;
            let (now, rest) = ids.split_at(room.min(ids.len()));
            self.buf.clear();
            encode_ids(self.dtype, now, &mut self.buf);
            self.current
                .as_mut()
                .expect("shard open")
                .write_all(&self.buf)?;
            self.current_tokens += now.len() as u64;
            self.total += now.len() as u64;
            ids = rest;
            if self.current_tokens == self.shard_tokens {
                self.close_shard()?;
            }
        }
        Ok(())
    }

    /// Rename the current shard into place and record it.
    fn close_shard(&mut self) -> Result<()> {
        if let Some(file) = self.current.take() {
            file.commit()?;
            let name = shard_name(self.split, self.shards.len());
            self.written.push(self.dir.join(&name));
            self.shards.push(ShardMeta {
                file: name,
                tokens: self.current_tokens,
            });
            self.current_tokens = 0;
        }
        Ok(())
    }

    /// Close the last shard, write the document offsets (when `with_docs`), and describe the split.
    pub(crate) fn finish(&mut self, with_docs: bool) -> Result<SplitMeta> {
        self.close_shard()?;
        let docs_file = if with_docs {
            let name = docs_name(self.split);
            let mut bytes = Vec::with_capacity(self.doc_starts.len() * 8);
            for &start in &self.doc_starts {
                bytes.extend_from_slice(&start.to_le_bytes());
            }
            let path = self.dir.join(&name);
            write_atomic(&path, &bytes)?;
            self.written.push(path);
            Some(name)
        } else {
            None
        };
        Ok(SplitMeta {
            tokens: self.total,
            shards: self.shards.clone(),
            docs_file,
            docs: self.doc_starts.len() as u64,
        })
    }

    /// Remove every file this writer put in place (used when preparation fails half-way).
    pub(crate) fn remove_written(&mut self) {
        self.current = None; // drops (and removes) an open temporary file
        for path in self.written.drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Before preparing into `dir`: if it already holds a dataset, remove its `meta.json` first (so
/// the directory is invalid until the new one is complete), then its shard and offset files.
/// Directories without a `meta.json` are left alone.
pub(crate) fn clear_previous(dir: &Path) -> Result<()> {
    let meta = dir.join(crate::meta::META_FILE);
    if !meta.is_file() {
        return Ok(());
    }
    std::fs::remove_file(&meta).map_err(|e| crate::DataError::io("remove", &meta, e))?;
    let entries = std::fs::read_dir(dir).map_err(|e| crate::DataError::io("list", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_dataset_file(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// `train_000.bin`, `val_docs.u64`, ...: names this crate writes.
fn is_dataset_file(name: &str) -> bool {
    Split::ALL.iter().any(|s| {
        let Some(rest) = name
            .strip_prefix(s.name())
            .and_then(|r| r.strip_prefix('_'))
        else {
            return false;
        };
        rest == "docs.u64"
            || rest
                .strip_suffix(".bin")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_each_dtype() {
        let ids = [0u32, 1, 255, 7, 200];
        for dtype in [Dtype::U8, Dtype::U16, Dtype::U32] {
            let mut bytes = Vec::new();
            encode_ids(dtype, &ids, &mut bytes);
            assert_eq!(bytes.len(), ids.len() * dtype.width());
            let mut back = vec![0u32; ids.len()];
            decode_ids(dtype, &bytes, &mut back);
            assert_eq!(back, ids);
        }
        let big = [65_535u32, 70_000, u32::MAX];
        let mut bytes = Vec::new();
        encode_ids(Dtype::U32, &big, &mut bytes);
        let mut back = vec![0u32; 3];
        decode_ids(Dtype::U32, &bytes, &mut back);
        assert_eq!(back, big);
        // Little-endian on disk, whatever the host.
        let mut bytes = Vec::new();
        encode_ids(Dtype::U16, &[0x0102], &mut bytes);
        assert_eq!(bytes, [0x02, 0x01]);
    }

    #[test]
    fn dataset_file_names() {
        assert!(is_dataset_file("train_000.bin"));
        assert!(is_dataset_file("val_1234.bin"));
        assert!(is_dataset_file("test_docs.u64"));
        assert!(!is_dataset_file("train_.bin"));
        assert!(!is_dataset_file("tokenizer.json"));
        assert!(!is_dataset_file("train_x.bin"));
        assert_eq!(shard_name(Split::Val, 3), "val_003.bin");
    }

    #[test]
    fn writer_cuts_shards_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::new(dir.path(), Split::Train, Dtype::U16, 4);
        w.start_doc();
        w.push(&[1, 2, 3]).unwrap();
        w.start_doc();
        w.push(&[4, 5, 6, 7, 8, 9]).unwrap();
        let meta = w.finish(true).unwrap();
        assert_eq!(meta.tokens, 9);
        let sizes: Vec<u64> = meta.shards.iter().map(|s| s.tokens).collect();
        assert_eq!(sizes, [4, 4, 1]);
        assert_eq!(meta.docs, 2);
        let docs = std::fs::read(dir.path().join("train_docs.u64")).unwrap();
        assert_eq!(docs.len(), 16);
        assert_eq!(u64::from_le_bytes(docs[8..16].try_into().unwrap()), 3);
        let shard1 = std::fs::read(dir.path().join("train_001.bin")).unwrap();
        assert_eq!(shard1, [5, 0, 6, 0, 7, 0, 8, 0]);
        // No temporary files are left behind.
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
