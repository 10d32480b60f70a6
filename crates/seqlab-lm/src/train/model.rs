//! The models the loop can train, behind one enum: parameters, the differentiable forward
//! pass, the weight-decay groups, save / load, and the check that a checkpoint fits a config.

use crate::error::{LmError, Result};
use crate::mamba::train_model::{MambaDims, TrainMamba};
use crate::s4lm::SsmName;
use crate::train::config::{ModelKind, TrainConfig};
use crate::transformer::TrainTransformer;
use candle_core::{DType, Device, Tensor, Var};
use std::path::Path;

/// A trainable model.
#[derive(Debug, Clone)]
pub enum TrainModel {
    /// The Mamba LM.
    Mamba(TrainMamba),
    /// The Transformer LM.
    Transformer(TrainTransformer),
    /// The S4 LM.
    S4(crate::s4lm::S4Lm),
    /// SaShiMi.
    Sashimi(crate::sashimi::Sashimi),
}

fn mamba_dims(cfg: &TrainConfig, vocab: usize) -> MambaDims {
    MambaDims {
        vocab_size: vocab,
        d_model: cfg.d_model,
        n_layer: cfg.n_layer,
        d_state: cfg.d_state,
        d_conv: cfg.d_conv,
        expand: cfg.expand,
    }
}

impl TrainModel {
    /// A freshly initialised model of `cfg.model` for a `vocab`-sized vocabulary.
    pub fn init(cfg: &TrainConfig, vocab: usize, dtype: DType) -> Result<Self> {
        Ok(match cfg.model {
            ModelKind::Mamba => TrainModel::Mamba(TrainMamba::init(
                &mamba_dims(cfg, vocab).config(),
                cfg.seed,
                dtype,
            )?),
            ModelKind::Transformer => TrainModel::Transformer(TrainTransformer::init(
                &cfg.transformer_config(vocab),
                cfg.seed,
                dtype,
            )?),
            ModelKind::S4 => {
                TrainModel::S4(crate::s4lm::S4Lm::init(&cfg.s4_config(vocab), cfg.seed)?)
            }
            ModelKind::Sashimi => TrainModel::Sashimi(crate::sashimi::Sashimi::init(
                &cfg.sashimi_config(vocab),
                cfg.seed,
            )?),
        })
    }

    /// Loads a saved model of family `kind` from `dir` (`config.json` + `model.safetensors`).
    pub fn load(kind: ModelKind, dir: &Path) -> Result<Self> {
        Ok(match kind {
            ModelKind::Mamba => TrainModel::Mamba(TrainMamba::load(dir)?),
            ModelKind::Transformer => TrainModel::Transformer(TrainTransformer::load(dir)?),
            ModelKind::S4 => TrainModel::S4(crate::s4lm::S4Lm::load(dir)?),
            ModelKind::Sashimi => TrainModel::Sashimi(crate::sashimi::Sashimi::load(dir)?),
        })
    }

    /// The same model with every parameter copied to `device` (shared, not copied, when
    /// it is already there), e.g. to train on a GPU.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(match self {
            TrainModel::Mamba(m) => TrainModel::Mamba(m.to_device(device)?),
            TrainModel::Transformer(m) => TrainModel::Transformer(m.to_device(device)?),
            TrainModel::S4(m) => TrainModel::S4(m.to_device(device)?),
            TrainModel::Sashimi(m) => TrainModel::Sashimi(m.to_device(device)?),
        })
    }

    /// The family.
    pub fn kind(&self) -> ModelKind {
        match self {
            TrainModel::Mamba(_) => ModelKind::Mamba,
            TrainModel::Transformer(_) => ModelKind::Transformer,
            TrainModel::S4(_) => ModelKind::S4,
            TrainModel::Sashimi(_) => ModelKind::Sashimi,
        }
    }

    /// Rows of the embedding.
    pub fn vocab_size(&self) -> usize {
        match self {
            TrainModel::Mamba(m) => m.config().vocab_size,
            TrainModel::Transformer(m) => m.config().vocab_size,
            TrainModel::S4(m) => m.config().vocab_size,
            TrainModel::Sashimi(m) => m.config().vocab_size,
        }
    }

    /// Errors unless this model has exactly the sizes `cfg` describes for `vocab`.
    pub fn check_matches(&self, cfg: &TrainConfig, vocab: usize) -> Result<()> {
        if self.kind() != cfg.model {
            return Err(LmError::Mismatch(format!(
                "the checkpoint holds a {} model, the config says {}",
                self.kind().name(),
                cfg.model.name()
            )));
        }
        if self.vocab_size() != vocab {
            return Err(LmError::Mismatch(format!(
                "the checkpoint's vocabulary ({}) does not match the data's ({vocab})",
                self.vocab_size()
            )));
        }
        let same = match self {
            TrainModel::Mamba(m) => *m.config() == mamba_dims(cfg, vocab).config(),
            TrainModel::Transformer(m) => *m.config() == cfg.transformer_config(vocab),
            // S4D weights do not depend on `l_max` (only S4-LegS's C̃ does), so an S4D model
            // may go on training at another sequence length.
            TrainModel::S4(m) => {
                let mut want = cfg.s4_config(vocab);
                if want.ssm == SsmName::S4d {
                    want.l_max = m.config().l_max;
                }
                *m.config() == want
            }
            TrainModel::Sashimi(m) => {
                let mut want = cfg.sashimi_config(vocab);
                if want.ssm == SsmName::S4d {
                    want.l_max = m.config().l_max;
                }
                *m.config() == want
            }
        };
        if !same {
            return Err(LmError::Mismatch(
                "the checkpoint's model sizes differ from the config's".into(),
            ));
        }
        Ok(())
    }

    /// Named parameters, in checkpoint order.
    pub fn params(&self) -> &[(String, Var)] {
        match self {
            TrainModel::Mamba(m) => m.params(),
            TrainModel::Transformer(m) => m.params(),
            TrainModel::S4(m) => m.params(),
            TrainModel::Sashimi(m) => m.params(),
        }
    }

    /// The weight-decay group of parameter `name` for this family.
    pub fn decay_fn(&self) -> fn(&str) -> bool {
        match self {
            TrainModel::Mamba(_) => crate::mamba::train_model::decays,
            TrainModel::Transformer(_) => crate::transformer::train_model::decays,
            TrainModel::S4(_) | TrainModel::Sashimi(_) => crate::s4lm::layer::decays,
        }
    }

    /// Logits (batch, len, V) of `tokens` (batch·len ids); `seq_idx` keeps each packed
    /// document separate (Mamba: state reset; Transformer: block-diagonal causal attention).
    pub fn forward(&self, tokens: &[u32], batch: usize, seq_idx: Option<&[i32]>) -> Result<Tensor> {
        match self {
            TrainModel::Mamba(m) => m.forward(tokens, batch, seq_idx),
            TrainModel::Transformer(m) => m.forward(tokens, batch, seq_idx),
            TrainModel::S4(m) => m.forward(tokens, batch, seq_idx),
            TrainModel::Sashimi(m) => m.forward(tokens, batch, seq_idx),
        }
    }

    /// Writes `config.json` and `model.safetensors` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        match self {
            TrainModel::Mamba(m) => m.save(dir),
            TrainModel::Transformer(m) => m.save(dir),
            TrainModel::S4(m) => m.save(dir),
            TrainModel::Sashimi(m) => m.save(dir),
        }
    }
}
