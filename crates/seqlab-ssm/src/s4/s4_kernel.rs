//! The S4 kernel for a diagonal-plus-low-rank (DPLR) state matrix A = Λ − PP* (S4 paper,
//! Gu et al. 2022, Algorithm 1 and §3.3):
//!
//! 1. C̃ = (I − Ā^L)*C is set up once ([`s4_c_tilde`], Lemma C.2 / eq. (7)), so the truncated
//!    generating function of the bilinear-discretised SSM at the L-th roots of unity ω_j is
//!    K̂(ω) = 2/(1+ω)·[C̃*R(z)B − C̃*R(z)P·(1 + P*R(z)P)⁻¹·P*R(z)B] with z = 2(1−ω)/(1+ω) and
//!    R(z) = (z − ΔΛ)⁻¹, every numerator scaled by Δ (Lemma C.3, the Woodbury identity,
//!    eq. (8));
//! 2. the four resolvent terms are Cauchy sums Σ_n v_n/(z − w_n) over the conjugate-extended
//!    modes ([`cauchy`], Prop. 3 / Lemma C.4);
//! 3. K = irfft(K̂) of length L (Lemma C.2).
//!
//! Backward is hand-written through all three steps (checked against finite differences in
//! the tests). Rank 1 (LegS, FouT). Also here: the exact O(N) recurrence of the same
//! bilinear DPLR system ([`S4Recurrence`], the "linear" step mode of state-spaces/s4) and the
//! dense discrete Ā the C̃ set-up needs. Everything in f64, parallel over channels.

use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::num_complex::Complex64 as C64;

use super::linalg::{matpow, solve};
use super::s4d_kernel::scan_by_steps;
use crate::error::{check_len, Result, SsmError};

const ZERO: C64 = C64 { re: 0.0, im: 0.0 };

/// Cauchy kernel with conjugate pairs (S4 paper Prop. 3; state-spaces/s4 `cauchy_naive` /
/// `cauchy_mult`): for each row r and node j,
/// `out[r, j] = Σ_n v[r,n]/(z[j] − w[r,n]) + conj(v[r,n])/(z[j] − conj(w[r,n]))`.
/// `v`, `w` (rows, n); `z` (lz) shared by all rows; `out` (rows, lz); complex as re / im slices.
#[allow(clippy::too_many_arguments)]
pub fn cauchy(
    v_re: &[f64],
    v_im: &[f64],
    w_re: &[f64],
    w_im: &[f64],
    z_re: &[f64],
    z_im: &[f64],
    rows: usize,
    n: usize,
    lz: usize,
    out_re: &mut [f64],
    out_im: &mut [f64],
) -> Result<()> {
    for (name, s) in [
        ("v_re", v_re),
        ("v_im", v_im),
        ("w_re", w_re),
        ("w_im", w_im),
    ] {
        check_len(name, s.len(), rows * n, || format!("(rows={rows}, n={n})"))?;
    }
    for (name, s) in [("z_re", z_re), ("z_im", z_im)] {
        check_len(name, s.len(), lz, || format!("(lz={lz})"))?;
    }
    for (name, s) in [("out_re", &*out_re), ("out_im", &*out_im)] {
        check_len(name, s.len(), rows * lz, || {
            format!("(rows={rows}, lz={lz})")
        })?;
    }
    if lz == 0 {
        return Ok(());
    }
    out_re
        .par_chunks_mut(lz)
        .zip(out_im.par_chunks_mut(lz))
        .enumerate()
        .for_each(|(r, (ore, oim))| {
            let v: Vec<C64> = (0..n)
                .map(|k| C64::new(v_re[r * n + k], v_im[r * n + k]))
                .collect();
            let w: Vec<C64> = (0..n)
                .map(|k| C64::new(w_re[r * n + k], w_im[r * n + k]))
                .collect();
            for j in 0..lz {
                let z = C64::new(z_re[j], z_im[j]);
                let s = cauchy_one(&v, &w, z);
                ore[j] = s.re;
                oim[j] = s.im;
            }
        });
    Ok(())
}

/// Σ_n v/(z−w) + v̄/(z−w̄) = Σ_n (2Re(v)·z − 2Re(v·w̄)) / (z² − 2Re(w)·z + |w|²).
#[inline]
fn cauchy_one(v: &[C64], w: &[C64], z: C64) -> C64 {
    let z2 = z * z;
    let mut acc = ZERO;
    for (v, w) in v.iter().zip(w) {
        let num = z * (2.0 * v.re) - 2.0 * (v * w.conj()).re;
        let den = z2 - z * (2.0 * w.re) + w.norm_sqr();
        acc += num / den;
    }
    acc
}

