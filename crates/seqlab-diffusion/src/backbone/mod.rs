//! Trainable bidirectional denoisers (the [`Denoiser`] backbones of MDLM) and their files.
//!
//! - [`transformer`]: [`TransformerDenoiser`], seqlab-lm's Transformer without the causal mask;
//! - [`mamba`]: [`MambaDenoiser`], a bidirectional Mamba (a forward and a reversed selective
//!   scan per block, summed or concatenated; Caduceus-style);
//! - [`config`]: [`DiffusionConfig`], the shared LM keys + the diffusion keys.
//!
//! Vocabulary: the tokenizer's ids 0 … V−1 plus one [MASK] id = V (the last id), so the
//! networks have V + 1 rows. Parameters are candle `Var`s (trained in place by AdamW).
//! Both are time-agnostic by default; with `time_conditioning` a learned linear map of
//! sinusoidal features of t (DiT-style, zero-initialised so training starts time-agnostic) is
//! added to every input embedding.
//!
//! A model directory holds `config.json` ([`ModelFile`]) and `model.safetensors` (f32), each
//! written atomically; [`load_denoiser`] / [`AnyDenoiser::load`] read it back.

pub mod config;
pub mod mamba;
pub mod transformer;

pub use config::{BidirMerge, DiffusionConfig, DiffusionKeys};
pub use mamba::MambaDenoiser;
pub use transformer::TransformerDenoiser;

use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use candle_core::{DType, Device, Tensor, Var};
use seqlab_lm::train::ModelKind;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The `format` value of a denoiser's `config.json`.
pub const MODEL_FORMAT: &str = "seqlab-mdlm";
/// Name of the time-embedding matrix (D × D) of a time-conditioned denoiser.
pub const TIME_EMBED: &str = "time_embed.weight";

/// A denoiser directory's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// The backbone (`"transformer"` | `"mamba"`).
    pub backbone: String,
    /// Network vocabulary (tokenizer ids + 1).
    pub vocab_size: usize,
    /// The [MASK] id (= vocab_size − 1).
    pub mask_id: u32,
    /// The full configuration the model was made with ([`DiffusionConfig::to_value`]).
    pub config: serde_json::Value,
}

/// Reads `dir/config.json` and `dir/model.safetensors`: the configuration, the vocabulary of
/// the tokenizer (without [MASK]) and the tensors.
pub(crate) fn read_model_dir(
    dir: &Path,
) -> Result<(DiffusionConfig, usize, HashMap<String, Tensor>)> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| DiffusionError::Io(format!("cannot read {}: {e}", path.display())))?;
    let file: ModelFile = serde_json::from_str(&text).map_err(|e| {
        DiffusionError::Checkpoint(format!(
            "{} is not a seqlab diffusion model config: {e}",
            path.display()
        ))
    })?;
    if file.format != MODEL_FORMAT {
        return Err(DiffusionError::Checkpoint(format!(
            "{}: format `{}`, expected `{MODEL_FORMAT}`",
            path.display(),
            file.format
        )));
    }
    if file.vocab_size < 2 || file.mask_id as usize != file.vocab_size - 1 {
        return Err(DiffusionError::Checkpoint(format!(
            "{}: mask id {} must be the last of {} ids",
            path.display(),
            file.mask_id,
            file.vocab_size
        )));
    }
    seqlab_tensor::limits::check_plausible(&[(
        "vocab_size",
        file.vocab_size,
        seqlab_tensor::limits::Dim::Vocab,
    )])
    .map_err(|e| DiffusionError::Checkpoint(format!("{}: {e}", path.display())))?;
    let cfg = DiffusionConfig::from_value(file.config)?;
    if cfg.lm.model.name() != file.backbone {
        return Err(DiffusionError::Checkpoint(format!(
            "{}: backbone `{}` but the config says `{}`",
            path.display(),
            file.backbone,
            cfg.lm.model.name()
        )));
    }
    let weights = dir.join("model.safetensors");
    let t = seqlab_tensor::load(&weights, &Device::Cpu)?;
    Ok((cfg, file.vocab_size - 1, t))
}

