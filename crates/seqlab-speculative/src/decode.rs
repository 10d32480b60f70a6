//! The decode loop every policy shares: a [row](crate::row) per prompt holds both models'
//! cursors, the committed tokens, the random stream and the counters; a policy's round (big-only
//! step, little-only step, [BiLD](crate::bild), [speculative
//! sampling](crate::speculative_sampling)) commits one or more tokens per call.
//!
//! **Batching** ([`decode_batch`]): each prompt is a row with its own two states, random stream
//! (seed + row index) and draft length; rows accept different numbers of tokens per round, so
//! they drift apart. The rows go round-robin through the same schedule (one round of each
//! unfinished row per pass) and share only the models' weights and the configuration. No model
//! call is shared across rows: [`CausalLm`] is batch-1, so a batched verifier (one `score` over
//! all rows, ragged lengths, per-row rollback) needs a batched state in the trait first.

use crate::bild::{self, BildConfig};
use crate::error::{Result, SpecError};
use crate::row::Row;
pub use crate::row::{DecodeOutput, DecodeStats};
use crate::speculative_sampling::{self, SpecConfig};
pub use seqlab_lm::StopReason;
use seqlab_lm::{CausalLm, GenerateConfig};
use seqlab_tensor::{mask_vocab, sample_categorical};

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

/// How to decode: the policy, and the settings plain generation has too
/// ([`seqlab_lm::GenerateConfig`]: token budget, sampler applied identically to both models,
/// seed — row `i` of a batch uses `seed + i` —, stop ids, vocabulary limit).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeConfig {
    /// The decoder.
    pub policy: Policy,
    /// Budget, sampler, seed, stop ids and vocabulary limit, as for [`seqlab_lm::generate`].
    pub generate: GenerateConfig,
}

impl DecodeConfig {
    /// A greedy config for `policy` producing `max_new_tokens`.
    pub fn greedy(policy: Policy, max_new_tokens: usize) -> Self {
        Self {
            policy,
            generate: GenerateConfig::greedy(max_new_tokens),
        }
    }

    /// Checks the sampler and the policy's settings; BiLD is greedy only.
    pub fn validate(&self) -> Result<()> {
        let sampler = &self.generate.sampler;
        sampler.validate()?;
        match &self.policy {
            Policy::Bild(b) => {
                b.validate()?;
                if !sampler.greedy {
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

/// One round of `policy` on `row`: one big-model (or little-model) token for the
/// single-model baselines, a whole draft-and-verify round for BiLD and speculative sampling.
fn round<B: CausalLm, L: CausalLm>(row: &mut Row<'_, B, L>, policy: &Policy) -> Result<()> {
    row.stats.rounds += 1;
    match policy {
        Policy::BigOnly | Policy::LittleOnly => {
            let sampler = &row.cfg.sampler;
            let mut logits = row.big.next_logits()?;
            mask_vocab(&mut logits, row.cfg.vocab_limit);
            let t = if sampler.greedy {
                seqlab_tensor::argmax(&logits)?
            } else {
                let p = sampler.distribution(&logits, &row.hist)?;
                sample_categorical(&p, &mut row.rng)? as u32
            };
            if !row.push_tokens(&[t]) {
                row.big.commit(t);
            }
            Ok(())
        }
        Policy::Bild(b) => row.with_little(|row, little| bild::round(row, little, b)),
        Policy::Speculative(s) => {
            row.with_little(|row, little| speculative_sampling::round(row, little, s))
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

/// Decodes up to `cfg.generate.max_new_tokens` after `prompt` with `cfg.policy` (batch 1).
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
/// its own states and random stream `cfg.generate.seed + row`).
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
    let gamma = match cfg.policy {
        Policy::Speculative(s) => s.gamma,
        _ => 0,
    };
    let mut rows = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        rows.push(Row::new(
            big,
            little,
            p.as_ref(),
            &cfg.generate,
            cfg.generate.seed.wrapping_add(i as u64),
            gamma,
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
                        round(row, &cfg.policy)?;
                    }
                    Ok(())
                })?;
            } else {
                round(row, &cfg.policy)?;
            }
        }
        if !any {
            break;
        }
    }
    Ok(rows.into_iter().map(Row::finish).collect())
}
