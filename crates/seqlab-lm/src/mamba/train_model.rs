//! A trainable Mamba LM built from candle ops, so `candle_core::Var` gradients flow through it.
//!
//! Parameters are [`Var`]s named exactly as the Hugging Face layout
//! ([`expected_specs`](crate::mamba::weights::expected_specs)), so a trained model saved with
//! [`TrainMamba::save`] loads unchanged with [`MambaLm::load`](crate::MambaLm::load).
//! The typed [`MambaWeights`] are built once from the `Var` tensors (they share storage, so an
//! optimizer step is seen by the next forward), and the forward runs each block's tensor-op
//! mixer ([`MambaBlock::mixer`](crate::mamba::block::MambaBlock::mixer), the one definition in
//! mamba1.rs): RMSNorm and projections as candle ops, the depthwise causal conv1d as a sum of K
//! shifted, masked, per-channel scaled copies of the input
//! (`p_t = b + Σ_k w_k · x_{t−(K−1)+k} · [same document]`), and the selective scan through
//! `seqlab_ssm`'s custom op (with its backward). Packed rows pass per-position document ids
//! (`seq_idx`): neither the conv nor the scan state crosses a document boundary.
//!
//! Initialisation (docs/ssm.md#initialisation; `mamba_ssm`'s `_init_weights` / `Mamba.__init__`):
//! embeddings N(0, 0.02); linear weights U(±1/√fan_in) (PyTorch's default); conv weight and bias
//! U(±1/√K); `dt_proj.weight` U(±R^−½); `dt_proj.bias` = softplus⁻¹(Δ) with
//! Δ = exp(U(ln 1e−3, ln 0.1)) floored at 1e−4, softplus⁻¹(Δ) = Δ + ln(1 − e^{−Δ});
//! `A_log[d, n] = ln(n + 1)`; `D = 1`; norms 1; `out_proj.weight` divided by √n_layer.

use crate::error::{LmError, Result};
use crate::mamba::config::{MambaConfig, MambaLayout};
use crate::mamba::mamba1::{conv_masks, no_block};
use crate::mamba::weights::{embedding_name, expected_specs, MambaWeights, LM_HEAD};
use candle_core::{DType, Device, Tensor, Var, D};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use seqlab_tensor::rms_norm;
use std::collections::HashMap;
use std::path::Path;

/// Model sizes of a fresh Mamba LM (the rest of [`MambaConfig`] takes Mamba's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MambaDims {
    /// Vocabulary (embedding rows).
    pub vocab_size: usize,
    /// Model width D.
    pub d_model: usize,
    /// Blocks.
    pub n_layer: usize,
    /// SSM state size N.
    pub d_state: usize,
    /// Conv kernel K.
    pub d_conv: usize,
    /// Expansion E (d_inner = E·D).
    pub expand: usize,
}

impl MambaDims {
    /// The HF-layout config of these sizes: dt_rank ⌈D/16⌉, conv bias, no projection biases,
    /// tied embeddings, ε = 1e−5.
    pub fn config(&self) -> MambaConfig {
        MambaConfig {
            layout: MambaLayout::Hf,
            vocab_size: self.vocab_size,
            d_model: self.d_model,
            n_layer: self.n_layer,
            d_state: self.d_state,
            d_conv: self.d_conv,
            d_inner: self.expand * self.d_model,
            dt_rank: self.d_model.div_ceil(16),
            norm_eps: 1e-5,
            conv_bias: true,
            proj_bias: false,
            tie_embeddings: true,
            residual_in_fp32: true,
            eos_token_id: None,
            mamba2: None,
            bcdt_rms_eps: None,
        }
    }
}

/// HF `config.json` text for `cfg` (what [`MambaConfig::from_json_str`] reads back).
pub fn hf_config_json(cfg: &MambaConfig) -> String {
    let mut v = serde_json::json!({
        "model_type": "mamba",
        "architectures": ["MambaForCausalLM"],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layer,
        "state_size": cfg.d_state,
        "conv_kernel": cfg.d_conv,
        "intermediate_size": cfg.d_inner,
        "expand": cfg.d_inner / cfg.d_model.max(1),
        "time_step_rank": cfg.dt_rank,
        "layer_norm_epsilon": cfg.norm_eps,
        "use_bias": cfg.proj_bias,
        "use_conv_bias": cfg.conv_bias,
        "tie_word_embeddings": cfg.tie_embeddings,
        "residual_in_fp32": cfg.residual_in_fp32,
        "eos_token_id": cfg.eos_token_id,
    });
    if let Some(eps) = cfg.bcdt_rms_eps {
        v["model_type"] = "falcon_mamba".into();
        v["architectures"] = serde_json::json!(["FalconMambaForCausalLM"]);
        v["mixer_rms_eps"] = eps.into();
    }
    serde_json::to_string_pretty(&v).expect("a JSON value serialises")
}

/// Whether weight decay applies to parameter `name`: weight matrices (projections, conv
/// kernel, embedding) yes; `A_log`, `D` (mamba_ssm's `_no_weight_decay`), norms and biases no.
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".A_log")
        || name.ends_with(".D")
        || name.contains("norm")
        || name.ends_with(".bias"))
}

