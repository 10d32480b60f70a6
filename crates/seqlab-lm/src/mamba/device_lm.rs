//! The Mamba LM's recurrent mode written with tensor ops, so generation runs on whatever device
//! holds the weights (a CUDA GPU with `--device cuda`; the CPU in tests, where it is checked
//! against [`MambaLm`](crate::MambaLm)).
//!
//! One step per token and layer (Gu & Dao 2023, Algorithm 2 / eq. (2a);
//! docs/ssm.md#recurrent-step):
//!
//! ```text
//! [x, z]  = RMSNorm(h) W_inᵀ
//! window  ← shift(window, x);  x' = SiLU(Σ_k window[:, k]·w_conv[:, k] + b_conv)
//! [δ, B, C] = x' W_xᵀ;  Δ = softplus(δ W_dtᵀ + b_dt)
//! s ← exp(Δ·A) ⊙ s + (Δ·x') ⊗ B;  y = (s·C + D·x') ⊙ SiLU(z)
//! h ← h + y W_outᵀ
//! ```
//!
//! The state is a handful of device tensors per layer; tensors are immutable and shared, so a
//! snapshot (for [`CausalLm::truncate`]) is a cheap clone.

use crate::causal_lm::CausalLm;
use crate::error::{LmError, Result};
use crate::mamba::train_model::TrainMamba;
use crate::mamba::weights::{embedding_name, layer_prefix};
use candle_core::{Device, Tensor, D};
use std::path::Path;

/// Per layer: the conv window (1, d_inner, d_conv), oldest input first, and the SSM state
/// (1, d_inner, d_state).
#[derive(Debug, Clone)]
struct Layers {
    conv: Vec<Tensor>,
    ssm: Vec<Tensor>,
}

/// The [`CausalLm`] state of a [`MambaDeviceLm`]: the current layers, the length, and the
/// snapshots the last `score` kept (the state before each scored token).
#[derive(Debug, Clone)]
pub struct MambaDeviceState {
    len: usize,
    layers: Layers,
    kept: Vec<(usize, Layers)>,
}

impl MambaDeviceState {
    /// Tokens consumed.
    pub fn consumed(&self) -> usize {
        self.len
    }
}

/// A Mamba LM whose recurrent mode runs as tensor ops on the device of its weights.
#[derive(Debug, Clone)]
pub struct MambaDeviceLm {
    model: TrainMamba,
    /// A = −exp(A_log) per layer (d_inner, d_state), computed once.
    a: Vec<Tensor>,
    device: Device,
}

/// softplus(x) = max(x, 0) + ln(1 + e^{−|x|}), stable for every x.
fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// RMSNorm over the last axis: x / √(mean(x²) + ε) · w.
fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let inv = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?.broadcast_mul(w)?)
}

