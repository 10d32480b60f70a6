//! Categorical draws in f64 by inverse CDF.
//!
//! Why not Gumbel-max in f32: with `u` a float32 uniform (24-bit mantissa), the Gumbel noise
//! `g = -ln(-ln u)` can never exceed `-ln(-ln(1 - 2^-24)) ≈ 16.64`, nor go below
//! `-ln(-ln 2^-24) ≈ -2.81`. A token whose logit trails the top one by more than
//! `16.64 + 2.81 ≈ 19.4` (probability ratio ≈ 3.4e-9) can therefore *never* win, and tokens with
//! ratios around 1e-7..1e-8 win far less often than they should: the tail of the distribution is
//! cut, which is the same as silently lowering the temperature. Computed exactly over the f32
//! grid (test `tiny_probabilities_get_their_mass`): one top token and 10^6 tokens at a logit gap
//! of 17 (ratio e^-17 ≈ 4.1e-8) hold 3.98% of the mass together, but an f32 Gumbel-max gives
//! them only 1.77%; at a gap of 20 it gives them 2^-24 ≈ 6e-8 instead of 0.2%. Here the draw is
//! `i = min{ i : C_i > u · C_V }` with `C_i = Σ_{j ≤ i} w_j` accumulated in f64 and `u` an f64
//! uniform with a 53-bit mantissa, so every token with `w_i > 0` is drawn with probability
//! `w_i / Σ w` up to f64 rounding (relative error ~1e-16 · V).

use crate::error::{Result, TensorError};
use rand::Rng;

/// Checks that `weights` are usable categorical weights and returns their f64 sum.
fn check_weights(weights: &[f64]) -> Result<f64> {
    if weights.is_empty() {
        return Err(TensorError::InvalidWeights {
            reason: "no categories (empty weight vector)".into(),
        });
    }
    let mut total = 0.0f64;
    for (i, &w) in weights.iter().enumerate() {
        if !(w >= 0.0 && w.is_finite()) {
            return Err(TensorError::InvalidWeights {
                reason: format!("weight {i} is {w}; weights must be finite and >= 0"),
            });
        }
        total += w;
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(TensorError::InvalidWeights {
            reason: format!("weights sum to {total}; at least one must be > 0"),
        });
    }
    Ok(total)
}

/// A categorical distribution `P(i) = w_i / Σ_j w_j` prepared for many draws: the f64 CDF is
/// built once (O(V)), then each draw is one f64 uniform and a binary search (O(log V)).
#[derive(Debug, Clone)]
pub struct Categorical {
    /// `cdf[i] = Σ_{j ≤ i} w_j`, non-decreasing; `cdf[V-1]` is the total mass.
    cdf: Vec<f64>,
    /// Largest index with positive weight (the draw never returns a zero-weight index).
    last_positive: usize,
}

impl Categorical {
    /// Builds the distribution from non-negative finite weights (need not sum to 1, at least one
    /// must be positive).
    pub fn new(weights: &[f64]) -> Result<Self> {
        check_weights(weights)?;
        let mut cdf = Vec::with_capacity(weights.len());
        let mut acc = 0.0f64;
        let mut last_positive = 0;
        for (i, &w) in weights.iter().enumerate() {
            acc += w;
            cdf.push(acc);
            if w > 0.0 {
                last_positive = i;
            }
        }
        Ok(Self { cdf, last_positive })
    }

