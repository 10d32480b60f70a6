//! One model's side of a big-little decode: its [`CausalLm`] state, the committed tokens it has
//! not consumed yet (`lag`), the logits after everything it consumed (when known), and the
//! snapshots that let a drafter return to any drafted position.
//!
//! **Cost model** (what each operation costs in model work):
//! - *Drafting* (little model): one [`CausalLm::step`] per drafted token except the last one
//!   (whose successor logits are only needed if every draft is accepted); before each step the
//!   state is cloned. For a Mamba LM a clone copies `n_layer · d_inner · (d_conv + d_state)`
//!   floats (no weights), for a Transformer it copies the K/V tensor handles (reference
//!   counted); both are far cheaper than a step, which reads every weight.
//! - *Rolling the drafter back* after `k` of `m` drafts were kept restores snapshot `k`: no
//!   recomputation. Tokens the drafter has not consumed yet (the unstepped last draft, the big
//!   model's correction or bonus token) go to `lag` and are fed with the next drafting burst,
//!   so every committed token is computed exactly once by each model.
//! - *Verifying* (big model): one [`CausalLm::score`] over `lag ++ drafts` (usually 1 + γ
//!   tokens). A Mamba LM's `score` keeps a snapshot per scored position and a KV cache can be
//!   cut anywhere, so rolling the verifier back ([`CausalLm::truncate`]) recomputes nothing.
//!
//! What this means for speed: a round costs `γ·c + v(γ + 1)` big-step units (c: a little
//! step, v: a big-model *scored* token, both relative to a big step) and commits on average
//! `(1 − α^{γ+1}) / (1 − α)` tokens. A dense Transformer verifier reads its weights once for
//! the whole block, so `v ≪ 1` at batch 1 when its step is memory-bound (the quantized SmolLM2
//! GGUF measures v ≈ 0.5–1.25: its multi-row Q4_1 forward amortises little). A Mamba verifier's
//! `score` on blocks ≤ 64 tokens runs the dense parts once over the block and only the conv and
//! scan per position, keeping the state after each (`MambaLm::score_block`): v ≈ 0.55–0.7 for
//! the bundled mamba-big at γ = 4–8 (it was 1, a loop of steps, before).
//!

use crate::error::{Result, SpecError};
use seqlab_lm::CausalLm;
use std::time::Instant;

/// Longest block one verification may score: a Mamba LM keeps per-position snapshots only for
/// blocks up to [`seqlab_lm::mamba::MAMBA_SCORE_STEP_MAX`] tokens.
pub const MAX_BLOCK: usize = seqlab_lm::mamba::MAMBA_SCORE_STEP_MAX;

/// Work one model did: calls, tokens fed, seconds inside the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ModelWork {
    /// `prefill` + `step` + `score` calls.
    pub calls: usize,
    /// Tokens fed through those calls (prompt included).
    pub tokens: usize,
    /// Seconds spent inside them.
    pub seconds: f64,
    /// Of those, the prompt's prefill: tokens and seconds.
    pub prefill_tokens: usize,
    /// Seconds of the prefill.
    pub prefill_s: f64,
}

impl ModelWork {
    /// Seconds per token after the prefill (steps and scores), 0 when there were none.
    pub fn decode_s_per_token(&self) -> f64 {
        let n = self.tokens - self.prefill_tokens;
        if n == 0 {
            0.0
        } else {
            (self.seconds - self.prefill_s) / n as f64
        }
    }
}

/// A model, its state and its bookkeeping (module docs).
pub struct Cursor<'m, M: CausalLm> {
    model: &'m M,
    state: M::State,
    /// Committed tokens not consumed yet.
    lag: Vec<u32>,
    /// Logits after everything consumed, when `lag` is empty and they are known.
    next: Option<Vec<f32>>,
    /// Drafting: `snaps[i]` is the state after the first `i` drafts of the current burst.
    snaps: Vec<M::State>,
    /// Verifying: the state length before the last `score_block`, and its lag length.
    block_base: usize,
    /// The work done.
    pub work: ModelWork,
}

impl<M: CausalLm> std::fmt::Debug for Cursor<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("len", &self.model.state_len(&self.state))
            .field("lag", &self.lag)
            .field("snapshots", &self.snaps.len())
            .field("work", &self.work)
            .finish()
    }
}

impl<'m, M: CausalLm> Cursor<'m, M> {
    /// Prefills `prompt` (at least one token).
    pub fn new(model: &'m M, prompt: &[u32]) -> Result<Self> {
        if prompt.is_empty() {
            return Err(SpecError::Config(
                "the prompt is empty: give at least one token".into(),
            ));
        }
        let t = Instant::now();
        let (logits, state) = model.prefill(prompt)?;
        let seconds = t.elapsed().as_secs_f64();
        Ok(Self {
            model,
            state,
            lag: Vec::new(),
            next: Some(logits),
            snaps: Vec::new(),
            block_base: 0,
            work: ModelWork {
                calls: 1,
                tokens: prompt.len(),
                seconds,
                prefill_tokens: prompt.len(),
                prefill_s: seconds,
            },
        })
    }

