//! Numerically careful sampling from logits, shared by every generator.
//!
//! All arithmetic is f64, whatever the logits' storage dtype. The pipeline follows Hugging Face's
//! `generate` order: logits processors first (the no-repeat n-gram ban), then the warpers
//! temperature → top-k → top-p, then one categorical draw by inverse CDF in f64
//! ([`crate::categorical`] explains why not an f32 Gumbel-max).

use crate::categorical::sample_categorical;
use crate::error::{Result, TensorError};
use crate::no_repeat::banned_ngram_tokens;
use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// `log p_i = l_i − m − ln Σ_j exp(l_j − m)` with `m = max_j l_j`, all in f64.
///
/// `-inf` logits (masked tokens) give `-inf`. The distribution is undefined — and every entry is
/// NaN — when a logit is NaN or `+inf`, or when every logit is `-inf`. Empty in, empty out.
pub fn log_softmax<T: Copy + Into<f64>>(logits: &[T]) -> Vec<f64> {
    match normaliser(logits) {
        Some((m, lse)) => logits.iter().map(|&l| l.into() - m - lse).collect(),
        None => vec![f64::NAN; logits.len()],
    }
}

/// `p_i = exp(l_i − m) / Σ_j exp(l_j − m)` with `m = max_j l_j`, all in f64; same conventions as
/// [`log_softmax`] (masked `-inf` logits get probability 0).
pub fn softmax<T: Copy + Into<f64>>(logits: &[T]) -> Vec<f64> {
    if normaliser(logits).is_none() {
        return vec![f64::NAN; logits.len()];
    }
    let m = max_f64(logits.iter().map(|&l| l.into()));
    let w: Vec<f64> = logits.iter().map(|&l| (l.into() - m).exp()).collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|x| x / s).collect()
}

fn max_f64(it: impl Iterator<Item = f64>) -> f64 {
    it.fold(f64::NEG_INFINITY, f64::max)
}

/// `(m, ln Σ exp(l_j − m))`, or `None` when the distribution is undefined.
fn normaliser<T: Copy + Into<f64>>(logits: &[T]) -> Option<(f64, f64)> {
    let mut m = f64::NEG_INFINITY;
    for &l in logits {
        let l: f64 = l.into();
        if l.is_nan() || l == f64::INFINITY {
            return None;
        }
        m = m.max(l);
    }
    if m == f64::NEG_INFINITY {
        return None;
    }
    let s: f64 = logits.iter().map(|&l| (l.into() - m).exp()).sum();
    Some((m, s.ln()))
}

/// Rejects empty logits, NaN and `+inf` (naming the first offending token id).
fn check_logits(logits: &[f32]) -> Result<()> {
    if logits.is_empty() {
        return Err(TensorError::EmptyLogits);
    }
    for (index, &l) in logits.iter().enumerate() {
        if l.is_nan() {
            return Err(TensorError::NanLogit { index });
        }
        if l == f32::INFINITY {
            return Err(TensorError::InfiniteLogit { index });
        }
    }
    Ok(())
}

/// Greedy choice `argmax_i l_i`, ties broken by the lowest id (as `torch.argmax`); a NaN or
/// `+inf` logit is an error, and so is a vector whose every entry is `-inf`.
pub fn argmax(logits: &[f32]) -> Result<u32> {
    check_logits(logits)?;
    let z: Vec<f64> = logits.iter().map(|&l| l as f64).collect();
    argmax_f64(&z)
}

/// Greedy choice over f64 values (processed logits or probabilities): the lowest index of the
/// largest entry above `-inf`, ties broken by the lowest id as in [`argmax`]; NaN entries are
/// never chosen, and a vector with no entry above `-inf` is [`TensorError::NoValidToken`].
pub fn argmax_f64(z: &[f64]) -> Result<u32> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &v) in z.iter().enumerate() {
        if v > f64::NEG_INFINITY && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32).ok_or(TensorError::NoValidToken)
}

/// Restricts the choice to ids `< limit` by setting every later logit to `-inf` (a model's
/// vocabulary padded beyond its tokenizer's, or a drafter sharing only a prefix of it); `None`
/// leaves the logits as they are.
pub fn mask_vocab(logits: &mut [f32], limit: Option<usize>) {
    if let Some(limit) = limit {
        logits
            .iter_mut()
            .skip(limit)
            .for_each(|l| *l = f32::NEG_INFINITY);
    }
}

