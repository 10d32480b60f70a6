//! A GGUF `llama` model (llama.cpp's names) mapped onto seqlab's Transformer LM:
//! metadata → [`TransformerConfig`], tensors → [`TransformerWeights`].
//!
//! Metadata (`llama.` prefix):
//!
//! | GGUF key | config field | if absent |
//! |---|---|---|
//! | `block_count` | `n_layer` | required |
//! | `embedding_length` | `d_model` | required |
//! | `feed_forward_length` | `d_ff` | required |
//! | `attention.head_count` | `n_head` | required |
//! | `attention.head_count_kv` | `n_kv_head` | `n_head` |
//! | `attention.key_length` (= `value_length`) | `head_dim` | `d_model / n_head` |
//! | `attention.layer_norm_rms_epsilon` | `norm_eps` | required |
//! | `rope.freq_base` | `rope_theta` | 10000 |
//! | `rope.dimension_count` | must equal `head_dim` (no partial rotary) | `head_dim` |
//! | `context_length` | `max_position_embeddings` | 2048 |
//! | `tokenizer.ggml.eos_token_id` | `eos_token_id` | none |
//!
//! RoPE is [`RopeLayout::Interleaved`]: llama.cpp's converter permutes the rows of W_q and W_k
//! so that rotating pairs (2i, 2i+1) (ggml's "normal" RoPE) equals HF's `rotate_half` on the
//! original weights. Refused with a message: another `general.architecture`, RoPE scaling
//! (`rope.scaling.type` other than `none`, a `rope_freqs.weight` tensor), mixture-of-experts,
//! attention biases.
//!
//! Tensors (shapes outermost first, as (out, in) for linear maps):
//!
//! ```text
//! token_embd.weight          (V, D)        → embed (dequantized to f32)
//! blk.{i}.attn_norm.weight   (D)           → attn_norm        (f32)
//! blk.{i}.attn_q.weight      (H·hd, D)     → q_proj
//! blk.{i}.attn_k.weight      (H_kv·hd, D)  → k_proj
//! blk.{i}.attn_v.weight      (H_kv·hd, D)  → v_proj
//! blk.{i}.attn_output.weight (D, H·hd)     → o_proj
//! blk.{i}.ffn_norm.weight    (D)           → mlp_norm         (f32)
//! blk.{i}.ffn_gate.weight    (F, D)        → gate_proj (SwiGLU)
//! blk.{i}.ffn_up.weight      (F, D)        → up_proj
//! blk.{i}.ffn_down.weight    (D, F)        → down_proj
//! output_norm.weight         (D)           → norm_f           (f32)
//! output.weight              (V, D)        → lm_head; absent = tied to token_embd
//! ```

use crate::error::Result;
use crate::gguf::reader::{corrupt, GgufFile};
use crate::transformer::{
    LayerWeights, Linear, MlpKind, RopeLayout, TransformerConfig, TransformerWeights,
};
use candle_core::quantized::QMatMul;
use candle_core::Device;

/// The only `general.architecture` mapped.
pub const LLAMA_ARCH: &str = "llama";

/// How the linear maps of a GGUF model are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// As stored: quantized matrices run through candle's [`QMatMul`] (integer dot products
    /// against an 8-bit quantization of the activations), F32/F16 ones dense. The tied output
    /// layer reuses the quantized token embedding, as llama.cpp does.
    #[default]
    Quantized,
    /// Every matrix dequantized to a dense f32 tensor: the reference path (exact f32 matmuls
    /// on the dequantized weights), ~4–8× the memory.
    Dequantized,
}

/// `llama.`-prefixed metadata key.
fn key(k: &str) -> String {
    format!("{LLAMA_ARCH}.{k}")
}

