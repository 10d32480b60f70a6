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
//! Mamba-2 checkpoints (HF `Mamba2Config`, `model_type` `mamba2`, and mamba_ssm configs whose
//! `ssm_cfg.layer` is `Mamba2`) are read into the same struct with [`Mamba2Options`] set
//! (docs/ssm.md#mamba-2-block). Architectures this crate cannot run (LayerNorm instead of
//! RMSNorm, attention or MLP layers) are refused with a message saying so.

use crate::error::{LmError, Result};
use seqlab_tensor::limits::{check_plausible, Dim};
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
    /// The Mamba-2 (SSD) block's sizes and options; `None` for a Mamba-1 model.
    pub mamba2: Option<Mamba2Options>,
    /// Falcon-Mamba (HF `FalconMambaForCausalLM`): the Mamba-1 block with weightless RMS norms
    /// on δ, B and C after `x_proj`, with this ε (`mixer_rms_eps`); `None` for plain Mamba.
    pub bcdt_rms_eps: Option<f64>,
}

/// The sizes and options of a Mamba-2 block (Dao & Gu 2024, "Transformers are SSMs", §7 and
/// Fig. 6; docs/ssm.md#mamba-2-block). With them, [`MambaConfig::d_inner`] is the width of
/// `out_proj`'s input, `d_state` the state size N per head channel and `d_conv` the conv width.
#[derive(Debug, Clone, PartialEq)]
pub struct Mamba2Options {
    /// Heads H (one scalar A, Δ and bias per head).
    pub nheads: usize,
    /// Channels per head P.
    pub headdim: usize,
    /// Groups G of B and C (head h reads group h / (H / G)).
    pub ngroups: usize,
    /// Channels through the SSM, H·P (= d_inner unless part of the block is a gated MLP,
    /// mamba_ssm's `d_ssm`).
    pub d_ssm: usize,
    /// Chunk length of the chunked SSD prefill.
    pub chunk_size: usize,
    /// Δ is clamped to [lo, hi] after the softplus (`time_step_limit` / `dt_limit`).
    pub dt_limit: (f64, f64),
    /// The gated RMSNorm before `out_proj` (`mixer.norm.weight`); without it y·SiLU(z).
    pub gated_norm: bool,
    /// Gated norm order: `true` → RMSNorm(y)·SiLU(z); `false` → RMSNorm(y·SiLU(z)).
    pub norm_before_gate: bool,
    /// Channels normalised together by the gated norm (d_ssm / ngroups).
    pub norm_group_size: usize,
    /// D has one entry per channel (d_ssm) instead of one per head (mamba_ssm `D_has_hdim`).
    pub d_per_channel: bool,
}

impl Mamba2Options {
    /// Width of the gated-MLP part of `in_proj` (z0 and x0 each): d_inner − d_ssm.
    pub fn d_mlp(&self, d_inner: usize) -> usize {
        d_inner - self.d_ssm
    }

