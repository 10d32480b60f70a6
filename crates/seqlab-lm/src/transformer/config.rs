//! Transformer LM configuration, read from (and written as) a Hugging Face Llama `config.json`:
//! `model_type` (`llama`, or our `seqlab_transformer`), `vocab_size`, `hidden_size`,
//! `intermediate_size`, `num_hidden_layers`, `num_attention_heads`, `num_key_value_heads`
//! (default: `num_attention_heads`), `head_dim` (default `hidden_size / num_attention_heads`),
//! `rms_norm_eps`, `rope_theta`, `tie_word_embeddings`, `hidden_act` (`silu` for SwiGLU; `gelu`,
//! `gelu_new`, `gelu_pytorch_tanh` for the GELU MLP), `max_position_embeddings`, `eos_token_id`;
//! plus two keys of ours for what Llama cannot say: `seqlab_mlp` (`"swiglu"` | `"gelu"`,
//! default `"swiglu"`) and `seqlab_rope_layout` (`"half"` | `"interleaved"`, default `"half"`).
//!
//! Refused with a message: `rope_scaling` (not implemented), attention / MLP biases.

use crate::error::{LmError, Result};
use seqlab_tensor::limits::{check_plausible, Dim};
use serde_json::Value;
use std::path::Path;

/// The feed-forward block of each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpKind {
    /// SwiGLU (Shazeer 2020): `down(silu(gate(x)) ⊙ up(x))`, Llama's MLP.
    SwiGlu,
    /// GELU MLP (GPT-2 style, non-gated): `down(gelu(up(x)))`.
    Gelu,
}

/// Which pairs of a head's dimensions RoPE rotates together (Su et al. 2021, eq. 34).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Hugging Face `rotate_half`: dimension i pairs with i + hd/2 (i < hd/2).
    Half,
    /// llama.cpp / GGUF / the paper: dimension 2i pairs with 2i + 1.
    Interleaved,
}

/// GELU flavour of [`MlpKind::Gelu`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeluKind {
    /// Exact: `x · Φ(x)` (HF `gelu`).
    Erf,
    /// Tanh approximation `½x(1 + tanh(√(2/π)(x + 0.044715x³)))` (HF `gelu_new`,
    /// `gelu_pytorch_tanh`).
    Tanh,
}

/// Sizes and options of a pre-norm decoder-only Transformer LM.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerConfig {
    /// Rows of the embedding = logits per position.
    pub vocab_size: usize,
    /// Model width D (`hidden_size`).
    pub d_model: usize,
    /// Decoder layers (`num_hidden_layers`).
    pub n_layer: usize,
    /// Query heads H (`num_attention_heads`).
    pub n_head: usize,
    /// Key/value heads H_kv (`num_key_value_heads`); divides H (grouped-query attention).
    pub n_kv_head: usize,
    /// Per-head width hd (`head_dim`, default D / H); even (RoPE rotates pairs).
    pub head_dim: usize,
    /// MLP hidden width F (`intermediate_size`).
    pub d_ff: usize,
    /// The MLP kind.
    pub mlp: MlpKind,
    /// GELU flavour when `mlp` is [`MlpKind::Gelu`].
    pub gelu: GeluKind,
    /// RoPE base θ: frequency of pair i is θ^(−2i/hd).
    pub rope_theta: f64,
    /// RoPE pair layout.
    pub rope_layout: RopeLayout,
    /// RMSNorm ε.
    pub norm_eps: f64,
    /// `lm_head` shares the embedding matrix.
    pub tie_embeddings: bool,
    /// Longest context the model was trained for (informational; positions beyond are allowed).
    pub max_position_embeddings: usize,
    /// End-of-sequence id from the config, when it names one.
    pub eos_token_id: Option<u32>,
}

impl TransformerConfig {
    /// A config with Llama defaults for everything but the sizes: H_kv = H, hd = D/H,
    /// SwiGLU, θ = 10000, half layout, ε = 1e−5, tied embeddings, 2048 positions.
    pub fn new(
        vocab_size: usize,
        d_model: usize,
        n_layer: usize,
        n_head: usize,
        d_ff: usize,
    ) -> Self {
        Self {
            vocab_size,
            d_model,
            n_layer,
            n_head,
            n_kv_head: n_head,
            head_dim: d_model / n_head.max(1),
            d_ff,
            mlp: MlpKind::SwiGlu,
            gelu: GeluKind::Erf,
            rope_theta: 10_000.0,
            rope_layout: RopeLayout::Half,
            norm_eps: 1e-5,
            tie_embeddings: true,
            max_position_embeddings: 2048,
            eos_token_id: None,
        }
    }

