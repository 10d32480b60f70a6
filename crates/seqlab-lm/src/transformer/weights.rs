//! Transformer LM weights: the [`Linear`] layer (dense f32 or candle-quantized), the per-layer
//! and whole-model weight structs, and checked loading of HF Llama safetensors checkpoints.
//!
//! Tensor names (HF `LlamaForCausalLM`; shapes are (out, in) as in `torch.nn.Linear`):
//!
//! ```text
//! model.embed_tokens.weight                         (V, D)
//! model.layers.{i}.input_layernorm.weight           (D)
//! model.layers.{i}.self_attn.q_proj.weight          (H·hd, D)
//! model.layers.{i}.self_attn.k_proj.weight          (H_kv·hd, D)
//! model.layers.{i}.self_attn.v_proj.weight          (H_kv·hd, D)
//! model.layers.{i}.self_attn.o_proj.weight          (D, H·hd)
//! model.layers.{i}.post_attention_layernorm.weight  (D)
//! model.layers.{i}.mlp.gate_proj.weight             (F, D)    SwiGLU only
//! model.layers.{i}.mlp.up_proj.weight               (F, D)
//! model.layers.{i}.mlp.down_proj.weight             (D, F)
//! model.norm.weight                                 (D)
//! lm_head.weight                                    (V, D)    only when not tied
//! ```

use crate::error::{LmError, Result};
use crate::transformer::config::{MlpKind, TransformerConfig};
use crate::transformer::quant_linear::forward_blocked;
use candle_core::quantized::QMatMul;
use candle_core::{DType, Module, Tensor};
use seqlab_tensor::TensorSpec;
use std::collections::HashMap;
use std::path::Path;

/// A linear map without bias, `y = x · Wᵀ` with W of shape (out, in): either a dense f32
/// tensor (differentiable; used for training) or a candle quantized matrix (GGUF Q4_0, Q8_0, …;
/// inference only).
#[derive(Debug, Clone)]
pub enum Linear {
    /// Dense weight W (out, in).
    Dense(Tensor),
    /// Quantized weight W (out, in): Q8_0 / Q4_0 / Q4_1 on the CPU run seqlab-quant's blocked
    /// GEMM ([`crate::transformer::quant_linear`]), other types candle's quantized matmul.
    Quantized(QMatMul),
}

impl Linear {
    /// `x · Wᵀ` over the last dimension of `x` (…, in) → (…, out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Dense(w) => {
                let dims = x.dims();
                let inn = *dims
                    .last()
                    .ok_or_else(|| LmError::Shape("linear of a scalar".into()))?;
                let rows = x.elem_count() / inn.max(1);
                let y = x.reshape((rows, inn))?.matmul(&w.t()?)?;
                let mut out = dims.to_vec();
                *out.last_mut().expect("rank ≥ 1") = w.dim(0)?;
                Ok(y.reshape(out)?)
            }
            // Covered block types on the CPU: seqlab-quant's blocked GEMM; others: candle.
            Linear::Quantized(q) => match forward_blocked(q, x)? {
                Some(y) => Ok(y),
                None => Ok(q.forward(x)?),
            },
        }
    }

    /// (out, in) of W.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Linear::Dense(w) => {
                let d = w.dims();
                (
                    d.first().copied().unwrap_or(0),
                    d.get(1).copied().unwrap_or(0),
                )
            }
            Linear::Quantized(QMatMul::QTensor(q)) => {
                let d = q.shape().dims();
                (
                    d.first().copied().unwrap_or(0),
                    d.get(1).copied().unwrap_or(0),
                )
            }
            Linear::Quantized(QMatMul::Tensor(w) | QMatMul::TensorF16(w)) => {
                let d = w.dims();
                (
                    d.first().copied().unwrap_or(0),
                    d.get(1).copied().unwrap_or(0),
                )
            }
        }
    }

    /// The dense weight, when this layer is dense.
    pub fn dense(&self) -> Option<&Tensor> {
        match self {
            Linear::Dense(w) => Some(w),
            Linear::Quantized(_) => None,
        }
    }
}

/// One decoder layer's weights.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// RMSNorm weight before attention, `input_layernorm` (D).
    pub attn_norm: Tensor,
    /// W_q (H·hd, D).
    pub q_proj: Linear,
    /// W_k (H_kv·hd, D).
    pub k_proj: Linear,
    /// W_v (H_kv·hd, D).
    pub v_proj: Linear,
    /// W_o (D, H·hd).
    pub o_proj: Linear,
    /// RMSNorm weight before the MLP, `post_attention_layernorm` (D).
    pub mlp_norm: Tensor,
    /// SwiGLU gate (F, D); `None` for the GELU MLP.
    pub gate_proj: Option<Linear>,
    /// Up projection (F, D).
    pub up_proj: Linear,
    /// Down projection (D, F).
    pub down_proj: Linear,
}

/// All weights of a Transformer LM.
#[derive(Debug, Clone)]
pub struct TransformerWeights {
    /// Token embedding E (V, D), dense (dequantize a quantized one first).
    pub embed: Tensor,
    /// The decoder layers.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm weight (D).
    pub norm_f: Tensor,
    /// Output projection (V, D); `None` = tied: logits = h · Eᵀ.
    pub lm_head: Option<Linear>,
}

/// Prefix of layer `i`'s tensors.
pub fn layer_prefix(i: usize) -> String {
    format!("model.layers.{i}")
}

