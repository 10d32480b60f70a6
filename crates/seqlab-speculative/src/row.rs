//! One prompt being decoded: both models' cursors, the committed tokens, the random stream and
//! the counters. The policies ([BiLD](crate::bild), [speculative
//! sampling](crate::speculative_sampling)) work on a [`Row`]; the [decode loop](mod@crate::decode)
//! owns the rows and picks the policy, so this file depends on neither.

use crate::cursor::{Cursor, ModelWork};
use crate::error::{Result, SpecError};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_lm::{CausalLm, GenerateConfig, StopReason};
use std::time::Instant;

/// Counters and timings of one decode.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DecodeStats {
    /// Wall time from the first prefill to the last token, seconds.
    pub wall_s: f64,
    /// Time to the first new token (both prefills included), seconds.
    pub first_token_s: f64,
    /// Rounds (one big-model verification each for BiLD / spec; one token each otherwise).
    pub rounds: usize,
    /// Little-model tokens proposed to the big model.
    pub drafted: usize,
    /// Of those, the ones committed.
    pub accepted: usize,
    /// BiLD rounds that ended because the little model was not confident.
    pub fallbacks: usize,
    /// Rounds that discarded little tokens (BiLD rollbacks; rejections in spec).
    pub rollbacks: usize,
    /// The big model's work.
    pub big: ModelWork,
    /// The little model's work.
    pub little: ModelWork,
}

impl DecodeStats {
    /// `accepted / drafted` (0 when nothing was drafted).
    pub fn acceptance_rate(&self) -> f64 {
        if self.drafted == 0 {
            0.0
        } else {
            self.accepted as f64 / self.drafted as f64
        }
    }
}

/// The new tokens and the counters.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOutput {
    /// New ids (prompt excluded; a final stop id included).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Counters and timings.
    pub stats: DecodeStats,
}

/// One prompt being decoded (module docs).
pub(crate) struct Row<'m, B: CausalLm, L: CausalLm> {
    /// The settings every policy shares (budget, sampler, stop ids, vocabulary limit).
    pub(crate) cfg: &'m GenerateConfig,
    pub(crate) big: Cursor<'m, B>,
    little: Option<Cursor<'m, L>>,
    pub(crate) rng: StdRng,
    /// Prompt + committed tokens (the n-gram ban's history).
    pub(crate) hist: Vec<u32>,
    pub(crate) out: Vec<u32>,
    pub(crate) stats: DecodeStats,
    /// Current draft length (speculative sampling).
    pub(crate) gamma: usize,
    pub(crate) done: Option<StopReason>,
    t0: Instant,
}

impl<'m, B: CausalLm, L: CausalLm> Row<'m, B, L> {
    /// Prefills both models on `prompt`; the random stream starts from `seed`, the draft
    /// length from `gamma`.
    pub(crate) fn new(
        big: &'m B,
        little: Option<&'m L>,
        prompt: &[u32],
        cfg: &'m GenerateConfig,
        seed: u64,
        gamma: usize,
    ) -> Result<Self> {
        let t0 = Instant::now();
        let big = Cursor::new(big, prompt)?;
        let little = little.map(|l| Cursor::new(l, prompt)).transpose()?;
        Ok(Self {
            cfg,
            big,
            little,
            rng: StdRng::seed_from_u64(seed),
            hist: prompt.to_vec(),
            out: Vec::with_capacity(cfg.max_new_tokens.min(1 << 16)),
            stats: DecodeStats::default(),
            gamma,
            done: (cfg.max_new_tokens == 0).then_some(StopReason::MaxTokens),
            t0,
        })
    }

    /// Tokens still allowed.
    pub(crate) fn remaining(&self) -> usize {
        self.cfg.max_new_tokens - self.out.len()
    }

    /// Commits `tokens` in order, stopping after a stop id or at the budget; true when the
    /// row is finished.
    pub(crate) fn push_tokens(&mut self, tokens: &[u32]) -> bool {
        if self.out.is_empty() && !tokens.is_empty() {
            self.stats.first_token_s = self.t0.elapsed().as_secs_f64();
        }
        for &t in tokens {
            self.out.push(t);
            self.hist.push(t);
            if self.cfg.stop_ids.contains(&t) {
                self.done = Some(StopReason::StopToken);
                return true;
            }
            if self.out.len() >= self.cfg.max_new_tokens {
                self.done = Some(StopReason::MaxTokens);
                return true;
            }
        }
        false
    }

    /// Runs `f` with the little model's cursor taken out of the row (a policy round needs both
    /// the row and the little cursor mutably).
    pub(crate) fn with_little(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Cursor<'m, L>) -> Result<()>,
    ) -> Result<()> {
        let mut little = self.little.take().ok_or_else(|| {
            SpecError::Config("internal: this policy needs the little model".into())
        })?;
        let r = f(self, &mut little);
        self.little = Some(little);
        r
    }

    /// The tokens, why decoding ended, and the counters with both models' work.
    pub(crate) fn finish(mut self) -> DecodeOutput {
        self.stats.wall_s = self.t0.elapsed().as_secs_f64();
        self.stats.big = self.big.work;
        self.stats.little = self.little.as_ref().map(|c| c.work).unwrap_or_default();
        DecodeOutput {
            tokens: self.out,
            stop_reason: self.done.unwrap_or(StopReason::MaxTokens),
            stats: self.stats,
        }
    }
}
