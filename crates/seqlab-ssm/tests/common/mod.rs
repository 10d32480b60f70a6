//! Helpers shared by the integration tests: seeded random data, comparisons.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Seeded generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` uniform values in [lo, hi).
pub fn uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Element-wise conversion between the two float widths (through f64).
pub fn cast<T: seqlab_ssm::Float, U: seqlab_ssm::Float>(v: &[T]) -> Vec<U> {
    v.iter().map(|x| U::from_f64(x.to_f64())).collect()
}

/// f64 → f32.
pub fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// f32 → f64.
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// (max |a − b|, max |a − b| / max |b|).
pub fn errs(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let max_abs = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    (
        max_abs,
        if scale > 0.0 {
            max_abs / scale
        } else {
            max_abs
        },
    )
}

/// Asserts max|a−b| ≤ rtol·max(1, max|b|) and that no element is NaN; `what` names the check.
pub fn assert_close(what: &str, a: &[f64], b: &[f64], rtol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: length mismatch");
    assert!(a.iter().all(|x| x.is_finite()), "{what}: non-finite value");
    let scale = b.iter().map(|y| y.abs()).fold(1.0, f64::max);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= rtol * scale,
            "{what}: element {i}: {x} vs {y} (|diff| {} > {rtol}·{scale})",
            (x - y).abs()
        );
    }
}

/// Copies positions [t0, t1) of the last axis (length `len`) of a row-major tensor.
pub fn slice_last(data: &[f64], len: usize, t0: usize, t1: usize) -> Vec<f64> {
    data.chunks_exact(len)
        .flat_map(|row| row[t0..t1].iter().copied())
        .collect()
}

/// Same as [`slice_last`] for i32 data.
pub fn slice_last_i32(data: &[i32], len: usize, t0: usize, t1: usize) -> Vec<i32> {
    data.chunks_exact(len)
        .flat_map(|row| row[t0..t1].iter().copied())
        .collect()
}
