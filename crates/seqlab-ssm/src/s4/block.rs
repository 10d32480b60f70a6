//! The S4 / S4D block (S4 paper §3.4 and App. D.2; state-spaces/s4 `S4Block` + `FFTConv`;
//! SaShiMi's pre-norm residual, Goel et al. 2022 §3): for x (B, L, H),
//!
//!   z = LayerNorm(x);  y = GELU(K ∗ z + D·z);  out = x + GLU(W·y + b)
//!
//! with K the S4D (diagonal) or S4 (DPLR) kernel of H independent SSMs. Parameters are candle
//! `Var`s (A with Re = −exp(θ) — the Hurwitz parameterisation —, Im A, B, C or C̃, log Δ, D, the
//! norm and the output projection), so the block trains through the differentiable ops of
//! [`super::tensor`]. [`S4Block::forward`] is the parallel (convolution) mode;
//! [`S4Block::step`] the recurrent mode, which gives the same outputs one token at a time.

use candle_core::{DType, Device, Tensor, Var, D};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::hippo::{nplr, Measure};
use super::init::{hurwitz_log_neg_re, log_uniform_log_dt, s4d_init_a, s4d_init_b, S4dInit};
use super::s4_kernel::{s4_c_tilde, s4_true_c, DplrParams, S4Recurrence};
use super::s4d_kernel::{Disc, S4dParams, S4dRecurrence};
use super::tensor::{fft_conv_tensor, s4_kernel_tensor, s4d_kernel_tensor};
use crate::error::{Result, SsmError};

/// Which SSM the block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SsmKind {
    /// S4D: diagonal A with the given init and discretisation.
    S4d(S4dInit, Disc),
    /// S4: DPLR A = Λ − PP* from the NPLR form of HiPPO-LegS, bilinear, C̃ for `l_max`.
    S4Legs,
}

/// Block hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct S4BlockConfig {
    /// Model width H.
    pub d_model: usize,
    /// State size N (even).
    pub d_state: usize,
    /// SSM kind.
    pub kind: SsmKind,
    /// Longest sequence (S4: the length C̃ is set up for; S4D: unused bound).
    pub l_max: usize,
    /// Δ range of the log-uniform init.
    pub dt_min: f64,
    /// Δ range of the log-uniform init.
    pub dt_max: f64,
    /// Relative sampling rate (Δ·rate, kernel length round(l_max/rate) for S4).
    pub rate: f64,
    /// Seed of the parameter init.
    pub seed: u64,
}

impl S4BlockConfig {
    /// Defaults of state-spaces/s4: N = 64, Δ ∈ [1e-3, 1e-1], rate 1.
    pub fn new(d_model: usize, kind: SsmKind, l_max: usize) -> Self {
        Self {
            d_model,
            d_state: 64,
            kind,
            l_max,
            dt_min: 1e-3,
            dt_max: 1e-1,
            rate: 1.0,
            seed: 0,
        }
    }
}

/// An S4 / S4D block with trainable `Var`s.
#[derive(Debug)]
pub struct S4Block {
    cfg: S4BlockConfig,
    /// θ with Re(A) (S4D) or Re(Λ) (S4) = −exp(θ), (H, N/2).
    pub log_neg_re: Var,
    /// Im A / Im Λ (H, N/2).
    pub a_im: Var,
    /// Re P (S4 only, tied P = Q).
    pub p_re: Option<Var>,
    /// Im P.
    pub p_im: Option<Var>,
    /// Re B (H, N/2).
    pub b_re: Var,
    /// Im B.
    pub b_im: Var,
    /// Re C (S4D) or Re C̃ (S4), (H, N/2).
    pub c_re: Var,
    /// Im C / Im C̃.
    pub c_im: Var,
    /// log Δ (H).
    pub log_dt: Var,
    /// D skip (H).
    pub d: Var,
    /// LayerNorm weight (H).
    pub ln_w: Var,
    /// LayerNorm bias (H).
    pub ln_b: Var,
    /// Output projection (2H, H) before the GLU.
    pub w_out: Var,
    /// Its bias (2H).
    pub b_out: Var,
}

