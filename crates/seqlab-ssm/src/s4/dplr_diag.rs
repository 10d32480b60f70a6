//! Diagonal step mode of a DPLR SSM (state-spaces/s4 `_setup_step(mode='diagonal')`): the
//! rank-1 update A = Λ − pp* of a diagonal matrix (over the conjugate-extended modes) has
//! eigenvalues μ at the roots of the secular equation f(μ) = 1 − Σ_k |p_k|²/(λ_k − μ) = 0,
//! right eigenvectors v = (Λ − μ)⁻¹p and left eigenvectors w* = p*(Λ − μ)⁻¹ (S4 paper §3.1 /
//! Lemma 3.2: A is similar to a diagonal matrix, but for HiPPO-LegS the eigenvectors are
//! exponentially ill-conditioned, so this mode is accurate only for well-conditioned DPLR
//! matrices (e.g. trained / random P); [`super::S4Recurrence`] is the exact O(N) mode for all). The bilinear discretisation is diagonal in that basis, so the recurrence is the
//! S4D one ([`S4dRecurrence`]) with dA = (1 + Δμ/2)/(1 − Δμ/2), dB = Δ/(1 − Δμ/2)·(V⁻¹B),
//! dC = C·V. Roots by Aberth–Ehrlich iteration, polished by Newton, in f64.

use rustfft::num_complex::Complex64 as C64;

use super::s4_kernel::DplrParams;
use super::s4d_kernel::S4dRecurrence;
use crate::error::{Result, SsmError};

fn conj_ext(x: &[C64]) -> Vec<C64> {
    x.iter()
        .copied()
        .chain(x.iter().map(|z| z.conj()))
        .collect()
}

/// Eigenvalues of diag(λ) − pp* (one per mode), by Aberth–Ehrlich on the secular equation.
fn secular_roots(lam: &[C64], p2: &[f64]) -> Result<Vec<C64>> {
    let m = lam.len();
    let scale = lam.iter().map(|l| l.norm()).fold(1.0, f64::max);
    // Start just off each pole, on distinct points.
    let mut mu: Vec<C64> = lam
        .iter()
        .zip(p2)
        .enumerate()
        .map(|(i, (&l, &q))| l - C64::new(0.5 * q, 1e-3 * scale * (i as f64 + 1.0) / m as f64))
        .collect();
    let ratio = |z: C64| -> C64 {
        // q/q' for q(μ) = Π(λ_k − μ)·f(μ): q'/q = f'/f − Σ 1/(λ_k − μ).
        let mut f = C64::new(1.0, 0.0);
        let mut fp = C64::new(0.0, 0.0);
        let mut s = C64::new(0.0, 0.0);
        for (&l, &q) in lam.iter().zip(p2) {
            let r = 1.0 / (l - z);
            f -= q * r;
            fp -= q * r * r;
            s += r;
        }
        1.0 / (fp / f - s)
    };
    for _ in 0..500 {
        let mut worst = 0.0f64;
        for i in 0..m {
            let n = ratio(mu[i]);
            let mut rep = C64::new(0.0, 0.0);
            for j in 0..m {
                if j != i {
                    rep += 1.0 / (mu[i] - mu[j]);
                }
            }
            let step = n / (1.0 - n * rep);
            if step.re.is_finite() && step.im.is_finite() {
                mu[i] -= step;
                worst = worst.max(step.norm() / mu[i].norm().max(1.0));
            }
        }
        if worst < 1e-15 {
            break;
        }
    }
    if mu.iter().any(|z| !z.re.is_finite() || !z.im.is_finite()) {
        return Err(SsmError::Invalid(
            "dplr diagonalisation: no convergence".into(),
        ));
    }
    // A root on a pole means a repeated λ (e.g. a real mode and its conjugate) that the rank-1
    // term does not move: the secular eigenvectors do not exist there (deflation not handled).
    if mu
        .iter()
        .any(|z| lam.iter().any(|l| (z - l).norm() <= 1e-9 * scale))
    {
        return Err(SsmError::Invalid(
            "dplr diagonalisation: repeated diagonal entry (e.g. a real mode) not supported".into(),
        ));
    }
    Ok(mu)
}

