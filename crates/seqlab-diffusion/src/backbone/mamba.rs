//! The bidirectional Mamba denoiser (Caduceus / BiMamba style, docs/diffusion.md#denoisers): every
//! block runs seqlab-lm's Mamba mixer over the sequence and over the reversed sequence,
//!
//! ```text
//! y_f = Mixer_f(RMSNorm_f(h)),   y_r = flip(Mixer_r(RMSNorm_r(flip(h))))
//! h ← h + y_f + y_r                       (merge "sum", default)
//! h ← h + W_i [y_f; y_r],  W_i ∈ R^{D×2D}   (merge "concat")
//! logits = RMSNorm(h) · Eᵀ                 (tied embedding, V + 1 ids)
//! ```
//!
//! The two directions have separate weights (a [`TrainMamba`] of 2·n_layer blocks: block 2i runs
//! forward, block 2i + 1 reversed) or, with `share_weights`, one set (n_layer blocks, each used
//! both ways). Initialisation is `TrainMamba`'s (mamba_ssm's); the concat projections are
//! U(±1/√(2D)).

use super::{check_logits_args, take, time_shift, BidirMerge, DiffusionConfig, TIME_EMBED};
use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab_lm::mamba::weights::{embedding_name, layer_prefix};
use seqlab_lm::{MambaConfig, MambaDims, MambaLayout, TrainMamba};
use std::collections::HashMap;

/// A trainable bidirectional Mamba denoiser.
#[derive(Debug, Clone)]
pub struct MambaDenoiser {
    cfg: DiffusionConfig,
    net: TrainMamba,
    merge: Vec<Var>,
    time: Option<Var>,
    params: Vec<(String, Var)>,
}

/// Name of block `i`'s concat projection.
fn merge_name(i: usize) -> String {
    format!("bidir.layers.{i}.merge.weight")
}

fn mamba_config(cfg: &DiffusionConfig, data_vocab: usize) -> MambaConfig {
    let blocks = if cfg.diffusion.share_weights { 1 } else { 2 };
    MambaDims {
        vocab_size: data_vocab + 1,
        d_model: cfg.lm.d_model,
        n_layer: blocks * cfg.lm.n_layer,
        d_state: cfg.lm.d_state,
        d_conv: cfg.lm.d_conv,
        expand: cfg.lm.expand,
    }
    .config()
}

