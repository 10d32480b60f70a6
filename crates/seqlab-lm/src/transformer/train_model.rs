//! The trainable Transformer LM: parameters are candle [`Var`]s named as HF Llama tensors, and
//! the forward pass is [`TransformerLm`]'s own (built over the `Var` tensors, which
//! `Var::set` updates in place), so what trains is exactly what decodes and a saved model loads
//! unchanged with [`TransformerLm::load`].
//!
//! Initialisation (HF `LlamaPreTrainedModel._init_weights`, GPT-2's residual scaling):
//! embedding and linear weights N(0, 0.02²); `o_proj` and `down_proj` additionally scaled by
//! 1/√(2·n_layer); norms 1.

use crate::error::{LmError, Result};
use crate::transformer::config::TransformerConfig;
use crate::transformer::model::TransformerLm;
use crate::transformer::weights::{expected_specs, TransformerWeights};
use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::collections::HashMap;
use std::path::Path;

/// A trainable Transformer LM: named parameters and the model reading them.
#[derive(Debug, Clone)]
pub struct TrainTransformer {
    params: Vec<(String, Var)>,
    index: HashMap<String, usize>,
    model: TransformerLm,
}

/// Whether weight decay applies to parameter `name`: matrices and the embedding yes, norms no.
pub fn decays(name: &str) -> bool {
    !(name.contains("norm") || name.ends_with(".bias"))
}

impl TrainTransformer {
    /// A freshly initialised model (module docs), deterministic in `seed`, in `dtype` (f32 to
    /// train, f64 for gradient checks).
    pub fn init(cfg: &TransformerConfig, seed: u64, dtype: DType) -> Result<Self> {
        cfg.validate()
            .map_err(|e| LmError::InvalidConfig(format!("bad transformer config: {e}")))?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut t = HashMap::new();
        let resid = (2.0 * cfg.n_layer as f64).sqrt();
        for spec in expected_specs(cfg) {
            let n = spec.elem_count();
            let data: Vec<f64> = if spec.name.contains("norm") {
                vec![1.0; n]
            } else {
                let s = if spec.name.ends_with("o_proj.weight")
                    || spec.name.ends_with("down_proj.weight")
                {
                    0.02 / resid
                } else {
                    0.02
                };
                (0..n)
                    .map(|_| s * rng.sample::<f64, _>(StandardNormal))
                    .collect()
            };
            let x = Tensor::from_vec(data, spec.shape.clone(), &Device::Cpu)?.to_dtype(dtype)?;
            t.insert(spec.name.clone(), x);
        }
        Self::from_tensors(cfg, t)
    }

    /// A model whose parameters are the given tensors (named and shaped as [`expected_specs`]).
    pub fn from_tensors(cfg: &TransformerConfig, mut t: HashMap<String, Tensor>) -> Result<Self> {
        let mut params = Vec::new();
        let mut index = HashMap::new();
        let mut vars = HashMap::new();
        for spec in expected_specs(cfg) {
            let x = t
                .remove(&spec.name)
                .ok_or_else(|| LmError::Weights(format!("tensor `{}` is missing", spec.name)))?;
            if x.dims() != spec.shape.as_slice() {
                return Err(LmError::Weights(format!(
                    "tensor `{}` has shape {:?}, expected {:?}",
                    spec.name,
                    x.dims(),
                    spec.shape
                )));
            }
            let v = Var::from_tensor(&x)?;
            vars.insert(spec.name.clone(), v.as_tensor().clone());
            index.insert(spec.name.clone(), params.len());
            params.push((spec.name, v));
        }
        let w = TransformerWeights::from_tensors(&mut vars, cfg)?;
        let model = TransformerLm::new(cfg.clone(), w)?;
        Ok(Self {
            params,
            index,
            model,
        })
    }

    /// Loads a model directory (`config.json` + `model.safetensors`) for further training.
    pub fn load(dir: &Path) -> Result<Self> {
        let lm = TransformerLm::load(dir)?;
        let mut t = HashMap::new();
        for (n, x) in lm.weights().named_dense() {
            t.insert(n, x);
        }
        Self::from_tensors(lm.config(), t)
    }

    /// Writes `config.json` and `model.safetensors` (f32) into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.model.save(dir)
    }

    /// The configuration.
    pub fn config(&self) -> &TransformerConfig {
        self.model.config()
    }

    /// The same model with every parameter copied to `device` (shared, not copied, when
    /// it is already there).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let mut t = HashMap::new();
        for (name, v) in &self.params {
            t.insert(name.clone(), v.as_tensor().to_device(device)?);
        }
        Self::from_tensors(self.config(), t)
    }

    /// The model over the current parameter values (shares their storage).
    pub fn model(&self) -> &TransformerLm {
        &self.model
    }

    /// Parameters, in checkpoint order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Var> {
        self.index.get(name).map(|&i| &self.params[i].1)
    }

    /// Logits (batch, len, V) of `tokens` (batch·len ids), causal; with `seq_idx` attention
    /// stays inside each document (block-diagonal causal mask). Differentiable.
    pub fn forward(&self, tokens: &[u32], batch: usize, seq_idx: Option<&[i32]>) -> Result<Tensor> {
        self.model.forward_causal(tokens, batch, seq_idx)
    }
}
