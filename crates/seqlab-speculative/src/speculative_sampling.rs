//! Lossless speculative sampling (Leviathan, Kalman & Matias 2023, "Fast Inference from
//! Transformers via Speculative Decoding", Algorithm 1; Chen et al. 2023, "Accelerating Large
//! Language Model Decoding with Speculative Sampling", Algorithm 2).
//!
//! The little model q drafts γ tokens `x̃_1..x̃_γ` autoregressively; the big model p scores them
//! in one [`seqlab_lm::CausalLm::score`] call, giving `p_1..p_{γ+1}`. Draft `x̃_i` is accepted
//! with probability `min(1, p_i(x̃_i) / q_i(x̃_i))`; at the first rejection the token is redrawn
//! from the residual `norm(max(0, p_i − q_i))` and the round ends; if all γ are accepted a bonus
//! token is drawn from `p_{γ+1}`. Each round therefore commits between 1 and γ + 1 tokens, and
//! the committed sequence is distributed exactly as sampling from p alone.
//!
//! `p` and `q` are the *final* sampling distributions of the shared f64 sampler
//! ([`seqlab_tensor::SamplerConfig::distribution`]: n-gram ban → temperature → top-k → top-p),
//! applied identically to both models, so the output law is that of the big model sampled with
//! the same settings. Greedy decoding is the T → 0 limit: p and q are one-hot, a draft is
//! accepted iff it is the big model's argmax, and the residual is the big model's argmax.
//!
//! Draft length: fixed γ, or the adaptive heuristic of Hugging Face `transformers`'
//! assisted generation (`num_assistant_tokens_schedule="heuristic"`): γ += 2 after a round in
//! which every draft was accepted, γ −= 1 otherwise, kept in `[gamma_min, gamma_max]`.

use crate::cursor::{Cursor, MAX_BLOCK};
use crate::error::{Result, SpecError};
use crate::row::Row;
use rand::Rng;
use seqlab_lm::CausalLm;
use seqlab_tensor::{argmax_f64, mask_vocab, sample_categorical};

/// Settings of lossless speculative sampling.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SpecConfig {
    /// Draft length γ (the starting value when adaptive).
    pub gamma: usize,
    /// Adapt γ: +2 after a fully accepted round, −1 otherwise.
    pub adaptive: bool,
    /// Smallest adaptive γ.
    pub gamma_min: usize,
    /// Largest adaptive γ.
    pub gamma_max: usize,
}

impl Default for SpecConfig {
    /// γ = 4, fixed; adaptive bounds 1..=16.
    fn default() -> Self {
        Self {
            gamma: 4,
            adaptive: false,
            gamma_min: 1,
            gamma_max: 16,
        }
    }
}

impl SpecConfig {
    /// Checks `1 ≤ gamma_min ≤ gamma ≤ gamma_max < 64` (one verification scores γ + 1 tokens,
    /// and a Mamba verifier keeps per-position snapshots for blocks of at most 64).
    pub fn validate(&self) -> Result<()> {
        let ok = 1 <= self.gamma_min
            && self.gamma_min <= self.gamma
            && self.gamma <= self.gamma_max
            && self.gamma_max < MAX_BLOCK;
        if !ok {
            return Err(SpecError::Config(format!(
                "draft length: need 1 ≤ gamma_min ({}) ≤ gamma ({}) ≤ gamma_max ({}) ≤ {}",
                self.gamma_min,
                self.gamma,
                self.gamma_max,
                MAX_BLOCK - 1
            )));
        }
        Ok(())
    }

    /// The next draft length after a round that drafted `drafted` tokens and accepted
    /// `accepted` of them (unchanged when fixed, or when the round was cut short by the token
    /// budget).
    pub fn next_gamma(&self, gamma: usize, drafted: usize, accepted: usize) -> usize {
        if !self.adaptive || drafted < gamma {
            return gamma;
        }
        if accepted == drafted {
            (gamma + 2).min(self.gamma_max)
        } else {
            gamma.saturating_sub(1).max(self.gamma_min)
        }
    }
}

/// The acceptance rule: given the big model's distributions `p[0..=γ]`, the little model's
/// `q[0..γ]` and the drafts, returns `(k, token)`: the first `k` drafts are accepted, then
/// `token` is committed — drawn from `norm(max(0, p_k − q_k))` after a rejection, or from
/// `p_γ` (the bonus token) when all γ were accepted.
///
/// A draft with `p_i(x̃) ≥ q_i(x̃)` is accepted without a draw, one with `p_i(x̃) = 0` is
/// rejected without a draw, so greedy decoding (`greedy`, one-hot p and q) uses no randomness.
pub fn verify_drafts<R: Rng + ?Sized>(
    p: &[Vec<f64>],
    q: &[Vec<f64>],
    drafts: &[u32],
    greedy: bool,
    rng: &mut R,
) -> Result<(usize, u32)> {
    if p.len() != drafts.len() + 1 || q.len() != drafts.len() {
        return Err(SpecError::Config(format!(
            "internal: {} drafts need {} big and {} little distributions, got {} and {}",
            drafts.len(),
            drafts.len() + 1,
            drafts.len(),
            p.len(),
            q.len()
        )));
    }
    for (i, &x) in drafts.iter().enumerate() {
        let (pi, qi) = (&p[i], &q[i]);
        let (px, qx) = (pi[x as usize], qi[x as usize]);
        let accept = if px >= qx {
            true
        } else if px <= 0.0 {
            false
        } else {
            rng.random::<f64>() < px / qx
        };
        if accept {
            continue;
        }
        if greedy {
            return Ok((i, argmax_f64(pi)?));
        }
        let residual: Vec<f64> = pi.iter().zip(qi).map(|(a, b)| (a - b).max(0.0)).collect();
        let t = if residual.iter().sum::<f64>() > 0.0 {
            sample_categorical(&residual, rng)?
        } else {
            // Only reachable by rounding (p ≠ q somewhere implies positive residual mass).
            sample_categorical(pi, rng)?
        };
        return Ok((i, t as u32));
    }
    let last = &p[drafts.len()];
    let t = if greedy {
        argmax_f64(last)?
    } else {
        sample_categorical(last, rng)? as u32
    };
    Ok((drafts.len(), t))
}

