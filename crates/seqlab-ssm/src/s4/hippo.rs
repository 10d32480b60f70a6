//! HiPPO transition matrices and their normal-plus-low-rank (NPLR) form.
//!
//! - [`transition`]: the (A, B) of HiPPO-LegS, LegT and FouT (HiPPO paper, Gu et al. 2020,
//!   Thm. 1–2; the normalisations of state-spaces/s4 `transition`).
//! - [`rank_correction`]: the low-rank P with A + PPᵀ normal (S4 paper, Gu et al. 2022,
//!   Thm. 1: "all HiPPO matrices have a NPLR representation A = VΛV* − PQᵀ").
//! - [`nplr`]: the unitary diagonalisation of A + PPᵀ = V(Λ)V* (skew-symmetric + a multiple of
//!   I, so −i·(A + PPᵀ) is Hermitian and [`hermitian_eig`] diagonalises it in f64), returning
//!   Λ, V*P, V*B for one of each conjugate pair (S4 paper eq. (6) / Lemma 3.2).

use rustfft::num_complex::Complex64 as C64;

use super::linalg::hermitian_eig;
use crate::error::{Result, SsmError};

/// A HiPPO measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Scaled Legendre (LegS): A_nk = −√(2n+1)√(2k+1) (n>k), −(n+1) (n=k), 0 (n<k); B_n = √(2n+1).
    LegS,
    /// Translated Legendre (LegT), halved for timescale correctness as upstream:
    /// A_nk = −½√(2n+1)√(2k+1)·(1 if n ≥ k else (−1)^{n−k}), B_n = ½√(2n+1).
    LegT,
    /// Fourier (FouT): skew tridiagonal rotations at frequencies πk minus the rank-1 term BBᵀ.
    FouT,
}

/// HiPPO (A, B) for `measure` at state size `n` (HiPPO paper Thm. 1 / S4 App. C.1): A row-major
/// `n × n`, B length `n`, both f64. FouT needs an even `n`.
pub fn transition(measure: Measure, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if n == 0 {
        return Err(SsmError::Invalid("transition: N must be > 0".into()));
    }
    let mut a = vec![0.0; n * n];
    let mut b = vec![0.0; n];
    match measure {
        Measure::LegS => {
            for i in 0..n {
                let ri = (2.0 * i as f64 + 1.0).sqrt();
                b[i] = ri;
                for k in 0..=i {
                    let rk = (2.0 * k as f64 + 1.0).sqrt();
                    a[i * n + k] = if i == k { -(i as f64 + 1.0) } else { -ri * rk };
                }
            }
        }
        Measure::LegT => {
            for i in 0..n {
                let ri = (2.0 * i as f64 + 1.0).sqrt();
                b[i] = 0.5 * ri;
                for k in 0..n {
                    let rk = (2.0 * k as f64 + 1.0).sqrt();
                    let s = if i < k && (k - i) % 2 == 1 { -1.0 } else { 1.0 };
                    a[i * n + k] = -0.5 * ri * s * rk;
                }
            }
        }
        Measure::FouT => {
            if !n.is_multiple_of(2) {
                return Err(SsmError::Invalid(format!(
                    "transition: FouT needs even N, got {n}"
                )));
            }
            // d = [0, 1, 1, 2, 2, ...][1:] (freqs interleaved with zeros), A = π(−diag(d, 1) + diag(d, −1)).
            let d: Vec<f64> = (0..n / 2).flat_map(|f| [0.0, f as f64]).skip(1).collect();
            for (i, &di) in d.iter().enumerate() {
                a[i * n + i + 1] = -std::f64::consts::PI * di;
                a[(i + 1) * n + i] = std::f64::consts::PI * di;
            }
            for (i, bi) in b.iter_mut().enumerate() {
                *bi = if i == 0 {
                    1.0
                } else if i % 2 == 0 {
                    std::f64::consts::SQRT_2
                } else {
                    0.0
                };
            }
            for i in 0..n {
                for k in 0..n {
                    a[i * n + k] -= b[i] * b[k];
                }
            }
        }
    }
    Ok((a, b))
}

