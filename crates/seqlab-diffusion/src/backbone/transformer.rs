//! The bidirectional Transformer denoiser (MDLM's DiT backbone without adaLN, on seqlab-lm's
//! Llama-style Transformer): the same pre-norm blocks, RoPE, SwiGLU / GELU MLP and tied head as
//! `seqlab train --model transformer`, run with no attention mask
//! ([`seqlab_lm::TransformerLm::forward_bidirectional_with`]), over V + 1 ids ([MASK] last).

use super::{check_logits_args, take, time_shift, DiffusionConfig, TIME_EMBED};
use crate::denoiser::Denoiser;
use crate::error::Result;
use candle_core::{DType, Device, Tensor, Var};
use seqlab_lm::TrainTransformer;
use std::collections::HashMap;

/// A trainable bidirectional Transformer denoiser.
#[derive(Debug, Clone)]
pub struct TransformerDenoiser {
    cfg: DiffusionConfig,
    net: TrainTransformer,
    time: Option<Var>,
    params: Vec<(String, Var)>,
}

impl TransformerDenoiser {
    /// A fresh model (seqlab-lm's Transformer initialisation, seed `cfg.lm.seed`) for a tokenizer
    /// of `data_vocab` ids; the time embedding, if any, starts at zero.
    pub fn init(cfg: &DiffusionConfig, data_vocab: usize) -> Result<Self> {
        let tc = cfg.lm.transformer_config(data_vocab + 1);
        let net = TrainTransformer::init(&tc, cfg.lm.seed, DType::F32)?;
        let time = if cfg.diffusion.time_conditioning {
            let d = cfg.lm.d_model;
            Some(Tensor::zeros((d, d), DType::F32, &Device::Cpu)?)
        } else {
            None
        };
        Self::assemble(cfg, net, time)
    }

    /// A model whose parameters are the tensors `t` (HF Llama names + `time_embed.weight`).
    pub fn from_tensors(
        cfg: &DiffusionConfig,
        data_vocab: usize,
        mut t: HashMap<String, Tensor>,
    ) -> Result<Self> {
        let d = cfg.lm.d_model;
        let time = if cfg.diffusion.time_conditioning {
            Some(take(&mut t, TIME_EMBED, &[d, d])?)
        } else {
            None
        };
        let tc = cfg.lm.transformer_config(data_vocab + 1);
        let net = TrainTransformer::from_tensors(&tc, t)?;
        Self::assemble(cfg, net, time)
    }

    fn assemble(
        cfg: &DiffusionConfig,
        net: TrainTransformer,
        time: Option<Tensor>,
    ) -> Result<Self> {
        let mut params = net.params().to_vec();
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
            time,
            params,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DiffusionConfig {
        &self.cfg
    }

    /// Named parameters (the Transformer's, then `time_embed.weight`).
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The underlying trainable Transformer (V + 1 ids).
    pub fn network(&self) -> &TrainTransformer {
        &self.net
    }
}

impl Denoiser for TransformerDenoiser {
    fn vocab_size(&self) -> usize {
        self.net.config().vocab_size
    }

    fn mask_id(&self) -> u32 {
        (self.vocab_size() - 1) as u32
    }

    fn logits(&self, tokens: &[u32], batch: usize, t: &[f64]) -> Result<Tensor> {
        check_logits_args(tokens, batch, t, self.vocab_size())?;
        let shift = match &self.time {
            Some(w) => Some(time_shift(w, t)?),
            None => None,
        };
        Ok(self
            .net
            .model()
            .forward_bidirectional_with(tokens, batch, shift.as_ref())?)
    }
}
