//! Token-level perplexity of any [`CausalLm`] on a token stream (`seqlab eval ppl`).
//!
//! The stream is cut into non-overlapping windows of `window` tokens (the last one may be
//! shorter); each window starts from the empty state, so a window of n tokens scores its n − 1
//! next-token predictions: `prefill(x₁)` predicts x₂, one `score(x₂…x_{n−1})` call predicts
//! x₃…x_n. The result is `PPL = exp(−(1/M) Σ log p(x_{t+1} | x_{≤t}))` over all M predictions,
//! with the log-softmax over the model's whole vocabulary in f64.

use crate::causal_lm::CausalLm;
use crate::error::{LmError, Result};
use seqlab_data::SplitView;
use seqlab_tensor::log_softmax;
use std::time::Instant;

/// What [`perplexity`] measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PplReport {
    /// Next-token predictions scored (M).
    pub predictions: usize,
    /// Windows evaluated.
    pub windows: usize,
    /// Mean negative log-likelihood per prediction, nats.
    pub nll: f64,
    /// exp(nll).
    pub perplexity: f64,
    /// nll / ln 2.
    pub bits_per_token: f64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Tokens consumed per second.
    pub tokens_per_s: f64,
}

/// Per-token log-probabilities `log p(x_t | x_{<t})` of `tokens` under `model`, f64
/// log-softmax over the whole vocabulary, from the empty state: `prefill` of the first context
/// token, then one `score` call for the rest (module docs). With `bos` the model starts from
/// that id and every token is predicted (`tokens.len()` values); without, `tokens[0]` has no
/// prediction and the values are those of `tokens[1..]`. Shared by [`perplexity`] and the
/// diffusion crate's gen-PPL and AR energy (docs/diffusion.md). Values are returned as computed
/// (−∞ for a zero-probability token, NaN for non-finite logits): the caller decides.
pub fn token_log_probs<M: CausalLm>(
    model: &M,
    tokens: &[u32],
    bos: Option<u32>,
) -> Result<Vec<f64>> {
    let v = model.vocab_size();
    if let Some(&bad) = tokens.iter().chain(bos.iter()).find(|&&t| t as usize >= v) {
        return Err(LmError::TokenOutOfRange { id: bad, vocab: v });
    }
    if tokens.is_empty() || (bos.is_none() && tokens.len() < 2) {
        return Ok(Vec::new());
    }
    // Context fed: [bos] + tokens[..n-1] (predicts every token) or tokens[..n-1] (predicts
    // tokens[1..]).
    let n = tokens.len();
    let (context, targets): (Vec<u32>, &[u32]) = match bos {
        Some(b) => (
            std::iter::once(b)
                .chain(tokens[..n - 1].iter().copied())
                .collect(),
            tokens,
        ),
        None => (tokens[..n - 1].to_vec(), &tokens[1..]),
    };
    let (first, mut state) = model.prefill(&context[..1])?;
    let mut rows = first;
    if context.len() > 1 {
        rows.extend(model.score(&mut state, &context[1..])?);
    }
    Ok(rows
        .chunks_exact(v)
        .zip(targets)
        .map(|(row, &target)| log_softmax(row)[target as usize])
        .collect())
}

/// Scores one window (module docs); returns (Σ −log p, predictions).
fn window_nll<M: CausalLm>(model: &M, w: &[u32]) -> Result<(f64, usize)> {
    let mut nll = 0.0;
    for (lp, &target) in token_log_probs(model, w, None)?.into_iter().zip(&w[1..]) {
        if !lp.is_finite() {
            return Err(LmError::ZeroProbability {
                token: target,
                log_p: lp,
            });
        }
        nll -= lp;
    }
    Ok((nll, w.len() - 1))
}

/// Perplexity of `model` on the first `max_tokens` tokens (all when `None`) of `view`, in
/// windows of `window` tokens (module docs). `on_window` gets the tokens consumed so far after
/// each window (for a progress bar).
pub fn perplexity<M: CausalLm>(
    model: &M,
    view: &SplitView,
    window: usize,
    max_tokens: Option<usize>,
    mut on_window: impl FnMut(usize),
) -> Result<PplReport> {
    if window < 2 {
        return Err(LmError::Shape(format!(
            "the window must hold at least 2 tokens (one prediction), got {window}"
        )));
    }
    let total = max_tokens.map_or(view.len(), |m| m.min(view.len()));
    if total < 2 {
        return Err(LmError::Shape(format!(
            "the {:?} split has {} tokens: nothing to predict",
            view.split(),
            view.len()
        )));
    }
    let t0 = Instant::now();
    let (mut nll, mut predictions, mut windows) = (0.0f64, 0usize, 0usize);
    let mut start = 0;
    while start + 1 < total {
        let end = (start + window).min(total);
        let w = view.get(start..end)?;
        let (n, m) = window_nll(model, &w)?;
        nll += n;
        predictions += m;
        windows += 1;
        start = end;
        on_window(end);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let mean = nll / predictions as f64;
    Ok(PplReport {
        predictions,
        windows,
        nll: mean,
        perplexity: mean.exp(),
        bits_per_token: mean / std::f64::consts::LN_2,
        seconds,
        tokens_per_s: if seconds > 0.0 {
            start as f64 / seconds
        } else {
            0.0
        },
    })
}