/// Recurrent state of a block for `batch` sequences.
#[derive(Debug)]
pub struct S4BlockState {
    rec: Rec,
    state: Vec<super::C64>,
    batch: usize,
}

#[derive(Debug)]
enum Rec {
    Diag(S4dRecurrence),
    Dplr(S4Recurrence),
}

fn var(v: Vec<f64>, shape: &[usize], dtype: DType, dev: &Device) -> Result<Var> {
    Ok(Var::from_tensor(
        &Tensor::from_vec(v, shape, dev)?.to_dtype(dtype)?,
    )?)
}

fn vals(v: &Var) -> Result<Vec<f64>> {
    Ok(v.as_tensor()
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?)
}

impl S4Block {
    /// A freshly initialised block (S4D: `init` A and B, C ~ N(0, ½) per re / im; S4: NPLR
    /// of HiPPO-LegS with C ~ N(0, ½) turned into C̃ for `l_max`; D ~ N(0, 1); log Δ
    /// log-uniform; LayerNorm (1, 0); projection U(±1/√H)).
    pub fn new(cfg: S4BlockConfig, dtype: DType, dev: &Device) -> Result<Self> {
        let (h, n) = (cfg.d_model, cfg.d_state);
        if h == 0 || n < 2 || n % 2 != 0 || cfg.l_max == 0 {
            return Err(SsmError::Invalid(format!(
                "S4Block: need d_model > 0, even d_state >= 2, l_max > 0; got {h}, {n}, {}",
                cfg.l_max
            )));
        }
        let m = n / 2;
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let log_dt = log_uniform_log_dt(&mut rng, h, cfg.dt_min, cfg.dt_max)?;
        let mut c: Vec<(f64, f64)> = (0..h * m)
            .map(|_| {
                let s = std::f64::consts::FRAC_1_SQRT_2;
                (
                    rng.sample::<f64, _>(StandardNormal) * s,
                    rng.sample::<f64, _>(StandardNormal) * s,
                )
            })
            .collect();
        let rep =
            |v: &[super::C64]| -> Vec<super::C64> { (0..h).flat_map(|_| v.to_vec()).collect() };
        let (a, b, p) = match cfg.kind {
            SsmKind::S4d(init, _) => (rep(&s4d_init_a(init, n)?), rep(&s4d_init_b(init, n)?), None),
            SsmKind::S4Legs => {
                let d = nplr(Measure::LegS, n, 1, None)?;
                (rep(&d.lambda), rep(&d.b), Some(rep(&d.p)))
            }
        };
        let re = |v: &[super::C64]| v.iter().map(|z| z.re).collect::<Vec<_>>();
        let im = |v: &[super::C64]| v.iter().map(|z| z.im).collect::<Vec<_>>();
        if let (SsmKind::S4Legs, Some(p)) = (cfg.kind, &p) {
            // Store C̃ = C(I − Ā^L) for the kernel length.
            let dt: Vec<f64> = log_dt.iter().map(|x| x.exp()).collect();
            let (ar, ai, pr, pi, br, bi) = (re(&a), im(&a), re(p), im(p), re(&b), im(&b));
            let cr: Vec<f64> = c.iter().map(|z| z.0).collect();
            let ci: Vec<f64> = c.iter().map(|z| z.1).collect();
            let dp = DplrParams {
                h,
                n: m,
                lambda_re: &ar,
                lambda_im: &ai,
                p_re: &pr,
                p_im: &pi,
                b_re: &br,
                b_im: &bi,
                c_re: &cr,
                c_im: &ci,
                dt: &dt,
            };
            let (tr, ti) = s4_c_tilde(&dp, cfg.l_max)?;
            c = tr.into_iter().zip(ti).collect();
        }
        let hm = [h, m];
        let d: Vec<f64> = (0..h).map(|_| rng.sample(StandardNormal)).collect();
        let bound = 1.0 / (h as f64).sqrt();
        let w: Vec<f64> = (0..2 * h * h)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let bo: Vec<f64> = (0..2 * h)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Ok(Self {
            cfg,
            log_neg_re: var(
                a.iter().map(|z| hurwitz_log_neg_re(z.re)).collect(),
                &hm,
                dtype,
                dev,
            )?,
            a_im: var(im(&a), &hm, dtype, dev)?,
            p_re: p
                .as_ref()
                .map(|p| var(re(p), &hm, dtype, dev))
                .transpose()?,
            p_im: p
                .as_ref()
                .map(|p| var(im(p), &hm, dtype, dev))
                .transpose()?,
            b_re: var(re(&b), &hm, dtype, dev)?,
            b_im: var(im(&b), &hm, dtype, dev)?,
            c_re: var(c.iter().map(|z| z.0).collect(), &hm, dtype, dev)?,
            c_im: var(c.iter().map(|z| z.1).collect(), &hm, dtype, dev)?,
            log_dt: var(log_dt, &[h], dtype, dev)?,
            d: var(d, &[h], dtype, dev)?,
            ln_w: var(vec![1.0; h], &[h], dtype, dev)?,
            ln_b: var(vec![0.0; h], &[h], dtype, dev)?,
            w_out: var(w, &[2 * h, h], dtype, dev)?,
            b_out: var(bo, &[2 * h], dtype, dev)?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &S4BlockConfig {
        &self.cfg
    }

    /// Every trainable variable.
    pub fn vars(&self) -> Vec<Var> {
        let mut v = vec![
            self.log_neg_re.clone(),
            self.a_im.clone(),
            self.b_re.clone(),
            self.b_im.clone(),
            self.c_re.clone(),
            self.c_im.clone(),
            self.log_dt.clone(),
            self.d.clone(),
            self.ln_w.clone(),
            self.ln_b.clone(),
            self.w_out.clone(),
            self.b_out.clone(),
        ];
        v.extend(self.p_re.clone());
        v.extend(self.p_im.clone());
        v
    }

    /// The SSM kernel K (H, l) as a differentiable tensor.
    pub fn kernel(&self, l: usize) -> Result<Tensor> {
        let re = self.log_neg_re.as_tensor().exp()?.neg()?;
        let dt = self.log_dt.as_tensor().exp()?;
        match self.cfg.kind {
            SsmKind::S4d(_, disc) => Ok(s4d_kernel_tensor(
                &re,
                self.a_im.as_tensor(),
                self.b_re.as_tensor(),
                self.b_im.as_tensor(),
                self.c_re.as_tensor(),
                self.c_im.as_tensor(),
                &dt,
                disc,
                l,
                self.cfg.rate,
            )?),
            SsmKind::S4Legs => {
                let (Some(p_re), Some(p_im)) = (&self.p_re, &self.p_im) else {
                    return Err(SsmError::Invalid("S4 block without P".into()));
                };
                let k = s4_kernel_tensor(
                    &re,
                    self.a_im.as_tensor(),
                    p_re.as_tensor(),
                    p_im.as_tensor(),
                    self.b_re.as_tensor(),
                    self.b_im.as_tensor(),
                    self.c_re.as_tensor(),
                    self.c_im.as_tensor(),
                    &dt,
                    self.cfg.l_max,
                    self.cfg.rate,
                )?;
                let kl = k.dim(1)?;
                if l > kl {
                    return Err(SsmError::Invalid(format!(
                        "S4 block: sequence length {l} > kernel length {kl} (l_max/rate)"
                    )));
                }
                Ok(k.narrow(1, 0, l)?)
            }
        }
    }

    fn layer_norm(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let variance = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(variance + 1e-5)?.sqrt()?)?;
        Ok(xn
            .broadcast_mul(self.ln_w.as_tensor())?
            .broadcast_add(self.ln_b.as_tensor())?)
    }

    /// GELU(y) → W·(·) + b → GLU, on (…, H).
    fn head(&self, y: &Tensor) -> Result<Tensor> {
        let g = y.gelu_erf()?;
        let o = g
            .broadcast_matmul(&self.w_out.as_tensor().t()?)?
            .broadcast_add(self.b_out.as_tensor())?;
        let h = self.cfg.d_model;
        let a = o.narrow(D::Minus1, 0, h)?;
        let gate = o.narrow(D::Minus1, h, h)?;
        let sig = (gate.neg()?.exp()? + 1.0)?.recip()?;
        Ok(a.mul(&sig)?)
    }

    /// Parallel (convolution) mode: x (B, L, H) → (B, L, H) = x + GLU(W·GELU(K ∗ LN(x) + D·LN(x))).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, l, h) = x.dims3()?;
        if h != self.cfg.d_model {
            return Err(SsmError::Invalid(format!(
                "S4Block: input width {h}, expected {}",
                self.cfg.d_model
            )));
        }
        let z = self.layer_norm(x)?;
        let zt = z.transpose(1, 2)?.contiguous()?; // (B, H, L)
        let k = self.kernel(l)?;
        let y = fft_conv_tensor(&zt, &k)?;
        let y = (y + zt.broadcast_mul(&self.d.as_tensor().unsqueeze(1)?)?)?;
        let y = y.transpose(1, 2)?;
        Ok((x + self.head(&y)?)?)
    }

    /// A zero recurrent state for `batch` sequences (discretises the current parameters; S4
    /// converts C̃ back to the true C).
    pub fn init_state(&self, batch: usize) -> Result<S4BlockState> {
        let (h, m) = (self.cfg.d_model, self.cfg.d_state / 2);
        let re: Vec<f64> = vals(&self.log_neg_re)?.iter().map(|t| -t.exp()).collect();
        let (ai, br, bi, cr, ci) = (
            vals(&self.a_im)?,
            vals(&self.b_re)?,
            vals(&self.b_im)?,
            vals(&self.c_re)?,
            vals(&self.c_im)?,
        );
        let dt: Vec<f64> = vals(&self.log_dt)?.iter().map(|x| x.exp()).collect();
        let rec = match self.cfg.kind {
            SsmKind::S4d(_, disc) => {
                let p = S4dParams {
                    h,
                    n: m,
                    a_re: &re,
                    a_im: &ai,
                    b_re: &br,
                    b_im: &bi,
                    c_re: &cr,
                    c_im: &ci,
                    dt: &dt,
                };
                let r = S4dRecurrence::new(&p, disc, self.cfg.rate)?;
                Rec::Diag(r)
            }
            SsmKind::S4Legs => {
                let (Some(pr), Some(pi)) = (&self.p_re, &self.p_im) else {
                    return Err(SsmError::Invalid("S4 block without P".into()));
                };
                let (pr, pi) = (vals(pr)?, vals(pi)?);
                let p = DplrParams {
                    h,
                    n: m,
                    lambda_re: &re,
                    lambda_im: &ai,
                    p_re: &pr,
                    p_im: &pi,
                    b_re: &br,
                    b_im: &bi,
                    c_re: &cr,
                    c_im: &ci,
                    dt: &dt,
                };
                let (tr, ti) = s4_true_c(&p, self.cfg.l_max)?;
                let pt = DplrParams {
                    c_re: &tr,
                    c_im: &ti,
                    ..p
                };
                // The recurrence at Δ·rate; C̃ ↔ C used Δ (rate 1) as upstream's set-up.
                Rec::Dplr(S4Recurrence::new(&pt, self.cfg.rate)?)
            }
        };
        let state = match &rec {
            Rec::Diag(r) => r.zero_state(batch),
            Rec::Dplr(r) => r.zero_state(batch),
        };
        Ok(S4BlockState { rec, state, batch })
    }

    /// Recurrent mode: one token x (B, H) → (B, H), advancing `st`.
    pub fn step(&self, x: &Tensor, st: &mut S4BlockState) -> Result<Tensor> {
        let (b, h) = x.dims2()?;
        if b != st.batch || h != self.cfg.d_model {
            return Err(SsmError::Invalid(format!(
                "S4Block::step: input ({b}, {h}), state for batch {} width {}",
                st.batch, self.cfg.d_model
            )));
        }
        let z = self.layer_norm(x)?;
        let zv = z.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let d = vals(&self.d)?;
        let y = match &st.rec {
            Rec::Diag(r) => r.step(&zv, Some(&d), &mut st.state)?,
            Rec::Dplr(r) => r.step(&zv, Some(&d), &mut st.state)?,
        };
        let y = Tensor::from_vec(y, (b, h), x.device())?.to_dtype(x.dtype())?;
        Ok((x + self.head(&y)?)?)
    }
}