    /// The model.
    pub fn model(&self) -> &'m M {
        self.model
    }

    /// The state (consumed tokens only; see [`Cursor::lag`]).
    pub fn state(&self) -> &M::State {
        &self.state
    }

    /// Committed tokens the state has not consumed yet.
    pub fn lag(&self) -> &[u32] {
        &self.lag
    }

    fn timed<R>(&mut self, tokens: usize, f: impl FnOnce(&M, &mut M::State) -> R) -> R {
        let t = Instant::now();
        let r = f(self.model, &mut self.state);
        self.work.calls += 1;
        self.work.tokens += tokens;
        self.work.seconds += t.elapsed().as_secs_f64();
        r
    }

    /// Consumes the lag (one `step`, or one `score` for several tokens) and returns the logits
    /// after every committed token; starts a new drafting burst (no snapshots).
    pub fn next_logits(&mut self) -> Result<Vec<f32>> {
        self.snaps.clear();
        let lag = std::mem::take(&mut self.lag);
        let logits = match lag.len() {
            0 => self.next.take().ok_or_else(|| {
                SpecError::Config("internal: no logits and nothing to consume".into())
            })?,
            1 => self.timed(1, |m, s| m.step(s, lag[0]))?,
            n => {
                let rows = self.timed(n, |m, s| m.score(s, &lag))?;
                let v = self.model.vocab_size();
                rows[rows.len() - v..].to_vec()
            }
        };
        self.next = Some(logits.clone());
        Ok(logits)
    }

    /// Drafting: snapshots the state, consumes `token`, returns the logits after it.
    pub fn draft_step(&mut self, token: u32) -> Result<Vec<f32>> {
        self.snaps.push(self.state.clone());
        let l = self.timed(1, |m, s| m.step(s, token))?;
        self.next = Some(l.clone());
        Ok(l)
    }

    /// Ends a drafting burst of `drafts`, of which the first `stepped` were consumed by
    /// [`Cursor::draft_step`]: keeps the first `kept` drafts (restoring a snapshot when fewer
    /// than `stepped`) and commits `then` after them. Nothing is recomputed.
    pub fn settle_draft(&mut self, drafts: &[u32], kept: usize, then: u32) -> Result<()> {
        let stepped = self.snaps.len();
        if kept > drafts.len() || stepped > drafts.len() {
            return Err(SpecError::Config(format!(
                "internal: keep {kept} of {} drafts ({stepped} stepped)",
                drafts.len()
            )));
        }
        if kept < stepped {
            self.state = self.snaps.swap_remove(kept);
        } else {
            self.lag.extend_from_slice(&drafts[stepped..kept]);
        }
        self.snaps.clear();
        self.lag.push(then);
        self.next = None;
        Ok(())
    }

    /// Verifying: consumes `lag ++ drafts` in one `score` call and returns `drafts.len() + 1`
    /// rows of logits: before each draft, and after the last one.
    pub fn score_block(&mut self, drafts: &[u32]) -> Result<Vec<Vec<f32>>> {
        if self.lag.len() + drafts.len() > MAX_BLOCK {
            return Err(SpecError::Config(format!(
                "internal: a block of {} tokens is longer than {MAX_BLOCK}",
                self.lag.len() + drafts.len()
            )));
        }
        self.snaps.clear();
        let v = self.model.vocab_size();
        let lag = std::mem::take(&mut self.lag);
        let mut tokens = lag.clone();
        tokens.extend_from_slice(drafts);
        let mut rows: Vec<Vec<f32>> = Vec::with_capacity(drafts.len() + 1);
        if lag.is_empty() {
            rows.push(self.next.take().ok_or_else(|| {
                SpecError::Config("internal: no logits and nothing to consume".into())
            })?);
        }
        self.block_base = self.model.state_len(&self.state) + lag.len();
        if !tokens.is_empty() {
            let all = self.timed(tokens.len(), |m, s| m.score(s, &tokens))?;
            let skip = lag.len().saturating_sub(1);
            rows.extend(all.chunks_exact(v).skip(skip).map(<[f32]>::to_vec));
        }
        self.next = rows.last().cloned();
        Ok(rows)
    }

    /// After [`Cursor::score_block`]: keeps the first `kept` drafts (rolling the state back
    /// into the scored block with [`CausalLm::truncate`]) and commits `then` after them.
    pub fn settle_block(&mut self, kept: usize, then: u32) -> Result<()> {
        let len = self.block_base + kept;
        if len != self.model.state_len(&self.state) {
            let t = Instant::now();
            self.model.truncate(&mut self.state, len)?;
            self.work.seconds += t.elapsed().as_secs_f64();
        }
        self.lag.push(then);
        self.next = None;
        Ok(())
    }

    /// Plain decoding: commits `token` (consumed by the next [`Cursor::next_logits`]).
    pub fn commit(&mut self, token: u32) {
        self.snaps.clear();
        self.lag.push(token);
        self.next = None;
    }
}