/// H rank-1 DPLR SSMs with N/2 modes each (S4 paper eq. (6) in the diagonal basis): Λ, P, B
/// and C (C̃ for the kernel, the true C for [`S4Recurrence`] / [`s4_c_tilde`]), all (H, N/2)
/// re / im slices; Δ (H). A = Λ − PP* on the conjugate-extended modes.
#[derive(Clone, Copy, Debug)]
pub struct DplrParams<'a> {
    /// Channels H.
    pub h: usize,
    /// Modes per channel (N/2).
    pub n: usize,
    /// Re Λ.
    pub lambda_re: &'a [f64],
    /// Im Λ.
    pub lambda_im: &'a [f64],
    /// Re P.
    pub p_re: &'a [f64],
    /// Im P.
    pub p_im: &'a [f64],
    /// Re B.
    pub b_re: &'a [f64],
    /// Im B.
    pub b_im: &'a [f64],
    /// Re C (or C̃).
    pub c_re: &'a [f64],
    /// Im C (or C̃).
    pub c_im: &'a [f64],
    /// Δ (H).
    pub dt: &'a [f64],
}

/// One channel's parameters, complex.
struct Chan {
    lam: Vec<C64>,
    p: Vec<C64>,
    b: Vec<C64>,
    c: Vec<C64>,
    dt: f64,
}

impl DplrParams<'_> {
    pub(crate) fn check(&self) -> Result<()> {
        let (h, n) = (self.h, self.n);
        for (name, v) in [
            ("lambda_re", self.lambda_re),
            ("lambda_im", self.lambda_im),
            ("P_re", self.p_re),
            ("P_im", self.p_im),
            ("B_re", self.b_re),
            ("B_im", self.b_im),
            ("C_re", self.c_re),
            ("C_im", self.c_im),
        ] {
            check_len(name, v.len(), h * n, || format!("(h={h}, n={n})"))?;
            if !v.iter().all(|x| x.is_finite()) {
                return Err(SsmError::Invalid(format!("{name}: non-finite value")));
            }
        }
        check_len("dt", self.dt.len(), h, || format!("(h={h})"))?;
        if !self.dt.iter().all(|x| x.is_finite() && *x > 0.0) {
            return Err(SsmError::Invalid("dt: must be finite and > 0".into()));
        }
        if n == 0 {
            return Err(SsmError::Invalid("DPLR: N/2 must be > 0".into()));
        }
        Ok(())
    }

    fn chan(&self, hi: usize, rate: f64) -> Chan {
        let n = self.n;
        let cx = |re: &[f64], im: &[f64]| -> Vec<C64> {
            (0..n)
                .map(|k| C64::new(re[hi * n + k], im[hi * n + k]))
                .collect()
        };
        Chan {
            lam: cx(self.lambda_re, self.lambda_im),
            p: cx(self.p_re, self.p_im),
            b: cx(self.b_re, self.b_im),
            c: cx(self.c_re, self.c_im),
            dt: self.dt[hi] * rate,
        }
    }
}

/// Discrete length round(l / rate) (state-spaces/s4 `SSMKernelDPLR.forward`).
fn discrete_len(l: usize, rate: f64) -> Result<usize> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(SsmError::Invalid(format!(
            "rate must be finite and > 0, got {rate}"
        )));
    }
    let ld = (l as f64 / rate).round() as usize;
    if ld == 0 {
        return Err(SsmError::Invalid(format!(
            "kernel length round({l}/{rate}) is 0"
        )));
    }
    Ok(ld)
}

/// Roots of unity ω_j = exp(−2πij/L) for j = 0..L/2 and their bilinear images
/// z_j = 2(1−ω_j)/(1+ω_j); the Nyquist node (even L, ω = −1, z = ∞) is flagged instead.
fn nodes(ld: usize) -> (Vec<C64>, Vec<C64>, bool) {
    let nb = ld / 2 + 1;
    let nyq = ld.is_multiple_of(2);
    let omega: Vec<C64> = (0..nb)
        .map(|j| C64::from_polar(1.0, -2.0 * std::f64::consts::PI * j as f64 / ld as f64))
        .collect();
    let z = omega
        .iter()
        .enumerate()
        .map(|(j, &w)| {
            if nyq && j == nb - 1 {
                ZERO
            } else {
                (1.0 - w) * 2.0 / (1.0 + w)
            }
        })
        .collect();
    (omega, z, nyq)
}