/// A trainable Mamba LM: a config, its named parameters, and the typed weights over them.
#[derive(Debug, Clone)]
pub struct TrainMamba {
    cfg: MambaConfig,
    /// Parameters in [`expected_specs`] order.
    params: Vec<(String, Var)>,
    index: HashMap<String, usize>,
    /// The same tensors as `params`, typed (built once).
    weights: MambaWeights,
    /// Scan chunk length (memory of the saved states vs recomputation).
    pub scan_chunk: usize,
}

impl TrainMamba {
    /// A freshly initialised model (see the module docs), deterministic in `seed`, in `dtype`
    /// (f32 for training, f64 for gradient checks).
    pub fn init(cfg: &MambaConfig, seed: u64, dtype: DType) -> Result<Self> {
        if cfg.layout != MambaLayout::Hf {
            return Err(LmError::Unsupported("training uses the HF layout".into()));
        }
        if cfg.mamba2.is_some() {
            return Err(LmError::Unsupported(
                "initialising a Mamba-2 model for training is not implemented (Mamba-2 runs \
                 for inference)"
                    .into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut t = HashMap::new();
        let uniform = |rng: &mut StdRng, n: usize, bound: f64| -> Vec<f64> {
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        };
        for spec in expected_specs(cfg) {
            let n = spec.elem_count();
            let name = spec.name.as_str();
            let data: Vec<f64> = if name == embedding_name(cfg.layout) || name == LM_HEAD {
                (0..n)
                    .map(|_| 0.02 * rng.sample::<f64, _>(StandardNormal))
                    .collect()
            } else if name.contains("norm") || name.ends_with(".D") {
                vec![1.0; n]
            } else if name.ends_with(".A_log") {
                (0..n)
                    .map(|i| ((i % cfg.d_state) as f64 + 1.0).ln())
                    .collect()
            } else if name.ends_with("dt_proj.weight") {
                uniform(&mut rng, n, (cfg.dt_rank as f64).powf(-0.5))
            } else if name.ends_with("dt_proj.bias") {
                let (lo, hi) = (1e-3f64.ln(), 0.1f64.ln());
                (0..n)
                    .map(|_| {
                        let dt = rng.random_range(lo..hi).exp().max(1e-4);
                        dt + (-(-dt).exp_m1()).ln()
                    })
                    .collect()
            } else if name.contains("conv1d") {
                uniform(&mut rng, n, (cfg.d_conv as f64).powf(-0.5))
            } else if name.ends_with(".bias") {
                let fan_in = if name.contains("in_proj") {
                    cfg.d_model
                } else {
                    cfg.d_inner
                };
                uniform(&mut rng, n, (fan_in as f64).powf(-0.5))
            } else {
                // Linear weights (out, in): U(±1/√in); out_proj then rescaled by 1/√n_layer.
                let fan_in = spec.shape[1];
                let mut w = uniform(&mut rng, n, (fan_in as f64).powf(-0.5));
                if name.ends_with("out_proj.weight") {
                    let s = (cfg.n_layer as f64).sqrt();
                    w.iter_mut().for_each(|v| *v /= s);
                }
                w
            };
            let tensor =
                Tensor::from_vec(data, spec.shape.clone(), &Device::Cpu)?.to_dtype(dtype)?;
            t.insert(spec.name.clone(), tensor);
        }
        Self::from_tensors(cfg, t)
    }

    /// A model whose parameters are the given tensors (named and shaped as [`expected_specs`]).
    pub fn from_tensors(cfg: &MambaConfig, mut t: HashMap<String, Tensor>) -> Result<Self> {
        let mut params = Vec::new();
        let mut index = HashMap::new();
        for spec in expected_specs(cfg) {
            let v = t
                .remove(&spec.name)
                .ok_or_else(|| LmError::Weights(format!("tensor `{}` is missing", spec.name)))?;
            if v.dims() != spec.shape.as_slice() {
                return Err(LmError::Weights(format!(
                    "tensor `{}` has shape {:?}, expected {:?}",
                    spec.name,
                    v.dims(),
                    spec.shape
                )));
            }
            index.insert(spec.name.clone(), params.len());
            params.push((spec.name, Var::from_tensor(&v)?));
        }
        let mut shared: HashMap<String, Tensor> = params
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let weights = MambaWeights::from_tensors(&mut shared, cfg)?;
        let mut cfg = cfg.clone();
        cfg.layout = MambaLayout::Hf;
        Ok(Self {
            cfg,
            params,
            index,
            weights,
            scan_chunk: 256,
        })
    }

    /// Loads a checkpoint directory (`config.json` + weights) for further training.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg = MambaConfig::from_file(&dir.join("config.json"))?;
        if cfg.layout != MambaLayout::Hf {
            return Err(LmError::Unsupported(
                "training resumes only HF-layout checkpoints".into(),
            ));
        }
        let t = crate::mamba::weights::load_tensors(dir, &expected_specs(&cfg))?;
        Self::from_tensors(&cfg, t)
    }

    /// Writes `config.json` and `model.safetensors` (f32) into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        if self.cfg.mamba2.is_some() {
            return Err(LmError::Unsupported(
                "saving a Mamba-2 model is not implemented (its config.json would be Mamba-1's)"
                    .into(),
            ));
        }
        let mut t = HashMap::new();
        for (name, v) in &self.params {
            let host = v
                .as_tensor()
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?;
            t.insert(name.clone(), host);
        }
        seqlab_tensor::save_atomic(dir.join("model.safetensors"), &t)?;
        seqlab_io::write_atomic(
            dir.join("config.json"),
            hf_config_json(&self.cfg).as_bytes(),
        )?;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &MambaConfig {
        &self.cfg
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.params[0].1.device().clone()
    }

    /// The same model with every parameter copied to `device` (shared, not copied, when
    /// it is already there); the same scan chunk.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let mut t = HashMap::new();
        for (name, v) in &self.params {
            t.insert(name.clone(), v.as_tensor().to_device(device)?);
        }
        let mut m = Self::from_tensors(&self.cfg, t)?;
        m.scan_chunk = self.scan_chunk;
        Ok(m)
    }

