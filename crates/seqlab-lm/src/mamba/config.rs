//! Mamba model configuration, read from either checkpoint family's `config.json`:
//!
//! - Hugging Face `MambaConfig`: `vocab_size` (already padded; the embedding has exactly this
//!   many rows), `hidden_size`, `state_size`, `num_hidden_layers`, `layer_norm_epsilon`,
//!   `expand` / `intermediate_size`, `conv_kernel`, `use_bias`, `use_conv_bias`,
//!   `time_step_rank` (`"auto"` → ⌈d_model/16⌉), `tie_word_embeddings`, `residual_in_fp32`;
//! - original `mamba_ssm` `MambaConfig`: `d_model`, `n_layer`, `vocab_size` padded up to a
//!   multiple of `pad_vocab_size_multiple`, `ssm_cfg` (`d_state`, `d_conv`, `expand`, `dt_rank`,
//!   `conv_bias`, `bias`, `layer`), `rms_norm`, `residual_in_fp32`, `tie_embeddings`; the norm
//!   epsilon is the code's fixed 1e-5.
//!
//! Architectures this crate cannot run (Mamba-2 layers, LayerNorm instead of RMSNorm, attention
//! or MLP layers) are refused with a message saying so.

use crate::error::{LmError, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// Which tensor names a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MambaLayout {
    /// Hugging Face `MambaForCausalLM`: `backbone.embeddings.weight`.
    Hf,
    /// Original `mamba_ssm` `MambaLMHeadModel`: `backbone.embedding.weight`.
    Original,
}

/// Sizes and options of a Mamba LM, in the paper's notation.
#[derive(Debug, Clone, PartialEq)]
pub struct MambaConfig {
    /// Which tensor names the checkpoint uses.
    pub layout: MambaLayout,
    /// Rows of the embedding (= logits per position), padded vocabulary.
    pub vocab_size: usize,
    /// Model width D.
    pub d_model: usize,
    /// Number of Mamba blocks.
    pub n_layer: usize,
    /// SSM state size N per channel.
    pub d_state: usize,
    /// Causal conv kernel width K.
    pub d_conv: usize,
    /// Inner width E·D.
    pub d_inner: usize,
    /// Rank R of the Δ projection.
    pub dt_rank: usize,
    /// RMSNorm ε.
    pub norm_eps: f64,
    /// `conv1d` has a bias.
    pub conv_bias: bool,
    /// `in_proj` / `out_proj` have biases.
    pub proj_bias: bool,
    /// `lm_head` shares the embedding matrix.
    pub tie_embeddings: bool,
    /// The residual stream is kept in f32 (always true here: everything is f32).
    pub residual_in_fp32: bool,
    /// End-of-sequence id from the config, when it names one.
    pub eos_token_id: Option<u32>,
}