/// The four products of the rank-1 Woodbury identity, Δ folded in:
/// v_BC = B·C·Δ, v_BQ = B·P̄·Δ, v_PC = P·C·Δ, v_PQ = P·P̄·Δ; and w = Λ·Δ.
fn products(c: &Chan) -> ([Vec<C64>; 4], Vec<C64>) {
    let dt = c.dt;
    let n = c.lam.len();
    let mut v: [Vec<C64>; 4] = Default::default();
    for k in 0..n {
        let (b, p, cc) = (c.b[k], c.p[k], c.c[k]);
        v[0].push(b * cc * dt);
        v[1].push(b * p.conj() * dt);
        v[2].push(p * cc * dt);
        v[3].push(p * p.conj() * dt);
    }
    let w = c.lam.iter().map(|l| l * dt).collect();
    (v, w)
}

/// Forward state of one channel: the spectrum K̂ (L/2+1 bins) and the resolvent terms.
struct Spec {
    kf: Vec<C64>,
    r: [Vec<C64>; 4],
}

fn channel_spectrum(c: &Chan, omega: &[C64], z: &[C64], nyq: bool) -> Spec {
    let (v, w) = products(c);
    let nb = omega.len();
    let mut r: [Vec<C64>; 4] = Default::default();
    let mut kf = vec![ZERO; nb];
    for j in 0..nb {
        if nyq && j == nb - 1 {
            // z → ∞: r_ab ~ 2ΣRe(v_ab)/z, 2/(1+ω) = z/(1−ω) = z/2, the Woodbury term vanishes.
            let s: f64 = v[0].iter().map(|x| x.re).sum();
            kf[j] = C64::new(s, 0.0);
            for ra in &mut r {
                ra.push(ZERO);
            }
            continue;
        }
        let rr: Vec<C64> = v.iter().map(|va| cauchy_one(va, &w, z[j])).collect();
        let k = rr[0] - rr[1] * rr[2] / (1.0 + rr[3]);
        kf[j] = k * 2.0 / (1.0 + omega[j]);
        for (ra, x) in r.iter_mut().zip(rr) {
            ra.push(x);
        }
    }
    Spec { kf, r }
}

/// The S4 DPLR kernel (Algorithm 1): `p.c` must hold C̃ set up for length `l`
/// ([`s4_c_tilde`]); returns K (H, round(l/rate)) computed at step Δ·rate on the
/// round(l/rate)-th roots of unity.
pub fn s4_kernel(p: &DplrParams<'_>, l: usize, rate: f64) -> Result<Vec<f64>> {
    p.check()?;
    let ld = discrete_len(l, rate)?;
    let (omega, z, nyq) = nodes(ld);
    let c2r = RealFftPlanner::<f64>::new().plan_fft_inverse(ld);
    let mut k = vec![0.0; p.h * ld];
    k.par_chunks_mut(ld)
        .enumerate()
        .try_for_each(|(hi, row)| -> Result<()> {
            let c = p.chan(hi, rate);
            let mut kf = channel_spectrum(&c, &omega, &z, nyq).kf;
            kf[0].im = 0.0;
            if nyq {
                let last = kf.len() - 1;
                kf[last].im = 0.0;
            }
            c2r.process(&mut kf, row)
                .map_err(|e| SsmError::Invalid(format!("irfft: {e}")))?;
            for x in row.iter_mut() {
                *x /= ld as f64;
            }
            Ok(())
        })?;
    Ok(k)
}

/// Gradients of a real loss w.r.t. the DPLR parameters (complex: (∂/∂Re, ∂/∂Im)).
#[derive(Clone, Debug, Default)]
pub struct DplrGrads {
    /// ∂ℒ/∂Re Λ (H, N/2).
    pub lambda_re: Vec<f64>,
    /// ∂ℒ/∂Im Λ.
    pub lambda_im: Vec<f64>,
    /// ∂ℒ/∂Re P (P = Q tied).
    pub p_re: Vec<f64>,
    /// ∂ℒ/∂Im P.
    pub p_im: Vec<f64>,
    /// ∂ℒ/∂Re B.
    pub b_re: Vec<f64>,
    /// ∂ℒ/∂Im B.
    pub b_im: Vec<f64>,
    /// ∂ℒ/∂Re C̃.
    pub c_re: Vec<f64>,
    /// ∂ℒ/∂Im C̃.
    pub c_im: Vec<f64>,
    /// ∂ℒ/∂Δ (H).
    pub dt: Vec<f64>,
}

