//! Scoring a generated sequence under an autoregressive model: the per-token log p_AR(x_i |
//! x_{<i}) that gen-PPL ([`crate::gen_eval`]) and EDLM's AR energy ([`crate::sampler::edlm`])
//! both use, computed by `seqlab_lm::token_log_probs` (the function `seqlab eval ppl` uses).

use crate::error::{DiffusionError, Result};
use seqlab_lm::{token_log_probs, CausalLm};

/// Each position's log p_AR(x_i | x_{<i}) of `tokens` (0 where nothing is predicted: position 0
/// without `bos`), f64. Errors when a token (or `bos`) lies outside the AR model's vocabulary
/// (the two models' tokenizers disagree) or the AR model's logits are not finite.
pub fn ar_log_probs<M: CausalLm>(lm: &M, tokens: &[u32], bos: Option<u32>) -> Result<Vec<f64>> {
    let v = lm.vocab_size();
    if let Some(&bad) = tokens.iter().chain(bos.iter()).find(|&&t| t as usize >= v) {
        return Err(DiffusionError::Mismatch(format!(
            "AR model: token {bad} outside its vocabulary of {v} (do the diffusion model and \
             the AR model share a tokenizer?)"
        )));
    }
    let mut out = vec![0.0; tokens.len()];
    let first_pred = usize::from(bos.is_none());
    for (lp, slot) in token_log_probs(lm, tokens, bos)?
        .into_iter()
        .zip(out.iter_mut().skip(first_pred))
    {
        if lp.is_nan() {
            return Err(DiffusionError::NotFinite(
                "AR model: logits are not finite".into(),
            ));
        }
        *slot = lp;
    }
    Ok(out)
}
