//! Shared pieces of the S4 LM and SaShiMi: parameter naming of an [`S4Block`], the f64
//! recurrent (step) path of a block with a `Clone` state, and small f64 / tensor helpers.
//!
//! `seqlab_ssm::s4::S4BlockState` is neither `Clone` nor inspectable, so the [`crate::CausalLm`]
//! states here hold the raw complex state vectors and step them with the public
//! `S4dRecurrence` / `S4Recurrence` directly (the same discretisation as
//! `S4Block::init_state`): the S4 recurrence x_t = Āx_{t−1} + B̄u_t, y_t = 2·Re(C·x_t) + D·u_t
//! (S4 paper eq. (3); S4D eq. (2)).

use crate::error::{LmError, Result};
use candle_core::{DType, Tensor, Var, D};
use seqlab_ssm::s4::{
    s4_true_c, DplrParams, S4Block, S4Recurrence, S4dParams, S4dRecurrence, SsmKind, C64,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Which SSM the S4 blocks hold (`ssm` config key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SsmName {
    /// S4D-Lin, ZOH (diagonal).
    #[default]
    S4d,
    /// S4 with the DPLR HiPPO-LegS matrix (bilinear, C̃ for `l_max`).
    S4legs,
}

impl SsmName {
    /// The block kind.
    pub fn kind(self) -> SsmKind {
        match self {
            SsmName::S4d => SsmKind::S4d(seqlab_ssm::s4::S4dInit::Lin, seqlab_ssm::s4::Disc::Zoh),
            SsmName::S4legs => SsmKind::S4Legs,
        }
    }
}

/// The named `Var`s of an S4 block, under `prefix`.
pub fn block_params(prefix: &str, b: &S4Block) -> Vec<(String, Var)> {
    let mut v = vec![
        (format!("{prefix}.log_neg_re"), b.log_neg_re.clone()),
        (format!("{prefix}.a_im"), b.a_im.clone()),
        (format!("{prefix}.b_re"), b.b_re.clone()),
        (format!("{prefix}.b_im"), b.b_im.clone()),
        (format!("{prefix}.c_re"), b.c_re.clone()),
        (format!("{prefix}.c_im"), b.c_im.clone()),
        (format!("{prefix}.log_dt"), b.log_dt.clone()),
        (format!("{prefix}.d"), b.d.clone()),
        (format!("{prefix}.norm.weight"), b.ln_w.clone()),
        (format!("{prefix}.norm.bias"), b.ln_b.clone()),
        (format!("{prefix}.out.weight"), b.w_out.clone()),
        (format!("{prefix}.out.bias"), b.b_out.clone()),
    ];
    if let (Some(p), Some(q)) = (&b.p_re, &b.p_im) {
        v.push((format!("{prefix}.p_re"), p.clone()));
        v.push((format!("{prefix}.p_im"), q.clone()));
    }
    v
}

/// Weight decay applies to matrices and embeddings only (`*.weight` of linear layers and
/// embeddings; no decay on SSM parameters, norms, biases).
pub fn decays(name: &str) -> bool {
    name.ends_with(".weight") && !name.contains("norm")
}

/// Sets every parameter of `params` from `t` (names and shapes must match).
pub fn set_params(params: &[(String, Var)], t: &mut HashMap<String, Tensor>) -> Result<()> {
    for (name, v) in params {
        let x = t
            .remove(name)
            .ok_or_else(|| LmError::Weights(format!("tensor `{name}` is missing")))?;
        if x.dims() != v.dims() {
            return Err(LmError::Weights(format!(
                "tensor `{name}` has shape {:?}, expected {:?}",
                x.dims(),
                v.dims()
            )));
        }
        v.set(&x.to_dtype(v.dtype())?)?;
    }
    if let Some(k) = t.keys().next() {
        return Err(LmError::Weights(format!("unexpected tensor `{k}`")));
    }
    Ok(())
}

/// Sets `dst` (a fresh model's parameters, on `device`) to the values of `src` (the same names,
/// on any device).
pub fn copy_params(
    src: &[(String, Var)],
    dst: &[(String, Var)],
    device: &candle_core::Device,
) -> Result<()> {
    let mut t = src
        .iter()
        .map(|(n, v)| Ok((n.clone(), v.as_tensor().to_device(device)?)))
        .collect::<Result<HashMap<String, Tensor>>>()?;
    set_params(dst, &mut t)
}

/// The values of a var as f64.
pub fn vals(v: &Var) -> Result<Vec<f64>> {
    Ok(v.as_tensor()
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?)
}

/// A `Var` of `shape` on `device` from f64 values, as f32.
pub fn var_f32(v: Vec<f64>, shape: &[usize], device: &candle_core::Device) -> Result<Var> {
    Ok(Var::from_tensor(
        &Tensor::from_vec(v, shape, device)?.to_dtype(DType::F32)?,
    )?)
}

/// LayerNorm over the last axis (ε = 1e−5, biased variance), as `S4Block`'s.
pub fn layer_norm_t(x: &Tensor, w: &Var, b: &Var) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    Ok(xn
        .broadcast_mul(w.as_tensor())?
        .broadcast_add(b.as_tensor())?)
}

/// x·Wᵀ + b on (…, in) with W (out, in).
pub fn linear_t(x: &Tensor, w: &Var, b: &Var) -> Result<Tensor> {
    Ok(x.broadcast_matmul(&w.as_tensor().t()?)?
        .broadcast_add(b.as_tensor())?)
}

/// f64 LayerNorm of one vector.
pub fn layer_norm(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let s = (var + 1e-5).sqrt();
    x.iter()
        .zip(w.iter().zip(b))
        .map(|(v, (w, b))| (v - mean) / s * w + b)
        .collect()
}

/// f64 W·x + b, W (out, in) row-major.
pub fn linear(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let n = x.len();
    b.iter()
        .enumerate()
        .map(|(o, bo)| {
            bo + w[o * n..(o + 1) * n]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum::<f64>()
        })
        .collect()
}

/// Exact GELU, x·Φ(x).
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + candle_core::cpu::erf::erf_f64(x / std::f64::consts::SQRT_2))
}

