//! The S4D convolution kernel (S4D paper, Gu et al. 2022, §3 and eq. (5)–(6)): a diagonal
//! SSM (A, B, C) with one entry per conjugate pair is discretised (ZOH or bilinear) and its
//! kernel K[l] = 2·Re Σ_n C̄_n·dA_n^l is a Vandermonde matrix–vector product,
//!
//! - ZOH:      dA = exp(Δ·A),                 C̄ = C·B·(exp(Δ·A) − 1)/A,
//! - bilinear: dA = (1 + Δ·A/2)/(1 − Δ·A/2), C̄ = C·B·Δ/(1 − Δ·A/2),
//!
//! with a hand-written backward (checked against finite differences in the tests). All arrays
//! are flat f64 slices, complex values as separate re / im slices, (H, N/2) row-major; CPU
//! parallel over channels (rayon). `rate` multiplies Δ (state-spaces/s4 `_get_params`:
//! `dt = exp(log_dt) * rate`), i.e. a signal sampled `rate`× more coarsely.

use rayon::prelude::*;
use rustfft::num_complex::Complex64 as C64;

use crate::error::{check_len, Result, SsmError};

/// Discretisation rule (S4D paper §3.1, Table 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disc {
    /// Zero-order hold.
    Zoh,
    /// Bilinear (Tustin), as S4.
    Bilinear,
}

/// Steps between exact re-evaluations of exp(x·l) in the Vandermonde recurrences (the
/// z^{l+1} = z^l·z product drifts by ~1 ulp per step in between).
const ANCHOR: usize = 64;

fn check_finite(name: &'static str, v: &[f64]) -> Result<()> {
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(SsmError::Invalid(format!("{name}: non-finite value")))
    }
}

/// Log-Vandermonde product (S4D paper eq. (6), state-spaces/s4 `log_vandermonde`):
/// `out[h, l] = 2·Re Σ_n c[h, n]·exp(dt_a[h, n]·l)` for l = 0..L−1. `dt_a` is log dA (Δ·A for
/// ZOH), `c` the discretised C̄; both (h, n) as re / im slices, `out` (h, l).
#[allow(clippy::too_many_arguments)]
pub fn s4d_vandermonde_kernel(
    dt_a_re: &[f64],
    dt_a_im: &[f64],
    c_re: &[f64],
    c_im: &[f64],
    h: usize,
    n: usize,
    l: usize,
    out: &mut [f64],
) -> Result<()> {
    for (name, v) in [
        ("dt_a_re", dt_a_re),
        ("dt_a_im", dt_a_im),
        ("c_re", c_re),
        ("c_im", c_im),
    ] {
        check_len(name, v.len(), h * n, || format!("(h={h}, n={n})"))?;
    }
    check_len("out", out.len(), h * l, || format!("(h={h}, l={l})"))?;
    if l == 0 {
        return Ok(());
    }
    let np = n.div_ceil(4) * 4;
    out.par_chunks_mut(l).enumerate().for_each(|(hi, row)| {
        let (xr, xi) = (
            &dt_a_re[hi * n..(hi + 1) * n],
            &dt_a_im[hi * n..(hi + 1) * n],
        );
        let (vr, vi) = (&c_re[hi * n..(hi + 1) * n], &c_im[hi * n..(hi + 1) * n]);
        // z = exp(x) and w = c·z^l, padded to a multiple of 4 lanes with zeros.
        let mut zr = vec![0.0; np];
        let mut zi = vec![0.0; np];
        for k in 0..n {
            let e = C64::new(xr[k], xi[k]).exp();
            zr[k] = e.re;
            zi[k] = e.im;
        }
        let mut wr = vec![0.0; np];
        let mut wi = vec![0.0; np];
        for (blk, chunk) in row.chunks_mut(ANCHOR).enumerate() {
            let l0 = (blk * ANCHOR) as f64;
            for k in 0..n {
                let w = C64::new(vr[k], vi[k]) * (C64::new(xr[k], xi[k]) * l0).exp();
                wr[k] = w.re;
                wi[k] = w.im;
            }
            for o in chunk.iter_mut() {
                let mut acc = [0.0f64; 4];
                for (((wr4, wi4), zr4), zi4) in wr
                    .chunks_exact_mut(4)
                    .zip(wi.chunks_exact_mut(4))
                    .zip(zr.chunks_exact(4))
                    .zip(zi.chunks_exact(4))
                {
                    for j in 0..4 {
                        acc[j] += wr4[j];
                        let nr = wr4[j] * zr4[j] - wi4[j] * zi4[j];
                        let ni = wr4[j] * zi4[j] + wi4[j] * zr4[j];
                        wr4[j] = nr;
                        wi4[j] = ni;
                    }
                }
                *o = 2.0 * ((acc[0] + acc[2]) + (acc[1] + acc[3]));
            }
        }
    });
    Ok(())
}

