//! One loader for every model kind, so tools take `--model PATH` without asking which kind it
//! is: a directory with `config.json` (`model_type` `mamba`, `falcon_mamba` or `mamba2`, or a mamba_ssm config →
//! the Mamba LM with Mamba-1 or Mamba-2 blocks; `llama` / `seqlab_transformer` → the Transformer LM;
//! `seqlab_s4` → the S4 LM; `seqlab_sashimi` → SaShiMi) or a `.gguf` file (a Llama-family
//! model with its embedded tokenizer). [`AnyLm`] implements [`CausalLm`] by dispatching to the
//! model inside, so one generation / evaluation / speculation loop serves them all.

use crate::causal_lm::CausalLm;
use crate::error::{LmError, Result};
use crate::mamba::{MambaLm, MambaLmState};
use crate::transformer::{TransformerLm, TransformerState};
use seqlab_tokenizer::Tokenizer;
use std::path::{Path, PathBuf};

/// A loaded model of any kind.
#[derive(Debug, Clone)]
pub enum AnyLm {
    /// A Mamba LM (HF or mamba_ssm layout).
    Mamba(MambaLm),
    /// A Llama-style Transformer LM (safetensors or GGUF).
    Transformer(TransformerLm),
    /// An S4 / S4D LM (`model_type` `seqlab_s4`).
    S4(crate::s4lm::S4Lm),
    /// A SaShiMi audio model (`model_type` `seqlab_sashimi`).
    Sashimi(crate::sashimi::Sashimi),
    /// A Mamba LM stepping with tensor ops on a device other than the CPU (a CUDA GPU).
    MambaDevice(crate::mamba::MambaDeviceLm),
}

/// The [`CausalLm`] state of an [`AnyLm`].
#[derive(Debug, Clone)]
pub enum AnyState {
    /// A Mamba LM's state.
    Mamba(MambaLmState),
    /// A Transformer LM's KV cache.
    Transformer(TransformerState),
    /// An S4 LM's state.
    S4(crate::s4lm::S4LmState),
    /// A SaShiMi state.
    Sashimi(crate::sashimi::SashimiState),
    /// A device Mamba LM's state.
    MambaDevice(crate::mamba::MambaDeviceState),
}

/// A model with what the tools need next to it.
#[derive(Debug)]
pub struct LoadedLm {
    /// The model.
    pub model: AnyLm,
    /// Its tokenizer: `tokenizer.json` in the model directory, or the one embedded in a GGUF.
    pub tokenizer: Option<Box<dyn Tokenizer>>,
    /// The end-of-sequence id from the model's config, when it names one.
    pub eos_id: Option<u32>,
    /// Where it was loaded from.
    pub path: PathBuf,
}

impl AnyLm {
    /// `"mamba"` or `"transformer"`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyLm::Mamba(_) | AnyLm::MambaDevice(_) => "mamba",
            AnyLm::Transformer(_) => "transformer",
            AnyLm::S4(_) => "s4",
            AnyLm::Sashimi(_) => "sashimi",
        }
    }
}

/// Which model kind a directory's `config.json` describes.
fn kind_of_dir(dir: &Path) -> Result<&'static str> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(LmError::FileNotFound {
            what: "config.json".into(),
            path,
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| LmError::Read {
        path: path.clone(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| LmError::Config {
        path: path.clone(),
        reason: format!("not valid JSON ({e})"),
    })?;
    match v.get("model_type").and_then(serde_json::Value::as_str) {
        Some("mamba" | "falcon_mamba" | "mamba2") => Ok("mamba"),
        Some("llama" | "seqlab_transformer" | "mistral") => Ok("transformer"),
        Some("seqlab_s4") => Ok("s4"),
        Some("seqlab_sashimi") => Ok("sashimi"),
        Some(other) => Err(LmError::Config {
            path,
            reason: format!(
                "model_type `{other}` is not one seqlab runs (mamba, falcon_mamba, mamba2, llama, \
                 seqlab_transformer, seqlab_s4, seqlab_sashimi)"
            ),
        }),
        // The original mamba_ssm config has no model_type but names d_model / n_layer.
        None if v.get("d_model").is_some() => Ok("mamba"),
        None if v.get("num_attention_heads").is_some() => Ok("transformer"),
        None => Err(LmError::Config {
            path,
            reason: "no `model_type`, and the keys match neither a Mamba nor a Llama config".into(),
        }),
    }
}

