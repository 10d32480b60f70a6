//! Convolution mode of an SSM (S4 paper §2.4, eq. (5): y = K̄ ∗ u + D·u) for long sequences:
//! y = irfft(rfft(u, 2L)·rfft(K, 2L))[:L] + D·u, the causal linear convolution by real FFTs of
//! size 2L (zero padding makes the circular convolution linear), as state-spaces/s4 `FFTConv`.
//! Plus the O(L²) direct convolution it is checked against and the backward pass (two more
//! FFT correlations). Layout: u, y (batch, H, L); K (H, L); D (H). CPU parallel over
//! (batch, channel) rows; generic over f32 / f64.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::{ComplexToReal, FftNum, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex;

use crate::error::{check_len, Result, SsmError};
use crate::float::Float;

/// Scalars the FFT convolution runs in (f32, f64).
pub trait ConvFloat: Float + FftNum {}
impl ConvFloat for f32 {}
impl ConvFloat for f64 {}

/// Planned real FFTs of size 2L for sequences of length L.
pub struct FftConvPlan<T: ConvFloat> {
    l: usize,
    r2c: Arc<dyn RealToComplex<T>>,
    c2r: Arc<dyn ComplexToReal<T>>,
}

impl<T: ConvFloat> std::fmt::Debug for FftConvPlan<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FftConvPlan").field("l", &self.l).finish()
    }
}

impl<T: ConvFloat> FftConvPlan<T> {
    /// Plans the transforms for length `l` (> 0).
    pub fn new(l: usize) -> Result<Self> {
        if l == 0 {
            return Err(SsmError::Invalid("fft_conv: L must be > 0".into()));
        }
        let mut planner = RealFftPlanner::<T>::new();
        Ok(Self {
            l,
            r2c: planner.plan_fft_forward(2 * l),
            c2r: planner.plan_fft_inverse(2 * l),
        })
    }

    /// Sequence length L.
    pub fn len(&self) -> usize {
        self.l
    }

    /// Always false (L > 0).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// rfft of `x` (length ≤ L) zero-padded to 2L: L+1 bins.
    fn rfft(&self, x: &[T], buf: &mut Vec<T>, spec: &mut Vec<Complex<T>>) -> Result<()> {
        buf.clear();
        buf.extend_from_slice(x);
        buf.resize(2 * self.l, T::ZERO);
        spec.resize(self.l + 1, Complex::new(T::ZERO, T::ZERO));
        self.r2c
            .process(buf, spec)
            .map_err(|e| SsmError::Invalid(format!("rfft: {e}")))
    }

    /// irfft of `spec` (L+1 bins) into `buf` (2L), unnormalised; imaginary parts of the DC and
    /// Nyquist bins are ignored (as torch's irfft).
    fn irfft(&self, spec: &mut [Complex<T>], buf: &mut Vec<T>) -> Result<()> {
        buf.resize(2 * self.l, T::ZERO);
        spec[0].im = T::ZERO;
        spec[self.l].im = T::ZERO;
        self.c2r
            .process(spec, buf)
            .map_err(|e| SsmError::Invalid(format!("irfft: {e}")))
    }

    fn kernel_spectra(&self, k: &[T], h: usize) -> Result<Vec<Vec<Complex<T>>>> {
        let l = self.l;
        k.par_chunks(l)
            .take(h)
            .map(|row| {
                let (mut buf, mut spec) = (Vec::new(), Vec::new());
                self.rfft(row, &mut buf, &mut spec)?;
                Ok(spec)
            })
            .collect()
    }
}

fn check_dims(u: usize, k: usize, d: Option<usize>, b: usize, h: usize, l: usize) -> Result<()> {
    check_len("u", u, b * h * l, || format!("(batch={b}, h={h}, l={l})"))?;
    check_len("K", k, h * l, || format!("(h={h}, l={l})"))?;
    if let Some(d) = d {
        check_len("D", d, h, || format!("(h={h})"))?;
    }
    Ok(())
}

/// FFT convolution (S4 eq. (5)): `out[b,h,t] = Σ_{s≤t} K[h,s]·u[b,h,t−s] + D[h]·u[b,h,t]`
/// computed as irfft(rfft(u, 2L)·rfft(K, 2L))[:L]. `u`, `out` (batch, H, L), `k` (H, L).
pub fn fft_conv<T: ConvFloat>(
    plan: &FftConvPlan<T>,
    u: &[T],
    k: &[T],
    d: Option<&[T]>,
    batch: usize,
    h: usize,
    out: &mut [T],
) -> Result<()> {
    let l = plan.l;
    check_dims(u.len(), k.len(), d.map(<[T]>::len), batch, h, l)?;
    check_len("out", out.len(), batch * h * l, || {
        format!("(batch={batch}, h={h}, l={l})")
    })?;
    if batch * h == 0 {
        return Ok(());
    }
    let kf = plan.kernel_spectra(k, h)?;
    let scale = <T as Float>::from_f64(1.0 / (2 * l) as f64);
    out.par_chunks_mut(l)
        .zip(u.par_chunks(l))
        .enumerate()
        .try_for_each_init(
            || (Vec::new(), Vec::new()),
            |(buf, spec), (row, (y, x))| -> Result<()> {
                let hi = row % h;
                plan.rfft(x, buf, spec)?;
                for (s, kk) in spec.iter_mut().zip(&kf[hi]) {
                    *s = *s * *kk;
                }
                plan.irfft(spec, buf)?;
                let dh = d.map_or(T::ZERO, |d| d[hi]);
                for ((yo, &b), &xi) in y.iter_mut().zip(buf.iter()).zip(x) {
                    *yo = b * scale + dh * xi;
                }
                Ok(())
            },
        )
}