/// Backward of [`s4d_vandermonde_kernel`]: given ∂ℒ/∂out (h, l), writes the gradients of the
/// real loss w.r.t. `dt_a` and `c` in torch's complex convention (∂ℒ/∂Re + i·∂ℒ/∂Im):
/// g_c = 2 Σ_l g_l·conj(z^l), g_x = 2·conj(c)·Σ_l g_l·l·conj(z^l).
#[allow(clippy::too_many_arguments)]
pub fn s4d_vandermonde_kernel_bwd(
    dt_a_re: &[f64],
    dt_a_im: &[f64],
    c_re: &[f64],
    c_im: &[f64],
    h: usize,
    n: usize,
    l: usize,
    grad_out: &[f64],
    g_dt_a: &mut [C64],
    g_c: &mut [C64],
) -> Result<()> {
    for (name, v) in [
        ("dt_a_re", dt_a_re),
        ("dt_a_im", dt_a_im),
        ("c_re", c_re),
        ("c_im", c_im),
    ] {
        check_len(name, v.len(), h * n, || format!("(h={h}, n={n})"))?;
    }
    check_len("grad_out", grad_out.len(), h * l, || {
        format!("(h={h}, l={l})")
    })?;
    check_len("g_dt_a", g_dt_a.len(), h * n, || format!("(h={h}, n={n})"))?;
    check_len("g_c", g_c.len(), h * n, || format!("(h={h}, n={n})"))?;
    if n == 0 {
        return Ok(());
    }
    g_dt_a
        .par_chunks_mut(n)
        .zip(g_c.par_chunks_mut(n))
        .enumerate()
        .for_each(|(hi, (gx, gc))| {
            let g = &grad_out[hi * l..(hi + 1) * l];
            let x: Vec<C64> = (0..n)
                .map(|k| C64::new(dt_a_re[hi * n + k], dt_a_im[hi * n + k]))
                .collect();
            let z: Vec<C64> = x.iter().map(|x| x.exp()).collect();
            let mut s0 = vec![C64::new(0.0, 0.0); n];
            let mut s1 = vec![C64::new(0.0, 0.0); n];
            let mut w = vec![C64::new(0.0, 0.0); n];
            for (blk, gch) in g.chunks(ANCHOR).enumerate() {
                let l0 = blk * ANCHOR;
                for k in 0..n {
                    w[k] = (x[k] * l0 as f64).exp();
                }
                for (j, &gl) in gch.iter().enumerate() {
                    let ll = (l0 + j) as f64;
                    for k in 0..n {
                        let wc = w[k].conj() * gl;
                        s0[k] += wc;
                        s1[k] += wc * ll;
                        w[k] *= z[k];
                    }
                }
            }
            for k in 0..n {
                let c = C64::new(c_re[hi * n + k], c_im[hi * n + k]);
                gc[k] = s0[k] * 2.0;
                gx[k] = c.conj() * s1[k] * 2.0;
            }
        });
    Ok(())
}