impl MambaDeviceLm {
    /// Loads an HF-layout Mamba directory (`config.json` + weights) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::new(TrainMamba::load(dir)?.to_device(device)?)
    }

    /// Wraps a model (its parameters' device is the one the steps run on).
    pub fn new(model: TrainMamba) -> Result<Self> {
        let device = model.device();
        let a = (0..model.config().n_layer)
            .map(|i| {
                Ok(
                    model_param(&model, &format!("{}.mixer.A_log", layer_prefix(i)))?
                        .exp()?
                        .neg()?,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { model, a, device })
    }

    /// The underlying model.
    pub fn model(&self) -> &TrainMamba {
        &self.model
    }

    /// The device the steps run on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn p(&self, name: &str) -> Result<Tensor> {
        model_param(&self.model, name)
    }

    fn zero_layers(&self) -> Result<Layers> {
        let c = self.model.config();
        let dt = self.p(embedding_name(c.layout))?.dtype();
        let zeros = |n: usize| Tensor::zeros((1, c.d_inner, n), dt, &self.device);
        Ok(Layers {
            conv: (0..c.n_layer)
                .map(|_| zeros(c.d_conv))
                .collect::<candle_core::Result<_>>()?,
            ssm: (0..c.n_layer)
                .map(|_| zeros(c.d_state))
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// One token through every layer: updates `layers`, returns the logits (vocab) on the host.
    fn step_layers(&self, layers: &mut Layers, token: u32) -> Result<Vec<f32>> {
        let c = self.model.config();
        if token as usize >= c.vocab_size {
            return Err(LmError::TokenOutOfRange {
                id: token,
                vocab: c.vocab_size,
            });
        }
        let (di, n, r, k) = (c.d_inner, c.d_state, c.dt_rank, c.d_conv);
        let emb = self.p(embedding_name(c.layout))?;
        let id = Tensor::new(&[token], &self.device)?;
        let mut h = emb.index_select(&id, 0)?; // (1, D)
        for i in 0..c.n_layer {
            let p = layer_prefix(i);
            let w = |s: &str| self.p(&format!("{p}.mixer.{s}"));
            let lin = |x: &Tensor, name: &str| -> Result<Tensor> {
                let y = x.matmul(&w(&format!("{name}.weight"))?.t()?)?;
                Ok(if c.proj_bias {
                    y.broadcast_add(&w(&format!("{name}.bias"))?)?
                } else {
                    y
                })
            };
            let normed = rms_norm(&h, &self.p(&format!("{p}.norm.weight"))?, c.norm_eps)?;
            let xz = lin(&normed, "in_proj")?; // (1, 2·Di)
            let x = xz.narrow(1, 0, di)?;
            let z = xz.narrow(1, di, di)?;
            // Conv window: drop the oldest input, append x; x' = SiLU(Σ_k window·w + b).
            let window = Tensor::cat(&[&layers.conv[i].narrow(2, 1, k - 1)?, &x.unsqueeze(2)?], 2)?;
            let cw = w("conv1d.weight")?.reshape((1, di, k))?;
            let mut pre = window.broadcast_mul(&cw)?.sum(2)?; // (1, Di)
            if c.conv_bias {
                pre = pre.broadcast_add(&w("conv1d.bias")?)?;
            }
            let xc = pre.silu()?;
            layers.conv[i] = window;
            let xdbl = xc.matmul(&w("x_proj.weight")?.t()?)?; // (1, R+2N)
            let dt = xdbl.narrow(1, 0, r)?;
            let bm = xdbl.narrow(1, r, n)?; // (1, N)
            let cm = xdbl.narrow(1, r + n, n)?;
            let delta = softplus(
                &dt.matmul(&w("dt_proj.weight")?.t()?)?
                    .broadcast_add(&w("dt_proj.bias")?)?,
            )?; // (1, Di)
            let da = delta
                .unsqueeze(2)?
                .broadcast_mul(&self.a[i].unsqueeze(0)?)?
                .exp()?;
            let dbx = (&delta * &xc)?
                .unsqueeze(2)?
                .broadcast_mul(&bm.unsqueeze(1)?)?; // (1, Di, N)
            let s = ((&layers.ssm[i] * da)? + dbx)?;
            let y = s.broadcast_mul(&cm.unsqueeze(1)?)?.sum(2)?; // (1, Di)
            let y = (y + xc.broadcast_mul(&w("D")?)?)?;
            let y = (y * z.silu()?)?;
            layers.ssm[i] = s;
            h = (h + lin(&y, "out_proj")?)?;
        }
        let normed = rms_norm(&h, &self.p("backbone.norm_f.weight")?, c.norm_eps)?;
        let head = if c.tie_embeddings {
            emb
        } else {
            self.p("lm_head.weight")?
        };
        Ok(normed.matmul(&head.t()?)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

fn model_param(model: &TrainMamba, name: &str) -> Result<Tensor> {
    model
        .param(name)
        .map(|v| v.as_tensor().clone())
        .ok_or_else(|| LmError::Input(format!("no parameter `{name}`")))
}

impl CausalLm for MambaDeviceLm {
    type State = MambaDeviceState;

    fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    /// Consumes the prompt token by token (the recurrent mode; exact, O(len) steps).
    fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, MambaDeviceState)> {
        let Some((&last, rest)) = tokens.split_last() else {
            return Err(LmError::Input("prefill needs at least one token".into()));
        };
        let mut layers = self.zero_layers()?;
        for &t in rest {
            self.step_layers(&mut layers, t)?;
        }
        let logits = self.step_layers(&mut layers, last)?;
        Ok((
            logits,
            MambaDeviceState {
                len: tokens.len(),
                layers,
                kept: Vec::new(),
            },
        ))
    }

    fn step(&self, state: &mut MambaDeviceState, token: u32) -> Result<Vec<f32>> {
        let logits = self.step_layers(&mut state.layers, token)?;
        state.len += 1;
        Ok(logits)
    }

    /// Steps through `tokens`, keeping the state before each one (a clone of shared tensors)
    /// for [`CausalLm::truncate`].
    fn score(&self, state: &mut MambaDeviceState, tokens: &[u32]) -> Result<Vec<f32>> {
        state.kept.clear();
        let mut out = Vec::with_capacity(tokens.len() * self.vocab_size());
        for &t in tokens {
            state.kept.push((state.len, state.layers.clone()));
            out.extend(self.step(state, t)?);
        }
        Ok(out)
    }

    fn state_len(&self, state: &MambaDeviceState) -> usize {
        state.len
    }

    fn truncate(&self, state: &mut MambaDeviceState, len: usize) -> Result<()> {
        if len == state.len {
            return Ok(());
        }
        if len == 0 {
            *state = MambaDeviceState {
                len: 0,
                layers: self.zero_layers()?,
                kept: Vec::new(),
            };
            return Ok(());
        }
        match state.kept.iter().position(|(l, _)| *l == len) {
            Some(i) => {
                state.layers = state.kept[i].1.clone();
                state.len = len;
                state.kept.truncate(i);
                Ok(())
            }
            None => Err(LmError::Input(format!(
                "cannot roll the Mamba state back to {len} tokens: it is at {} and keeps \
                 snapshots of lengths {:?} only (from the last `score` call)",
                state.len,
                state.kept.iter().map(|(l, _)| *l).collect::<Vec<_>>()
            ))),
        }
    }
}
