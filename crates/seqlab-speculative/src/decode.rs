//! The decode loop every policy shares: a row per prompt holds both models' cursors, the
//! committed tokens, the random stream and the counters; a policy's round (big-only step,
//! little-only step, [BiLD](crate::bild), [speculative sampling](crate::speculative_sampling))
//! commits one or more tokens per call.
//!
//! **Batching** ([`decode_batch`]): each prompt is a row with its own two states, random stream
//! (seed + row index) and draft length; rows accept different numbers of tokens per round, so
//! they drift apart. The rows go round-robin through the same schedule (one round of each
//! unfinished row per pass) and share only the models' weights and the configuration. No model
//! call is shared across rows: [`CausalLm`] is batch-1, so a batched verifier (one `score` over
//! all rows, ragged lengths, per-row rollback) needs a batched state in the trait first.

use crate::bild::{self, BildConfig};
use crate::cursor::{Cursor, ModelWork};
use crate::error::{Result, SpecError};
use crate::speculative_sampling::{self, mask, SpecConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_lm::CausalLm;
use seqlab_tensor::{sample_categorical, SamplerConfig};
use std::time::Instant;

/// Which decoder runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// The big model alone (prefill, then one step per token): the baseline.
    BigOnly,
    /// The little model alone.
    LittleOnly,
    /// Big Little Decoder (fallback + rollback), greedy.
    Bild(BildConfig),
    /// Lossless speculative sampling (any sampler settings, greedy included).
    Speculative(SpecConfig),
}

impl Policy {
    /// `big-only`, `little-only`, `bild` or `spec`.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::BigOnly => "big-only",
            Policy::LittleOnly => "little-only",
            Policy::Bild(_) => "bild",
            Policy::Speculative(_) => "spec",
        }
    }
}

/// How to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeConfig {
    /// The decoder.
    pub policy: Policy,
    /// Most tokens to produce per prompt.
    pub max_new_tokens: usize,
    /// Greedy or sampling settings, applied identically to both models.
    pub sampler: SamplerConfig,
    /// Seed of the random stream (row `i` of a batch uses `seed + i`).
    pub seed: u64,
    /// Decoding ends right after producing any of these ids.
    pub stop_ids: Vec<u32>,
    /// When set, only ids `< limit` can be produced (padded vocabulary rows are masked).
    pub vocab_limit: Option<usize>,
}

impl DecodeConfig {
    /// A greedy config for `policy` producing `max_new_tokens`.
    pub fn greedy(policy: Policy, max_new_tokens: usize) -> Self {
        Self {
            policy,
            max_new_tokens,
            sampler: SamplerConfig::greedy(),
            seed: 0,
            stop_ids: Vec::new(),
            vocab_limit: None,
        }
    }

    /// Checks the sampler and the policy's settings; BiLD is greedy only.
    pub fn validate(&self) -> Result<()> {
        self.sampler.validate()?;
        match &self.policy {
            Policy::Bild(b) => {
                b.validate()?;
                if !self.sampler.greedy {
                    return Err(SpecError::Config(
                        "BiLD decodes greedily (the paper's setting): drop the sampling options, \
                         or use the lossless `spec` policy to sample"
                            .into(),
                    ));
                }
            }
            Policy::Speculative(s) => s.validate()?,
            Policy::BigOnly | Policy::LittleOnly => {}
        }
        Ok(())
    }
}

/// Why decoding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `max_new_tokens` were produced.
    MaxTokens,
    /// A stop id was produced.
    StopToken,
}

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
    pub(crate) cfg: &'m DecodeConfig,
    pub(crate) big: Cursor<'m, B>,
    little: Option<Cursor<'m, L>>,
    pub(crate) rng: StdRng,
    /// Prompt + committed tokens (the n-gram ban's history).
    pub(crate) hist: Vec<u32>,
    pub(crate) out: Vec<u32>,
    pub(crate) stats: DecodeStats,
    /// Current draft length (speculative sampling).
    pub(crate) gamma: usize,
    done: Option<StopReason>,
    t0: Instant,
}

