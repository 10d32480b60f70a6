//! The one seam between models and decoders (docs/architecture.md#the-causallm-seam): every
//! autoregressive model offers a parallel prefill, a recurrent step, and a many-token `score`
//! from a state; its state is `Clone`, so a decoder can keep a snapshot, and it can be rolled
//! back to a shorter length with [`CausalLm::truncate`] (a transformer cuts its KV cache; a
//! recurrent model returns to one of the per-position snapshots its last `score` kept).
//! Generation, speculative decoding and evaluation are written against this trait only.
//! Batch 1: one sequence per state.

use crate::error::{LmError, Result};
use crate::mamba::{LogitsMode, MambaLm, MambaState};

/// Longest block [`CausalLm::score`] runs through [`MambaLm::score_block`] on a Mamba LM
/// (keeping a snapshot per position); longer blocks use the parallel scan.
pub const MAMBA_SCORE_STEP_MAX: usize = 64;

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
    /// [`MAMBA_SCORE_STEP_MAX`] tokens, which covers any draft). Anything else is an error
    /// naming the lengths reachable.
    fn truncate(&self, state: &mut Self::State, len: usize) -> Result<()>;

    /// Runs `f` (a decode loop calling [`CausalLm::step`]) where steps are fastest.
    fn in_decode_context<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R
    where
        Self: Sized,
    {
        f()
    }
}

/// A Mamba LM's [`CausalLm`] state: the recurrent state and the snapshots its last
/// [`CausalLm::score`] kept (the state before each scored token), so a verifier can roll back
/// into the scored block without recomputing it.
#[derive(Debug, Clone, PartialEq)]
pub struct MambaLmState {
    /// The state after everything consumed.
    pub current: MambaState,
    /// States at the lengths inside the last scored block, ascending.
    kept: Vec<MambaState>,
}

impl MambaLmState {
    /// Wraps a recurrent state (no snapshots).
    pub fn new(current: MambaState) -> Self {
        Self {
            current,
            kept: Vec::new(),
        }
    }
}

impl CausalLm for MambaLm {
    type State = MambaLmState;

    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }

    fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, MambaLmState)> {
        let (logits, state) = MambaLm::prefill(self, tokens, 1, LogitsMode::Last)?;
        let logits = logits.expect("LogitsMode::Last computes logits");
        Ok((logits.flatten_all()?.to_vec1()?, MambaLmState::new(state)))
    }

    fn step(&self, state: &mut MambaLmState, token: u32) -> Result<Vec<f32>> {
        Ok(MambaLm::step(self, &mut state.current, &[token])?
            .flatten_all()?
            .to_vec1()?)
    }

    /// A short block goes through [`MambaLm::score_block`]: the dense parts run once over all
    /// positions, the conv and scan position by position, and the state before each scored
    /// token is kept for [`CausalLm::truncate`]. Long blocks go through the parallel scan and
    /// keep no snapshots.
    fn score(&self, state: &mut MambaLmState, tokens: &[u32]) -> Result<Vec<f32>> {
        state.kept.clear();
        if tokens.len() > MAMBA_SCORE_STEP_MAX {
            let out =
                self.forward_with(tokens, 1, Some(&mut state.current), LogitsMode::All, false)?;
            let logits = out.logits.expect("LogitsMode::All computes logits");
            return Ok(logits.flatten_all()?.to_vec1()?);
        }
        let before = state.current.clone();
        let (logits, mut after) =
            MambaLm::in_decode_context(self, 1, || self.score_block(&mut state.current, tokens))?;
        after.pop();
        state.kept = std::iter::once(before).chain(after).collect();
        Ok(logits.flatten_all()?.to_vec1()?)
    }

    fn state_len(&self, state: &MambaLmState) -> usize {
        state.current.seqlen
    }

    fn truncate(&self, state: &mut MambaLmState, len: usize) -> Result<()> {
        if len == state.current.seqlen {
            return Ok(());
        }
        if len == 0 {
            *state = MambaLmState::new(self.new_state(1));
            return Ok(());
        }
        match state.kept.iter().position(|s| s.seqlen == len) {
            Some(i) => {
                state.current = state.kept.swap_remove(i);
                state.kept.truncate(i);
                Ok(())
            }
            None => Err(LmError::Input(
                match (state.kept.first(), state.kept.last()) {
                    (Some(a), Some(b)) => format!(
                        "cannot roll the Mamba state back to {len} tokens: it is at {} and keeps \
                     snapshots of lengths {}..={} only",
                        state.current.seqlen, a.seqlen, b.seqlen
                    ),
                    _ => format!(
                    "cannot roll the Mamba state back to {len} tokens: it is at {} and keeps no \
                     snapshots (only a `score` call keeps them)",
                    state.current.seqlen
                ),
                },
            )),
        }
    }

    fn in_decode_context<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        MambaLm::in_decode_context(self, 1, f)
    }
}
