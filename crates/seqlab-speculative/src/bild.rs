//! Big Little Decoder (Kim et al. 2023, "Speculative Decoding with Big Little Decoder",
//! NeurIPS; reference code kssteven418/BigLittleDecoder, `T5BiLDModel`), for any pair of
//! [`seqlab_lm::CausalLm`] models sharing a vocabulary. Greedy, as in the paper.
//!
//! - **Fallback policy** (§3.3): the little model decodes greedily while it is confident; when
//!   its largest probability `max_y p_S(y | x_{<t})` falls below `α_FB` its token is discarded
//!   and control goes to the big model. Control also goes back after `max_small` consecutive
//!   little tokens.
//! - **Rollback policy** (§3.4): the big model scores every not-yet-verified little token in one
//!   non-autoregressive pass ([`seqlab_lm::CausalLm::score`]). For each little token `y_i` the
//!   distance is the cross-entropy `d_i = −log p_L(y_i | y_{<i})`; at the first `i` with
//!   `d_i > α_RB` the little tokens from `i` on are discarded, the big model's argmax is
//!   committed in place of `y_i`, and both states are rolled back
//!   ([`seqlab_lm::CausalLm::truncate`] for the big model, a snapshot for the little one).
//!   Otherwise every little token stands and the big model's argmax after them is committed
//!   (the big model's own step, which its scoring pass computed for free).
//!
//! One refinement of the reference: a little token that *is* the big model's argmax is never
//! rolled back (a rollback would put back the same token and only throw away the later little
//! tokens). With it, `α_RB = 0` accepts exactly the little tokens the big model would have
//! chosen and reproduces big-only greedy decoding token for token (the exact-match rule of
//! greedy speculative decoding); larger `α_RB` trades agreement for fewer big-model calls.
//! Decoding starts with one big-model token, as in the paper (its logits come with the
//! prompt's prefill, so it costs no extra call).

use crate::cursor::{Cursor, MAX_BLOCK};
use crate::error::{Result, SpecError};
use crate::row::Row;
use seqlab_lm::CausalLm;
use seqlab_tensor::{argmax, log_softmax, mask_vocab};

/// BiLD's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BildConfig {
    /// Fallback threshold α_FB ∈ [0, 1]: the little model hands over when its largest
    /// probability is below it.
    pub alpha_fb: f64,
    /// Rollback threshold α_RB ≥ 0 on the big model's cross-entropy (nats) of a little token.
    pub alpha_rb: f64,
    /// Most consecutive little tokens before the big model takes over.
    pub max_small: usize,
}

impl Default for BildConfig {
    /// The reference's defaults: α_FB = 0.6, α_RB = 5, 10 little tokens.
    fn default() -> Self {
        Self {
            alpha_fb: 0.6,
            alpha_rb: 5.0,
            max_small: 10,
        }
    }
}

impl BildConfig {
    /// Checks `α_FB ∈ [0, 1]`, `α_RB ≥ 0` (finite), `1 ≤ max_small < 64`.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.alpha_fb) {
            return Err(SpecError::Config(format!(
                "the fallback threshold α_FB (`alpha_fb`) must be in [0, 1], got {}",
                self.alpha_fb
            )));
        }
        if !(self.alpha_rb >= 0.0 && self.alpha_rb.is_finite()) {
            return Err(SpecError::Config(format!(
                "the rollback threshold α_RB (`alpha_rb`) must be a finite number ≥ 0, got {}",
                self.alpha_rb
            )));
        }
        if self.max_small == 0 || self.max_small >= MAX_BLOCK {
            return Err(SpecError::Config(format!(
                "`max_small` (most consecutive little tokens) must be in 1..={}, got {}",
                MAX_BLOCK - 1,
                self.max_small
            )));
        }
        Ok(())
    }
}

/// The fallback test: the little model's argmax and whether it is confident enough
/// (`max_y p_S(y) ≥ α_FB`).
pub fn little_choice(logits: &[f32], alpha_fb: f64) -> Result<(u32, bool)> {
    let id = argmax(logits)?;
    let p_max = log_softmax(logits)[id as usize].exp();
    Ok((id, p_max >= alpha_fb))
}

/// The rollback test on one little token `y`: `Some(big argmax)` when `−log p_L(y) > α_RB`
/// and the big model would have chosen another token, `None` when `y` stands.
pub fn rollback_to(big_logits: &[f32], y: u32, alpha_rb: f64) -> Result<Option<u32>> {
    let best = argmax(big_logits)?;
    if best == y {
        return Ok(None);
    }
    let ce = -log_softmax(big_logits)[y as usize];
    Ok((ce > alpha_rb).then_some(best))
}

/// One BiLD round on `row`: the little model drafts until it falls back or reaches
/// `max_small`, the big model scores the drafts once, the rollback rule picks how many stand.
pub(crate) fn round<B: CausalLm, L: CausalLm>(
    row: &mut Row<'_, B, L>,
    little: &mut Cursor<'_, L>,
    cfg: &BildConfig,
) -> Result<()> {
    let budget = row.remaining();
    // The first token comes from the big model (the paper starts with a big-model step).
    let max_small = if row.out.is_empty() {
        0
    } else {
        cfg.max_small.min(budget.saturating_sub(1))
    };
    let limit = row.cfg.vocab_limit;
    let stop_ids = row.cfg.stop_ids.clone();
    let mut drafts = Vec::with_capacity(max_small);
    let mut fell_back = false;
    if max_small > 0 {
        let lm = little.model();
        lm.in_decode_context(|| -> Result<()> {
            let mut logits = little.next_logits()?;
            loop {
                mask_vocab(&mut logits, limit);
                let (y, confident) = little_choice(&logits, cfg.alpha_fb)?;
                if !confident {
                    fell_back = true;
                    break;
                }
                drafts.push(y);
                if drafts.len() == max_small || stop_ids.contains(&y) {
                    break;
                }
                logits = little.draft_step(y)?;
            }
            Ok(())
        })?;
    }

    let rows = row.big.score_block(&drafts)?;
    let mut kept = drafts.len();
    let mut next = None;
    for (i, &y) in drafts.iter().enumerate() {
        let mut l = rows[i].clone();
        mask_vocab(&mut l, limit);
        if let Some(t) = rollback_to(&l, y, cfg.alpha_rb)? {
            kept = i;
            next = Some(t);
            row.stats.rollbacks += 1;
            break;
        }
    }
    let t = match next {
        Some(t) => t,
        None => {
            let mut l = rows[drafts.len()].clone();
            mask_vocab(&mut l, limit);
            argmax(&l)?
        }
    };
    row.stats.drafted += drafts.len();
    row.stats.accepted += kept;
    row.stats.fallbacks += usize::from(fell_back);
    let mut committed = drafts[..kept].to_vec();
    committed.push(t);
    if row.push_tokens(&committed) {
        return Ok(());
    }
    row.big.settle_block(kept, t)?;
    if max_small > 0 {
        little.settle_draft(&drafts, kept, t)
    } else {
        little.commit(t);
        Ok(())
    }
}