impl MambaDenoiser {
    /// A fresh model (seed `cfg.lm.seed`) for a tokenizer of `data_vocab` ids.
    pub fn init(cfg: &DiffusionConfig, data_vocab: usize) -> Result<Self> {
        let mc = mamba_config(cfg, data_vocab);
        let net = TrainMamba::init(&mc, cfg.lm.seed, DType::F32)?;
        let d = cfg.lm.d_model;
        let mut rng = StdRng::seed_from_u64(cfg.lm.seed ^ 0x6d65_7267_6521);
        let merge = if cfg.diffusion.bidir == BidirMerge::Concat {
            let bound = (2.0 * d as f64).powf(-0.5);
            (0..cfg.lm.n_layer)
                .map(|_| {
                    let w: Vec<f32> = (0..2 * d * d)
                        .map(|_| rng.random_range(-bound..bound) as f32)
                        .collect();
                    Tensor::from_vec(w, (d, 2 * d), &Device::Cpu)
                })
                .collect::<std::result::Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let time = if cfg.diffusion.time_conditioning {
            Some(Tensor::zeros((d, d), DType::F32, &Device::Cpu)?)
        } else {
            None
        };
        Self::assemble(cfg, net, merge, time)
    }

    /// A model whose parameters are the tensors `t` (HF Mamba names of the 2·n_layer or n_layer
    /// blocks, `bidir.layers.{i}.merge.weight`, `time_embed.weight`).
    pub fn from_tensors(
        cfg: &DiffusionConfig,
        data_vocab: usize,
        mut t: HashMap<String, Tensor>,
    ) -> Result<Self> {
        let d = cfg.lm.d_model;
        let merge = if cfg.diffusion.bidir == BidirMerge::Concat {
            (0..cfg.lm.n_layer)
                .map(|i| take(&mut t, &merge_name(i), &[d, 2 * d]))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let time = if cfg.diffusion.time_conditioning {
            Some(take(&mut t, TIME_EMBED, &[d, d])?)
        } else {
            None
        };
        let net = TrainMamba::from_tensors(&mamba_config(cfg, data_vocab), t)?;
        Self::assemble(cfg, net, merge, time)
    }

    fn assemble(
        cfg: &DiffusionConfig,
        net: TrainMamba,
        merge: Vec<Tensor>,
        time: Option<Tensor>,
    ) -> Result<Self> {
        let mut params = net.params().to_vec();
        let mut mv = Vec::new();
        for (i, m) in merge.iter().enumerate() {
            let v = Var::from_tensor(m)?;
            params.push((merge_name(i), v.clone()));
            mv.push(v);
        }
        let time = match time {
            Some(x) => {
                let v = Var::from_tensor(&x)?;
                params.push((TIME_EMBED.to_string(), v.clone()));
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            cfg: cfg.clone(),
            net,
            merge: mv,
            time,
            params,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DiffusionConfig {
        &self.cfg
    }

    /// Named parameters (the Mamba blocks', then the merges and the time embedding).
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The underlying Mamba blocks (2·n_layer, or n_layer with shared weights).
    pub fn network(&self) -> &TrainMamba {
        &self.net
    }

    fn p(&self, name: &str) -> Result<&Tensor> {
        self.net
            .param(name)
            .map(Var::as_tensor)
            .ok_or_else(|| DiffusionError::Checkpoint(format!("no parameter `{name}`")))
    }
}

impl Denoiser for MambaDenoiser {
    fn vocab_size(&self) -> usize {
        self.net.config().vocab_size
    }

    fn mask_id(&self) -> u32 {
        (self.vocab_size() - 1) as u32
    }

    fn logits(&self, tokens: &[u32], batch: usize, t: &[f64]) -> Result<Tensor> {
        let len = check_logits_args(tokens, batch, t, self.vocab_size())?;
        let c = self.net.config();
        let d = c.d_model;
        let emb = self.p(embedding_name(MambaLayout::Hf))?;
        let ids = Tensor::from_slice(tokens, tokens.len(), &Device::Cpu)?;
        let mut h = emb.index_select(&ids, 0)?; // (B·L, D)
        if let Some(w) = &self.time {
            h = h
                .reshape((batch, len, d))?
                .broadcast_add(&time_shift(w, t)?)?
                .reshape((batch * len, d))?;
        }
        // Row-wise reversal of the (B·L) positions: r ↦ b·L + (L − 1 − j).
        let rev: Vec<u32> = (0..batch * len)
            .map(|r| ((r / len) * len + (len - 1 - r % len)) as u32)
            .collect();
        let rev = Tensor::from_vec(rev, batch * len, &Device::Cpu)?;
        let shared = self.cfg.diffusion.share_weights;
        for i in 0..self.cfg.lm.n_layer {
            let (fi, ri) = if shared { (i, i) } else { (2 * i, 2 * i + 1) };
            let norm = |k: usize| self.p(&format!("{}.norm.weight", layer_prefix(k)));
            let nf = seqlab_tensor::rms_norm(&h, norm(fi)?, c.norm_eps)?;
            let yf = self.net.mixer_unpacked(fi, &nf, batch, len)?;
            let hr = h.index_select(&rev, 0)?;
            let nr = seqlab_tensor::rms_norm(&hr, norm(ri)?, c.norm_eps)?;
            let yr = self
                .net
                .mixer_unpacked(ri, &nr, batch, len)?
                .index_select(&rev, 0)?;
            let y = match self.cfg.diffusion.bidir {
                BidirMerge::Sum => (yf + yr)?,
                BidirMerge::Concat => {
                    Tensor::cat(&[&yf, &yr], 1)?.matmul(&self.merge[i].as_tensor().t()?)?
                }
            };
            h = (h + y)?;
        }
        let normed = seqlab_tensor::rms_norm(&h, self.p("backbone.norm_f.weight")?, c.norm_eps)?;
        Ok(normed
            .matmul(&emb.t()?)?
            .reshape((batch, len, c.vocab_size))?)
    }
}