/// Writes `config.json` and `model.safetensors` (f32) of a denoiser into `dir`, each atomically.
pub(crate) fn write_model_dir(
    dir: &Path,
    cfg: &DiffusionConfig,
    data_vocab: usize,
    params: &[(String, Var)],
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| DiffusionError::Io(format!("cannot create {}: {e}", dir.display())))?;
    let mut t = HashMap::new();
    for (name, v) in params {
        t.insert(name.clone(), v.as_tensor().to_dtype(DType::F32)?);
    }
    seqlab_tensor::save_atomic(dir.join("model.safetensors"), &t)?;
    let file = ModelFile {
        format: MODEL_FORMAT.into(),
        backbone: cfg.lm.model.name().into(),
        vocab_size: data_vocab + 1,
        mask_id: data_vocab as u32,
        config: cfg.to_value(),
    };
    let json = serde_json::to_string_pretty(&file).expect("a model file serialises");
    seqlab_io::write_atomic(dir.join("config.json"), json.as_bytes())
        .map_err(|e| DiffusionError::Io(e.to_string()))
}

/// Takes the tensor `name` of shape `shape` out of `t` (one clear error when missing or
/// misshapen).
pub(crate) fn take(t: &mut HashMap<String, Tensor>, name: &str, shape: &[usize]) -> Result<Tensor> {
    let x = t
        .remove(name)
        .ok_or_else(|| DiffusionError::Checkpoint(format!("tensor `{name}` is missing")))?;
    if x.dims() != shape {
        return Err(DiffusionError::Checkpoint(format!(
            "tensor `{name}` has shape {:?}, expected {shape:?}",
            x.dims()
        )));
    }
    Ok(x)
}

/// Sinusoidal features of t (DiT / Transformer positional form, t scaled by 1000):
/// `[cos(1000 t f_i), sin(1000 t f_i)]`, f_i = 10000^(−i/(D/2)), i < D/2; (batch, 1, D) in
/// `dtype` (a zero column pads an odd D).
pub fn time_features(t: &[f64], d: usize, dtype: DType) -> Result<Tensor> {
    let half = d / 2;
    let mut out = vec![0f64; t.len() * d];
    for (b, &tb) in t.iter().enumerate() {
        for i in 0..half {
            let f = (-(10_000f64.ln()) * i as f64 / half as f64).exp();
            let a = 1000.0 * tb * f;
            out[b * d + i] = a.cos();
            out[b * d + half + i] = a.sin();
        }
    }
    Ok(Tensor::from_vec(out, (t.len(), 1, d), &Device::Cpu)?.to_dtype(dtype)?)
}

/// The time-conditioning input shift `time_features(t) · Wᵀ` (batch, 1, D) for W (D × D).
pub(crate) fn time_shift(w: &Var, t: &[f64]) -> Result<Tensor> {
    let d = w.as_tensor().dim(0)?;
    let f = time_features(t, d, w.as_tensor().dtype())?;
    Ok(f.broadcast_matmul(&w.as_tensor().t()?)?)
}

/// Checks the arguments of [`Denoiser::logits`]: `batch` equal rows, ids below `vocab`, one
/// finite time in [0, 1] per row. Returns the row length.
pub(crate) fn check_logits_args(
    tokens: &[u32],
    batch: usize,
    t: &[f64],
    vocab: usize,
) -> Result<usize> {
    let len = seqlab_tensor::batch_rows(tokens.len(), batch)?;
    if t.len() != batch {
        return Err(DiffusionError::Input(format!(
            "{} times for a batch of {batch}",
            t.len()
        )));
    }
    if let Some(x) = t.iter().find(|x| !(0.0..=1.0).contains(*x)) {
        return Err(DiffusionError::Input(format!(
            "diffusion time {x} outside [0, 1]"
        )));
    }
    if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
        return Err(DiffusionError::Input(format!(
            "token id {id} outside the denoiser's vocabulary of {vocab} ([MASK] = {})",
            vocab - 1
        )));
    }
    Ok(len)
}

