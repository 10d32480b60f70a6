//! Reading a prepared dataset: [`TokenDataset::open`] checks `meta.json` against the files on
//! disk and memory-maps every shard; [`SplitView`] reads token ranges across shard boundaries.

use crate::error::{DataError, Result};
use crate::meta::{DataKind, Dtype, Meta, Split, SplitMeta};
use crate::shards::decode_ids;
use memmap2::Mmap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A prepared dataset directory, opened and checked.
#[derive(Debug)]
pub struct TokenDataset {
    dir: PathBuf,
    meta: Meta,
    splits: [Option<SplitView>; 3],
}

impl TokenDataset {
    /// Open `dir`: read and check `meta.json` (missing, corrupt, or written by another format
    /// version: each a clear error), check every shard's size against the token count recorded
    /// for it (a truncated shard is an error naming the file), and memory-map the shards.
    pub fn open(dir: &Path) -> Result<TokenDataset> {
        let meta = Meta::read(dir)?;
        let clip_len = meta.audio.as_ref().map(|a| a.clip_samples as usize);
        let mut splits: [Option<SplitView>; 3] = [None, None, None];
        for split in Split::ALL {
            if let Some(split_meta) = meta.split(split) {
                let data = SplitData::open(dir, split, meta.dtype, split_meta)?;
                splits[split.index()] = Some(SplitView {
                    data: Arc::new(data),
                    clip_len,
                });
            }
        }
        Ok(TokenDataset {
            dir: dir.to_path_buf(),
            meta,
            splits,
        })
    }

    /// The dataset's metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The directory it was opened from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Text or audio.
    pub fn kind(&self) -> DataKind {
        self.meta.kind
    }

    /// Every id is below this.
    pub fn vocab_size(&self) -> usize {
        self.meta.vocab_size
    }

    /// Path of the tokenizer copy saved with the dataset (text datasets), for
    /// `seqlab_tokenizer::load`.
    pub fn tokenizer_path(&self) -> Option<PathBuf> {
        self.meta.tokenizer.file.as_ref().map(|f| self.dir.join(f))
    }

    /// A cheap, clonable view of one split (shares the memory maps). Text datasets have no test
    /// split: asking for it is [`DataError::NoSuchSplit`].
    pub fn split(&self, split: Split) -> Result<SplitView> {
        self.splits[split.index()]
            .clone()
            .ok_or(DataError::NoSuchSplit { split })
    }
}

/// One memory-mapped shard file.
#[derive(Debug)]
struct Shard {
    map: Mmap,
}

/// One split's shards and document offsets.
#[derive(Debug)]
struct SplitData {
    split: Split,
    dtype: Dtype,
    len: usize,
    shards: Vec<Shard>,
    /// `starts[i]`: token offset of shard `i` within the split; `starts[n] == len`.
    starts: Vec<usize>,
    doc_starts: Vec<u64>,
}

/// Size of `path` in bytes; a missing file is [`DataError::MissingFile`].
fn file_len(file: &File, path: &Path) -> Result<u64> {
    Ok(file
        .metadata()
        .map_err(|e| DataError::io("read", path, e))?
        .len())
}

impl SplitData {
    fn open(dir: &Path, split: Split, dtype: Dtype, meta: &SplitMeta) -> Result<SplitData> {
        let width = dtype.width() as u64;
        let mut shards = Vec::with_capacity(meta.shards.len());
        let mut starts = Vec::with_capacity(meta.shards.len() + 1);
        let mut offset = 0usize;
        for shard in &meta.shards {
            let path = dir.join(&shard.file);
            let file = seqlab_io::open(&path)?;
            let found = file_len(&file, &path)?;
            let expected = shard.tokens * width;
            if found != expected {
                return Err(DataError::ShardSize {
                    path,
                    expected,
                    found,
                });
            }
            // SAFETY: the map is read-only and private to this process; seqlab never writes a
            // shard in place (new shards are renamed over old names), so the bytes stay valid.
            // A file truncated by another program after this check would fault on access, the
            // documented limit of memory-mapped I/O.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io("map", &path, e))?;
            starts.push(offset);
            offset += shard.tokens as usize;
            shards.push(Shard { map });
        }
        starts.push(offset);
        let doc_starts = match &meta.docs_file {
            Some(name) => read_doc_starts(&dir.join(name), meta.docs, offset as u64)?,
            None => Vec::new(),
        };
        Ok(SplitData {
            split,
            dtype,
            len: offset,
            shards,
            starts,
            doc_starts,
        })
    }
}