/// Parameters of H diagonal SSMs with N/2 complex modes each (S4D paper §3): A, B, C (H, N/2)
/// as re / im slices, Δ (H).
#[derive(Clone, Copy, Debug)]
pub struct S4dParams<'a> {
    /// Channels H.
    pub h: usize,
    /// Modes per channel, N/2.
    pub n: usize,
    /// Re A (H, N/2).
    pub a_re: &'a [f64],
    /// Im A.
    pub a_im: &'a [f64],
    /// Re B.
    pub b_re: &'a [f64],
    /// Im B.
    pub b_im: &'a [f64],
    /// Re C.
    pub c_re: &'a [f64],
    /// Im C.
    pub c_im: &'a [f64],
    /// Δ (H), > 0.
    pub dt: &'a [f64],
}

impl S4dParams<'_> {
    fn check(&self) -> Result<()> {
        let (h, n) = (self.h, self.n);
        for (name, v) in [
            ("A_re", self.a_re),
            ("A_im", self.a_im),
            ("B_re", self.b_re),
            ("B_im", self.b_im),
            ("C_re", self.c_re),
            ("C_im", self.c_im),
        ] {
            check_len(name, v.len(), h * n, || format!("(h={h}, n={n})"))?;
            check_finite(name, v)?;
        }
        check_len("dt", self.dt.len(), h, || format!("(h={h})"))?;
        check_finite("dt", self.dt)?;
        Ok(())
    }

    fn get(&self, i: usize) -> (C64, C64, C64) {
        (
            C64::new(self.a_re[i], self.a_im[i]),
            C64::new(self.b_re[i], self.b_im[i]),
            C64::new(self.c_re[i], self.c_im[i]),
        )
    }
}

/// Per-mode discretisation: (x = log dA, f = C̄/(C·B), ∂f/∂A, ∂f/∂Δ, ∂x/∂A, ∂x/∂Δ).
fn disc_mode(a: C64, dt: f64, disc: Disc) -> (C64, C64, C64, C64, C64, C64) {
    let x = a * dt;
    match disc {
        Disc::Zoh => {
            let ex = x.exp();
            let (f, f_a) = if a.norm() < 1e-12 {
                // (e^{Δa} − 1)/a → Δ(1 + Δa/2); derivative Δ²/2.
                (dt * (1.0 + x * 0.5), C64::new(dt * dt * 0.5, 0.0))
            } else {
                ((ex - 1.0) / a, (ex * x - (ex - 1.0)) / (a * a))
            };
            (x, f, f_a, ex, C64::new(dt, 0.0), a)
        }
        Disc::Bilinear => {
            let den = 1.0 - x * 0.5;
            let xd = ((1.0 + x * 0.5) / den).ln();
            let f = dt / den;
            let f_a = dt * dt * 0.5 / (den * den);
            let f_dt = 1.0 / (den * den);
            let q = 1.0 - x * x * 0.25;
            (xd, f, f_a, f_dt, dt / q, a / q)
        }
    }
}

/// Discretised log dA and C̄ (S4D eq. (5)) for every (h, n): returns (x_re, x_im, v_re, v_im).
fn discretize_all(p: &S4dParams<'_>, disc: Disc, rate: f64) -> [Vec<f64>; 4] {
    let hn = p.h * p.n;
    let [mut xr, mut xi, mut vr, mut vi] =
        [vec![0.0; hn], vec![0.0; hn], vec![0.0; hn], vec![0.0; hn]];
    for i in 0..hn {
        let (a, b, c) = p.get(i);
        let dt = p.dt[i / p.n.max(1)] * rate;
        let (x, f, ..) = disc_mode(a, dt, disc);
        let v = c * b * f;
        xr[i] = x.re;
        xi[i] = x.im;
        vr[i] = v.re;
        vi[i] = v.im;
    }
    [xr, xi, vr, vi]
}

fn check_rate(rate: f64) -> Result<()> {
    if rate.is_finite() && rate > 0.0 {
        Ok(())
    } else {
        Err(SsmError::Invalid(format!(
            "rate must be finite and > 0, got {rate}"
        )))
    }
}