/// Low-rank correction P (`rank × n`, row-major) such that A + PᵀP… i.e. A + Σ_r p_r p_rᵀ is
/// normal (S4 paper Thm. 1 / App. C.1): LegS p_n = √(n + ½) (rank 1); LegT two rows
/// √(2n+1)/√2 on even / odd n (rank 2); FouT the B vector (rank 1). Extra rows are zero.
pub fn rank_correction(measure: Measure, n: usize, rank: usize) -> Result<Vec<f64>> {
    let needed = if measure == Measure::LegT { 2 } else { 1 };
    if rank < needed {
        return Err(SsmError::Invalid(format!(
            "rank_correction: {measure:?} needs rank >= {needed}, got {rank}"
        )));
    }
    let mut p = vec![0.0; rank * n];
    match measure {
        Measure::LegS => {
            for (i, pi) in p[..n].iter_mut().enumerate() {
                *pi = (0.5 + i as f64).sqrt();
            }
        }
        Measure::LegT => {
            for i in 0..n {
                let v = (1.0 + 2.0 * i as f64).sqrt() * std::f64::consts::FRAC_1_SQRT_2;
                // Row 0 holds the odd indices, row 1 the even ones (upstream P0 / P1).
                p[(1 - i % 2) * n + i] = v;
            }
        }
        Measure::FouT => {
            let (_, b) = transition(Measure::FouT, n)?;
            p[..n].copy_from_slice(&b);
        }
    }
    Ok(p)
}

/// The NPLR form of a HiPPO matrix, keeping one eigenvalue of each conjugate pair:
/// A = V (diag(Λ) − P̃ P̃*) V* with V = [V_h, conj V_h] (S4 paper eq. (6), Lemma 3.2).
#[derive(Clone, Debug)]
pub struct Nplr {
    /// State size N (the full, real one).
    pub n: usize,
    /// Rank of the low-rank term.
    pub rank: usize,
    /// Λ (N/2): eigenvalues of A + PPᵀ with negative imaginary part, sorted by Im ascending.
    pub lambda: Vec<C64>,
    /// P̃ = V_h* P, (rank, N/2) row-major.
    pub p: Vec<C64>,
    /// B̃ = V_h* B (N/2), imaginary part clipped to ±`b_clip` if asked.
    pub b: Vec<C64>,
    /// V_h (N, N/2) row-major: the eigenvectors kept.
    pub v: Vec<C64>,
}