impl MambaConfig {
    /// Reads `config.json` at `path`, HF or original format (told apart by `d_model`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LmError::FileNotFound {
                    what: "model config config.json".into(),
                    path: path.to_path_buf(),
                }
            } else {
                LmError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Self::from_json_str(&text).map_err(|reason| LmError::Config {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses a config from JSON text; the error is the reason (without the file name).
    pub fn from_json_str(text: &str) -> std::result::Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
        let obj = v
            .as_object()
            .ok_or_else(|| "expected a JSON object".to_string())?;
        if obj.contains_key("d_model") {
            Self::from_original(obj)
        } else if obj.contains_key("hidden_size") {
            Self::from_hf(obj)
        } else {
            Err("neither `hidden_size` (Hugging Face MambaConfig) nor `d_model` (mamba_ssm config) is present".into())
        }
    }

    /// HF `MambaConfig`.
    fn from_hf(o: &Map<String, Value>) -> std::result::Result<Self, String> {
        if let Some(t) = o.get("model_type").and_then(Value::as_str) {
            if t != "mamba" {
                return Err(format!(
                    "model_type `{t}` is not supported (only `mamba`, i.e. Mamba-1)"
                ));
            }
        }
        let d_model = req_usize(o, "hidden_size")?;
        let expand = opt_usize(o, "expand")?.unwrap_or(2);
        let d_inner = opt_usize(o, "intermediate_size")?.unwrap_or(expand.saturating_mul(d_model));
        let cfg = Self {
            layout: MambaLayout::Hf,
            vocab_size: req_usize(o, "vocab_size")?,
            d_model,
            n_layer: req_usize(o, "num_hidden_layers")?,
            d_state: opt_usize(o, "state_size")?.unwrap_or(16),
            d_conv: opt_usize(o, "conv_kernel")?.unwrap_or(4),
            d_inner,
            dt_rank: dt_rank(o.get("time_step_rank"), d_model, "time_step_rank")?,
            norm_eps: opt_f64(o, "layer_norm_epsilon")?.unwrap_or(1e-5),
            conv_bias: opt_bool(o, "use_conv_bias")?.unwrap_or(true),
            proj_bias: opt_bool(o, "use_bias")?.unwrap_or(false),
            tie_embeddings: opt_bool(o, "tie_word_embeddings")?.unwrap_or(true),
            residual_in_fp32: opt_bool(o, "residual_in_fp32")?.unwrap_or(true),
            eos_token_id: eos(o.get("eos_token_id"))?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Original `mamba_ssm` config (`MambaLMHeadModel`).
    fn from_original(o: &Map<String, Value>) -> std::result::Result<Self, String> {
        let d_model = req_usize(o, "d_model")?;
        let empty = Map::new();
        let ssm = match o.get("ssm_cfg") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err("`ssm_cfg` must be an object".into()),
        };
        if let Some(layer) = ssm.get("layer").and_then(Value::as_str) {
            if layer != "Mamba1" {
                return Err(format!(
                    "ssm_cfg.layer `{layer}` is not supported (only Mamba1)"
                ));
            }
        }
        if opt_usize(o, "d_intermediate")?.unwrap_or(0) != 0 {
            return Err("d_intermediate > 0 (MLP blocks) is not supported".into());
        }
        if o.get("attn_layer_idx")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            return Err("attention layers (attn_layer_idx) are not supported".into());
        }
        if !opt_bool(o, "rms_norm")?.unwrap_or(true) {
            return Err("rms_norm = false (LayerNorm) is not supported".into());
        }
        let vocab = req_usize(o, "vocab_size")?;
        let pad = opt_usize(o, "pad_vocab_size_multiple")?.unwrap_or(8).max(1);
        let expand = opt_usize(ssm, "expand")?.unwrap_or(2);
        let cfg = Self {
            layout: MambaLayout::Original,
            vocab_size: vocab.div_ceil(pad).saturating_mul(pad),
            d_model,
            n_layer: req_usize(o, "n_layer")?,
            d_state: opt_usize(ssm, "d_state")?.unwrap_or(16),
            d_conv: opt_usize(ssm, "d_conv")?.unwrap_or(4),
            d_inner: expand.saturating_mul(d_model),
            dt_rank: dt_rank(ssm.get("dt_rank"), d_model, "ssm_cfg.dt_rank")?,
            norm_eps: 1e-5,
            conv_bias: opt_bool(ssm, "conv_bias")?.unwrap_or(true),
            proj_bias: opt_bool(ssm, "bias")?.unwrap_or(false),
            tie_embeddings: opt_bool(o, "tie_embeddings")?.unwrap_or(true),
            residual_in_fp32: opt_bool(o, "residual_in_fp32")?.unwrap_or(true),
            eos_token_id: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        crate::limits::check_mamba(self)?;
        for (name, v) in [
            ("vocab size", self.vocab_size),
            ("model width", self.d_model),
            ("number of layers", self.n_layer),
            ("state size", self.d_state),
            ("conv kernel", self.d_conv),
            ("inner width", self.d_inner),
            ("dt rank", self.dt_rank),
        ] {
            if v == 0 {
                return Err(format!("{name} must be ≥ 1"));
            }
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(format!(
                "norm epsilon {} is not a number ≥ 0",
                self.norm_eps
            ));
        }
        Ok(())
    }

    /// Width of `x_proj`'s output: R + 2N (Δ, B, C).
    pub fn x_proj_dim(&self) -> usize {
        self.dt_rank + 2 * self.d_state
    }
}

fn field_err(key: &str, want: &str, v: &Value) -> String {
    format!("`{key}` must be {want}, got {v}")
}

fn opt_usize(o: &Map<String, Value>, key: &str) -> std::result::Result<Option<usize>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| field_err(key, "a non-negative integer", v)),
    }
}

