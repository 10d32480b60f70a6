//! seqlab's data layer: corpora and WAV folders → memory-mapped token shards → seeded batches.
//!
//! - [`prepare_text`]: text files + a [`seqlab_tokenizer::Tokenizer`] → `train_NNN.bin`,
//!   `val_NNN.bin` (little-endian `u16` ids when the vocabulary has at most 65,536 entries, else
//!   `u32`), document offsets, a copy of the tokenizer, and [`Meta`] as `meta.json`.
//! - [`prepare_audio`]: a folder of 16 kHz mono WAV files → 8-bit mu-law codes in fixed-length
//!   clips (`u8` shards), split train/val/test.
//! - [`TokenDataset::open`]: checks `meta.json` against the files and memory-maps the shards;
//!   [`SplitView`] reads any token range.
//! - [`BatchSampler`]: seeded random windows (or whole clips), next-token targets; batch `t` depends
//!   only on `(seed, t)`, so a resumed run sees the same batches. [`SequentialBatches`]: every
//!   window in order, for evaluation.
//! - [`SyntheticSpec`]: the selective-copying and induction-heads tasks of the Mamba paper,
//!   seeded example streams with the scored positions and their answers.
//!
//! Directory layout (text): `meta.json`, `tokenizer.json`, `train_000.bin …`, `val_000.bin …`,
//! `train_docs.u64`, `val_docs.u64`. Every file is written under a temporary name and renamed into
//! place, and `meta.json` is written last: a directory without it is not a dataset.
//!
//! ```no_run
//! use seqlab_data::{BatchSampler, SequentialBatches, Split, TokenDataset};
//!
//! let ds = TokenDataset::open("data/hamlet".as_ref())?;
//! let mut train = BatchSampler::new(ds.split(Split::Train)?, 8, 256, 42)?;
//! let batch = train.next_batch(); // inputs, targets: 8 × 256 ids, targets shifted by one
//! let state = train.state(); // save with a checkpoint; BatchSampler::from_state resumes
//! for batch in SequentialBatches::new(ds.split(Split::Val)?, 8, 256)? {
//!     // evaluate on every non-overlapping window
//! }
//! # Ok::<(), seqlab_data::DataError>(())
//! ```

mod audio;
mod error;
mod meta;
mod progress;
mod reader;
mod sample;
mod sampler;
mod shards;
mod synthetic;
mod text;

pub use audio::{prepare_audio, AudioOptions, DEFAULT_MAX_GROWTH, SAMPLE_RATE};
pub use error::{DataError, Result};
pub use meta::{
    AudioMeta, AudioSource, DataKind, Dtype, Meta, ShardMeta, Split, SplitMeta, Splits, TextMeta,
    TextSource, TokenizerMeta, FORMAT_VERSION, META_FILE,
};
pub use progress::step_bar;
pub use reader::{SplitView, TokenDataset};
pub use sample::{SAMPLE_NAME, SAMPLE_TEXT};
pub use sampler::{Batch, BatchSampler, SamplerState, SequentialBatches};
pub use synthetic::{SyntheticBatch, SyntheticExample, SyntheticSpec, SyntheticTask};
pub use text::{
    collect_text_files, prepare_text, prepare_text_inputs, TextInput, TextOptions, TOKENIZER_FILE,
};
