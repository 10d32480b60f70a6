//! Small dense complex linear algebra in f64 that the S4 set-up needs (N ≤ a few hundred):
//! a cyclic Jacobi eigensolver for Hermitian matrices (the NPLR diagonalisation of HiPPO
//! matrices, S4 paper §3.3 / Lemma 3.2 — `A + PPᵀ` is skew-symmetric, so `−i(A + PPᵀ)` is
//! Hermitian), matrix products, integer powers by repeated squaring (dA^L for C̃) and an LU
//! solve with partial pivoting. Matrices are row-major `Vec<C64>` of `n × n`.

use rustfft::num_complex::Complex64 as C64;

use crate::error::{Result, SsmError};

/// Eigen-decomposition of a Hermitian `n × n` matrix `h` (row-major; only Hermitian input is
/// meaningful): returns (eigenvalues ascending, eigenvectors as the columns of a row-major
/// `n × n` unitary `V`), so that `h = V diag(λ) V*`. Cyclic Jacobi with complex rotations,
/// converged to machine precision (off-diagonal Frobenius norm ≤ 1e-15·‖h‖).
pub fn hermitian_eig(h: &[C64], n: usize) -> Result<(Vec<f64>, Vec<C64>)> {
    crate::error::check_len("h", h.len(), n * n, || format!("(n={n}, n={n})"))?;
    if h.iter().any(|x| !x.re.is_finite() || !x.im.is_finite()) {
        return Err(SsmError::Invalid("hermitian_eig: non-finite entry".into()));
    }
    let mut a = h.to_vec();
    // Symmetrise exactly (the lower triangle is taken as given, as LAPACK's eigh does).
    for i in 0..n {
        a[i * n + i] = C64::new(a[i * n + i].re, 0.0);
        for j in 0..i {
            a[j * n + i] = a[i * n + j].conj();
        }
    }
    let mut v = vec![C64::new(0.0, 0.0); n * n];
    for i in 0..n {
        v[i * n + i] = C64::new(1.0, 0.0);
    }
    let total: f64 = a.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
    let tol = 1e-15 * total.max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].norm_sqr())
            .sum::<f64>()
            .sqrt();
        if off <= tol {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let c = a[p * n + q];
                let cabs = c.norm();
                if cabs <= 1e-300 || cabs <= 1e-18 * tol {
                    continue;
                }
                let phase = c / cabs; // e^{iφ}
                let (app, aqq) = (a[p * n + p].re, a[q * n + q].re);
                let tau = (aqq - app) / (2.0 * cabs);
                let t = if tau >= 0.0 {
                    1.0 / (tau + (1.0 + tau * tau).sqrt())
                } else {
                    -1.0 / (-tau + (1.0 + tau * tau).sqrt())
                };
                let cs = 1.0 / (1.0 + t * t).sqrt();
                let sn = t * cs;
                let em = phase.conj(); // e^{−iφ}
                                       // U = D·J with D_qq = e^{−iφ}: columns (A ← A U, V ← V U) then rows (A ← U* A).
                for k in 0..n {
                    let (hp, hq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = hp * cs - em * hq * sn;
                    a[k * n + q] = hp * sn + em * hq * cs;
                    let (vp, vq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = vp * cs - em * vq * sn;
                    v[k * n + q] = vp * sn + em * vq * cs;
                }
                for k in 0..n {
                    let (hp, hq) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = hp * cs - phase * hq * sn;
                    a[q * n + k] = hp * sn + phase * hq * cs;
                }
                a[p * n + q] = C64::new(0.0, 0.0);
                a[q * n + p] = C64::new(0.0, 0.0);
            }
        }
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&i, &j| a[i * n + i].re.total_cmp(&a[j * n + j].re));
    let w: Vec<f64> = idx.iter().map(|&i| a[i * n + i].re).collect();
    let mut vs = vec![C64::new(0.0, 0.0); n * n];
    for (col, &i) in idx.iter().enumerate() {
        for r in 0..n {
            vs[r * n + col] = v[r * n + i];
        }
    }
    Ok((w, vs))
}

