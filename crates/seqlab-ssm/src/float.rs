//! The `Float` trait the kernels are generic over (f32 for work, f64 as the twin used for
//! finite-difference checks), plus the scalar functions shared by every kernel: softplus with
//! torch's threshold, SiLU and its derivative, and a branch-free `exp` that vectorises.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A real floating-point scalar: implemented for `f32` and `f64`.
pub trait Float:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Conversion from f64 (rounding for f32).
    fn from_f64(v: f64) -> Self;
    /// Conversion to f64 (exact).
    fn to_f64(self) -> f64;
    /// Correctly rounded-ish library `exp` (std).
    fn exp(self) -> Self;
    /// `exp` written without branches or calls so that loops over it vectorise (f32: Cephes
    /// polynomial, ≤ 2 ulp; f64: std `exp`, the twin favours accuracy over speed).
    fn exp_fast(self) -> Self;
    /// ln(1 + x).
    fn ln_1p(self) -> Self;
    /// sin.
    fn sin(self) -> Self;
    /// cos.
    fn cos(self) -> Self;
    /// |x|.
    fn abs(self) -> Self;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f32::exp(self)
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f32::ln_1p(self)
    }
    #[inline(always)]
    fn sin(self) -> Self {
        f32::sin(self)
    }
    #[inline(always)]
    fn cos(self) -> Self {
        f32::cos(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline(always)]
    fn sin(self) -> Self {
        f64::sin(self)
    }
    #[inline(always)]
    fn cos(self) -> Self {
        f64::cos(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
}

/// Branch-free single-precision `exp` (Cephes `expf` polynomial, round-to-nearest range
/// reduction by the 1.5·2²³ trick, the 2ⁿ scale split in two so denormal results come out right).
/// Handles ±inf, NaN, overflow (→ inf) and underflow (→ denormals, then 0).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const HI: f32 = 88.722_83;
    const LO: f32 = -104.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(LO, HI); // NaN stays NaN here; the result is replaced below
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let nf = t - MAGIC;
    let n = t.to_bits() as i32 - 0x4B40_0000;
    let r = xc - nf * LN2_HI - nf * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let n1 = n >> 1;
    let n2 = n - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let res = y * s1 * s2;
    let res = if x > HI { f32::INFINITY } else { res };
    #[allow(clippy::eq_op)]
    let is_nan = x != x;
    if is_nan {
        x
    } else {
        res
    }
}

/// torch's `softplus` (β = 1, threshold 20): `ln(1 + eˣ)`, or `x` itself when `x > 20`.
#[inline]
pub fn softplus<T: Float>(x: T) -> T {
    if x > T::from_f64(20.0) {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// d softplus / dx = σ(x), or 1 where softplus is the identity (`x > 20`), as torch's backward.
#[inline]
pub fn softplus_grad<T: Float>(x: T) -> T {
    if x > T::from_f64(20.0) {
        T::ONE
    } else {
        sigmoid(x)
    }
}

/// σ(x) = 1 / (1 + e⁻ˣ).
#[inline]
pub fn sigmoid<T: Float>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

/// SiLU(x) = x·σ(x), computed as torch does: `x / (1 + e⁻ˣ)`.
#[inline]
pub fn silu<T: Float>(x: T) -> T {
    x / (T::ONE + (-x).exp())
}

/// d SiLU / dx = σ(x)·(1 + x·(1 − σ(x))).
#[inline]
pub fn silu_grad<T: Float>(x: T) -> T {
    let s = sigmoid(x);
    s * (T::ONE + x * (T::ONE - s))
}

/// Σ aᵢ·bᵢ with eight independent partial sums (vectorises; fixed order, so deterministic).
#[inline(always)]
pub fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::ZERO; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (xa, xb) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += xa[i] * xb[i];
        }
    }
    let mut tail = T::ZERO;
    for (&xa, &xb) in ca.remainder().iter().zip(cb.remainder()) {
        tail += xa * xb;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_matches_f64_exp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.7 {
            let got = exp_f32(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "max relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        // Denormal range: relative error grows as precision is lost, absolute error stays tiny.
        let d = exp_f32(-100.0) as f64;
        assert!((d - (-100.0f64).exp()).abs() < 1e-44, "{d}");
    }

    #[test]
    fn softplus_threshold_and_grads() {
        assert_eq!(softplus(25.0f64), 25.0);
        assert!((softplus(0.0f64) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(softplus_grad(21.0f64), 1.0);
        let h = 1e-6;
        for &x in &[-3.0f64, -0.5, 0.0, 0.7, 4.0] {
            let fd = (softplus(x + h) - softplus(x - h)) / (2.0 * h);
            assert!((fd - softplus_grad(x)).abs() < 1e-8);
            let fd = (silu(x + h) - silu(x - h)) / (2.0 * h);
            assert!((fd - silu_grad(x)).abs() < 1e-8);
        }
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f64> = (0..19).map(|i| i as f64 * 0.5 - 3.0).collect();
        let b: Vec<f64> = (0..19).map(|i| (i as f64).sin()).collect();
        let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-12);
    }
}
