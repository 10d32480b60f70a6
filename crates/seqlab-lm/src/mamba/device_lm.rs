//! The Mamba LM's recurrent mode written with tensor ops, so generation runs on whatever device
//! holds the weights (a CUDA GPU with `--device cuda`; the CPU in tests, where it is checked
//! against [`MambaLm`](crate::MambaLm)).
//!
//! One step per token: `h ← h + Block.step(RMSNorm(h))` per layer over the typed weights of
//! its [`TrainMamba`], each block's recurrent step being the block's own tensor-op step
//! ([`MambaBlock::step`](crate::mamba::block::MambaBlock::step); Gu & Dao 2023, Algorithm 2 /
//! eq. (2a); docs/ssm.md#recurrent-step, defined once in mamba1.rs).
//!
//! The state is a handful of device tensors per layer; tensors are immutable and shared, so a
//! snapshot (for [`CausalLm::truncate`]) is a cheap clone.

use crate::causal_lm::CausalLm;
use crate::error::{LmError, Result};
use crate::mamba::train_model::TrainMamba;
use candle_core::{Device, Tensor};
use seqlab_tensor::rms_norm;
use std::path::Path;

/// Per layer: the conv window (1, conv channels, d_conv), oldest input first, and the SSM
/// state (1, SSM channels, d_state) ([`MambaConfig::conv_channels`](crate::MambaConfig::conv_channels),
/// [`MambaConfig::ssm_channels`](crate::MambaConfig::ssm_channels)).
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
    /// A = −exp(A_log) per layer (Mamba-1 (d_inner, d_state), Mamba-2 (heads)), computed once.
    a: Vec<Tensor>,
    device: Device,
}

impl MambaDeviceLm {
    /// Loads an HF-layout Mamba directory (`config.json` + weights) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::new(TrainMamba::load(dir)?.to_device(device)?)
    }

    /// Wraps a model (its parameters' device is the one the steps run on).
    pub fn new(model: TrainMamba) -> Result<Self> {
        let device = model.device();
        let a = model
            .weights()
            .layers
            .iter()
            .map(|b| b.a())
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

    fn zero_layers(&self) -> Result<Layers> {
        let c = self.model.config();
        let dt = self.model.weights().embedding.dtype();
        let zeros = |ch: usize, n: usize| Tensor::zeros((1, ch, n), dt, &self.device);
        Ok(Layers {
            conv: (0..c.n_layer)
                .map(|_| zeros(c.conv_channels(), c.d_conv))
                .collect::<candle_core::Result<_>>()?,
            ssm: (0..c.n_layer)
                .map(|_| zeros(c.ssm_channels(), c.d_state))
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
        let w = self.model.weights();
        let id = Tensor::new(&[token], &self.device)?;
        let mut h = w.embedding.index_select(&id, 0)?; // (1, D)
        for (i, block) in w.layers.iter().enumerate() {
            let normed = rms_norm(&h, block.norm(), c.norm_eps)?;
            let (conv, ssm) = (&mut layers.conv[i], &mut layers.ssm[i]);
            h = (h + block.step(c, &self.a[i], &normed, conv, ssm)?)?;
        }
        let normed = rms_norm(&h, &w.norm_f, c.norm_eps)?;
        Ok(normed
            .matmul(&w.head().t()?)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }
}

impl CausalLm for MambaDeviceLm {
    type State = MambaDeviceState;

    fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    /// Consumes the prompt token by token (the recurrent mode; exact, O(len) steps).
    fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, MambaDeviceState)> {
        let Some((&last, rest)) = tokens.split_last() else {
            return Err(LmError::Shape("prefill needs at least one token".into()));
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
            None => Err(LmError::State(format!(
                "cannot roll the Mamba state back to {len} tokens: it is at {} and keeps \
                 snapshots of lengths {:?} only (from the last `score` call)",
                state.len,
                state.kept.iter().map(|(l, _)| *l).collect::<Vec<_>>()
            ))),
        }
    }
}