/// How to turn logits into a token: greedy or temperature / top-k / top-p sampling, optionally
/// with the no-repeat n-gram ban. [`SamplerConfig::validate`] says what is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature `T` in `p_i ∝ exp(l_i / T)`; finite and > 0 (ignored when greedy).
    pub temperature: f64,
    /// Keep only tokens whose tempered logit is ≥ the k-th largest (ties at the boundary are
    /// kept, as in HF's `TopKLogitsWarper`); `k ≥ 1`.
    pub top_k: Option<usize>,
    /// Nucleus sampling: keep the smallest set of most likely tokens whose mass is ≥ p (always at
    /// least one token), renormalised; `p ∈ (0, 1]`.
    pub top_p: Option<f64>,
    /// Take the argmax instead of sampling (ties → lowest id); temperature, top-k and top-p are
    /// then irrelevant.
    pub greedy: bool,
    /// Ban every token that would complete an n-gram already in the history (HF
    /// `no_repeat_ngram_size`); `n ≥ 1`.
    pub no_repeat_ngram: Option<usize>,
}

impl Default for SamplerConfig {
    /// Plain ancestral sampling: temperature 1, no top-k, no top-p, no ban.
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            greedy: false,
            no_repeat_ngram: None,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding (argmax), no ban.
    pub fn greedy() -> Self {
        Self {
            greedy: true,
            ..Self::default()
        }
    }

    /// Sampling at temperature `t` with no truncation.
    pub fn with_temperature(t: f64) -> Self {
        Self {
            temperature: t,
            ..Self::default()
        }
    }

    /// Checks the parameters: temperature finite and > 0 unless greedy, top-p in (0, 1],
    /// top-k ≥ 1, no-repeat n-gram size ≥ 1.
    pub fn validate(&self) -> Result<()> {
        let temperature_ok = self.temperature > 0.0 && self.temperature.is_finite();
        if !self.greedy && !temperature_ok {
            return Err(TensorError::InvalidTemperature {
                value: self.temperature,
            });
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(TensorError::InvalidTopP { value: p });
            }
        }
        if self.top_k == Some(0) {
            return Err(TensorError::InvalidTopK);
        }
        if self.no_repeat_ngram == Some(0) {
            return Err(TensorError::InvalidNoRepeatNgram);
        }
        Ok(())
    }

    /// The final, renormalised distribution this config samples from, in f64:
    /// ban → (greedy: one-hot argmax) → `z_i = l_i / T` → top-k → top-p → `p_i ∝ exp(z_i)`.
    /// `history` is the token history the n-gram ban looks at (ignored without the ban).
    pub fn distribution(&self, logits: &[f32], history: &[u32]) -> Result<Vec<f64>> {
        let z = self.processed_logits(logits, history)?;
        if self.greedy {
            let i = argmax_f64(&z)? as usize;
            let mut p = vec![0.0; z.len()];
            p[i] = 1.0;
            return Ok(p);
        }
        Ok(weights(&z).into_iter().map(|(w, s)| w / s).collect())
    }

    /// f64 logits after the ban and (unless greedy) temperature, top-k and top-p; removed tokens
    /// are `-inf`. At least one entry is finite.
    fn processed_logits(&self, logits: &[f32], history: &[u32]) -> Result<Vec<f64>> {
        self.validate()?;
        check_logits(logits)?;
        let mut z: Vec<f64> = logits.iter().map(|&l| l as f64).collect();
        if let Some(n) = self.no_repeat_ngram {
            for t in banned_ngram_tokens(history, n) {
                if let Some(v) = z.get_mut(t as usize) {
                    *v = f64::NEG_INFINITY;
                }
            }
        }
        let finite = z.iter().filter(|v| v.is_finite()).count();
        if finite == 0 {
            return Err(TensorError::NoValidToken);
        }
        if self.greedy {
            return Ok(z);
        }
        let t = self.temperature;
        z.iter_mut().for_each(|v| *v /= t);

        if let Some(k) = self.top_k.filter(|&k| k < finite) {
            let mut vals: Vec<f64> = z.iter().copied().filter(|v| v.is_finite()).collect();
            // k-th largest: index k-1 in descending order.
            let (_, kth, _) = vals.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            let kth = *kth;
            z.iter_mut()
                .filter(|v| **v < kth)
                .for_each(|v| *v = f64::NEG_INFINITY);
        }

        if let Some(p) = self.top_p.filter(|&p| p < 1.0) {
            let m = max_f64(z.iter().copied());
            let mut kept: Vec<(usize, f64)> = z
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i, (v - m).exp()))
                .collect();
            let total: f64 = kept.iter().map(|&(_, w)| w).sum();
            // Most likely first; equal weights by lowest id, so the cut is deterministic.
            kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            // Keep a token iff the mass ranked strictly above it is < p (HF's rule: the token that
            // crosses p is kept, so at least one token always is).
            let mut before = 0.0f64;
            let mut n_keep = 0;
            for &(_, w) in &kept {
                if before / total >= p {
                    break;
                }
                before += w;
                n_keep += 1;
            }
            for &(i, _) in &kept[n_keep..] {
                z[i] = f64::NEG_INFINITY;
            }
        }
        Ok(z)
    }
}

