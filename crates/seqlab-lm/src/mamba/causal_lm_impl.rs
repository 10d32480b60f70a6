//! [`CausalLm`] for the CPU [`MambaLm`]: prefill through the parallel scan, recurrent steps,
//! and `score` through [`MambaLm::score_block`] keeping the state before each scored token, so
//! a speculative verifier can roll back into the block (docs/speculative.md).

use crate::causal_lm::CausalLm;
use crate::error::{LmError, Result};
use crate::mamba::model::{LogitsMode, MambaLm};
use crate::mamba::state::MambaState;

/// Longest block [`CausalLm::score`] runs through [`MambaLm::score_block`] on a Mamba LM
/// (keeping a snapshot per position); longer blocks use the parallel scan.
pub const MAMBA_SCORE_STEP_MAX: usize = 64;

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
            None => Err(LmError::State(
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