/// Backward of [`s4_kernel`] given ∂ℒ/∂K (H, round(l/rate)): through the inverse FFT
/// (ḡ_K̂ = c_j/L·rfft(g)), the Woodbury combination, the Cauchy sums and the products.
pub fn s4_kernel_bwd(p: &DplrParams<'_>, l: usize, rate: f64, grad_k: &[f64]) -> Result<DplrGrads> {
    p.check()?;
    let ld = discrete_len(l, rate)?;
    let (h, n) = (p.h, p.n);
    check_len("grad_k", grad_k.len(), h * ld, || {
        format!("(h={h}, l={ld})")
    })?;
    let (omega, z, nyq) = nodes(ld);
    let nb = omega.len();
    let r2c = RealFftPlanner::<f64>::new().plan_fft_forward(ld);
    let per: Vec<(Vec<[C64; 4]>, f64)> = (0..h)
        .into_par_iter()
        .map(|hi| -> Result<(Vec<[C64; 4]>, f64)> {
            let c = p.chan(hi, rate);
            let spec = channel_spectrum(&c, &omega, &z, nyq);
            // ∂ℒ/∂K̂_j = c_j/L · rfft(g)_j (c = 1 for DC / Nyquist, whose Im is dropped, else 2).
            let mut g = grad_k[hi * ld..(hi + 1) * ld].to_vec();
            let mut gs = vec![ZERO; nb];
            r2c.process(&mut g, &mut gs)
                .map_err(|e| SsmError::Invalid(format!("rfft: {e}")))?;
            let (v, w) = products(&c);
            let mut gv = vec![[ZERO; 4]; n];
            let mut gw = vec![ZERO; n];
            for j in 0..nb {
                let edge = j == 0 || (nyq && j == nb - 1);
                let mut gk = gs[j] * (if edge { 1.0 } else { 2.0 } / ld as f64);
                if edge {
                    gk.im = 0.0;
                }
                if nyq && j == nb - 1 {
                    for gvk in gv.iter_mut() {
                        gvk[0] += C64::new(gk.re, 0.0);
                    }
                    continue;
                }
                let gkp = (2.0 / (1.0 + omega[j])).conj() * gk;
                let r = [spec.r[0][j], spec.r[1][j], spec.r[2][j], spec.r[3][j]];
                let inv = 1.0 / (1.0 + r[3]);
                let gr = [
                    gkp,
                    (-r[2] * inv).conj() * gkp,
                    (-r[1] * inv).conj() * gkp,
                    (r[1] * r[2] * inv * inv).conj() * gkp,
                ];
                let zj = z[j];
                for k in 0..n {
                    let d1 = 1.0 / (zj - w[k]);
                    let d2 = 1.0 / (zj - w[k].conj());
                    for a in 0..4 {
                        gv[k][a] += gr[a] * d1.conj() + gr[a].conj() * d2;
                        gw[k] += gr[a] * (v[a][k] * d1 * d1).conj()
                            + gr[a].conj() * v[a][k].conj() * d2 * d2;
                    }
                }
            }
            // Chain to (Λ, P, B, C̃, Δ).
            let dt = c.dt;
            let mut out = Vec::with_capacity(n);
            let mut gdt = 0.0;
            for k in 0..n {
                let (b, pp, cc, lam) = (c.b[k], c.p[k], c.c[k], c.lam[k]);
                let [g0, g1, g2, g3] = gv[k];
                let gb = (cc * dt).conj() * g0 + (pp.conj() * dt).conj() * g1;
                let gc = (b * dt).conj() * g0 + (pp * dt).conj() * g2;
                let gp = (cc * dt).conj() * g2
                    + (pp.conj() * dt).conj() * g3
                    + g1.conj() * b * dt
                    + g3.conj() * pp * dt;
                let gl = gw[k] * dt;
                gdt += ((b * cc).conj() * g0
                    + (b * pp.conj()).conj() * g1
                    + (pp * cc).conj() * g2
                    + (pp * pp.conj()).conj() * g3
                    + lam.conj() * gw[k])
                    .re;
                out.push([gl, gp, gb, gc]);
            }
            Ok((out, gdt * rate))
        })
        .collect::<Result<_>>()?;
    let mut g = DplrGrads {
        lambda_re: vec![0.0; h * n],
        lambda_im: vec![0.0; h * n],
        p_re: vec![0.0; h * n],
        p_im: vec![0.0; h * n],
        b_re: vec![0.0; h * n],
        b_im: vec![0.0; h * n],
        c_re: vec![0.0; h * n],
        c_im: vec![0.0; h * n],
        dt: vec![0.0; h],
    };
    for (hi, (rows, gdt)) in per.into_iter().enumerate() {
        g.dt[hi] = gdt;
        for (k, [gl, gp, gb, gc]) in rows.into_iter().enumerate() {
            let i = hi * n + k;
            g.lambda_re[i] = gl.re;
            g.lambda_im[i] = gl.im;
            g.p_re[i] = gp.re;
            g.p_im[i] = gp.im;
            g.b_re[i] = gb.re;
            g.b_im[i] = gb.im;
            g.c_re[i] = gc.re;
            g.c_im[i] = gc.im;
        }
    }
    Ok(g)
}

