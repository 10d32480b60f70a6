//! The one seam between models and decoders (DESIGN.md): every autoregressive model offers a
//! parallel prefill, a recurrent step, and a many-token `score` from a state; its state is
//! `Clone`, so a decoder rolls back by keeping a snapshot (an SSM's conv + SSM state; a
//! transformer's KV-cache length). Generation, speculative decoding and evaluation are written
//! against this trait only. Batch 1: one sequence per state.

use crate::error::Result;
use crate::mamba::{LogitsMode, MambaLm, MambaState};

/// An autoregressive language model with a recurrent (or cached) state.
pub trait CausalLm: Send + Sync {
    /// Everything the model needs to continue a sequence; cloning snapshots it.
    type State: Clone + Send;

    /// Logits per position.
    fn vocab_size(&self) -> usize;

    /// Parallel pass over `tokens` from the empty state: the logits after the last token
    /// (vocab) and the state after it.
    fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, Self::State)>;

    /// One token in recurrent mode: consumes `token`, returns the next logits (vocab).
    fn step(&self, state: &mut Self::State, token: u32) -> Result<Vec<f32>>;

    /// Consumes `tokens` in one parallel pass from `state` and returns the logits after each
    /// of them, (len, vocab) row-major (verifying drafted tokens in speculative decoding).
    fn score(&self, state: &mut Self::State, tokens: &[u32]) -> Result<Vec<f32>>;

    /// Runs `f` (a decode loop calling [`CausalLm::step`]) where steps are fastest.
    fn in_decode_context<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R
    where
        Self: Sized,
    {
        f()
    }
}

impl CausalLm for MambaLm {
    type State = MambaState;

    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }

    fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, MambaState)> {
        let (logits, state) = MambaLm::prefill(self, tokens, 1, LogitsMode::Last)?;
        let logits = logits.expect("LogitsMode::Last computes logits");
        Ok((logits.flatten_all()?.to_vec1()?, state))
    }

    fn step(&self, state: &mut MambaState, token: u32) -> Result<Vec<f32>> {
        Ok(MambaLm::step(self, state, &[token])?
            .flatten_all()?
            .to_vec1()?)
    }

    fn score(&self, state: &mut MambaState, tokens: &[u32]) -> Result<Vec<f32>> {
        let out = self.forward_with(tokens, 1, Some(state), LogitsMode::All, false)?;
        let logits = out.logits.expect("LogitsMode::All computes logits");
        Ok(logits.flatten_all()?.to_vec1()?)
    }

    fn in_decode_context<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        MambaLm::in_decode_context(self, 1, f)
    }
}
