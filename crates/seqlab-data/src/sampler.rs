//! Batches for training and evaluation.
//!
//! - [`BatchSampler`]: seeded random windows (text) or random whole clips (audio). Batch `t` is a
//!   pure function of `(seed, t)`: its generator is `StdRng::seed_from_u64(mix(seed, t))` with a
//!   SplitMix64 hash, so resuming at step `t` (see [`SamplerState`]) reproduces the batches an
//!   uninterrupted run would have drawn.
//! - [`SequentialBatches`]: every non-overlapping window (or clip) of a split, in order, for
//!   evaluation.
//!
//! Targets are next-token shifted: for a window starting at `s`, `inputs[j] = x[s + j]` and
//! `targets[j] = x[s + j + 1]`, `j < seq_len`.

use crate::error::{DataError, Result};
use crate::reader::SplitView;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A batch of `batch_size` rows of `seq_len` ids, row-major (`[batch_size × seq_len]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Input ids, `batch_size * seq_len`, row-major.
    pub inputs: Vec<u32>,
    /// Next-token targets, same shape: `targets[r][j] = inputs[r][j + 1]` within a window.
    pub targets: Vec<u32>,
    /// Rows.
    pub batch_size: usize,
    /// Columns.
    pub seq_len: usize,
    /// Token offset of each row's first input within the split.
    pub starts: Vec<usize>,
}

impl Batch {
    /// Row `r` of the inputs.
    pub fn input_row(&self, r: usize) -> &[u32] {
        &self.inputs[r * self.seq_len..(r + 1) * self.seq_len]
    }

    /// Row `r` of the targets.
    pub fn target_row(&self, r: usize) -> &[u32] {
        &self.targets[r * self.seq_len..(r + 1) * self.seq_len]
    }
}

/// What a sampler needs to resume: the seed and the index of the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// The run's seed.
    pub seed: u64,
    /// Index of the next batch to draw.
    pub step: u64,
}

/// SplitMix64's output function (Steele, Lea & Flood 2014): a bijective 64-bit mixer.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator seed of batch `step` of a run seeded `seed`.
fn step_seed(seed: u64, step: u64) -> u64 {
    splitmix64(splitmix64(seed) ^ step)
}

/// How a sampler cuts the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Windows of `seq_len + 1` tokens starting anywhere.
    Windows,
    /// Whole clips of `clip_len` samples, starting at multiples of `clip_len`.
    Clips { clip_len: usize },
}

/// Seeded random batches over one split. Infinite: [`Iterator::next`] never returns `None`.
#[derive(Debug, Clone)]
pub struct BatchSampler {
    view: SplitView,
    batch_size: usize,
    seq_len: usize,
    seed: u64,
    step: u64,
    unit: Unit,
}

impl BatchSampler {
    /// Random windows of `seq_len` inputs (+ 1 for the shifted target), starting uniformly in
    /// `0..=len - seq_len - 1`. The split must hold at least `seq_len + 1` tokens.
    pub fn new(view: SplitView, batch_size: usize, seq_len: usize, seed: u64) -> Result<Self> {
        check_shape(batch_size, seq_len)?;
        let need = seq_len as u64 + 1;
        if (view.len() as u64) < need {
            return Err(DataError::SplitTooShort {
                split: view.split(),
                len: view.len() as u64,
                need: format!("a window of seq_len {seq_len} needs {need}"),
            });
        }
        Ok(BatchSampler {
            view,
            batch_size,
            seq_len,
            seed,
            step: 0,
            unit: Unit::Windows,
        })
    }

    /// Random whole clips of an audio split: each row is one clip `c`, `inputs = c[..L-1]`,
    /// `targets = c[1..]`, so `seq_len = clip_len - 1`. The split must hold at least one clip.
    pub fn clips(view: SplitView, batch_size: usize, seed: u64) -> Result<Self> {
        let clip_len = clip_len_of(&view)?;
        Self::clip_prefixes(view, batch_size, clip_len - 1, seed)
    }

    /// Random clips of an audio split cut to their first `seq_len + 1` samples: each row starts
    /// at a clip's first sample, so a model sees every position at its place in the clip.
    /// `seq_len` must be below the clip length.
    pub fn clip_prefixes(
        view: SplitView,
        batch_size: usize,
        seq_len: usize,
        seed: u64,
    ) -> Result<Self> {
        let clip_len = clip_len_of(&view)?;
        check_shape(batch_size, seq_len)?;
        check_prefix(seq_len, clip_len)?;
        Ok(BatchSampler {
            view,
            batch_size,
            seq_len,
            seed,
            step: 0,
            unit: Unit::Clips { clip_len },
        })
    }

    /// A window sampler that continues from `state` (as saved by [`BatchSampler::state`]).
    pub fn from_state(
        view: SplitView,
        batch_size: usize,
        seq_len: usize,
        state: SamplerState,
    ) -> Result<Self> {
        let mut sampler = BatchSampler::new(view, batch_size, seq_len, state.seed)?;
        sampler.step = state.step;
        Ok(sampler)
    }

    /// Seed and next step, to save with a checkpoint.
    pub fn state(&self) -> SamplerState {
        SamplerState {
            seed: self.seed,
            step: self.step,
        }
    }

    /// Continue from `state` (e.g. after loading a checkpoint).
    pub fn set_state(&mut self, state: SamplerState) {
        self.seed = state.seed;
        self.step = state.step;
    }

    /// Index of the next batch.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Rows per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Ids per row.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Batch number `step` of this run, without advancing: a pure function of `(seed, step)`.
    pub fn batch_at(&self, step: u64) -> Batch {
        let mut rng = StdRng::seed_from_u64(step_seed(self.seed, step));
        let starts: Vec<usize> = (0..self.batch_size)
            .map(|_| match self.unit {
                Unit::Windows => rng.random_range(0..=self.view.len() - self.seq_len - 1),
                Unit::Clips { clip_len } => {
                    rng.random_range(0..self.view.len() / clip_len) * clip_len
                }
            })
            .collect();
        read_windows(&self.view, starts, self.seq_len)
    }

    /// The next batch; advances the step.
    pub fn next_batch(&mut self) -> Batch {
        let batch = self.batch_at(self.step);
        self.step += 1;
        batch
    }
}

impl Iterator for BatchSampler {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        Some(self.next_batch())
    }
}

/// Every non-overlapping window (text) or every clip (audio) of a split, in order, `batch_size`
/// at a time; the last batch may have fewer rows. Windows start at `0, L, 2L, ...` and stop
/// where the next `L + 1` tokens no longer fit, so each token but the first is a target once.
#[derive(Debug, Clone)]
pub struct SequentialBatches {
    view: SplitView,
    batch_size: usize,
    seq_len: usize,
    stride: usize,
    next: usize,
    count: usize,
}

impl SequentialBatches {
    /// Non-overlapping windows of `seq_len` (+ 1 target) tokens. The split must hold at least
    /// `seq_len + 1` tokens.
    pub fn new(view: SplitView, batch_size: usize, seq_len: usize) -> Result<Self> {
        check_shape(batch_size, seq_len)?;
        if view.len() < seq_len + 1 {
            return Err(DataError::SplitTooShort {
                split: view.split(),
                len: view.len() as u64,
                need: format!("a window of seq_len {seq_len} needs {}", seq_len + 1),
            });
        }
        let count = (view.len() - 1) / seq_len;
        Ok(SequentialBatches {
            view,
            batch_size,
            seq_len,
            stride: seq_len,
            next: 0,
            count,
        })
    }

    /// Every clip of an audio split in order (`seq_len = clip_len - 1`).
    pub fn clips(view: SplitView, batch_size: usize) -> Result<Self> {
        let clip_len = clip_len_of(&view)?;
        Self::clip_prefixes(view, batch_size, clip_len - 1)
    }

    /// Every clip of an audio split in order, cut to its first `seq_len + 1` samples
    /// (see [`BatchSampler::clip_prefixes`]).
    pub fn clip_prefixes(view: SplitView, batch_size: usize, seq_len: usize) -> Result<Self> {
        let clip_len = clip_len_of(&view)?;
        check_shape(batch_size, seq_len)?;
        check_prefix(seq_len, clip_len)?;
        let count = view.len() / clip_len;
        Ok(SequentialBatches {
            view,
            batch_size,
            seq_len,
            stride: clip_len,
            next: 0,
            count,
        })
    }

    /// Total windows (or clips) over all batches.
    pub fn num_windows(&self) -> usize {
        self.count
    }
}

impl Iterator for SequentialBatches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.count {
            return None;
        }
        let rows = self.batch_size.min(self.count - self.next);
        let starts = (self.next..self.next + rows)
            .map(|w| w * self.stride)
            .collect();
        self.next += rows;
        Some(read_windows(&self.view, starts, self.seq_len))
    }
}

/// Reject zero-sized batches.
fn check_shape(batch_size: usize, seq_len: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(DataError::InvalidOption(
            "batch size must be at least 1".into(),
        ));
    }
    if seq_len == 0 {
        return Err(DataError::InvalidOption(
            "sequence length must be at least 1".into(),
        ));
    }
    Ok(())
}

/// A clip prefix of `seq_len` inputs needs `seq_len + 1` samples of a `clip_len` clip.
fn check_prefix(seq_len: usize, clip_len: usize) -> Result<()> {
    if seq_len >= clip_len {
        return Err(DataError::InvalidOption(format!(
            "sequence length {seq_len} does not fit a clip of {clip_len} samples (at most {})",
            clip_len - 1
        )));
    }
    Ok(())
}

/// The clip length of an audio split with at least one clip of at least 2 samples.
fn clip_len_of(view: &SplitView) -> Result<usize> {
    let clip_len = view
        .clip_len()
        .ok_or_else(|| DataError::InvalidOption("clip batches need an audio dataset".into()))?;
    if clip_len < 2 {
        return Err(DataError::InvalidOption(format!(
            "clips of {clip_len} samples are too short for next-sample targets"
        )));
    }
    if view.len() < clip_len {
        return Err(DataError::SplitTooShort {
            split: view.split(),
            len: view.len() as u64,
            need: format!("at least one clip of {clip_len} samples"),
        });
    }
    Ok(clip_len)
}

/// Read windows of `seq_len + 1` tokens at `starts` into a batch.
fn read_windows(view: &SplitView, starts: Vec<usize>, seq_len: usize) -> Batch {
    let rows = starts.len();
    let mut inputs = Vec::with_capacity(rows * seq_len);
    let mut targets = Vec::with_capacity(rows * seq_len);
    let mut window = vec![0u32; seq_len + 1];
    for &s in &starts {
        view.read_into(s, &mut window)
            .expect("window inside the split (checked when the sampler was built)");
        inputs.extend_from_slice(&window[..seq_len]);
        targets.extend_from_slice(&window[1..]);
    }
    Batch {
        inputs,
        targets,
        batch_size: rows,
        seq_len,
        starts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_seeds_differ() {
        let a: Vec<u64> = (0..1000).map(|t| step_seed(7, t)).collect();
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), a.len());
        assert_ne!(step_seed(7, 0), step_seed(8, 0));
    }
}