impl<'m, B: CausalLm, L: CausalLm> Row<'m, B, L> {
    fn new(
        big: &'m B,
        little: Option<&'m L>,
        prompt: &[u32],
        cfg: &'m DecodeConfig,
        seed: u64,
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
            out: Vec::with_capacity(cfg.max_new_tokens),
            stats: DecodeStats::default(),
            gamma: match cfg.policy {
                Policy::Speculative(s) => s.gamma,
                _ => 0,
            },
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

    /// One round of the policy.
    fn round(&mut self) -> Result<()> {
        self.stats.rounds += 1;
        match self.cfg.policy {
            Policy::BigOnly | Policy::LittleOnly => {
                let sampler = &self.cfg.sampler;
                let mut logits = self.big.next_logits()?;
                mask(&mut logits, self.cfg.vocab_limit);
                let t = if sampler.greedy {
                    seqlab_tensor::argmax(&logits)?
                } else {
                    let p = sampler.distribution(&logits, &self.hist)?;
                    sample_categorical(&p, &mut self.rng)? as u32
                };
                if !self.push_tokens(&[t]) {
                    self.big.commit(t);
                }
                Ok(())
            }
            Policy::Bild(b) => self.with_little(|row, little| bild::round(row, little, &b)),
            Policy::Speculative(s) => {
                self.with_little(|row, little| speculative_sampling::round(row, little, &s))
            }
        }
    }

    fn with_little(
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

    fn finish(mut self) -> DecodeOutput {
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

/// Checks that two models can be paired: the same number of logits per position.
pub fn check_pair<B: CausalLm, L: CausalLm>(big: &B, little: &L) -> Result<()> {
    let (b, l) = (big.vocab_size(), little.vocab_size());
    if b != l {
        return Err(SpecError::VocabMismatch { big: b, little: l });
    }
    Ok(())
}

/// Decodes up to `cfg.max_new_tokens` after `prompt` with `cfg.policy` (batch 1).
pub fn decode<B: CausalLm, L: CausalLm>(
    big: &B,
    little: &L,
    prompt: &[u32],
    cfg: &DecodeConfig,
) -> Result<DecodeOutput> {
    let mut out = decode_batch(big, little, &[prompt], cfg)?;
    Ok(out.remove(0))
}

/// Decodes every prompt (module docs: rows go round-robin through the same schedule, each with
/// its own states and random stream `cfg.seed + row`).
pub fn decode_batch<B: CausalLm, L: CausalLm, P: AsRef<[u32]>>(
    big: &B,
    little: &L,
    prompts: &[P],
    cfg: &DecodeConfig,
) -> Result<Vec<DecodeOutput>> {
    cfg.validate()?;
    match cfg.policy {
        Policy::BigOnly => run_rows::<B, B, P>(big, None, prompts, cfg),
        Policy::LittleOnly => {
            let mut outs = run_rows::<L, L, P>(little, None, prompts, cfg)?;
            for o in &mut outs {
                // The single model ran in the `big` slot; report its work as the little one's.
                o.stats.little = std::mem::take(&mut o.stats.big);
            }
            Ok(outs)
        }
        Policy::Bild(_) | Policy::Speculative(_) => {
            check_pair(big, little)?;
            run_rows(big, Some(little), prompts, cfg)
        }
    }
}

fn run_rows<B: CausalLm, L: CausalLm, P: AsRef<[u32]>>(
    big: &B,
    little: Option<&L>,
    prompts: &[P],
    cfg: &DecodeConfig,
) -> Result<Vec<DecodeOutput>> {
    for (i, p) in prompts.iter().enumerate() {
        if p.as_ref().is_empty() {
            return Err(SpecError::Config(format!(
                "prompt {i} is empty: give at least one token"
            )));
        }
    }
    let mut rows = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        rows.push(Row::new(
            big,
            little,
            p.as_ref(),
            cfg,
            cfg.seed.wrapping_add(i as u64),
        )?);
    }
    let single = matches!(cfg.policy, Policy::BigOnly | Policy::LittleOnly);
    loop {
        let mut any = false;
        for row in rows.iter_mut().filter(|r| r.done.is_none()) {
            any = true;
            if single {
                // Like `seqlab_lm::generate`: steps run where they are fastest.
                big.in_decode_context(|| -> Result<()> {
                    while row.done.is_none() {
                        row.round()?;
                    }
                    Ok(())
                })?;
            } else {
                row.round()?;
            }
        }
        if !any {
            break;
        }
    }
    Ok(rows.into_iter().map(Row::finish).collect())
}