    /// Builds the distribution `P(i) ∝ exp(l_i)` from f64 log-weights (e.g. the output of
    /// [`crate::log_softmax`]); `-inf` entries get probability 0.
    pub fn from_log_weights(log_weights: &[f64]) -> Result<Self> {
        let max = log_weights
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return Err(TensorError::InvalidWeights {
                reason: format!("the largest log-weight is {max}"),
            });
        }
        let w: Vec<f64> = log_weights.iter().map(|&l| (l - max).exp()).collect();
        Self::new(&w)
    }

    /// Number of categories V.
    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    /// Always false: a `Categorical` has at least one category.
    pub fn is_empty(&self) -> bool {
        self.cdf.is_empty()
    }

    /// The probability of category `i`, `w_i / Σ w` (0 for out-of-range `i`).
    pub fn prob(&self, i: usize) -> f64 {
        let hi = match self.cdf.get(i) {
            Some(&c) => c,
            None => return 0.0,
        };
        let lo = if i == 0 { 0.0 } else { self.cdf[i - 1] };
        (hi - lo) / self.total()
    }

    /// Total (unnormalised) mass `Σ w`.
    pub fn total(&self) -> f64 {
        // Non-empty by construction.
        self.cdf[self.cdf.len() - 1]
    }

    /// Draws one index: `min{ i : C_i > u · C_V }` with `u ~ U[0, 1)` in f64 (53-bit mantissa).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let u: f64 = rng.random::<f64>() * self.total();
        let i = self.cdf.partition_point(|&c| c <= u);
        // `u < total` in exact arithmetic; the clamp covers `u` rounding up to the total.
        i.min(self.last_positive)
    }

    /// Draws `n` indices independently.
    pub fn sample_n<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.sample(rng)).collect()
    }
}

/// One draw from `P(i) = w_i / Σ w` by a linear inverse-CDF scan in f64 (O(V), no allocation);
/// the same law as [`Categorical::sample`], for when only one draw is needed.
pub fn sample_categorical<R: Rng + ?Sized>(weights: &[f64], rng: &mut R) -> Result<usize> {
    let total = check_weights(weights)?;
    let u: f64 = rng.random::<f64>() * total;
    let mut acc = 0.0f64;
    let mut last_positive = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            acc += w;
            last_positive = i;
            if acc > u {
                return Ok(i);
            }
        }
    }
    // Only reachable when rounding makes the running sum end at or below u.
    Ok(last_positive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn zero_weights_are_never_drawn() {
        let w = [0.0, 1.0, 0.0, 2.0, 0.0];
        let c = Categorical::new(&w).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..10_000 {
            let i = c.sample(&mut rng);
            assert!(i == 1 || i == 3);
            let j = sample_categorical(&w, &mut rng).unwrap();
            assert!(j == 1 || j == 3);
        }
        assert!((c.prob(3) - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(c.prob(99), 0.0);
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn extreme_uniforms_map_to_first_and_last_positive() {
        // A fake RNG whose f64 uniform is 0, then the largest value below 1.
        struct Fixed(Vec<u64>);
        impl rand::RngCore for Fixed {
            fn next_u32(&mut self) -> u32 {
                self.next_u64() as u32
            }
            fn next_u64(&mut self) -> u64 {
                self.0.remove(0)
            }
            fn fill_bytes(&mut self, _: &mut [u8]) {
                unreachable!()
            }
        }
        let c = Categorical::new(&[0.0, 0.5, 0.5, 0.0]).unwrap();
        let mut r = Fixed(vec![0, u64::MAX]);
        assert_eq!(c.sample(&mut r), 1);
        assert_eq!(c.sample(&mut r), 2);
    }

    #[test]
    fn bad_weights_are_errors() {
        assert!(Categorical::new(&[]).is_err());
        assert!(Categorical::new(&[0.0, 0.0]).is_err());
        assert!(Categorical::new(&[1.0, -0.1]).is_err());
        assert!(Categorical::new(&[1.0, f64::NAN]).is_err());
        assert!(Categorical::new(&[1.0, f64::INFINITY]).is_err());
        let mut rng = StdRng::seed_from_u64(0);
        let e = sample_categorical(&[f64::NAN], &mut rng).unwrap_err();
        assert!(e.to_string().contains("weight 0 is NaN"), "{e}");
        assert!(Categorical::from_log_weights(&[f64::NEG_INFINITY]).is_err());
    }

    #[test]
    fn same_seed_same_draws() {
        let c = Categorical::new(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        let a = c.sample_n(&mut StdRng::seed_from_u64(7), 100);
        let b = c.sample_n(&mut StdRng::seed_from_u64(7), 100);
        assert_eq!(a, b);
    }
}