/// Reads the model's [`TransformerConfig`] from the metadata (module docs). The vocabulary is
/// the row count of `token_embd.weight`.
pub fn llama_config(file: &GgufFile) -> Result<TransformerConfig> {
    let path = file.path();
    let arch = file.architecture()?;
    if arch != LLAMA_ARCH {
        return Err(corrupt(
            path,
            format!("unsupported architecture `{arch}` (only `{LLAMA_ARCH}` GGUF models are read)"),
        ));
    }
    let n_layer = file.get_usize(&key("block_count"))?;
    let d_model = file.get_usize(&key("embedding_length"))?;
    let d_ff = file.get_usize(&key("feed_forward_length"))?;
    let n_head = file.get_usize(&key("attention.head_count"))?;
    let n_kv_head = file
        .get_usize_opt(&key("attention.head_count_kv"))?
        .unwrap_or(n_head);
    if n_head == 0 {
        return Err(corrupt(
            path,
            format!("`{}` must be ≥ 1", key("attention.head_count")),
        ));
    }
    let head_dim = match file.get_usize_opt(&key("attention.key_length"))? {
        Some(k) => k,
        None => d_model / n_head,
    };
    if let Some(v) = file.get_usize_opt(&key("attention.value_length"))? {
        if v != head_dim {
            return Err(corrupt(
                path,
                format!("value heads of width {v} differ from key heads of width {head_dim} (not supported)"),
            ));
        }
    }
    if let Some(r) = file.get_usize_opt(&key("rope.dimension_count"))? {
        if r != head_dim {
            return Err(corrupt(
                path,
                format!(
                    "RoPE over {r} of {head_dim} head dimensions (partial rotary) is not supported"
                ),
            ));
        }
    }
    if let Some(s) = file.get_str_opt(&key("rope.scaling.type"))? {
        if s != "none" {
            return Err(corrupt(
                path,
                format!("RoPE scaling `{s}` is not supported"),
            ));
        }
    }
    if file.get_usize_opt(&key("expert_count"))?.unwrap_or(0) > 0 {
        return Err(corrupt(
            path,
            "mixture-of-experts llama models are not supported",
        ));
    }
    if file.tensor_info("rope_freqs.weight").is_some() {
        return Err(corrupt(
            path,
            "per-frequency RoPE factors (`rope_freqs.weight`) are not supported",
        ));
    }
    if let Some(bias) = ["attn_q", "attn_k", "attn_v", "attn_output"]
        .iter()
        .map(|n| format!("blk.0.{n}.bias"))
        .find(|n| file.tensor_info(n).is_some())
    {
        return Err(corrupt(
            path,
            format!("attention biases (`{bias}`) are not supported"),
        ));
    }
    let norm_eps = file
        .get_f64_opt(&key("attention.layer_norm_rms_epsilon"))?
        .ok_or_else(|| {
            corrupt(
                path,
                format!(
                    "missing metadata key `{}`",
                    key("attention.layer_norm_rms_epsilon")
                ),
            )
        })?;
    let rope_theta = file
        .get_f64_opt(&key("rope.freq_base"))?
        .unwrap_or(10_000.0);
    let vocab_size = match file.tensor_info("token_embd.weight") {
        Some(t) if t.shape.len() == 2 => t.shape[0],
        Some(t) => {
            return Err(corrupt(
                path,
                format!(
                    "tensor `token_embd.weight` has shape {:?}, expected (vocab, {d_model})",
                    t.shape
                ),
            ))
        }
        None => file.get_usize(&key("vocab_size"))?,
    };
    let eos_token_id = file
        .get_usize_opt("tokenizer.ggml.eos_token_id")?
        .and_then(|i| u32::try_from(i).ok());
    let cfg = TransformerConfig {
        vocab_size,
        d_model,
        n_layer,
        n_head,
        n_kv_head,
        head_dim,
        d_ff,
        mlp: MlpKind::SwiGlu,
        rope_theta,
        rope_layout: RopeLayout::Interleaved,
        norm_eps,
        tie_embeddings: file.tensor_info("output.weight").is_none(),
        max_position_embeddings: file.get_usize_opt(&key("context_length"))?.unwrap_or(2048),
        eos_token_id,
        ..TransformerConfig::new(vocab_size, d_model, n_layer, n_head, d_ff)
    };
    cfg.validate()
        .map_err(|e| corrupt(path, format!("the llama metadata do not fit together: {e}")))?;
    // Every tensor size below is a product of these; keep them far from overflow.
    const MAX_DIM: usize = 1 << 24;
    let dims = [
        vocab_size, d_model, d_ff, n_head, n_kv_head, head_dim, n_layer,
    ];
    if dims.iter().any(|&x| x > MAX_DIM) {
        return Err(corrupt(
            path,
            format!("implausible llama sizes {dims:?} (each must be ≤ {MAX_DIM})"),
        ));
    }
    Ok(cfg)
}

