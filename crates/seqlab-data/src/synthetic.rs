//! Synthetic long-range tasks of the Mamba paper (Gu & Dao 2023, §4.1.1), seeded and deterministic.
//!
//! - **Selective copying** (after Arjovsky et al.'s copying task, with random spacing): the first
//!   `seq_len` positions hold `n_tokens` data tokens at random (sorted, distinct) positions and the
//!   blank token everywhere else; then `n_tokens` copy markers follow. At the k-th marker the model
//!   must output the k-th data token, so it has to remember the data tokens in order and skip the
//!   blanks — content-aware selection that a time-invariant (LTI) convolution cannot do.
//!   Vocabulary `V ≥ 4`: data tokens `0..V−2`, blank `V−2`, copy marker `V−1`; total length
//!   `seq_len + n_tokens`; chance accuracy `1/(V−2)`.
//! - **Induction heads** (Olsson et al. 2022): `seq_len` random ordinary tokens, one trigger
//!   (special token `V−1`) at a random position followed by a key; the last position is the
//!   trigger again and the model must predict the key that followed it the first time.
//!   Vocabulary `V ≥ 3`: ordinary tokens `0..V−1`; one answer per sequence; chance `1/(V−1)`.
//!
//! Example `i` of a stream seeded `s` is a pure function of `(s, i)` (its generator is
//! `StdRng::seed_from_u64(splitmix64(splitmix64(s) ^ i))`), so training batches, evaluation sets
//! and tests are reproducible and independent of batch size.

use crate::error::{DataError, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which synthetic task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntheticTask {
    /// Selective copying: output the data tokens, in order, at the copy markers.
    SelectiveCopy,
    /// Induction heads: at the final trigger, predict the token that followed the first trigger.
    Induction,
}

impl SyntheticTask {
    /// The name used on the command line and in JSON (`selective-copy` | `induction`).
    pub fn name(self) -> &'static str {
        match self {
            SyntheticTask::SelectiveCopy => "selective-copy",
            SyntheticTask::Induction => "induction",
        }
    }

    /// Parses [`SyntheticTask::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "selective-copy" => Ok(SyntheticTask::SelectiveCopy),
            "induction" => Ok(SyntheticTask::Induction),
            other => Err(DataError::InvalidOption(format!(
                "unknown synthetic task `{other}` (expected `selective-copy` or `induction`)"
            ))),
        }
    }
}

/// The sizes of a task instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// The task.
    pub task: SyntheticTask,
    /// Selective copy: length of the region holding data and blanks; induction: total length.
    pub seq_len: usize,
    /// Selective copy: data tokens to copy (ignored by induction, which has one answer).
    pub n_tokens: usize,
    /// Vocabulary V, special tokens included.
    pub vocab: usize,
}

/// One example: the input ids and the positions whose outputs are scored, with their answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticExample {
    /// Input ids, [`SyntheticSpec::total_len`] of them.
    pub tokens: Vec<u32>,
    /// Positions (0-based, increasing) whose next-token output must equal `answers`.
    pub answer_pos: Vec<usize>,
    /// The correct outputs at `answer_pos`.
    pub answers: Vec<u32>,
}