    /// Parameters, in checkpoint order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Var> {
        self.index.get(name).map(|&i| &self.params[i].1)
    }

    /// The typed weights (the parameters' tensors, shared).
    pub fn weights(&self) -> &MambaWeights {
        &self.weights
    }

    /// Logits (batch, len, vocab) of `tokens` (batch·len ids, row-major). `seq_idx` (batch·len
    /// document ids, optional) resets conv and scan state where the id changes along a row.
    pub fn forward(&self, tokens: &[u32], batch: usize, seq_idx: Option<&[i32]>) -> Result<Tensor> {
        let c = &self.cfg;
        let w = &self.weights;
        let len = seqlab_tensor::batch_rows(tokens.len(), batch)?;
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(LmError::TokenOutOfRange {
                id,
                vocab: c.vocab_size,
            });
        }
        if seq_idx.is_some_and(|s| s.len() != tokens.len()) {
            return Err(LmError::Shape("seq_idx must have one id per token".into()));
        }
        let emb = &w.embedding;
        let dtype = emb.dtype();
        let ids = Tensor::from_slice(tokens, tokens.len(), emb.device())?;
        let mut h = emb.index_select(&ids, 0)?; // (B·L, D)
        let masks = match seq_idx {
            Some(s) => Some(conv_masks(s, batch, len, c.d_conv, dtype, emb.device())?),
            None => None,
        };
        for block in &w.layers {
            let normed = rms_norm(&h, block.norm(), c.norm_eps)?;
            let out = block.mixer(
                c,
                &normed,
                batch,
                len,
                seq_idx,
                masks.as_deref(),
                self.scan_chunk,
            )?;
            h = (h + out)?;
        }
        let normed = rms_norm(&h, &w.norm_f, c.norm_eps)?;
        Ok(normed
            .matmul(&w.head().t()?)?
            .reshape((batch, len, c.vocab_size))?)
    }

    /// The mixer (in_proj, causal conv, selective scan, gate, out_proj) of block `layer` on
    /// `normed` (batch·len, D), unpacked rows: (batch·len, D). The building block of a
    /// bidirectional Mamba (a forward and a reversed scan per block). Differentiable.
    pub fn mixer_unpacked(
        &self,
        layer: usize,
        normed: &Tensor,
        batch: usize,
        len: usize,
    ) -> Result<Tensor> {
        let block = self
            .weights
            .layers
            .get(layer)
            .ok_or_else(|| no_block(layer, self.cfg.n_layer))?;
        block.mixer(&self.cfg, normed, batch, len, None, None, self.scan_chunk)
    }
}

/// Mean next-token cross-entropy `−(1/n) Σ log softmax(logits)[target]` of logits (…, V)
/// against `targets` (one id per row of logits), as a scalar tensor.
pub fn cross_entropy(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let v = logits.dim(D::Minus1)?;
    let rows = logits.elem_count() / v;
    if targets.len() != rows {
        return Err(LmError::Shape(format!(
            "{} targets for {rows} logit rows",
            targets.len()
        )));
    }
    let l = logits.reshape((rows, v))?;
    let max = l.max_keepdim(1)?.detach();
    let shifted = l.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(1)?.log()?;
    let logp = shifted.broadcast_sub(&lse)?;
    let idx = Tensor::from_slice(targets, (rows, 1), logits.device())?;
    let picked = logp.gather(&idx, 1)?;
    Ok((picked.sum_all()?.neg()? / rows as f64)?)
}

/// Document ids (batch·len) for windows of `len` tokens starting at `starts` in a split whose
/// documents begin at the sorted offsets `doc_starts`: the id of position p is the number of
/// document starts ≤ p.
pub fn window_seq_idx(doc_starts: &[u64], starts: &[usize], len: usize) -> Vec<i32> {
    let mut out = Vec::with_capacity(starts.len() * len);
    for &s in starts {
        for j in 0..len {
            let p = (s + j) as u64;
            out.push(doc_starts.partition_point(|&d| d <= p) as i32);
        }
    }
    out
}