    /// Plausible sizes ([`seqlab_tensor::limits`]) of a Transformer / Llama `config.json` (also the
    /// GGUF metadata, mapped to the same config), checked before anything is allocated.
    pub fn check_sizes(&self) -> std::result::Result<(), String> {
        Ok(check_plausible(&[
            ("vocab_size", self.vocab_size, Dim::Vocab),
            ("hidden_size", self.d_model, Dim::Width),
            ("num_hidden_layers", self.n_layer, Dim::Layers),
            ("num_attention_heads", self.n_head, Dim::Heads),
            ("num_key_value_heads", self.n_kv_head, Dim::Heads),
            ("head_dim", self.head_dim, Dim::Width),
            ("intermediate_size", self.d_ff, Dim::Width),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                Dim::Sequence,
            ),
        ])?)
    }

    /// Checks the sizes fit together (H_kv divides H, hd even, nothing zero).
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.check_sizes()?;
        for (k, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.d_model),
            ("num_hidden_layers", self.n_layer),
            ("num_attention_heads", self.n_head),
            ("num_key_value_heads", self.n_kv_head),
            ("head_dim", self.head_dim),
            ("intermediate_size", self.d_ff),
        ] {
            if v == 0 {
                return Err(format!("`{k}` must be ≥ 1"));
            }
        }
        if !self.n_head.is_multiple_of(self.n_kv_head) {
            return Err(format!(
                "`num_key_value_heads` ({}) must divide `num_attention_heads` ({})",
                self.n_kv_head, self.n_head
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "the head width {} must be even for RoPE",
                self.head_dim
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(format!("`rope_theta` must be > 0, got {}", self.rope_theta));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(format!("`rms_norm_eps` must be ≥ 0, got {}", self.norm_eps));
        }
        Ok(())
    }

    /// Query heads per key/value head, G = H / H_kv.
    pub fn group(&self) -> usize {
        self.n_head / self.n_kv_head
    }

    /// Reads `config.json` at `path`.
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

    /// Parses HF Llama `config.json` text (module docs); the error names the key.
    pub fn from_json_str(text: &str) -> std::result::Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
        let obj = v.as_object().ok_or("not a JSON object")?;
        let mt = obj
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("llama");
        if !matches!(mt, "llama" | "seqlab_transformer" | "mistral") {
            return Err(format!(
                "model_type `{mt}` is not a Llama-style transformer (expected `llama`)"
            ));
        }
        let usize_key = |k: &str| -> std::result::Result<Option<usize>, String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| format!("`{k}` must be a non-negative integer, got {x}")),
            }
        };
        let req = |k: &str| -> std::result::Result<usize, String> {
            usize_key(k)?.ok_or_else(|| format!("missing `{k}`"))
        };
        let f64_key = |k: &str, d: f64| -> std::result::Result<f64, String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(d),
                Some(x) => x
                    .as_f64()
                    .ok_or_else(|| format!("`{k}` must be a number, got {x}")),
            }
        };
        let bool_key = |k: &str, d: bool| -> std::result::Result<bool, String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(d),
                Some(x) => x
                    .as_bool()
                    .ok_or_else(|| format!("`{k}` must be true or false, got {x}")),
            }
        };
        let str_key = |k: &str| -> std::result::Result<Option<&str>, String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_str()
                    .map(Some)
                    .ok_or_else(|| format!("`{k}` must be a string, got {x}")),
            }
        };
        if obj.get("rope_scaling").is_some_and(|x| !x.is_null()) {
            return Err("`rope_scaling` is not supported".into());
        }
        for k in ["attention_bias", "mlp_bias"] {
            if bool_key(k, false)? {
                return Err(format!("`{k}: true` is not supported (no biases)"));
            }
        }
        let d_model = req("hidden_size")?;
        let n_head = req("num_attention_heads")?;
        let act = str_key("hidden_act")?.unwrap_or("silu");
        let gelu = match act {
            "gelu" | "silu" => GeluKind::Erf,
            "gelu_new" | "gelu_pytorch_tanh" => GeluKind::Tanh,
            other => return Err(format!("`hidden_act` `{other}` is not supported")),
        };
        let mlp = match str_key("seqlab_mlp")? {
            Some("swiglu") => MlpKind::SwiGlu,
            Some("gelu") => MlpKind::Gelu,
            Some(other) => {
                return Err(format!(
                    "`seqlab_mlp` must be \"swiglu\" or \"gelu\", got \"{other}\""
                ))
            }
            None if act == "silu" => MlpKind::SwiGlu,
            None => MlpKind::Gelu,
        };
        if mlp == MlpKind::SwiGlu && act != "silu" {
            return Err(format!(
                "a SwiGLU MLP needs `hidden_act: silu`, got `{act}`"
            ));
        }
        let rope_layout = match str_key("seqlab_rope_layout")? {
            None | Some("half") => RopeLayout::Half,
            Some("interleaved") => RopeLayout::Interleaved,
            Some(other) => {
                return Err(format!(
                    "`seqlab_rope_layout` must be \"half\" or \"interleaved\", got \"{other}\""
                ))
            }
        };
        let eos_token_id = match obj.get("eos_token_id") {
            Some(Value::Number(n)) => n.as_u64().map(|x| x as u32),
            Some(Value::Array(a)) => a.first().and_then(Value::as_u64).map(|x| x as u32),
            _ => None,
        };
        let cfg = Self {
            vocab_size: req("vocab_size")?,
            d_model,
            n_layer: req("num_hidden_layers")?,
            n_head,
            n_kv_head: usize_key("num_key_value_heads")?.unwrap_or(n_head),
            head_dim: usize_key("head_dim")?.unwrap_or(d_model / n_head.max(1)),
            d_ff: req("intermediate_size")?,
            mlp,
            gelu,
            rope_theta: f64_key("rope_theta", 10_000.0)?,
            rope_layout,
            norm_eps: f64_key("rms_norm_eps", 1e-6)?,
            tie_embeddings: bool_key("tie_word_embeddings", false)?,
            max_position_embeddings: usize_key("max_position_embeddings")?.unwrap_or(2048),
            eos_token_id,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// HF Llama `config.json` text for this config (what [`Self::from_json_str`] reads back).
    pub fn to_json(&self) -> String {
        let act = match (self.mlp, self.gelu) {
            (MlpKind::SwiGlu, _) => "silu",
            (MlpKind::Gelu, GeluKind::Erf) => "gelu",
            (MlpKind::Gelu, GeluKind::Tanh) => "gelu_pytorch_tanh",
        };
        let v = serde_json::json!({
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "vocab_size": self.vocab_size,
            "hidden_size": self.d_model,
            "intermediate_size": self.d_ff,
            "num_hidden_layers": self.n_layer,
            "num_attention_heads": self.n_head,
            "num_key_value_heads": self.n_kv_head,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_embeddings,
            "hidden_act": act,
            "max_position_embeddings": self.max_position_embeddings,
            "eos_token_id": self.eos_token_id,
            "attention_bias": false,
            "mlp_bias": false,
            "seqlab_mlp": match self.mlp { MlpKind::SwiGlu => "swiglu", MlpKind::Gelu => "gelu" },
            "seqlab_rope_layout": match self.rope_layout {
                RopeLayout::Half => "half",
                RopeLayout::Interleaved => "interleaved",
            },
        });
        serde_json::to_string_pretty(&v).expect("a JSON value serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_roundtrip_and_defaults() {
        let mut c = TransformerConfig::new(100, 64, 3, 8, 160);
        c.n_kv_head = 2;
        c.mlp = MlpKind::Gelu;
        c.gelu = GeluKind::Tanh;
        c.rope_layout = RopeLayout::Interleaved;
        c.tie_embeddings = false;
        c.eos_token_id = Some(7);
        assert_eq!(TransformerConfig::from_json_str(&c.to_json()).unwrap(), c);
        // Llama defaults: H_kv = H, hd = D/H, untied, SwiGLU, half layout.
        let d = TransformerConfig::from_json_str(
            r#"{"vocab_size": 10, "hidden_size": 16, "intermediate_size": 32,
                "num_hidden_layers": 1, "num_attention_heads": 2}"#,
        )
        .unwrap();
        assert_eq!((d.n_kv_head, d.head_dim, d.tie_embeddings), (2, 8, false));
        assert_eq!((d.mlp, d.rope_layout), (MlpKind::SwiGlu, RopeLayout::Half));
    }

    #[test]
    fn bad_configs_name_the_key() {
        let base = r#""vocab_size": 10, "hidden_size": 16, "intermediate_size": 32,
                      "num_hidden_layers": 1, "num_attention_heads": 2"#;
        for (extra, key) in [
            (r#", "num_key_value_heads": 3"#, "num_key_value_heads"),
            (r#", "head_dim": 7"#, "even"),
            (r#", "hidden_act": "relu""#, "relu"),
            (
                r#", "seqlab_mlp": "swiglu", "hidden_act": "gelu""#,
                "SwiGLU",
            ),
            (r#", "rope_scaling": {"type": "linear"}"#, "rope_scaling"),
            (r#", "attention_bias": true"#, "attention_bias"),
            (r#", "rope_theta": "big""#, "rope_theta"),
        ] {
            let e = TransformerConfig::from_json_str(&format!("{{{base}{extra}}}")).unwrap_err();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let e = TransformerConfig::from_json_str(r#"{"hidden_size": 16}"#).unwrap_err();
        assert!(e.contains("missing"), "{e}");
    }
}