/// A batch of examples, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticBatch {
    /// Rows.
    pub batch_size: usize,
    /// Tokens per row.
    pub seq_len: usize,
    /// `batch_size · seq_len` input ids.
    pub inputs: Vec<u32>,
    /// Flat indices `row · seq_len + pos` of the scored positions.
    pub positions: Vec<u32>,
    /// The answers at `positions`.
    pub targets: Vec<u32>,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SyntheticSpec {
    /// Checks the sizes; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::InvalidOption(m));
        match self.task {
            SyntheticTask::SelectiveCopy => {
                if self.vocab < 4 {
                    return bad(format!(
                        "selective copy needs a vocabulary of ≥ 4 (data tokens, blank, marker), \
                         got {}",
                        self.vocab
                    ));
                }
                if self.n_tokens == 0 || self.n_tokens > self.seq_len {
                    return bad(format!(
                        "selective copy needs 1 ≤ n_tokens ({}) ≤ seq_len ({})",
                        self.n_tokens, self.seq_len
                    ));
                }
            }
            SyntheticTask::Induction => {
                if self.vocab < 3 {
                    return bad(format!(
                        "induction needs a vocabulary of ≥ 3 (two ordinary tokens and the \
                         trigger), got {}",
                        self.vocab
                    ));
                }
                if self.seq_len < 3 {
                    return bad(format!(
                        "induction needs seq_len ≥ 3 (trigger, key, final trigger), got {}",
                        self.seq_len
                    ));
                }
            }
        }
        if self.vocab > u32::MAX as usize {
            return bad(format!("vocabulary {} does not fit u32 ids", self.vocab));
        }
        Ok(())
    }

    /// Tokens per example (selective copy: `seq_len + n_tokens`; induction: `seq_len`).
    pub fn total_len(&self) -> usize {
        match self.task {
            SyntheticTask::SelectiveCopy => self.seq_len + self.n_tokens,
            SyntheticTask::Induction => self.seq_len,
        }
    }

    /// Scored positions per example.
    pub fn answers_per_example(&self) -> usize {
        match self.task {
            SyntheticTask::SelectiveCopy => self.n_tokens,
            SyntheticTask::Induction => 1,
        }
    }

    /// Accuracy of a uniform guess among the possible answers.
    pub fn chance_accuracy(&self) -> f64 {
        match self.task {
            SyntheticTask::SelectiveCopy => 1.0 / (self.vocab - 2) as f64,
            SyntheticTask::Induction => 1.0 / (self.vocab - 1) as f64,
        }
    }

    /// Selective copy: the blank token (`V−2`).
    pub fn blank_token(&self) -> u32 {
        (self.vocab - 2) as u32
    }

    /// The copy marker (selective copy) or trigger (induction): `V−1`.
    pub fn marker_token(&self) -> u32 {
        (self.vocab - 1) as u32
    }

    /// Example `index` of the stream seeded `seed` (see the module docs).
    pub fn example(&self, seed: u64, index: u64) -> Result<SyntheticExample> {
        self.validate()?;
        let mut rng = StdRng::seed_from_u64(splitmix64(splitmix64(seed) ^ index));
        Ok(match self.task {
            SyntheticTask::SelectiveCopy => self.selective_copy(&mut rng),
            SyntheticTask::Induction => self.induction(&mut rng),
        })
    }

    fn selective_copy(&self, rng: &mut StdRng) -> SyntheticExample {
        let (l, n) = (self.seq_len, self.n_tokens);
        let data_vocab = (self.vocab - 2) as u32;
        // n distinct positions in 0..l: partial Fisher–Yates, then sorted.
        let mut slots: Vec<usize> = (0..l).collect();
        for i in 0..n {
            let j = rng.random_range(i..l);
            slots.swap(i, j);
        }
        let mut pos = slots[..n].to_vec();
        pos.sort_unstable();
        let mut tokens = vec![self.blank_token(); l + n];
        let mut answers = Vec::with_capacity(n);
        for &p in &pos {
            let t = rng.random_range(0..data_vocab);
            tokens[p] = t;
            answers.push(t);
        }
        for t in &mut tokens[l..] {
            *t = self.marker_token();
        }
        SyntheticExample {
            tokens,
            answer_pos: (l..l + n).collect(),
            answers,
        }
    }

    fn induction(&self, rng: &mut StdRng) -> SyntheticExample {
        let l = self.seq_len;
        let ordinary = (self.vocab - 1) as u32;
        let mut tokens: Vec<u32> = (0..l).map(|_| rng.random_range(0..ordinary)).collect();
        let p = rng.random_range(0..l - 2);
        tokens[p] = self.marker_token();
        let key = tokens[p + 1];
        tokens[l - 1] = self.marker_token();
        SyntheticExample {
            tokens,
            answer_pos: vec![l - 1],
            answers: vec![key],
        }
    }

    /// Examples `first .. first + batch_size` of the stream seeded `seed`, as one batch.
    pub fn batch(&self, seed: u64, first: u64, batch_size: usize) -> Result<SyntheticBatch> {
        self.validate()?;
        if batch_size == 0 {
            return Err(DataError::InvalidOption("batch size must be ≥ 1".into()));
        }
        let len = self.total_len();
        let mut b = SyntheticBatch {
            batch_size,
            seq_len: len,
            inputs: Vec::with_capacity(batch_size * len),
            positions: Vec::with_capacity(batch_size * self.answers_per_example()),
            targets: Vec::with_capacity(batch_size * self.answers_per_example()),
        };
        for r in 0..batch_size {
            let ex = self.example(seed, first + r as u64)?;
            b.inputs.extend_from_slice(&ex.tokens);
            b.positions
                .extend(ex.answer_pos.iter().map(|&p| (r * len + p) as u32));
            b.targets.extend_from_slice(&ex.answers);
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selective_copy_answers_are_the_data_tokens_in_order() {
        let s = SyntheticSpec {
            task: SyntheticTask::SelectiveCopy,
            seq_len: 32,
            n_tokens: 6,
            vocab: 10,
        };
        for i in 0..50 {
            let ex = s.example(3, i).unwrap();
            assert_eq!(ex.tokens.len(), 38);
            let data: Vec<u32> = ex.tokens[..32]
                .iter()
                .copied()
                .filter(|&t| t != s.blank_token())
                .collect();
            assert_eq!(data, ex.answers);
            assert!(ex.tokens[32..].iter().all(|&t| t == 9));
            assert_eq!(ex.answer_pos, (32..38).collect::<Vec<_>>());
            assert!(ex.answers.iter().all(|&t| t < 8));
        }
        assert_eq!(s.example(3, 7).unwrap(), s.example(3, 7).unwrap());
        assert_ne!(s.example(3, 7).unwrap(), s.example(4, 7).unwrap());
    }

    #[test]
    fn induction_answer_follows_the_first_trigger() {
        let s = SyntheticSpec {
            task: SyntheticTask::Induction,
            seq_len: 20,
            n_tokens: 0,
            vocab: 6,
        };
        for i in 0..50 {
            let ex = s.example(1, i).unwrap();
            let trig: Vec<usize> = (0..20).filter(|&p| ex.tokens[p] == 5).collect();
            assert_eq!(trig.len(), 2, "{:?}", ex.tokens);
            assert_eq!(trig[1], 19);
            assert_eq!(ex.answers, vec![ex.tokens[trig[0] + 1]]);
            assert_eq!(ex.answer_pos, vec![19]);
        }
    }

    #[test]
    fn bad_sizes_are_errors() {
        let mut s = SyntheticSpec {
            task: SyntheticTask::SelectiveCopy,
            seq_len: 4,
            n_tokens: 5,
            vocab: 16,
        };
        assert!(s.validate().unwrap_err().to_string().contains("n_tokens"));
        s.n_tokens = 2;
        s.vocab = 3;
        assert!(s.example(0, 0).is_err());
        assert!(SyntheticTask::from_name("copy").is_err());
        let b = SyntheticSpec {
            task: SyntheticTask::Induction,
            seq_len: 8,
            n_tokens: 0,
            vocab: 5,
        }
        .batch(0, 10, 3)
        .unwrap();
        assert_eq!(b.positions, vec![7, 15, 23]);
        assert_eq!(b.inputs.len(), 24);
    }
}