/// The S4D kernel K (H, L) (S4D paper eqs. (5)–(6)): discretise with `disc` at step Δ·rate,
/// then the Vandermonde product [`s4d_vandermonde_kernel`].
pub fn s4d_kernel(p: &S4dParams<'_>, disc: Disc, l: usize, rate: f64) -> Result<Vec<f64>> {
    p.check()?;
    check_rate(rate)?;
    let [xr, xi, vr, vi] = discretize_all(p, disc, rate);
    let mut k = vec![0.0; p.h * l];
    s4d_vandermonde_kernel(&xr, &xi, &vr, &vi, p.h, p.n, l, &mut k)?;
    Ok(k)
}

/// Gradients of a real loss w.r.t. the S4D parameters: complex ones as (∂/∂Re, ∂/∂Im), Δ real.
#[derive(Clone, Debug, Default)]
pub struct S4dGrads {
    /// ∂ℒ/∂Re A (H, N/2).
    pub a_re: Vec<f64>,
    /// ∂ℒ/∂Im A.
    pub a_im: Vec<f64>,
    /// ∂ℒ/∂Re B.
    pub b_re: Vec<f64>,
    /// ∂ℒ/∂Im B.
    pub b_im: Vec<f64>,
    /// ∂ℒ/∂Re C.
    pub c_re: Vec<f64>,
    /// ∂ℒ/∂Im C.
    pub c_im: Vec<f64>,
    /// ∂ℒ/∂Δ (H).
    pub dt: Vec<f64>,
}

/// Backward of [`s4d_kernel`] given ∂ℒ/∂K (H, L): chain rule through the Vandermonde product
/// and the discretisation (holomorphic steps back-propagate as ḡ_in = conj(f′)·ḡ_out).
pub fn s4d_kernel_bwd(
    p: &S4dParams<'_>,
    disc: Disc,
    l: usize,
    rate: f64,
    grad_k: &[f64],
) -> Result<S4dGrads> {
    p.check()?;
    check_rate(rate)?;
    let (h, n) = (p.h, p.n);
    check_len("grad_k", grad_k.len(), h * l, || format!("(h={h}, l={l})"))?;
    let [xr, xi, vr, vi] = discretize_all(p, disc, rate);
    let mut gx = vec![C64::new(0.0, 0.0); h * n];
    let mut gv = vec![C64::new(0.0, 0.0); h * n];
    s4d_vandermonde_kernel_bwd(&xr, &xi, &vr, &vi, h, n, l, grad_k, &mut gx, &mut gv)?;
    let mut g = S4dGrads {
        a_re: vec![0.0; h * n],
        a_im: vec![0.0; h * n],
        b_re: vec![0.0; h * n],
        b_im: vec![0.0; h * n],
        c_re: vec![0.0; h * n],
        c_im: vec![0.0; h * n],
        dt: vec![0.0; h],
    };
    for i in 0..h * n {
        let (a, b, c) = p.get(i);
        let dt = p.dt[i / n] * rate;
        let (_, f, f_a, f_dt, x_a, x_dt) = disc_mode(a, dt, disc);
        let gc = (b * f).conj() * gv[i];
        let gb = (c * f).conj() * gv[i];
        let gf = (c * b).conj() * gv[i];
        let ga = f_a.conj() * gf + x_a.conj() * gx[i];
        let gdt = (f_dt.conj() * gf + x_dt.conj() * gx[i]).re;
        g.a_re[i] = ga.re;
        g.a_im[i] = ga.im;
        g.b_re[i] = gb.re;
        g.b_im[i] = gb.im;
        g.c_re[i] = gc.re;
        g.c_im[i] = gc.im;
        g.dt[i / n] += gdt * rate;
    }
    Ok(g)
}