/// One round of speculative sampling on `row` (module docs): draft `min(γ, budget − 1)`
/// tokens with the little model, verify them with one big-model `score`, commit `k + 1`
/// tokens, roll both states back to the committed sequence.
pub(crate) fn round<B: CausalLm, L: CausalLm>(
    row: &mut Row<'_, B, L>,
    little: &mut Cursor<'_, L>,
    spec: &SpecConfig,
) -> Result<()> {
    let budget = row.remaining();
    let g = row.gamma.min(budget.saturating_sub(1));
    let sampler = row.cfg.sampler.clone();
    let greedy = sampler.greedy;

    // Draft: q_1..q_g and x̃_1..x̃_g; the last draft is not stepped (module docs of `cursor`).
    let mut drafts = Vec::with_capacity(g);
    let mut q_rows = Vec::with_capacity(g);
    let hist_len = row.hist.len();
    // With one token left the big model's own logits decide it; the drafter keeps its lag.
    if g > 0 {
        let lm = little.model();
        let (hist, rng, limit) = (&mut row.hist, &mut row.rng, row.cfg.vocab_limit);
        lm.in_decode_context(|| -> Result<()> {
            let mut logits = little.next_logits()?;
            for j in 0..g {
                mask_vocab(&mut logits, limit);
                let q = sampler.distribution(&logits, hist)?;
                let x = if greedy {
                    argmax_f64(&q)?
                } else {
                    sample_categorical(&q, rng)? as u32
                };
                drafts.push(x);
                q_rows.push(q);
                hist.push(x);
                if j + 1 < g {
                    logits = little.draft_step(x)?;
                }
            }
            Ok(())
        })?;
    }

    // Verify: p_1..p_{g+1} from one score call.
    let p_logits = row.big.score_block(&drafts)?;
    let mut p_rows = Vec::with_capacity(g + 1);
    for (i, mut l) in p_logits.into_iter().enumerate() {
        mask_vocab(&mut l, row.cfg.vocab_limit);
        p_rows.push(sampler.distribution(&l, &row.hist[..hist_len + i])?);
    }
    row.hist.truncate(hist_len);
    let (k, t) = verify_drafts(&p_rows, &q_rows, &drafts, greedy, &mut row.rng)?;

    row.stats.drafted += g;
    row.stats.accepted += k;
    if k < g {
        row.stats.rollbacks += 1;
    }
    row.gamma = spec.next_gamma(row.gamma, g, k);
    let mut committed = drafts[..k].to_vec();
    committed.push(t);
    if row.push_tokens(&committed) {
        return Ok(());
    }
    row.big.settle_block(k, t)?;
    little.settle_draft(&drafts, k, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// One position, draft x̃ ~ q, accept/resample: the committed token's law is exactly p.
    #[test]
    fn one_position_law_is_p() {
        let p = vec![0.5, 0.3, 0.15, 0.05, 0.0];
        let q = vec![0.1, 0.1, 0.5, 0.2, 0.1];
        let mut rng = StdRng::seed_from_u64(3);
        let n = 200_000;
        let mut counts = [0usize; 5];
        for _ in 0..n {
            let x = sample_categorical(&q, &mut rng).unwrap() as u32;
            let bonus = vec![0.0, 0.0, 0.0, 0.0, 1.0];
            let (k, t) = verify_drafts(
                &[p.clone(), bonus],
                std::slice::from_ref(&q),
                &[x],
                false,
                &mut rng,
            )
            .unwrap();
            counts[if k == 1 { x } else { t } as usize] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let f = c as f64 / n as f64;
            let sd = (p[i] * (1.0 - p[i]) / n as f64).sqrt();
            assert!(
                (f - p[i]).abs() <= 5.0 * sd + 1e-12,
                "id {i}: {f} vs {}",
                p[i]
            );
        }
    }

    #[test]
    fn greedy_accepts_exact_matches_only() {
        let one = |i: usize| {
            let mut v = vec![0.0; 4];
            v[i] = 1.0;
            v
        };
        let mut rng = StdRng::seed_from_u64(0);
        let p = [one(1), one(2), one(3)];
        let q = [one(1), one(0)];
        assert_eq!(
            verify_drafts(&p, &q, &[1, 0], true, &mut rng).unwrap(),
            (1, 2)
        );
        let q = [one(1), one(2)];
        assert_eq!(
            verify_drafts(&p, &q, &[1, 2], true, &mut rng).unwrap(),
            (2, 3)
        );
    }

    #[test]
    fn adaptive_gamma_moves_within_bounds() {
        let c = SpecConfig {
            gamma: 4,
            adaptive: true,
            gamma_min: 2,
            gamma_max: 7,
        };
        assert_eq!(c.next_gamma(4, 4, 4), 6);
        assert_eq!(c.next_gamma(6, 6, 6), 7);
        assert_eq!(c.next_gamma(4, 4, 1), 3);
        assert_eq!(c.next_gamma(2, 2, 0), 2);
        assert_eq!(
            c.next_gamma(4, 2, 2),
            4,
            "a round cut by the budget leaves γ"
        );
        assert!(SpecConfig { gamma: 0, ..c }.validate().is_err());
        assert!(SpecConfig { gamma_max: 64, ..c }.validate().is_err());
    }
}