fn req_usize(o: &Map<String, Value>, key: &str) -> std::result::Result<usize, String> {
    opt_usize(o, key)?.ok_or_else(|| format!("missing field `{key}`"))
}

fn opt_f64(o: &Map<String, Value>, key: &str) -> std::result::Result<Option<f64>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| field_err(key, "a number", v)),
    }
}

fn opt_bool(o: &Map<String, Value>, key: &str) -> std::result::Result<Option<bool>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| field_err(key, "true or false", v)),
    }
}

/// `"auto"` (or absent) → ⌈d_model / 16⌉, else the integer.
fn dt_rank(v: Option<&Value>, d_model: usize, key: &str) -> std::result::Result<usize, String> {
    match v {
        None | Some(Value::Null) => Ok(d_model.div_ceil(16)),
        Some(Value::String(s)) if s == "auto" => Ok(d_model.div_ceil(16)),
        Some(v) => v
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| field_err(key, "\"auto\" or a positive integer", v)),
    }
}

/// `eos_token_id`: null, an id, or a list of ids (the first is taken).
fn eos(v: Option<&Value>) -> std::result::Result<Option<u32>, String> {
    let one = |v: &Value| {
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| field_err("eos_token_id", "a token id", v))
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a.first().map(one).transpose(),
        Some(v) => one(v).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_auto_rank_and_defaults() {
        let c = MambaConfig::from_json_str(
            r#"{"hidden_size": 768, "num_hidden_layers": 24, "vocab_size": 50280,
                "time_step_rank": "auto", "model_type": "mamba"}"#,
        )
        .unwrap();
        assert_eq!(c.layout, MambaLayout::Hf);
        assert_eq!(
            (c.dt_rank, c.d_inner, c.d_state, c.d_conv),
            (48, 1536, 16, 4)
        );
        assert!(c.tie_embeddings && c.conv_bias && !c.proj_bias);
    }

    #[test]
    fn original_pads_vocab() {
        let c = MambaConfig::from_json_str(
            r#"{"d_model": 768, "n_layer": 24, "vocab_size": 50277, "ssm_cfg": {},
                "rms_norm": true, "residual_in_fp32": true, "fused_add_norm": true,
                "pad_vocab_size_multiple": 8}"#,
        )
        .unwrap();
        assert_eq!(c.layout, MambaLayout::Original);
        assert_eq!((c.vocab_size, c.dt_rank, c.d_inner), (50280, 48, 1536));
    }

    #[test]
    fn unsupported_and_bad_fields_are_named() {
        let e = MambaConfig::from_json_str(
            r#"{"d_model": 8, "n_layer": 1, "vocab_size": 8, "ssm_cfg": {"layer": "Mamba2"}}"#,
        )
        .unwrap_err();
        assert!(e.contains("Mamba2"), "{e}");
        let e = MambaConfig::from_json_str(
            r#"{"hidden_size": 8, "num_hidden_layers": "x", "vocab_size": 8}"#,
        )
        .unwrap_err();
        assert!(e.contains("num_hidden_layers"), "{e}");
        let e = MambaConfig::from_json_str(r#"{"hidden_size": 8, "vocab_size": 8}"#).unwrap_err();
        assert!(e.contains("missing field `num_hidden_layers`"), "{e}");
        assert!(MambaConfig::from_json_str("{")
            .unwrap_err()
            .contains("JSON"));
    }
}