/// `(exp(z_i − max z), Σ_j exp(z_j − max z))` for each i.
fn weights(z: &[f64]) -> Vec<(f64, f64)> {
    let m = max_f64(z.iter().copied());
    let w: Vec<f64> = z.iter().map(|&v| (v - m).exp()).collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|x| (x, s)).collect()
}

/// A seeded sampler: a validated [`SamplerConfig`] plus its own `StdRng`. The same seed, config
/// and inputs give the same tokens.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: SamplerConfig,
    rng: StdRng,
}

impl Sampler {
    /// A sampler for `config` (validated here) whose random stream starts from `seed`.
    pub fn new(config: SamplerConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// The distribution [`Sampler::sample`] draws from; see [`SamplerConfig::distribution`].
    pub fn distribution(&self, logits: &[f32], history: &[u32]) -> Result<Vec<f64>> {
        self.config.distribution(logits, history)
    }

    /// The next token for one row of logits over the vocabulary: greedy argmax, or one f64
    /// inverse-CDF draw from [`Sampler::distribution`]. `history` feeds the n-gram ban (pass `&[]`
    /// without one). Greedy draws consume no randomness.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        let z = self.config.processed_logits(logits, history)?;
        if self.config.greedy {
            return argmax_f64(&z);
        }
        let m = max_f64(z.iter().copied());
        let w: Vec<f64> = z.iter().map(|&v| (v - m).exp()).collect();
        Ok(sample_categorical(&w, &mut self.rng)? as u32)
    }

    /// One token per row of a row-major `[B, V]` logits slice (`B = logits.len() / vocab`), rows
    /// drawn in order from the one random stream. `histories` is empty (no history) or has one
    /// history per row.
    pub fn sample_batch<H: AsRef<[u32]>>(
        &mut self,
        logits: &[f32],
        vocab: usize,
        histories: &[H],
    ) -> Result<Vec<u32>> {
        if vocab == 0 || !logits.len().is_multiple_of(vocab) {
            return Err(TensorError::BatchShape {
                reason: format!(
                    "{} logits do not split into rows of vocabulary size {vocab}",
                    logits.len()
                ),
            });
        }
        let rows = logits.len() / vocab;
        if !histories.is_empty() && histories.len() != rows {
            return Err(TensorError::BatchShape {
                reason: format!("{rows} rows of logits but {} histories", histories.len()),
            });
        }
        logits
            .chunks_exact(vocab)
            .enumerate()
            .map(|(b, row)| {
                let h: &[u32] = histories.get(b).map_or(&[], |h| h.as_ref());
                self.sample(row, h)
            })
            .collect()
    }

    /// [`Sampler::sample`] for a logits tensor of shape `[V]` or `[1, V]`, any float dtype, any
    /// device (converted to f32 on the host first).
    pub fn sample_tensor(&mut self, logits: &Tensor, history: &[u32]) -> Result<u32> {
        let dims = logits.dims();
        if !(dims.len() == 1 || (dims.len() == 2 && dims[0] == 1)) {
            return Err(TensorError::BatchShape {
                reason: format!("expected logits of shape [V] or [1, V], got {dims:?}"),
            });
        }
        let v = host_f32(logits)?;
        self.sample(&v, history)
    }