/// One channel of the bilinear DPLR recurrence on the conjugate-extended (2·N/2) modes:
/// (2/Δ − A)x' = (2/Δ + A)x + 2B·u with A = Λ − PP*, solved in O(N) by Sherman–Morrison
/// (S4 paper App. C.2, eq. (10)–(11); state-spaces/s4 `_step_state_linear`).
#[derive(Clone, Debug)]
struct ChanStep {
    /// (2/Δ − Λ)⁻¹.
    dg: Vec<C64>,
    /// 2/Δ + Λ.
    e: Vec<C64>,
    p: Vec<C64>,
    b: Vec<C64>,
    c: Vec<C64>,
    /// 1 + P*·dg·P.
    denom: C64,
}

fn conj_ext(x: &[C64]) -> Vec<C64> {
    x.iter()
        .copied()
        .chain(x.iter().map(|z| z.conj()))
        .collect()
}

impl ChanStep {
    fn new(c: &Chan) -> Self {
        let lam = conj_ext(&c.lam);
        let p = conj_ext(&c.p);
        let dg: Vec<C64> = lam.iter().map(|&l| 1.0 / (2.0 / c.dt - l)).collect();
        let e = lam.iter().map(|&l| 2.0 / c.dt + l).collect();
        let denom = 1.0
            + p.iter()
                .zip(&dg)
                .map(|(p, d)| p.conj() * d * p)
                .sum::<C64>();
        Self {
            dg,
            e,
            p,
            b: conj_ext(&c.b),
            c: conj_ext(&c.c),
            denom,
        }
    }

    /// x ← Ā x + B̄ u.
    fn advance(&self, x: &mut [C64], u: f64) {
        let px: C64 = self.p.iter().zip(x.iter()).map(|(p, x)| p.conj() * x).sum();
        let mut pr = ZERO;
        for (k, xk) in x.iter_mut().enumerate() {
            let r = self.e[k] * *xk - self.p[k] * px + self.b[k] * (2.0 * u);
            *xk = self.dg[k] * r;
            pr += self.p[k].conj() * *xk;
        }
        let f = pr / self.denom;
        for (k, xk) in x.iter_mut().enumerate() {
            *xk -= self.dg[k] * self.p[k] * f;
        }
    }

    /// Dense Ā (2n × 2n, row-major), column j = Ā e_j.
    fn dense_a(&self) -> Vec<C64> {
        let m = self.e.len();
        let mut a = vec![ZERO; m * m];
        let mut x = vec![ZERO; m];
        for j in 0..m {
            x.iter_mut().for_each(|v| *v = ZERO);
            x[j] = C64::new(1.0, 0.0);
            self.advance(&mut x, 0.0);
            for i in 0..m {
                a[i * m + j] = x[i];
            }
        }
        a
    }
}

/// C̃ = C·(I − Ā^L) (S4 paper Lemma C.2: the truncated generating function needs
/// C̃* = C*(I − Ā^L)); `p.c` holds the true C. Returns (C̃_re, C̃_im) (H, N/2).
pub fn s4_c_tilde(p: &DplrParams<'_>, l: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    c_transform(p, l, false)
}