/// `a · b` for row-major `n × n` complex matrices.
pub fn matmul(a: &[C64], b: &[C64], n: usize) -> Vec<C64> {
    let mut c = vec![C64::new(0.0, 0.0); n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == C64::new(0.0, 0.0) {
                continue;
            }
            let (brow, crow) = (&b[k * n..(k + 1) * n], &mut c[i * n..(i + 1) * n]);
            for (cj, bj) in crow.iter_mut().zip(brow) {
                *cj += aik * bj;
            }
        }
    }
    c
}

/// `a^p` for a row-major `n × n` complex matrix by repeated squaring (as `power` in
/// state-spaces/s4), `p ≥ 0`.
pub fn matpow(a: &[C64], n: usize, mut p: usize) -> Vec<C64> {
    let mut result = vec![C64::new(0.0, 0.0); n * n];
    for i in 0..n {
        result[i * n + i] = C64::new(1.0, 0.0);
    }
    let mut base = a.to_vec();
    while p > 0 {
        if p & 1 == 1 {
            result = matmul(&base, &result, n);
        }
        p >>= 1;
        if p > 0 {
            base = matmul(&base, &base, n);
        }
    }
    result
}

/// Solves `a x = b` (row-major `n × n`, one right-hand side) by LU with partial pivoting.
/// Errors on a (numerically) singular matrix.
pub fn solve(a: &[C64], b: &[C64], n: usize) -> Result<Vec<C64>> {
    crate::error::check_len("a", a.len(), n * n, || format!("(n={n}, n={n})"))?;
    crate::error::check_len("b", b.len(), n, || format!("(n={n})"))?;
    let mut m = a.to_vec();
    let mut x = b.to_vec();
    let scale = m.iter().map(|z| z.norm()).fold(0.0, f64::max);
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| m[i * n + col].norm().total_cmp(&m[j * n + col].norm()))
            .unwrap_or(col);
        if m[piv * n + col].norm() <= 1e-300_f64.max(scale * 1e-17) {
            return Err(SsmError::Invalid("solve: singular matrix".into()));
        }
        if piv != col {
            for k in 0..n {
                m.swap(col * n + k, piv * n + k);
            }
            x.swap(col, piv);
        }
        let d = m[col * n + col];
        for r in col + 1..n {
            let f = m[r * n + col] / d;
            if f == C64::new(0.0, 0.0) {
                continue;
            }
            for k in col..n {
                let v = m[col * n + k];
                m[r * n + k] -= f * v;
            }
            let xc = x[col];
            x[r] -= f * xc;
        }
    }
    for r in (0..n).rev() {
        let mut s = x[r];
        for k in r + 1..n {
            s -= m[r * n + k] * x[k];
        }
        x[r] = s / m[r * n + r];
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_hermitian() {
        let n = 7;
        let mut h = vec![C64::new(0.0, 0.0); n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = if i == j {
                    C64::new((i as f64).sin() * 3.0, 0.0)
                } else {
                    C64::new((i * 7 + j) as f64 * 0.1 % 1.3, ((i + 2 * j) as f64).cos())
                };
                h[i * n + j] = v;
                h[j * n + i] = v.conj();
            }
        }
        let (w, v) = hermitian_eig(&h, n).unwrap();
        for c in 0..n {
            for r in 0..n {
                let hv: C64 = (0..n).map(|k| h[r * n + k] * v[k * n + c]).sum();
                assert!((hv - v[r * n + c] * w[c]).norm() < 1e-12);
            }
        }
        assert!(w.windows(2).all(|p| p[0] <= p[1]));
    }

    #[test]
    fn solve_and_pow() {
        let n = 4;
        let a: Vec<C64> = (0..n * n)
            .map(|i| C64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
            .collect();
        let b: Vec<C64> = (0..n).map(|i| C64::new(i as f64, 1.0)).collect();
        let x = solve(&a, &b, n).unwrap();
        for r in 0..n {
            let s: C64 = (0..n).map(|k| a[r * n + k] * x[k]).sum();
            assert!((s - b[r]).norm() < 1e-12);
        }
        let p3 = matpow(&a, n, 3);
        let m3 = matmul(&a, &matmul(&a, &a, n), n);
        for (x, y) in p3.iter().zip(&m3) {
            assert!((x - y).norm() < 1e-12);
        }
    }
}