/// Direct O(L²) causal convolution, the reference for [`fft_conv`]:
/// `out[b,h,t] = Σ_{s=0}^{t} K[h,s]·u[b,h,t−s] + D[h]·u[b,h,t]`.
pub fn direct_conv<T: Float>(
    u: &[T],
    k: &[T],
    d: Option<&[T]>,
    batch: usize,
    h: usize,
    l: usize,
    out: &mut [T],
) -> Result<()> {
    check_dims(u.len(), k.len(), d.map(<[T]>::len), batch, h, l)?;
    check_len("out", out.len(), batch * h * l, || {
        format!("(batch={batch}, h={h}, l={l})")
    })?;
    if l == 0 {
        return Ok(());
    }
    out.par_chunks_mut(l)
        .zip(u.par_chunks(l))
        .enumerate()
        .for_each(|(row, (y, x))| {
            let hi = row % h;
            let kr = &k[hi * l..(hi + 1) * l];
            let dh = d.map_or(T::ZERO, |d| d[hi]);
            let mut rev = x.to_vec();
            rev.reverse();
            for t in 0..l {
                // Σ_s K[s]·x[t−s] = dot(K[0..=t], reversed x[0..=t]).
                let xs = &rev[l - 1 - t..];
                y[t] = crate::float::dot(&kr[..=t], xs) + dh * x[t];
            }
        });
    Ok(())
}

/// (∂ℒ/∂u, ∂ℒ/∂K, ∂ℒ/∂D) returned by [`fft_conv_bwd`].
pub type ConvGrads<T> = (Vec<T>, Vec<T>, Option<Vec<T>>);

/// Gradients of [`fft_conv`]: (∂ℒ/∂u (batch, H, L), ∂ℒ/∂K (H, L), ∂ℒ/∂D (H) if `d` given),
/// from ∂ℒ/∂out. ∂u[s] = Σ_{t≥s} g[t]·K[t−s] + D·g[s] and ∂K[s] = Σ_b Σ_{t≥s} g[t]·u[t−s],
/// both correlations by FFT (multiply by the conjugate spectrum).
pub fn fft_conv_bwd<T: ConvFloat>(
    plan: &FftConvPlan<T>,
    u: &[T],
    k: &[T],
    d: Option<&[T]>,
    batch: usize,
    h: usize,
    grad_out: &[T],
) -> Result<ConvGrads<T>> {
    let l = plan.l;
    check_dims(u.len(), k.len(), d.map(<[T]>::len), batch, h, l)?;
    check_len("grad_out", grad_out.len(), batch * h * l, || {
        format!("(batch={batch}, h={h}, l={l})")
    })?;
    let mut du = vec![T::ZERO; batch * h * l];
    if batch * h == 0 {
        return Ok((du, vec![T::ZERO; h * l], d.map(|_| vec![T::ZERO; h])));
    }
    let kf = plan.kernel_spectra(k, h)?;
    let scale = <T as Float>::from_f64(1.0 / (2 * l) as f64);
    // Per row: du row, and the row's contribution to dK (spectrum of g · conj(spectrum of u)).
    let dk_rows: Vec<Vec<Complex<T>>> = du
        .par_chunks_mut(l)
        .zip(u.par_chunks(l))
        .zip(grad_out.par_chunks(l))
        .enumerate()
        .map_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(buf, gs, us), (row, ((dur, x), g))| -> Result<Vec<Complex<T>>> {
                let hi = row % h;
                plan.rfft(g, buf, gs)?;
                plan.rfft(x, buf, us)?;
                let mut prod: Vec<Complex<T>> =
                    gs.iter().zip(&kf[hi]).map(|(a, b)| *a * b.conj()).collect();
                plan.irfft(&mut prod, buf)?;
                let dh = d.map_or(T::ZERO, |d| d[hi]);
                for ((o, &b), &gi) in dur.iter_mut().zip(buf.iter()).zip(g) {
                    *o = b * scale + dh * gi;
                }
                Ok(gs
                    .iter()
                    .zip(us.iter())
                    .map(|(a, b)| *a * b.conj())
                    .collect())
            },
        )
        .collect::<Result<_>>()?;
    let mut dk = vec![T::ZERO; h * l];
    dk.par_chunks_mut(l)
        .enumerate()
        .try_for_each(|(hi, dkr)| -> Result<()> {
            let mut acc = vec![Complex::new(T::ZERO, T::ZERO); l + 1];
            for b in 0..batch {
                for (a, v) in acc.iter_mut().zip(&dk_rows[b * h + hi]) {
                    *a = *a + *v;
                }
            }
            let mut buf = Vec::new();
            plan.irfft(&mut acc, &mut buf)?;
            for (o, &v) in dkr.iter_mut().zip(buf.iter()) {
                *o = v * scale;
            }
            Ok(())
        })?;
    let dd = d.map(|_| {
        (0..h)
            .map(|hi| {
                let mut s = T::ZERO;
                for b in 0..batch {
                    let r = (b * h + hi) * l;
                    s += crate::float::dot(&grad_out[r..r + l], &u[r..r + l]);
                }
                s
            })
            .collect()
    });
    Ok((du, dk, dd))
}