/// Every tensor a checkpoint for `cfg` must hold (f32), in load order.
pub fn expected_specs(cfg: &TransformerConfig) -> Vec<TensorSpec> {
    let f = |name: String, shape: Vec<usize>| TensorSpec::new(name, shape, DType::F32);
    let (v, d, hd, f_) = (cfg.vocab_size, cfg.d_model, cfg.head_dim, cfg.d_ff);
    let (qd, kd) = (cfg.n_head * hd, cfg.n_kv_head * hd);
    let mut out = vec![f("model.embed_tokens.weight".into(), vec![v, d])];
    for i in 0..cfg.n_layer {
        let p = layer_prefix(i);
        out.push(f(format!("{p}.input_layernorm.weight"), vec![d]));
        out.push(f(format!("{p}.self_attn.q_proj.weight"), vec![qd, d]));
        out.push(f(format!("{p}.self_attn.k_proj.weight"), vec![kd, d]));
        out.push(f(format!("{p}.self_attn.v_proj.weight"), vec![kd, d]));
        out.push(f(format!("{p}.self_attn.o_proj.weight"), vec![d, qd]));
        out.push(f(format!("{p}.post_attention_layernorm.weight"), vec![d]));
        if cfg.mlp == MlpKind::SwiGlu {
            out.push(f(format!("{p}.mlp.gate_proj.weight"), vec![f_, d]));
        }
        out.push(f(format!("{p}.mlp.up_proj.weight"), vec![f_, d]));
        out.push(f(format!("{p}.mlp.down_proj.weight"), vec![d, f_]));
    }
    out.push(f("model.norm.weight".into(), vec![d]));
    if !cfg.tie_embeddings {
        out.push(f("lm_head.weight".into(), vec![v, d]));
    }
    out
}

impl TransformerWeights {
    /// Loads and checks the checkpoint in `dir` (`model.safetensors` or a sharded
    /// `model.safetensors.index.json`) for `cfg`; a missing or misshapen tensor is named.
    pub fn load(dir: &Path, cfg: &TransformerConfig) -> Result<Self> {
        let specs = expected_specs(cfg);
        let mut t = crate::mamba::weights::load_tensors(dir, &specs)?;
        Self::from_tensors(&mut t, cfg)
    }

    /// Builds dense weights from tensors named as in [`expected_specs`] (taken out of `t`).
    pub fn from_tensors(t: &mut HashMap<String, Tensor>, cfg: &TransformerConfig) -> Result<Self> {
        fn take(t: &mut HashMap<String, Tensor>, name: &str) -> Result<Tensor> {
            t.remove(name)
                .ok_or_else(|| LmError::Weights(format!("tensor `{name}` is missing")))
        }
        let embed = take(t, "model.embed_tokens.weight")?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = layer_prefix(i);
            let mut w = |n: &str| take(t, &format!("{p}.{n}.weight"));
            let attn_norm = w("input_layernorm")?;
            let q_proj = Linear::Dense(w("self_attn.q_proj")?);
            let k_proj = Linear::Dense(w("self_attn.k_proj")?);
            let v_proj = Linear::Dense(w("self_attn.v_proj")?);
            let o_proj = Linear::Dense(w("self_attn.o_proj")?);
            let mlp_norm = w("post_attention_layernorm")?;
            let gate_proj = if cfg.mlp == MlpKind::SwiGlu {
                Some(Linear::Dense(w("mlp.gate_proj")?))
            } else {
                None
            };
            layers.push(LayerWeights {
                attn_norm,
                q_proj,
                k_proj,
                v_proj,
                o_proj,
                mlp_norm,
                gate_proj,
                up_proj: Linear::Dense(w("mlp.up_proj")?),
                down_proj: Linear::Dense(w("mlp.down_proj")?),
            });
        }
        let norm_f = take(t, "model.norm.weight")?;
        let lm_head = if cfg.tie_embeddings {
            None
        } else {
            Some(Linear::Dense(take(t, "lm_head.weight")?))
        };
        Ok(Self {
            embed,
            layers,
            norm_f,
            lm_head,
        })
    }

    /// The dense tensors under their HF names (quantized layers are skipped), for saving.
    pub fn named_dense(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.clone())];
        for (i, l) in self.layers.iter().enumerate() {
            let p = layer_prefix(i);
            out.push((format!("{p}.input_layernorm.weight"), l.attn_norm.clone()));
            let mut lin = |n: &str, l: &Linear| {
                if let Some(w) = l.dense() {
                    out.push((format!("{p}.{n}.weight"), w.clone()));
                }
            };
            lin("self_attn.q_proj", &l.q_proj);
            lin("self_attn.k_proj", &l.k_proj);
            lin("self_attn.v_proj", &l.v_proj);
            lin("self_attn.o_proj", &l.o_proj);
            if let Some(g) = &l.gate_proj {
                lin("mlp.gate_proj", g);
            }
            lin("mlp.up_proj", &l.up_proj);
            lin("mlp.down_proj", &l.down_proj);
            out.push((
                format!("{p}.post_attention_layernorm.weight"),
                l.mlp_norm.clone(),
            ));
        }
        out.push(("model.norm.weight".to_string(), self.norm_f.clone()));
        if let Some(Linear::Dense(w)) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), w.clone()));
        }
        out
    }
}