/// A trainable denoiser of either backbone.
#[derive(Debug, Clone)]
pub enum AnyDenoiser {
    /// Bidirectional Transformer.
    Transformer(TransformerDenoiser),
    /// Bidirectional Mamba.
    Mamba(MambaDenoiser),
}

impl AnyDenoiser {
    /// A freshly initialised denoiser of `cfg.lm.model` for a tokenizer of `data_vocab` ids
    /// (the network gets one more, [MASK]), deterministic in `cfg.lm.seed`.
    pub fn init(cfg: &DiffusionConfig, data_vocab: usize) -> Result<Self> {
        cfg.validate()?;
        Ok(match cfg.lm.model {
            ModelKind::Transformer => {
                AnyDenoiser::Transformer(TransformerDenoiser::init(cfg, data_vocab)?)
            }
            ModelKind::Mamba => AnyDenoiser::Mamba(MambaDenoiser::init(cfg, data_vocab)?),
            other => {
                return Err(DiffusionError::Config(format!(
                    "no diffusion backbone `{}`",
                    other.name()
                )))
            }
        })
    }

    /// Loads a denoiser directory written by [`Self::save`] (either backbone).
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(DiffusionError::Io(format!(
                "model directory {} does not exist",
                dir.display()
            )));
        }
        // A trained checkpoint's manifest of checksums (none in bundled model directories).
        seqlab_train::verify_manifest(dir)?;
        let (cfg, data_vocab, t) = read_model_dir(dir)?;
        Ok(match cfg.lm.model {
            ModelKind::Transformer => {
                AnyDenoiser::Transformer(TransformerDenoiser::from_tensors(&cfg, data_vocab, t)?)
            }
            _ => AnyDenoiser::Mamba(MambaDenoiser::from_tensors(&cfg, data_vocab, t)?),
        })
    }

    /// Writes `config.json` + `model.safetensors` into `dir` (each atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_model_dir(dir, self.config(), self.vocab_size() - 1, self.params())
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &DiffusionConfig {
        match self {
            AnyDenoiser::Transformer(m) => m.config(),
            AnyDenoiser::Mamba(m) => m.config(),
        }
    }

    /// Named parameters, in checkpoint order.
    pub fn params(&self) -> &[(String, Var)] {
        match self {
            AnyDenoiser::Transformer(m) => m.params(),
            AnyDenoiser::Mamba(m) => m.params(),
        }
    }

    /// The AdamW weight-decay group of parameter `name` (matrices and embeddings decay; norms,
    /// biases, Mamba's `A_log` and `D` do not).
    pub fn decay_fn(&self) -> fn(&str) -> bool {
        match self {
            AnyDenoiser::Transformer(_) => seqlab_lm::transformer::train_model::decays,
            AnyDenoiser::Mamba(_) => seqlab_lm::mamba::train_model::decays,
        }
    }
}

impl Denoiser for AnyDenoiser {
    fn vocab_size(&self) -> usize {
        match self {
            AnyDenoiser::Transformer(m) => m.vocab_size(),
            AnyDenoiser::Mamba(m) => m.vocab_size(),
        }
    }

    fn mask_id(&self) -> u32 {
        match self {
            AnyDenoiser::Transformer(m) => m.mask_id(),
            AnyDenoiser::Mamba(m) => m.mask_id(),
        }
    }

    fn logits(&self, tokens: &[u32], batch: usize, t: &[f64]) -> Result<Tensor> {
        match self {
            AnyDenoiser::Transformer(m) => m.logits(tokens, batch, t),
            AnyDenoiser::Mamba(m) => m.logits(tokens, batch, t),
        }
    }
}

/// Loads a trained denoiser directory (`seqlab diffusion train`'s `RUN/checkpoint`, or a
/// bundled model such as `models/mdlm-little`) behind the [`Denoiser`] interface.
pub fn load_denoiser(dir: &Path) -> Result<Box<dyn Denoiser>> {
    Ok(Box::new(AnyDenoiser::load(dir)?))
}