#[derive(Debug, Clone)]
enum Rec {
    Diag(S4dRecurrence),
    Dplr(S4Recurrence),
}

/// An S4 block's parameters frozen in f64 for the recurrent mode.
#[derive(Debug, Clone)]
pub struct S4StepCache {
    rec: Rec,
    d: Vec<f64>,
    ln_w: Vec<f64>,
    ln_b: Vec<f64>,
    w_out: Vec<f64>,
    b_out: Vec<f64>,
    h: usize,
}

impl S4StepCache {
    /// Discretises `b`'s current parameters (as `S4Block::init_state`: S4D at Δ·rate; S4 turns
    /// C̃ back into C for `l_max`).
    pub fn new(b: &S4Block) -> Result<Self> {
        let cfg = b.config();
        let (h, m) = (cfg.d_model, cfg.d_state / 2);
        let re: Vec<f64> = vals(&b.log_neg_re)?.iter().map(|t| -t.exp()).collect();
        let (ai, br, bi, cr, ci) = (
            vals(&b.a_im)?,
            vals(&b.b_re)?,
            vals(&b.b_im)?,
            vals(&b.c_re)?,
            vals(&b.c_im)?,
        );
        let dt: Vec<f64> = vals(&b.log_dt)?.iter().map(|x| x.exp()).collect();
        let rec = match cfg.kind {
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
                Rec::Diag(S4dRecurrence::new(&p, disc, cfg.rate)?)
            }
            SsmKind::S4Legs => {
                let (Some(pr), Some(pi)) = (&b.p_re, &b.p_im) else {
                    return Err(LmError::Weights("S4 block without P".into()));
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
                let (tr, ti) = s4_true_c(&p, cfg.l_max)?;
                let pt = DplrParams {
                    c_re: &tr,
                    c_im: &ti,
                    ..p
                };
                Rec::Dplr(S4Recurrence::new(&pt, cfg.rate)?)
            }
        };
        Ok(Self {
            rec,
            d: vals(&b.d)?,
            ln_w: vals(&b.ln_w)?,
            ln_b: vals(&b.ln_b)?,
            w_out: vals(&b.w_out)?,
            b_out: vals(&b.b_out)?,
            h,
        })
    }

    /// A zero state.
    pub fn zero_state(&self) -> Vec<C64> {
        match &self.rec {
            Rec::Diag(r) => r.zero_state(1),
            Rec::Dplr(r) => r.zero_state(1),
        }
    }

    /// Advances the SSM on u = LN(x) only (no output head); y = SSM output + D·u.
    fn ssm(&self, x: &[f64], state: &mut [C64]) -> Result<Vec<f64>> {
        let z = layer_norm(x, &self.ln_w, &self.ln_b);
        Ok(match &self.rec {
            Rec::Diag(r) => r.step(&z, Some(&self.d), state)?,
            Rec::Dplr(r) => r.step(&z, Some(&self.d), state)?,
        })
    }