    /// [`Sampler::sample_batch`] for a `[B, V]` logits tensor (any float dtype, any device).
    pub fn sample_batch_tensor<H: AsRef<[u32]>>(
        &mut self,
        logits: &Tensor,
        histories: &[H],
    ) -> Result<Vec<u32>> {
        let &[_, vocab] = logits.dims() else {
            return Err(TensorError::BatchShape {
                reason: format!("expected logits of shape [B, V], got {:?}", logits.dims()),
            });
        };
        let v = host_f32(logits)?;
        self.sample_batch(&v, vocab, histories)
    }
}

/// All elements of `t`, row-major, as f32 on the host.
fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn log_softmax_is_stable_and_normalised() {
        // Logits far beyond exp's f32 range: a naive softmax overflows.
        let l = [1000.0f32, 999.0, -1000.0, f32::NEG_INFINITY];
        let lp = log_softmax(&l);
        let lse = (1.0f64 + (-1.0f64).exp() + (-2000.0f64).exp()).ln();
        assert!((lp[0] + lse).abs() < 1e-12);
        assert!((lp[1] + 1.0 + lse).abs() < 1e-12);
        assert_eq!(lp[3], f64::NEG_INFINITY);
        let p = softmax(&l);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(p[3], 0.0);
        assert!((p[0] - lp[0].exp()).abs() < 1e-15);
        // Undefined inputs.
        assert!(log_softmax(&[1.0f32, f32::NAN]).iter().all(|v| v.is_nan()));
        assert!(softmax(&[f32::NEG_INFINITY; 3]).iter().all(|v| v.is_nan()));
        assert!(log_softmax::<f32>(&[]).is_empty());
    }

    #[test]
    fn mask_vocab_keeps_ids_below_the_limit() {
        let mut l = [1.0f32, 2.0, 3.0, 4.0];
        mask_vocab(&mut l, None);
        assert_eq!(l, [1.0, 2.0, 3.0, 4.0]);
        mask_vocab(&mut l, Some(2));
        assert_eq!(l, [1.0, 2.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        assert_eq!(argmax(&l).unwrap(), 1);
        assert_eq!(argmax_f64(&[0.0, 0.5, 0.5]).unwrap(), 1);
        assert_eq!(argmax_f64(&[f64::NAN, 0.2, 0.1]).unwrap(), 1);
    }

    #[test]
    fn argmax_ties_lowest_and_rejects_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]).unwrap(), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]).unwrap(), 1);
        let e = argmax(&[1.0, f32::NAN, 3.0]).unwrap_err();
        assert!(matches!(e, TensorError::NanLogit { index: 1 }), "{e}");
        assert!(matches!(
            argmax(&[0.0, f32::INFINITY]).unwrap_err(),
            TensorError::InfiniteLogit { index: 1 }
        ));
        assert!(matches!(argmax(&[]).unwrap_err(), TensorError::EmptyLogits));
        assert!(matches!(
            argmax(&[f32::NEG_INFINITY]).unwrap_err(),
            TensorError::NoValidToken
        ));
    }

    #[test]
    fn config_validation_messages() {
        let bad = |c: SamplerConfig| c.validate().unwrap_err().to_string();
        assert!(bad(SamplerConfig::with_temperature(0.0)).contains("temperature"));
        assert!(bad(SamplerConfig::with_temperature(f64::NAN)).contains("temperature"));
        assert!(bad(SamplerConfig::with_temperature(-1.0)).contains("> 0"));
        let c = SamplerConfig {
            top_p: Some(0.0),
            ..Default::default()
        };
        assert!(bad(c).contains("top-p must be in (0, 1]"));
        let c = SamplerConfig {
            top_p: Some(1.5),
            ..Default::default()
        };
        assert!(bad(c).contains("got 1.5"));
        let c = SamplerConfig {
            top_k: Some(0),
            ..Default::default()
        };
        assert!(bad(c).contains("top-k must be at least 1"));
        let c = SamplerConfig {
            no_repeat_ngram: Some(0),
            ..Default::default()
        };
        assert!(bad(c).contains("n-gram"));
        // Greedy ignores the temperature.
        let g = SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::greedy()
        };
        assert!(g.validate().is_ok());
        assert!(Sampler::new(SamplerConfig::with_temperature(0.0), 0).is_err());
    }

    #[test]
    fn top_k_keeps_ties_and_top_p_keeps_the_crossing_token() {
        let l = [3.0f32, 1.0, 2.0, 2.0, 0.0];
        let c = SamplerConfig {
            top_k: Some(2),
            ..Default::default()
        };
        let p = c.distribution(&l, &[]).unwrap();
        // 3.0 and both 2.0s survive (tie at the k-th value).
        assert!(p[0] > 0.0 && p[2] > 0.0 && p[3] > 0.0);
        assert_eq!((p[1], p[4]), (0.0, 0.0));

        // Probabilities 0.5, 0.3, 0.2: p = 0.5 keeps only the first (mass before it is 0 < 0.5,
        // mass before the second is 0.5, not < 0.5); p = 0.6 keeps two.
        let l: Vec<f32> = [0.5f64, 0.3, 0.2].iter().map(|p| p.ln() as f32).collect();
        let keep = |top_p: f64| {
            let c = SamplerConfig {
                top_p: Some(top_p),
                ..Default::default()
            };
            c.distribution(&l, &[])
                .unwrap()
                .iter()
                .filter(|&&x| x > 0.0)
                .count()
        };
        assert_eq!(keep(0.4), 1);
        assert_eq!(keep(0.6), 2);
        assert_eq!(keep(0.95), 3);
        assert_eq!(keep(1.0), 3);
        assert_eq!(keep(1e-9), 1);
    }

    #[test]
    fn greedy_with_no_repeat_ngram_avoids_the_loop() {
        // A "model" that always prefers token (last + 1) % 3: greedy loops 0 1 2 0 1 2 ...
        let logits_after = |last: u32| {
            let mut l = vec![0.0f32; 4];
            l[((last + 1) % 3) as usize] = 5.0;
            l[3] = 1.0;
            l
        };
        let mut s = Sampler::new(
            SamplerConfig {
                no_repeat_ngram: Some(2),
                ..SamplerConfig::greedy()
            },
            0,
        )
        .unwrap();
        let mut h = vec![0u32];
        for _ in 0..8 {
            let t = s.sample(&logits_after(*h.last().unwrap()), &h).unwrap();
            h.push(t);
        }
        // No bigram occurs twice.
        let mut seen = std::collections::HashSet::new();
        for w in h.windows(2) {
            assert!(seen.insert((w[0], w[1])), "bigram {w:?} repeated in {h:?}");
        }
        // Without the ban greedy repeats.
        let mut g = Sampler::new(SamplerConfig::greedy(), 0).unwrap();
        assert_eq!(g.sample(&logits_after(0), &[0, 1, 2, 0]).unwrap(), 1);
    }

    #[test]
    fn all_banned_is_an_error() {
        let c = SamplerConfig {
            no_repeat_ngram: Some(1),
            ..Default::default()
        };
        let e = c.distribution(&[0.0, 0.0], &[0, 1]).unwrap_err();
        assert!(matches!(e, TensorError::NoValidToken));
    }

    #[test]
    fn batch_rows_and_tensor_inputs_are_deterministic() {
        let v = 7;
        let logits: Vec<f32> = (0..3 * v).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let none: &[Vec<u32>] = &[];
        let run = |seed| {
            let mut s = Sampler::new(SamplerConfig::default(), seed).unwrap();
            s.sample_batch(&logits, v, none).unwrap()
        };
        assert_eq!(run(5), run(5));
        assert_eq!(run(5).len(), 3);
        // The tensor path (bf16 storage is fine) gives the same tokens as the slice path.
        let t = Tensor::from_vec(logits.clone(), (3, v), &Device::Cpu).unwrap();
        let mut s = Sampler::new(SamplerConfig::default(), 5).unwrap();
        assert_eq!(s.sample_batch_tensor(&t, none).unwrap(), run(5));
        let mut s = Sampler::new(SamplerConfig::default(), 5).unwrap();
        let row0 = t.get(0).unwrap();
        let first = s.sample_tensor(&row0, &[]).unwrap();
        assert_eq!(first, run(5)[0]);
        // Shape errors.
        let mut s = Sampler::new(SamplerConfig::default(), 5).unwrap();
        assert!(s.sample_batch(&logits, 5, none).is_err());
        assert!(s.sample_batch(&logits, v, &[vec![1u32]]).is_err());
        assert!(s.sample_tensor(&t, &[]).is_err());
        let bf = t.to_dtype(DType::BF16).unwrap();
        assert_eq!(s.sample_batch_tensor(&bf, none).unwrap().len(), 3);
    }
}