/// Inverse of [`s4_c_tilde`]: C = C̃·(I − Ā^L)⁻¹ (state-spaces/s4 `_setup_step`), for
/// stepping a model trained in C̃ form. Errors if I − Ā^L is singular.
pub fn s4_true_c(p: &DplrParams<'_>, l: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    c_transform(p, l, true)
}

fn c_transform(p: &DplrParams<'_>, l: usize, inverse: bool) -> Result<(Vec<f64>, Vec<f64>)> {
    p.check()?;
    let n = p.n;
    let rows: Vec<Vec<C64>> = (0..p.h)
        .into_par_iter()
        .map(|hi| -> Result<Vec<C64>> {
            let c = p.chan(hi, 1.0);
            let st = ChanStep::new(&c);
            let m = 2 * n;
            let al = matpow(&st.dense_a(), m, l);
            // M = I − Ā^L; C̃ᵀ = Mᵀ Cᵀ.
            let mut mt = vec![ZERO; m * m];
            for i in 0..m {
                for j in 0..m {
                    let id = if i == j { C64::new(1.0, 0.0) } else { ZERO };
                    mt[j * m + i] = id - al[i * m + j];
                }
            }
            let cf = conj_ext(&c.c);
            let res = if inverse {
                solve(&mt, &cf, m)?
            } else {
                (0..m)
                    .map(|i| (0..m).map(|j| mt[i * m + j] * cf[j]).sum())
                    .collect()
            };
            Ok(res[..n].to_vec())
        })
        .collect::<Result<_>>()?;
    let re = rows.iter().flatten().map(|z| z.re).collect();
    let im = rows.iter().flatten().map(|z| z.im).collect();
    Ok((re, im))
}

/// Recurrent (step) mode of the S4 DPLR SSM: the exact bilinear recurrence
/// x_t = Āx_{t−1} + B̄u_t, y_t = Re(C·x_t) over the conjugate-extended modes (so y is the
/// output of the real system), O(N) per step (S4 paper App. C.2). Built from the TRUE C
/// (use [`s4_true_c`] on a C̃); gives the same outputs as [`s4_kernel`] + convolution.
#[derive(Clone, Debug)]
pub struct S4Recurrence {
    h: usize,
    n: usize,
    chans: Vec<ChanStep>,
}

impl S4Recurrence {
    /// Discretises `p` (true C) at step Δ·rate.
    pub fn new(p: &DplrParams<'_>, rate: f64) -> Result<Self> {
        p.check()?;
        discrete_len(1, rate)?;
        Ok(Self {
            h: p.h,
            n: p.n,
            chans: (0..p.h)
                .map(|hi| ChanStep::new(&p.chan(hi, rate)))
                .collect(),
        })
    }

    /// Zero state (batch, H, 2·N/2) — conjugate-extended modes.
    pub fn zero_state(&self, batch: usize) -> Vec<C64> {
        vec![ZERO; batch * self.h * 2 * self.n]
    }

    /// One step: `u` (batch, H), `state` (batch, H, N) updated; returns y (batch, H) (+ D·u).
    pub fn step(&self, u: &[f64], d: Option<&[f64]>, state: &mut [C64]) -> Result<Vec<f64>> {
        let (h, m) = (self.h, 2 * self.n);
        if h == 0 {
            return Ok(Vec::new());
        }
        let batch = u.len() / h;
        check_len("u", u.len(), batch * h, || format!("(batch, h={h})"))?;
        check_len("state", state.len(), batch * h * m, || {
            format!("(batch={batch}, h={h}, n={m})")
        })?;
        if let Some(d) = d {
            check_len("D", d.len(), h, || format!("(h={h})"))?;
        }
        let mut y = vec![0.0; batch * h];
        for bh in 0..batch * h {
            let ch = &self.chans[bh % h];
            let x = &mut state[bh * m..(bh + 1) * m];
            ch.advance(x, u[bh]);
            let yv: C64 = ch.c.iter().zip(x.iter()).map(|(c, x)| c * x).sum();
            y[bh] = yv.re + d.map_or(0.0, |d| d[bh % h] * u[bh]);
        }
        Ok(y)
    }

    /// Runs the recurrence over `u` (batch, H, L); returns y (batch, H, L).
    pub fn scan(
        &self,
        u: &[f64],
        d: Option<&[f64]>,
        batch: usize,
        l: usize,
        state: &mut [C64],
    ) -> Result<Vec<f64>> {
        scan_by_steps(u, batch, self.h, l, |ut| self.step(ut, d, state))
    }
}