    /// One step of the block: x + GLU(W·GELU(SSM(LN(x))) + b).
    pub fn step(&self, x: &[f64], state: &mut [C64]) -> Result<Vec<f64>> {
        let y: Vec<f64> = self.ssm(x, state)?.into_iter().map(gelu).collect();
        let o = linear(&y, &self.w_out, &self.b_out);
        let h = self.h;
        Ok((0..h)
            .map(|i| x[i] + o[i] / (1.0 + (-o[h + i]).exp()))
            .collect())
    }

    /// The state after the block has read `xs` (L, H) row-major from zero.
    pub fn state_after(&self, xs: &[f64]) -> Result<Vec<C64>> {
        let mut st = self.zero_state();
        for x in xs.chunks(self.h) {
            self.ssm(x, &mut st)?;
        }
        Ok(st)
    }
}

/// A pre-LayerNorm feed-forward residual block (SaShiMi's FF block: GELU MLP, expansion e):
/// x + W₂·GELU(W₁·LN(x) + b₁) + b₂.
#[derive(Debug, Clone)]
pub struct FfBlock {
    /// LayerNorm weight (H).
    pub ln_w: Var,
    /// LayerNorm bias (H).
    pub ln_b: Var,
    /// (e·H, H).
    pub w1: Var,
    /// (e·H).
    pub b1: Var,
    /// (H, e·H).
    pub w2: Var,
    /// (H).
    pub b2: Var,
}

impl FfBlock {
    /// Norm (1, 0); linears U(±1/√fan_in).
    pub fn new(
        h: usize,
        e: usize,
        rng: &mut rand::rngs::StdRng,
        device: &candle_core::Device,
    ) -> Result<Self> {
        use rand::Rng;
        let mut u = |n: usize, fan: usize| -> Vec<f64> {
            let s = 1.0 / (fan as f64).sqrt();
            (0..n).map(|_| rng.random_range(-s..s)).collect()
        };
        let (w1, b1, w2, b2) = (
            u(e * h * h, h),
            u(e * h, h),
            u(h * e * h, e * h),
            u(h, e * h),
        );
        Ok(Self {
            ln_w: var_f32(vec![1.0; h], &[h], device)?,
            ln_b: var_f32(vec![0.0; h], &[h], device)?,
            w1: var_f32(w1, &[e * h, h], device)?,
            b1: var_f32(b1, &[e * h], device)?,
            w2: var_f32(w2, &[h, e * h], device)?,
            b2: var_f32(b2, &[h], device)?,
        })
    }

    /// Named vars under `prefix`.
    pub fn params(&self, prefix: &str) -> Vec<(String, Var)> {
        vec![
            (format!("{prefix}.norm.weight"), self.ln_w.clone()),
            (format!("{prefix}.norm.bias"), self.ln_b.clone()),
            (format!("{prefix}.fc1.weight"), self.w1.clone()),
            (format!("{prefix}.fc1.bias"), self.b1.clone()),
            (format!("{prefix}.fc2.weight"), self.w2.clone()),
            (format!("{prefix}.fc2.bias"), self.b2.clone()),
        ]
    }

    /// Parallel mode on (…, H).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let z = layer_norm_t(x, &self.ln_w, &self.ln_b)?;
        let g = linear_t(&z, &self.w1, &self.b1)?.gelu_erf()?;
        Ok((x + linear_t(&g, &self.w2, &self.b2)?)?)
    }

    /// The f64 step form.
    pub fn cache(&self) -> Result<FfCache> {
        Ok(FfCache {
            ln_w: vals(&self.ln_w)?,
            ln_b: vals(&self.ln_b)?,
            w1: vals(&self.w1)?,
            b1: vals(&self.b1)?,
            w2: vals(&self.w2)?,
            b2: vals(&self.b2)?,
        })
    }
}

/// [`FfBlock`] frozen in f64.
#[derive(Debug, Clone)]
pub struct FfCache {
    ln_w: Vec<f64>,
    ln_b: Vec<f64>,
    w1: Vec<f64>,
    b1: Vec<f64>,
    w2: Vec<f64>,
    b2: Vec<f64>,
}

impl FfCache {
    /// One position.
    pub fn step(&self, x: &[f64]) -> Vec<f64> {
        let z = layer_norm(x, &self.ln_w, &self.ln_b);
        let g: Vec<f64> = linear(&z, &self.w1, &self.b1)
            .into_iter()
            .map(gelu)
            .collect();
        let o = linear(&g, &self.w2, &self.b2);
        x.iter().zip(o).map(|(a, b)| a + b).collect()
    }
}

/// The f32 values of a (1, L, H) or (L, H) tensor as f64, row-major.
pub fn rows_f64(x: &Tensor) -> Result<Vec<f64>> {
    Ok(x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}