    /// Channels of the causal conv: x, B and C (d_ssm + 2·G·N).
    pub fn conv_dim(&self, d_state: usize) -> usize {
        self.d_ssm + 2 * self.ngroups * d_state
    }
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
        let original_layer = match obj.get("ssm_cfg") {
            Some(Value::Object(m)) => m.get("layer").and_then(Value::as_str),
            _ => None,
        };
        let hf_mamba2 = obj.get("model_type").and_then(Value::as_str) == Some("mamba2")
            || obj
                .get("architectures")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("Mamba2ForCausalLM")));
        if obj.contains_key("d_model") && original_layer == Some("Mamba2") {
            Self::from_original_mamba2(obj)
        } else if obj.contains_key("d_model") {
            Self::from_original(obj)
        } else if obj.contains_key("hidden_size") && hf_mamba2 {
            Self::from_hf_mamba2(obj)
        } else if obj.contains_key("hidden_size") {
            Self::from_hf(obj)
        } else {
            Err("neither `hidden_size` (Hugging Face MambaConfig) nor `d_model` (mamba_ssm config) is present".into())
        }
    }

    /// HF `MambaConfig`.
    /// HF `MambaConfig`, or `FalconMambaConfig` (`model_type` `falcon_mamba`: the same block
    /// with RMS norms on δ, B and C, ε = `mixer_rms_eps`, default 1e-6).
    fn from_hf(o: &Map<String, Value>) -> std::result::Result<Self, String> {
        let falcon = match o.get("model_type").and_then(Value::as_str) {
            None | Some("mamba") => false,
            Some("falcon_mamba") => true,
            Some(t) => {
                return Err(format!(
                    "model_type `{t}` is not supported (`mamba`, `falcon_mamba` and `mamba2` are)"
                ))
            }
        };
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
            mamba2: None,
            bcdt_rms_eps: if falcon {
                Some(opt_f64(o, "mixer_rms_eps")?.unwrap_or(1e-6))
            } else {
                None
            },
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
            mamba2: None,
            bcdt_rms_eps: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// HF `Mamba2Config` (`Mamba2ForCausalLM`): d_inner = expand·hidden_size = num_heads·head_dim,
    /// the gated norm always on (norm after the gate unless `norm_before_gate` says otherwise),
    /// D per head, untied embeddings by default.
    fn from_hf_mamba2(o: &Map<String, Value>) -> std::result::Result<Self, String> {
        let d_model = req_usize(o, "hidden_size")?;
        let expand = opt_usize(o, "expand")?.unwrap_or(2);
        let d_inner = expand * d_model;
        let nheads = opt_usize(o, "num_heads")?.unwrap_or(128);
        let headdim = opt_usize(o, "head_dim")?.unwrap_or(64);
        let ngroups = opt_usize(o, "n_groups")?.unwrap_or(8);
        if nheads * headdim != d_inner {
            return Err(format!(
                "Mamba2: num_heads × head_dim = {nheads} × {headdim} must equal \
                 expand × hidden_size = {d_inner}"
            ));
        }
        let opts = Mamba2Options {
            nheads,
            headdim,
            ngroups,
            d_ssm: d_inner,
            chunk_size: opt_usize(o, "chunk_size")?.unwrap_or(256),
            dt_limit: dt_limit(o.get("time_step_limit"), "time_step_limit")?,
            gated_norm: true,
            norm_before_gate: opt_bool(o, "norm_before_gate")?.unwrap_or(false),
            norm_group_size: d_inner / ngroups.max(1),
            d_per_channel: false,
        };
        let cfg = Self {
            layout: MambaLayout::Hf,
            vocab_size: req_usize(o, "vocab_size")?,
            d_model,
            n_layer: req_usize(o, "num_hidden_layers")?,
            d_state: opt_usize(o, "state_size")?.unwrap_or(128),
            d_conv: opt_usize(o, "conv_kernel")?.unwrap_or(4),
            d_inner,
            dt_rank: nheads,
            norm_eps: opt_f64(o, "layer_norm_epsilon")?.unwrap_or(1e-5),
            conv_bias: opt_bool(o, "use_conv_bias")?.unwrap_or(true),
            proj_bias: opt_bool(o, "use_bias")?.unwrap_or(false),
            tie_embeddings: opt_bool(o, "tie_word_embeddings")?.unwrap_or(false),
            residual_in_fp32: opt_bool(o, "residual_in_fp32")?.unwrap_or(true),
            eos_token_id: eos(o.get("eos_token_id"))?,
            mamba2: Some(opts),
            bcdt_rms_eps: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Original `mamba_ssm` config with `ssm_cfg.layer = "Mamba2"` (`mamba_ssm.modules.mamba2`'s
    /// defaults: d_state 128, headdim 64, ngroups 1, chunk_size 256, rmsnorm with the norm after
    /// the gate, D per head).
    fn from_original_mamba2(o: &Map<String, Value>) -> std::result::Result<Self, String> {
        let mut cfg = Self::from_original_checked(o)?;
        let ssm = match o.get("ssm_cfg") {
            Some(Value::Object(m)) => m,
            _ => return Err("`ssm_cfg` must be an object".into()),
        };
        let expand = opt_usize(ssm, "expand")?.unwrap_or(2);
        let d_inner = expand * cfg.d_model;
        let headdim = opt_usize(ssm, "headdim")?.unwrap_or(64);
        let ngroups = opt_usize(ssm, "ngroups")?.unwrap_or(1);
        let d_ssm = opt_usize(ssm, "d_ssm")?.unwrap_or(d_inner);
        if d_ssm > d_inner || headdim == 0 || !d_ssm.is_multiple_of(headdim) {
            return Err(format!(
                "Mamba2: d_ssm {d_ssm} must be a multiple of headdim {headdim} and at most \
                 d_inner {d_inner}"
            ));
        }
        let opts = Mamba2Options {
            nheads: d_ssm / headdim,
            headdim,
            ngroups,
            d_ssm,
            chunk_size: opt_usize(ssm, "chunk_size")?.unwrap_or(256),
            dt_limit: dt_limit(ssm.get("dt_limit"), "ssm_cfg.dt_limit")?,
            gated_norm: opt_bool(ssm, "rmsnorm")?.unwrap_or(true),
            norm_before_gate: opt_bool(ssm, "norm_before_gate")?.unwrap_or(false),
            norm_group_size: d_ssm / ngroups.max(1),
            d_per_channel: opt_bool(ssm, "D_has_hdim")?.unwrap_or(false),
        };
        cfg.d_state = opt_usize(ssm, "d_state")?.unwrap_or(128);
        cfg.d_inner = d_inner;
        cfg.dt_rank = opts.nheads;
        cfg.mamba2 = Some(opts);
        cfg.validate()?;
        Ok(cfg)
    }

    /// The model-level fields of an original config (vocabulary padding, layers, norms,
    /// refusals of MLP / attention / LayerNorm), shared by both block kinds.
    fn from_original_checked(o: &Map<String, Value>) -> std::result::Result<Self, String> {
        let mut top = o.clone();
        if let Some(Value::Object(ssm)) = top.get_mut("ssm_cfg") {
            ssm.remove("layer");
        }
        Self::from_original(&top)
    }

    /// Plausible sizes ([`seqlab_tensor::limits`]), checked before anything is allocated; the
    /// keys named as the file's layout spells them.
    pub fn check_sizes(&self) -> std::result::Result<(), String> {
        let hf = self.layout == MambaLayout::Hf;
        let k = |hf_key: &'static str, original: &'static str| if hf { hf_key } else { original };
        check_plausible(&[
            ("vocab_size", self.vocab_size, Dim::Vocab),
            (k("hidden_size", "d_model"), self.d_model, Dim::Width),
            (k("num_hidden_layers", "n_layer"), self.n_layer, Dim::Layers),
            (k("state_size", "ssm_cfg.d_state"), self.d_state, Dim::State),
            (k("conv_kernel", "ssm_cfg.d_conv"), self.d_conv, Dim::Kernel),
            (
                k("intermediate_size", "ssm_cfg.expand × d_model"),
                self.d_inner,
                Dim::Width,
            ),
            (
                k("time_step_rank", "ssm_cfg.dt_rank"),
                self.dt_rank,
                Dim::Width,
            ),
        ])?;
        if let Some(m) = &self.mamba2 {
            check_plausible(&[
                (
                    k("num_heads", "d_inner / ssm_cfg.headdim"),
                    m.nheads,
                    Dim::Heads,
                ),
                (k("head_dim", "ssm_cfg.headdim"), m.headdim, Dim::Width),
                (k("n_groups", "ssm_cfg.ngroups"), m.ngroups, Dim::Heads),
                (
                    k("chunk_size", "ssm_cfg.chunk_size"),
                    m.chunk_size,
                    Dim::Sequence,
                ),
            ])?;
        }
        Ok(())
    }

    fn validate(&self) -> std::result::Result<(), String> {
        self.check_sizes()?;
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
        if let Some(m) = &self.mamba2 {
            m.validate(self.d_inner)?;
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(format!(
                "norm epsilon {} is not a number ≥ 0",
                self.norm_eps
            ));
        }
        if let Some(eps) = self.bcdt_rms_eps {
            if !(eps.is_finite() && eps >= 0.0) {
                return Err(format!("mixer_rms_eps {eps} is not a number ≥ 0"));
            }
            if self.mamba2.is_some() {
                return Err("the Falcon-Mamba norms apply to Mamba-1 blocks only".into());
            }
        }
        Ok(())
    }

    /// Width of `x_proj`'s output: R + 2N (Δ, B, C).
    pub fn x_proj_dim(&self) -> usize {
        self.dt_rank + 2 * self.d_state
    }

    /// Channels of a layer's conv state: d_inner (Mamba-1), x + B + C (Mamba-2).
    pub fn conv_channels(&self) -> usize {
        match &self.mamba2 {
            Some(m) => m.conv_dim(self.d_state),
            None => self.d_inner,
        }
    }

    /// Channels of a layer's SSM state, each holding N values: d_inner (Mamba-1), heads × head
    /// channels (Mamba-2).
    pub fn ssm_channels(&self) -> usize {
        match &self.mamba2 {
            Some(m) => m.d_ssm,
            None => self.d_inner,
        }
    }
}

impl Mamba2Options {
    fn validate(&self, d_inner: usize) -> std::result::Result<(), String> {
        for (name, v) in [
            ("Mamba2 heads", self.nheads),
            ("Mamba2 head_dim", self.headdim),
            ("Mamba2 n_groups", self.ngroups),
            ("Mamba2 chunk_size", self.chunk_size),
        ] {
            if v == 0 {
                return Err(format!("{name} must be ≥ 1"));
            }
        }
        if !self.nheads.is_multiple_of(self.ngroups) {
            return Err(format!(
                "Mamba2: n_groups {} must divide the number of heads {}",
                self.ngroups, self.nheads
            ));
        }
        if self.nheads * self.headdim != self.d_ssm || self.d_ssm > d_inner {
            return Err(format!(
                "Mamba2: heads × head_dim = {} × {} must be the SSM width {} (≤ d_inner {d_inner})",
                self.nheads, self.headdim, self.d_ssm
            ));
        }
        if self.norm_group_size == 0 || !self.d_ssm.is_multiple_of(self.norm_group_size) {
            return Err(format!(
                "Mamba2: the gated norm's group size {} must divide {}",
                self.norm_group_size, self.d_ssm
            ));
        }
        let (lo, hi) = self.dt_limit;
        if lo.is_nan() || hi.is_nan() || lo < 0.0 || lo > hi {
            return Err(format!(
                "Mamba2: the Δ limit [{lo}, {hi}] must satisfy 0 ≤ lo ≤ hi"
            ));
        }
        Ok(())
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

/// One bound of a Δ limit: a number, `"inf"` / `"Infinity"` (also negated), or HF's
/// `{"__float__": "Infinity"}` encoding of a non-finite float.
fn limit_bound(v: &Value, key: &str) -> std::result::Result<f64, String> {
    let text = match v {
        Value::Number(n) => return n.as_f64().ok_or_else(|| field_err(key, "a number", v)),
        Value::String(s) => s.as_str(),
        Value::Object(m) => m
            .get("__float__")
            .and_then(Value::as_str)
            .ok_or_else(|| field_err(key, "a pair of numbers", v))?,
        _ => return Err(field_err(key, "a pair of numbers", v)),
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Ok(f64::INFINITY),
        "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
        other => other
            .parse::<f64>()
            .map_err(|_| field_err(key, "a pair of numbers", v)),
    }
}

/// Mamba-2's Δ limit `[lo, hi]`; absent → [0, ∞) (no clamp).
fn dt_limit(v: Option<&Value>, key: &str) -> std::result::Result<(f64, f64), String> {
    match v {
        None | Some(Value::Null) => Ok((0.0, f64::INFINITY)),
        Some(Value::Array(a)) if a.len() == 2 => {
            Ok((limit_bound(&a[0], key)?, limit_bound(&a[1], key)?))
        }
        Some(v) => Err(field_err(key, "a pair [lo, hi]", v)),
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
    fn a_billion_layers_is_refused_by_its_key() {
        let e = MambaConfig::from_json_str(
            r#"{"hidden_size": 8, "num_hidden_layers": 1000000000, "vocab_size": 8}"#,
        )
        .unwrap_err();
        assert!(e.contains("`num_hidden_layers` = 1000000000"), "{e}");
        let e = MambaConfig::from_json_str(
            r#"{"d_model": 8, "n_layer": 2, "vocab_size": 8, "ssm_cfg": {"d_state": 100000000}}"#,
        )
        .unwrap_err();
        assert!(e.contains("`ssm_cfg.d_state` = 100000000"), "{e}");
        // An expand that would overflow d_inner is refused, not wrapped.
        let e = MambaConfig::from_json_str(
            r#"{"hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 8, "expand": 9223372036854775807}"#,
        )
        .unwrap_err();
        assert!(e.contains("intermediate_size"), "{e}");
        // Mamba-2's heads are sizes too.
        let e = MambaConfig::from_json_str(
            r#"{"model_type": "mamba2", "hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 8,
                "num_heads": 16, "head_dim": 1, "n_groups": 1000000000}"#,
        )
        .unwrap_err();
        assert!(e.contains("`n_groups` = 1000000000"), "{e}");
    }

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
            r#"{"d_model": 8, "n_layer": 1, "vocab_size": 8, "ssm_cfg": {"layer": "Mamba3"}}"#,
        )
        .unwrap_err();
        assert!(e.contains("Mamba3"), "{e}");
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

    #[test]
    fn hf_mamba2_reads_heads_groups_and_the_infinite_limit() {
        let c = MambaConfig::from_json_str(
            r#"{"model_type": "mamba2", "hidden_size": 64, "num_hidden_layers": 2,
                "vocab_size": 256, "state_size": 16, "expand": 2, "head_dim": 16,
                "num_heads": 8, "n_groups": 2, "chunk_size": 16,
                "time_step_limit": [0.0, {"__float__": "Infinity"}]}"#,
        )
        .unwrap();
        let m = c.mamba2.clone().unwrap();
        assert_eq!((m.nheads, m.headdim, m.ngroups, m.d_ssm), (8, 16, 2, 128));
        assert_eq!(m.dt_limit, (0.0, f64::INFINITY));
        assert_eq!((m.norm_group_size, m.chunk_size), (64, 16));
        assert!(m.gated_norm && !m.norm_before_gate && !m.d_per_channel);
        assert_eq!((c.conv_channels(), c.ssm_channels()), (192, 128));
        assert!(!c.tie_embeddings);
        let e = MambaConfig::from_json_str(
            r#"{"model_type": "mamba2", "hidden_size": 64, "num_hidden_layers": 2,
                "vocab_size": 256, "head_dim": 16, "num_heads": 4}"#,
        )
        .unwrap_err();
        assert!(e.contains("num_heads × head_dim"), "{e}");
        let e = MambaConfig::from_json_str(
            r#"{"model_type": "mamba2", "hidden_size": 64, "num_hidden_layers": 2,
                "vocab_size": 256, "head_dim": 16, "num_heads": 8, "n_groups": 3}"#,
        )
        .unwrap_err();
        assert!(e.contains("n_groups 3"), "{e}");
        let e = MambaConfig::from_json_str(
            r#"{"model_type": "mamba2", "hidden_size": 64, "num_hidden_layers": 2,
                "vocab_size": 256, "head_dim": 16, "num_heads": 8, "n_groups": 1,
                "time_step_limit": [0.0, "lots"]}"#,
        )
        .unwrap_err();
        assert!(e.contains("time_step_limit"), "{e}");
    }

    #[test]
    fn original_mamba2_reads_ssm_cfg() {
        let c = MambaConfig::from_json_str(
            r#"{"d_model": 64, "n_layer": 2, "vocab_size": 250, "pad_vocab_size_multiple": 16,
                "ssm_cfg": {"layer": "Mamba2", "d_state": 32, "headdim": 32, "ngroups": 2,
                            "d_ssm": 64, "D_has_hdim": true, "norm_before_gate": true,
                            "dt_limit": [0.001, 0.5]},
                "rms_norm": true, "residual_in_fp32": true, "tie_embeddings": true}"#,
        )
        .unwrap();
        assert_eq!(c.layout, MambaLayout::Original);
        assert_eq!((c.vocab_size, c.d_inner, c.d_state), (256, 128, 32));
        let m = c.mamba2.clone().unwrap();
        assert_eq!((m.nheads, m.headdim, m.ngroups, m.d_ssm), (2, 32, 2, 64));
        assert_eq!((m.d_mlp(c.d_inner), m.norm_group_size), (64, 32));
        assert!(m.d_per_channel && m.norm_before_gate);
        assert_eq!(m.dt_limit, (0.001, 0.5));
        assert_eq!(c.conv_channels(), 64 + 2 * 2 * 32);
        let e = MambaConfig::from_json_str(
            r#"{"d_model": 64, "n_layer": 2, "vocab_size": 256,
                "ssm_cfg": {"layer": "Mamba2", "headdim": 48}}"#,
        )
        .unwrap_err();
        assert!(e.contains("headdim 48"), "{e}");
    }
}
