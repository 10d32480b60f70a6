//! AdamW with decay groups, the warmup + cosine learning-rate schedule and global-norm gradient
//! clipping (docs/training.md). The optimizer's whole state is its moments and step count, so a
//! checkpoint of them ([`crate::checkpoint`]) resumes a run exactly.

use crate::error::{Result, TrainError};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// Learning rate at 0-based `step` (Loshchilov & Hutter 2017, SGDR; GPT-style warmup):
///
/// ```text
/// step < W:        lr_t = lr_max · (t + 1) / W
/// W ≤ step < T:    p = (t − W) / (T − W),  lr_t = lr_min + ½ (lr_max − lr_min)(1 + cos(π p))
/// step ≥ T:        lr_t = lr_min
/// ```
pub fn lr_at(step: u64, lr_max: f64, lr_min: f64, warmup: u64, total: u64) -> f64 {
    if step < warmup {
        return lr_max * (step + 1) as f64 / warmup as f64;
    }
    if step >= total || total <= warmup {
        return lr_min;
    }
    let p = (step - warmup) as f64 / (total - warmup) as f64;
    lr_min + 0.5 * (lr_max - lr_min) * (1.0 + (std::f64::consts::PI * p).cos())
}

/// AdamW (Loshchilov & Hutter 2019, decoupled weight decay), PyTorch's form. For each parameter
/// θ with gradient g at step t (1-based):
///
/// ```text
/// θ ← θ − lr·λ·θ                     (only for parameters in the decay group)
/// m ← β₁ m + (1 − β₁) g              v ← β₂ v + (1 − β₂) g²
/// θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
#[derive(Debug, Clone)]
pub struct AdamW {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// λ (decoupled weight decay).
    pub weight_decay: f64,
    /// Steps taken (t).
    pub t: u64,
    /// Per parameter: (name, decays, m, v).
    pub slots: Vec<AdamSlot>,
}

/// One parameter's optimizer state.
#[derive(Debug, Clone)]
pub struct AdamSlot {
    /// Parameter name.
    pub name: String,
    /// In the weight-decay group.
    pub decay: bool,
    /// First moment m.
    pub m: Tensor,
    /// Second moment v.
    pub v: Tensor,
}

impl AdamW {
    /// The same optimizer state with the moments copied to `device`.
    pub fn to_device(&self, device: &candle_core::Device) -> Result<Self> {
        let mut out = self.clone();
        for s in &mut out.slots {
            s.m = s.m.to_device(device)?;
            s.v = s.v.to_device(device)?;
        }
        Ok(out)
    }

    /// Zero moments for `params`; `decay(name)` picks the weight-decay group.
    pub fn new(
        params: &[(String, Var)],
        weight_decay: f64,
        decay: impl Fn(&str) -> bool,
    ) -> Result<Self> {
        let slots = params
            .iter()
            .map(|(name, v)| {
                Ok(AdamSlot {
                    name: name.clone(),
                    decay: decay(name),
                    m: v.as_tensor().zeros_like()?,
                    v: v.as_tensor().zeros_like()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay,
            t: 0,
            slots,
        })
    }

    /// One update of every parameter with its gradient in `grads` (a missing gradient counts as
    /// zero) at learning rate `lr`.
    pub fn step(&mut self, params: &[(String, Var)], grads: &GradStore, lr: f64) -> Result<()> {
        if params.len() != self.slots.len() {
            return Err(TrainError::OptimizerMismatch(format!(
                "{} optimizer slots for {} parameters",
                self.slots.len(),
                params.len()
            )));
        }
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        for ((name, var), slot) in params.iter().zip(self.slots.iter_mut()) {
            if *name != slot.name {
                return Err(TrainError::OptimizerMismatch(format!(
                    "optimizer slot `{}` does not match parameter `{name}`",
                    slot.name
                )));
            }
            let theta = var.as_tensor();
            let g = match grads.get(theta) {
                Some(g) => g.clone(),
                None => theta.zeros_like()?,
            };
            slot.m = ((&slot.m * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            slot.v = ((&slot.v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let mut next = if slot.decay && self.weight_decay != 0.0 {
                (theta * (1.0 - lr * self.weight_decay))?
            } else {
                theta.clone()
            };
            let mhat = (&slot.m / bc1)?;
            let denom = ((&slot.v / bc2)?.sqrt()? + self.eps)?;
            next = (next - (mhat / denom)?.affine(lr, 0.0)?)?;
            var.set(&next)?;
        }
        Ok(())
    }
}

/// Global L2 norm ‖g‖ = √(Σ_p Σ_i g_{p,i}²) of the gradients of `params` (summed in f64, in
/// parameter order, so it is deterministic).
pub fn global_norm(params: &[(String, Var)], grads: &GradStore) -> Result<f64> {
    let mut sum = 0f64;
    for (_, v) in params {
        if let Some(g) = grads.get(v.as_tensor()) {
            sum += g
                .to_dtype(candle_core::DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    Ok(sum.sqrt())
}

/// Scales every gradient by `max_norm / ‖g‖` when ‖g‖ > max_norm (so the global norm becomes
/// max_norm); returns ‖g‖ before clipping.
pub fn clip_grad_norm(
    params: &[(String, Var)],
    grads: &mut GradStore,
    max_norm: f64,
) -> Result<f64> {
    let norm = global_norm(params, grads)?;
    if max_norm > 0.0 && norm > max_norm && norm.is_finite() {
        let scale = max_norm / norm;
        for (_, v) in params {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = (g * scale)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}