/// Loads the model at `path` (module docs) with its tokenizer when one is there.
pub fn load_lm(path: &Path) -> Result<LoadedLm> {
    if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
        let (model, tokenizer) = crate::gguf::load_gguf(path)?;
        let eos_id = model.config().eos_token_id;
        return Ok(LoadedLm {
            model: AnyLm::Transformer(model),
            tokenizer: Some(Box::new(tokenizer)),
            eos_id,
            path: path.to_path_buf(),
        });
    }
    if !path.is_dir() {
        return Err(if path.exists() {
            LmError::NotAModel {
                path: path.to_path_buf(),
            }
        } else {
            LmError::ModelDirNotFound {
                path: path.to_path_buf(),
            }
        });
    }
    // A checkpoint seqlab trained carries a manifest of checksums: a changed byte is an error
    // naming the file. Directories without one (bundled or Hugging Face models) load as is.
    seqlab_train::verify_manifest(path)?;
    let (model, eos_id) = match kind_of_dir(path)? {
        "mamba" => {
            let m = MambaLm::load(path)?;
            let eos = m.config().eos_token_id;
            (AnyLm::Mamba(m), eos)
        }
        "s4" => (AnyLm::S4(crate::s4lm::S4Lm::load(path)?), None),
        "sashimi" => (AnyLm::Sashimi(crate::sashimi::Sashimi::load(path)?), None),
        _ => {
            let m = TransformerLm::load(path)?;
            let eos = m.config().eos_token_id;
            (AnyLm::Transformer(m), eos)
        }
    };
    let tok_path = path.join("tokenizer.json");
    let tokenizer = if tok_path.is_file() {
        Some(seqlab_tokenizer::load(&tok_path)?)
    } else {
        None
    };
    Ok(LoadedLm {
        model,
        tokenizer,
        eos_id,
        path: path.to_path_buf(),
    })
}

/// Loads the model at `path` like [`load_lm`], with its weights on `device`: the CPU, or a
/// CUDA GPU for Mamba (recurrent steps as device tensor ops, [`crate::mamba::MambaDeviceLm`])
/// and dense Transformer directories. GGUF (quantized), S4 and SaShiMi models run on the CPU.
pub fn load_lm_on(path: &Path, device: &candle_core::Device) -> Result<LoadedLm> {
    let mut lm = load_lm(path)?;
    if device.is_cpu() {
        return Ok(lm);
    }
    let gguf = path.extension().is_some_and(|e| e == "gguf");
    lm.model = match &lm.model {
        AnyLm::Mamba(_) => AnyLm::MambaDevice(crate::mamba::MambaDeviceLm::load(path, device)?),
        AnyLm::Transformer(_) if !gguf => AnyLm::Transformer(
            crate::transformer::TrainTransformer::load(path)?
                .to_device(device)?
                .model()
                .clone(),
        ),
        other => {
            return Err(LmError::Unsupported(format!(
                "{} ({} model{}) runs on the CPU only",
                path.display(),
                other.kind(),
                if gguf { ", quantized GGUF" } else { "" }
            )))
        }
    };
    Ok(lm)
}

/// A state of the other kind than the model: a caller mixed two models' states.
fn foreign_state() -> LmError {
    LmError::State("the state belongs to a model of another kind".into())
}

impl CausalLm for AnyLm {
    type State = AnyState;

    fn vocab_size(&self) -> usize {
        match self {
            AnyLm::Mamba(m) => CausalLm::vocab_size(m),
            AnyLm::Transformer(m) => CausalLm::vocab_size(m),
            AnyLm::S4(m) => CausalLm::vocab_size(m),
            AnyLm::Sashimi(m) => CausalLm::vocab_size(m),
            AnyLm::MambaDevice(m) => CausalLm::vocab_size(m),
        }
    }

    fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, AnyState)> {
        Ok(match self {
            AnyLm::Mamba(m) => {
                let (l, s) = CausalLm::prefill(m, tokens)?;
                (l, AnyState::Mamba(s))
            }
            AnyLm::Transformer(m) => {
                let (l, s) = CausalLm::prefill(m, tokens)?;
                (l, AnyState::Transformer(s))
            }
            AnyLm::S4(m) => {
                let (l, s) = CausalLm::prefill(m, tokens)?;
                (l, AnyState::S4(s))
            }
            AnyLm::Sashimi(m) => {
                let (l, s) = CausalLm::prefill(m, tokens)?;
                (l, AnyState::Sashimi(s))
            }
            AnyLm::MambaDevice(m) => {
                let (l, s) = CausalLm::prefill(m, tokens)?;
                (l, AnyState::MambaDevice(s))
            }
        })
    }

    fn step(&self, state: &mut AnyState, token: u32) -> Result<Vec<f32>> {
        match (self, state) {
            (AnyLm::Mamba(m), AnyState::Mamba(s)) => CausalLm::step(m, s, token),
            (AnyLm::Transformer(m), AnyState::Transformer(s)) => CausalLm::step(m, s, token),
            (AnyLm::S4(m), AnyState::S4(s)) => CausalLm::step(m, s, token),
            (AnyLm::Sashimi(m), AnyState::Sashimi(s)) => CausalLm::step(m, s, token),
            (AnyLm::MambaDevice(m), AnyState::MambaDevice(s)) => CausalLm::step(m, s, token),
            _ => Err(foreign_state()),
        }
    }

    fn score(&self, state: &mut AnyState, tokens: &[u32]) -> Result<Vec<f32>> {
        match (self, state) {
            (AnyLm::Mamba(m), AnyState::Mamba(s)) => CausalLm::score(m, s, tokens),
            (AnyLm::Transformer(m), AnyState::Transformer(s)) => CausalLm::score(m, s, tokens),
            (AnyLm::S4(m), AnyState::S4(s)) => CausalLm::score(m, s, tokens),
            (AnyLm::Sashimi(m), AnyState::Sashimi(s)) => CausalLm::score(m, s, tokens),
            (AnyLm::MambaDevice(m), AnyState::MambaDevice(s)) => CausalLm::score(m, s, tokens),
            _ => Err(foreign_state()),
        }
    }

    fn state_len(&self, state: &AnyState) -> usize {
        match state {
            AnyState::Mamba(s) => s.current.seqlen,
            AnyState::Transformer(s) => s.cache.len,
            AnyState::S4(s) => s.consumed(),
            AnyState::Sashimi(s) => s.consumed(),
            AnyState::MambaDevice(s) => s.consumed(),
        }
    }

    fn truncate(&self, state: &mut AnyState, len: usize) -> Result<()> {
        match (self, state) {
            (AnyLm::Mamba(m), AnyState::Mamba(s)) => m.truncate(s, len),
            (AnyLm::Transformer(m), AnyState::Transformer(s)) => m.truncate(s, len),
            (AnyLm::S4(m), AnyState::S4(s)) => m.truncate(s, len),
            (AnyLm::Sashimi(m), AnyState::Sashimi(s)) => m.truncate(s, len),
            (AnyLm::MambaDevice(m), AnyState::MambaDevice(s)) => m.truncate(s, len),
            _ => Err(foreign_state()),
        }
    }

    fn in_decode_context<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            AnyLm::Mamba(m) => CausalLm::in_decode_context(m, f),
            AnyLm::Transformer(m) => CausalLm::in_decode_context(m, f),
            AnyLm::S4(m) => CausalLm::in_decode_context(m, f),
            AnyLm::Sashimi(m) => CausalLm::in_decode_context(m, f),
            AnyLm::MambaDevice(m) => CausalLm::in_decode_context(m, f),
        }
    }
}