/// NPLR decomposition of the HiPPO `measure` at state size `n` (even), as state-spaces/s4
/// `nplr`: Re(Λ) = mean of diag(A + PPᵀ), Im(Λ) from the Hermitian eigenproblem of −i·S for
/// the skew part S (computed in f64), Λ sorted by Im ascending and the negative-imaginary half
/// kept; a zero pair (FouT) gets upstream's fixed eigenvector. `b_clip` clamps Im(V*B).
pub fn nplr(measure: Measure, n: usize, rank: usize, b_clip: Option<f64>) -> Result<Nplr> {
    if n < 2 || !n.is_multiple_of(2) {
        return Err(SsmError::Invalid(format!(
            "nplr: N must be even and >= 2, got {n}"
        )));
    }
    let (a, b) = transition(measure, n)?;
    let p = rank_correction(measure, n, rank)?;
    // AP = A + Σ_r p_r p_rᵀ
    let mut ap = a.clone();
    for r in 0..rank {
        let pr = &p[r * n..(r + 1) * n];
        for i in 0..n {
            for k in 0..n {
                ap[i * n + k] += pr[i] * pr[k];
            }
        }
    }
    let w_re = (0..n).map(|i| ap[i * n + i]).sum::<f64>() / n as f64;
    // −i·AP restricted to its Hermitian part: off-diagonal −i·S, diagonal dropped (real 0), as
    // eigh reads only one triangle.
    let mut h = vec![C64::new(0.0, 0.0); n * n];
    for i in 0..n {
        for k in 0..n {
            if i != k {
                let s = 0.5 * (ap[i * n + k] - ap[k * n + i]);
                h[i * n + k] = C64::new(0.0, -s);
            }
        }
    }
    let (w_im, vfull) = hermitian_eig(&h, n)?;
    let half = n / 2;
    let mut lambda: Vec<C64> = w_im[..half].iter().map(|&wi| C64::new(w_re, wi)).collect();
    let mut v = vec![C64::new(0.0, 0.0); n * half];
    for r in 0..n {
        v[r * half..(r + 1) * half].copy_from_slice(&vfull[r * n..r * n + half]);
    }
    if half >= 2 && lambda[half - 2].norm() <= 1e-4 {
        return Err(SsmError::Invalid(
            "nplr: more than one zero eigenvalue pair".into(),
        ));
    }
    if lambda[half - 1].norm() < 1e-4 {
        for r in 0..n {
            v[r * half + half - 1] = C64::new(0.0, 0.0);
        }
        v[half - 1] = C64::new(std::f64::consts::FRAC_1_SQRT_2, 0.0);
        v[half + half - 1] = C64::new(0.0, std::f64::consts::FRAC_1_SQRT_2);
        lambda[half - 1] = C64::new(w_re, 0.0);
    }
    // V* x for real x.
    let vstar = |x: &[f64]| -> Vec<C64> {
        (0..half)
            .map(|c| (0..n).map(|r| v[r * half + c].conj() * x[r]).sum())
            .collect()
    };
    let mut bt = vstar(&b);
    if let Some(clip) = b_clip {
        for z in &mut bt {
            z.im = z.im.clamp(-clip, clip);
        }
    }
    let pt: Vec<C64> = (0..rank)
        .flat_map(|r| vstar(&p[r * n..(r + 1) * n]))
        .collect();
    Ok(Nplr {
        n,
        rank,
        lambda,
        p: pt,
        b: bt,
        v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A = V_f (Λ_f − P̃_f P̃_f*) V_f* with V_f = [V, conj V] reproduces the dense HiPPO matrix.
    #[test]
    fn nplr_reconstructs_dense_a() {
        for (m, rank) in [(Measure::LegS, 1), (Measure::LegT, 2), (Measure::FouT, 1)] {
            let n = 16;
            let (a, _) = transition(m, n).unwrap();
            let d = nplr(m, n, rank, None).unwrap();
            let half = n / 2;
            let vf = |r: usize, c: usize| {
                if c < half {
                    d.v[r * half + c]
                } else {
                    d.v[r * half + c - half].conj()
                }
            };
            let lam = |c: usize| {
                if c < half {
                    d.lambda[c]
                } else {
                    d.lambda[c - half].conj()
                }
            };
            let pf = |q: usize, c: usize| {
                if c < half {
                    d.p[q * half + c]
                } else {
                    d.p[q * half + c - half].conj()
                }
            };
            let mut err = 0.0f64;
            for i in 0..n {
                for k in 0..n {
                    // Σ_{c,c'} V_ic (Λ_c δ_cc' − Σ_q P_qc conj(P_qc')) conj(V_kc')
                    let mut s = C64::new(0.0, 0.0);
                    for c in 0..n {
                        s += vf(i, c) * lam(c) * vf(k, c).conj();
                        for c2 in 0..n {
                            let mut pp = C64::new(0.0, 0.0);
                            for q in 0..rank {
                                pp += pf(q, c) * pf(q, c2).conj();
                            }
                            s -= vf(i, c) * pp * vf(k, c2).conj();
                        }
                    }
                    err = err.max((s.re - a[i * n + k]).abs()).max(s.im.abs());
                }
            }
            assert!(err < 1e-10, "{m:?}: reconstruction error {err}");
        }
    }
}