/// Every tensor a `llama` GGUF for `cfg` must hold, with its shape (outermost first), in file
/// order; `output.weight` only when the model is not tied.
pub fn llama_tensor_specs(cfg: &TransformerConfig) -> Vec<(String, Vec<usize>)> {
    let (v, d, f) = (cfg.vocab_size, cfg.d_model, cfg.d_ff);
    let (qd, kd) = (cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim);
    let mut out = vec![("token_embd.weight".to_string(), vec![v, d])];
    for i in 0..cfg.n_layer {
        let p = format!("blk.{i}");
        out.push((format!("{p}.attn_norm.weight"), vec![d]));
        out.push((format!("{p}.attn_q.weight"), vec![qd, d]));
        out.push((format!("{p}.attn_k.weight"), vec![kd, d]));
        out.push((format!("{p}.attn_v.weight"), vec![kd, d]));
        out.push((format!("{p}.attn_output.weight"), vec![d, qd]));
        out.push((format!("{p}.ffn_norm.weight"), vec![d]));
        out.push((format!("{p}.ffn_gate.weight"), vec![f, d]));
        out.push((format!("{p}.ffn_up.weight"), vec![f, d]));
        out.push((format!("{p}.ffn_down.weight"), vec![d, f]));
    }
    out.push(("output_norm.weight".to_string(), vec![d]));
    if !cfg.tie_embeddings {
        out.push(("output.weight".to_string(), vec![v, d]));
    }
    out
}

/// Reads every weight of a `llama` GGUF for `cfg` (from [`llama_config`]) in `format`. Every
/// tensor's presence and shape is checked first, so a missing or misshapen tensor is named
/// before anything is read.
pub fn llama_weights(
    file: &GgufFile,
    cfg: &TransformerConfig,
    format: WeightFormat,
) -> Result<TransformerWeights> {
    let specs = llama_tensor_specs(cfg);
    for (name, shape) in &specs {
        // qtensor() does the same checks; doing them up front fails before reading anything.
        match file.tensor_info(name) {
            Some(t) if &t.shape == shape => {}
            _ => {
                file.qtensor(name, shape)?;
            }
        }
    }
    let (v, d, f) = (cfg.vocab_size, cfg.d_model, cfg.d_ff);
    let (qd, kd) = (cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim);
    let dense = |name: &str, shape: &[usize]| file.dequantized(name, shape);
    let linear = |name: &str, shape: &[usize]| -> Result<Linear> {
        let q = file.qtensor(name, shape)?;
        Ok(match format {
            WeightFormat::Quantized => Linear::Quantized(QMatMul::from_qtensor(q)?),
            WeightFormat::Dequantized => Linear::Dense(q.dequantize(&Device::Cpu)?),
        })
    };
    let embed = dense("token_embd.weight", &[v, d])?;
    let mut layers = Vec::with_capacity(cfg.n_layer);
    for i in 0..cfg.n_layer {
        let p = format!("blk.{i}");
        layers.push(LayerWeights {
            attn_norm: dense(&format!("{p}.attn_norm.weight"), &[d])?,
            q_proj: linear(&format!("{p}.attn_q.weight"), &[qd, d])?,
            k_proj: linear(&format!("{p}.attn_k.weight"), &[kd, d])?,
            v_proj: linear(&format!("{p}.attn_v.weight"), &[kd, d])?,
            o_proj: linear(&format!("{p}.attn_output.weight"), &[d, qd])?,
            mlp_norm: dense(&format!("{p}.ffn_norm.weight"), &[d])?,
            gate_proj: Some(linear(&format!("{p}.ffn_gate.weight"), &[f, d])?),
            up_proj: linear(&format!("{p}.ffn_up.weight"), &[f, d])?,
            down_proj: linear(&format!("{p}.ffn_down.weight"), &[d, f])?,
        });
    }
    let norm_f = dense("output_norm.weight", &[d])?;
    let lm_head = match (cfg.tie_embeddings, format) {
        (false, _) => Some(linear("output.weight", &[v, d])?),
        // Tied: the quantized token embedding serves as the output layer (llama.cpp and
        // candle's quantized llama do the same); the dense path reads `embed`.
        (true, WeightFormat::Quantized) => Some(linear("token_embd.weight", &[v, d])?),
        (true, WeightFormat::Dequantized) => None,
    };
    Ok(TransformerWeights {
        embed,
        layers,
        norm_f,
        lm_head,
    })
}