/// The diagonal (eigenbasis) recurrence of the bilinear DPLR SSM `p` (true C) at step Δ·rate:
/// an [`S4dRecurrence`] over N = 2·(N/2) complex modes (C halved, since that recurrence
/// outputs 2·Re Σ C x), giving the same outputs as [`super::S4Recurrence`] up to the
/// conditioning of the eigenvectors.
pub fn s4_diagonal_recurrence(p: &DplrParams<'_>, rate: f64) -> Result<S4dRecurrence> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(SsmError::Invalid(format!(
            "rate must be finite and > 0, got {rate}"
        )));
    }
    p.check()?;
    let (h, n) = (p.h, p.n);
    let m = 2 * n;
    let mut da = Vec::with_capacity(h * m);
    let mut db = Vec::with_capacity(h * m);
    let mut dc = Vec::with_capacity(h * m);
    for hi in 0..h {
        let cx = |re: &[f64], im: &[f64]| -> Vec<C64> {
            (0..n)
                .map(|k| C64::new(re[hi * n + k], im[hi * n + k]))
                .collect()
        };
        let lam = conj_ext(&cx(p.lambda_re, p.lambda_im));
        let pp = conj_ext(&cx(p.p_re, p.p_im));
        let b = conj_ext(&cx(p.b_re, p.b_im));
        let c = conj_ext(&cx(p.c_re, p.c_im));
        let p2: Vec<f64> = pp.iter().map(|z| z.norm_sqr()).collect();
        let mu = secular_roots(&lam, &p2)?;
        let dt = p.dt[hi] * rate;
        for &u in &mu {
            // v = (Λ − μ)⁻¹p, w* = p*(Λ − μ)⁻¹; (V⁻¹B)_i = w*B / w*v.
            let r: Vec<C64> = lam.iter().map(|&l| 1.0 / (l - u)).collect();
            let wv: C64 = (0..m).map(|k| pp[k].conj() * r[k] * r[k] * pp[k]).sum();
            let wb: C64 = (0..m).map(|k| pp[k].conj() * r[k] * b[k]).sum();
            let cv: C64 = (0..m).map(|k| c[k] * r[k] * pp[k]).sum();
            let den = 1.0 - u * (dt * 0.5);
            da.push((1.0 + u * (dt * 0.5)) / den);
            db.push(wb / wv * dt / den);
            dc.push(cv * 0.5);
        }
    }
    Ok(S4dRecurrence {
        h,
        n: m,
        da,
        db,
        c: dc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s4::hippo::{nplr, Measure};

    #[test]
    fn secular_roots_are_eigenvalues() {
        let d = nplr(Measure::LegS, 16, 1, None).unwrap();
        let lam = conj_ext(&d.lambda);
        let pp = conj_ext(&d.p);
        let p2: Vec<f64> = pp.iter().map(|z| z.norm_sqr()).collect();
        let mu = secular_roots(&lam, &p2).unwrap();
        // HiPPO-LegS eigenvalues are −1, −2, …, −N.
        let mut re: Vec<f64> = mu.iter().map(|z| z.re).collect();
        re.sort_by(f64::total_cmp);
        for (i, (r, z)) in re.iter().zip(&mu).enumerate() {
            // Ill-conditioned (non-normal LegS): eigenvalues only to ~1e-4.
            assert!((r + (16 - i) as f64).abs() < 1e-4, "{re:?} {mu:?}");
            assert!(z.im.abs() < 1e-4, "{mu:?}");
        }
        // Random well-conditioned case: f(μ) = 0 and distinct.
        let lam: Vec<C64> = (1..9)
            .map(|k| C64::new(-0.5, -std::f64::consts::PI * k as f64))
            .collect();
        let lam = conj_ext(&lam);
        let p2: Vec<f64> = (0..16)
            .map(|k| 0.01 + 0.05 * ((k * 7 % 5) as f64))
            .collect();
        let mu = secular_roots(&lam, &p2).unwrap();
        for z in &mu {
            let f: C64 =
                C64::new(1.0, 0.0) - lam.iter().zip(&p2).map(|(&l, &q)| q / (l - z)).sum::<C64>();
            assert!(f.norm() < 1e-8, "{mu:?}");
        }
    }
}