/// Read `count` little-endian `u64` offsets, each below `len` and increasing.
fn read_doc_starts(path: &Path, count: u64, len: u64) -> Result<Vec<u64>> {
    let bytes = seqlab_io::read_bytes(path)?;
    if bytes.len() as u64 != count * 8 {
        return Err(DataError::ShardSize {
            path: path.to_path_buf(),
            expected: count * 8,
            found: bytes.len() as u64,
        });
    }
    let starts: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let ordered = starts.windows(2).all(|w| w[0] < w[1]);
    if !ordered || starts.last().is_some_and(|&s| s >= len) {
        return Err(DataError::BadMeta {
            path: path.to_path_buf(),
            msg: "document offsets are not increasing offsets inside the split".into(),
        });
    }
    Ok(starts)
}

/// A view of one split: a flat sequence of `len()` token ids spread over memory-mapped shards.
/// Clones share the maps.
#[derive(Debug, Clone)]
pub struct SplitView {
    data: Arc<SplitData>,
    clip_len: Option<usize>,
}

impl SplitView {
    /// Which split this is.
    pub fn split(&self) -> Split {
        self.data.split
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.data.len
    }

    /// Whether the split holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.data.len == 0
    }

    /// On-disk element type.
    pub fn dtype(&self) -> Dtype {
        self.data.dtype
    }

    /// Token offsets where documents start (text datasets; empty for audio).
    pub fn doc_starts(&self) -> &[u64] {
        &self.data.doc_starts
    }

    /// Samples per clip (audio datasets).
    pub fn clip_len(&self) -> Option<usize> {
        self.clip_len
    }

    /// Number of whole clips (audio datasets).
    pub fn num_clips(&self) -> Option<usize> {
        self.clip_len.map(|c| self.data.len / c)
    }

    /// The ids in `range`, copied out (the range may cross shard boundaries).
    pub fn get(&self, range: Range<usize>) -> Result<Vec<u32>> {
        let mut out = vec![0u32; range.end.saturating_sub(range.start)];
        self.read_into(range.start, &mut out)?;
        Ok(out)
    }

    /// Clip `index` of an audio split, as mu-law codes.
    pub fn clip(&self, index: usize) -> Result<Vec<u32>> {
        let clip_len = self
            .clip_len
            .ok_or_else(|| DataError::InvalidOption("clips exist only in audio datasets".into()))?;
        let start = index.saturating_mul(clip_len);
        self.get(start..start.saturating_add(clip_len))
    }

    /// Fill `out` with the ids starting at `start`.
    pub fn read_into(&self, start: usize, out: &mut [u32]) -> Result<()> {
        let data = &*self.data;
        let end = start.checked_add(out.len()).filter(|&e| e <= data.len);
        let Some(end) = end else {
            return Err(DataError::OutOfRange {
                split: data.split,
                start: start as u64,
                end: start as u64 + out.len() as u64,
                len: data.len as u64,
            });
        };
        if start == end {
            return Ok(());
        }
        let width = data.dtype.width();
        // Last shard whose start is <= `start`.
        let mut shard = data.starts.partition_point(|&s| s <= start) - 1;
        let mut pos = start;
        let mut written = 0;
        while pos < end {
            let shard_start = data.starts[shard];
            let shard_end = data.starts[shard + 1];
            let take_end = end.min(shard_end);
            let n = take_end - pos;
            let local = pos - shard_start;
            let bytes = &data.shards[shard].map[local * width..(local + n) * width];
            decode_ids(data.dtype, bytes, &mut out[written..written + n]);
            written += n;
            pos = take_end;
            shard += 1;
        }
        Ok(())
    }
}