/// The S4D recurrence (S4D paper eq. (2) discretised, state-spaces/s4 `SSMKernelDiag.step`):
/// x_t = dA ⊙ x_{t−1} + dB·u_t, y_t = 2·Re Σ_n C_n x_{t,n} (+ D·u_t), one complex state per
/// conjugate pair. dB = B·(exp(ΔA) − 1)/A (ZOH) or B·Δ/(1 − ΔA/2) (bilinear).
#[derive(Clone, Debug)]
pub struct S4dRecurrence {
    /// Channels H.
    pub h: usize,
    /// Modes N/2.
    pub n: usize,
    /// dA (H, N/2).
    pub da: Vec<C64>,
    /// dB (H, N/2).
    pub db: Vec<C64>,
    /// C (H, N/2).
    pub c: Vec<C64>,
}

impl S4dRecurrence {
    /// Discretises `p` with `disc` at step Δ·rate.
    pub fn new(p: &S4dParams<'_>, disc: Disc, rate: f64) -> Result<Self> {
        p.check()?;
        check_rate(rate)?;
        let hn = p.h * p.n;
        let mut da = Vec::with_capacity(hn);
        let mut db = Vec::with_capacity(hn);
        let mut c = Vec::with_capacity(hn);
        for i in 0..hn {
            let (a, b, ci) = p.get(i);
            let (x, f, ..) = disc_mode(a, p.dt[i / p.n] * rate, disc);
            da.push(x.exp());
            db.push(b * f);
            c.push(ci);
        }
        Ok(Self {
            h: p.h,
            n: p.n,
            da,
            db,
            c,
        })
    }

    /// A zero state for `batch` sequences: (batch, H, N/2).
    pub fn zero_state(&self, batch: usize) -> Vec<C64> {
        vec![C64::new(0.0, 0.0); batch * self.h * self.n]
    }

    /// One step for `batch` sequences: `u` (batch, H), `state` (batch, H, N/2) updated in
    /// place, returns y (batch, H) = 2·Re(C·x) + D·u (`d` (H), optional).
    pub fn step(&self, u: &[f64], d: Option<&[f64]>, state: &mut [C64]) -> Result<Vec<f64>> {
        let (h, n) = (self.h, self.n);
        if h == 0 {
            return Ok(Vec::new());
        }
        let batch = u.len() / h;
        check_len("u", u.len(), batch * h, || format!("(batch, h={h})"))?;
        check_len("state", state.len(), batch * h * n, || {
            format!("(batch={batch}, h={h}, n={n})")
        })?;
        if let Some(d) = d {
            check_len("D", d.len(), h, || format!("(h={h})"))?;
        }
        let mut y = vec![0.0; batch * h];
        for bh in 0..batch * h {
            let hi = bh % h;
            let s = &mut state[bh * n..(bh + 1) * n];
            let mut acc = 0.0;
            for (k, sk) in s.iter_mut().enumerate() {
                let i = hi * n + k;
                *sk = self.da[i] * *sk + self.db[i] * u[bh];
                acc += (self.c[i] * *sk).re;
            }
            y[bh] = 2.0 * acc + d.map_or(0.0, |d| d[hi] * u[bh]);
        }
        Ok(y)
    }

    /// Runs the recurrence over `u` (batch, H, L) from `state` (batch, H, N/2, updated):
    /// returns y (batch, H, L).
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

/// Runs a recurrent `step` (one input per (batch, channel) → one output each) over `u`
/// (batch, H, L) position by position: the step modes' `scan`, y (batch, H, L).
pub(crate) fn scan_by_steps(
    u: &[f64],
    batch: usize,
    h: usize,
    l: usize,
    mut step: impl FnMut(&[f64]) -> Result<Vec<f64>>,
) -> Result<Vec<f64>> {
    check_len("u", u.len(), batch * h * l, || {
        format!("(batch={batch}, h={h}, l={l})")
    })?;
    let mut y = vec![0.0; batch * h * l];
    let mut ut = vec![0.0; batch * h];
    for t in 0..l {
        for bh in 0..batch * h {
            ut[bh] = u[bh * l + t];
        }
        let yt = step(&ut)?;
        for bh in 0..batch * h {
            y[bh * l + t] = yt[bh];
        }
    }
    Ok(y)
}
