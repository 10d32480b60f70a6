//! The one seam between models and decoders (docs/architecture.md#the-causallm-seam): every
//! autoregressive model offers a parallel prefill, a recurrent step, and a many-token `score`
//! from a state; its state is `Clone`, so a decoder can keep a snapshot, and it can be rolled
//! back to a shorter length with [`CausalLm::truncate`] (a transformer cuts its KV cache; a
//! recurrent model returns to one of the per-position snapshots its last `score` kept).
//! Generation, speculative decoding and evaluation are written against this trait only.
//! Batch 1: one sequence per state.

use crate::error::Result;

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

    /// Tokens `state` has consumed.
    fn state_len(&self, state: &Self::State) -> usize;

    /// Rolls `state` back to its first `len` tokens, as if only they had been consumed. Any
    /// model can return to 0 and stay at its current length; a KV cache can return to any
    /// shorter length; a recurrent state to any length inside the block its last
    /// [`CausalLm::score`] consumed when that block was short (Mamba: at most
    /// [`crate::mamba::MAMBA_SCORE_STEP_MAX`] tokens, which covers any draft). Anything else
    /// is an error naming the lengths reachable.
    fn truncate(&self, state: &mut Self::State, len: usize) -> Result<()>;

    /// Runs `f` (a decode loop calling [`CausalLm::step`]) where steps are fastest.
    fn in_decode_context<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R
    where
        Self: Sized,
    {
        f()
    }
}
