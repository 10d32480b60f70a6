//! A tiny deterministic denoiser for tests, examples and checks against brute-force
//! enumeration: the logit of token v at position i is a fixed pseudo-random number in
//! [−scale, scale] hashed from (seed, the whole row x_t, i, v), so x_θ depends on every token of
//! the context (the order in which positions unmask matters) and is time-agnostic.

use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use candle_core::{Device, Tensor};
use seqlab_tensor::batch_rows;
use std::sync::Mutex;

/// One recorded [`Denoiser::logits`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToyCall {
    /// The input rows, row-major.
    pub tokens: Vec<u32>,
    /// Rows in the call.
    pub batch: usize,
    /// Each row's time.
    pub t: Vec<f64>,
}

/// The hash-table denoiser (module docs); `[MASK]` is the last id.
#[derive(Debug)]
pub struct ToyDenoiser {
    vocab: usize,
    seed: u64,
    scale: f32,
    record: bool,
    calls: Mutex<Vec<ToyCall>>,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ToyDenoiser {
    /// `vocab` ids (≥ 2; the last is `[MASK]`), logits in [−scale, scale].
    pub fn new(vocab: usize, seed: u64, scale: f32) -> Result<Self> {
        if vocab < 2 || !(scale.is_finite() && scale >= 0.0) {
            return Err(DiffusionError::Config(format!(
                "toy denoiser: need vocab ≥ 2 and a finite scale ≥ 0, got {vocab} and {scale}"
            )));
        }
        Ok(Self {
            vocab,
            seed,
            scale,
            record: false,
            calls: Mutex::new(Vec::new()),
        })
    }

    /// Records every call (inputs and times) for [`ToyDenoiser::take_calls`].
    pub fn recording(mut self) -> Self {
        self.record = true;
        self
    }

    /// The calls recorded so far, emptying the record.
    pub fn take_calls(&self) -> Vec<ToyCall> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The raw logits of one row (len × V).
    pub fn row_logits(&self, row: &[u32]) -> Vec<f32> {
        let mut h = splitmix(self.seed);
        for &tok in row {
            h = splitmix(h ^ u64::from(tok));
        }
        let mut out = Vec::with_capacity(row.len() * self.vocab);
        for i in 0..row.len() {
            let hi = splitmix(h ^ (i as u64).wrapping_mul(0x1000_0001));
            for v in 0..self.vocab {
                let z = splitmix(hi ^ (v as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
                let unit = (z >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
                out.push(self.scale * (2.0 * unit - 1.0));
            }
        }
        out
    }
}

impl Denoiser for ToyDenoiser {
    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn mask_id(&self) -> u32 {
        (self.vocab - 1) as u32
    }

    fn logits(&self, tokens: &[u32], batch: usize, t: &[f64]) -> Result<Tensor> {
        let len = batch_rows(tokens.len(), batch)?;
        if t.len() != batch {
            return Err(DiffusionError::Input(format!(
                "toy denoiser: {} tokens and {} times for {batch} rows",
                tokens.len(),
                t.len()
            )));
        }
        if self.record {
            self.calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ToyCall {
                    tokens: tokens.to_vec(),
                    batch,
                    t: t.to_vec(),
                });
        }
        let data: Vec<f32> = tokens
            .chunks_exact(len)
            .flat_map(|row| self.row_logits(row))
            .collect();
        Ok(Tensor::from_vec(
            data,
            (batch, len, self.vocab),
            &Device::Cpu,
        )?)
    }
}
