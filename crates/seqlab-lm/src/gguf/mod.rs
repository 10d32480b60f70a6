//! GGUF models (llama.cpp's single-file format): a `llama` GGUF — e.g. SmolLM2-135M-Instruct
//! Q4_1 (`datasets/fetch_smollm2.sh`) — run as seqlab's [`TransformerLm`], with the tokenizer
//! embedded in the file.
//!
//! - [`reader`]: [`GgufFile`], the checked, memory-mapped file (candle's GGUF parser plus the
//!   size and bounds checks that turn a corrupt or truncated file into one clear error line);
//! - [`llama`]: metadata → [`TransformerConfig`], tensors → [`TransformerWeights`]
//!   ([`WeightFormat::Quantized`] keeps Q4_1 / Q8_0 / ... matrices quantized for candle's
//!   `QMatMul`; [`WeightFormat::Dequantized`] is the dense f32 reference);
//! - [`tokenizer`]: [`GgufTokenizer`], the byte-level BPE of `tokenizer.ggml.*`.
//!
//! Quantized block layouts (ggml; 32 weights per block, each block self-contained):
//! - Q8_0: `d: f16, q: [i8; 32]`, 34 bytes: x = d · q;
//! - Q4_1: `d: f16, m: f16, qs: [u8; 16]`, 20 bytes: weight j < 16 is the low nibble of
//!   `qs[j]`, weight 16 + j the high nibble; x = d · q + m with q ∈ 0..=15;
//! - Q4_0: `d: f16, qs: [u8; 16]`: x = d · (q − 8).
//!
//! The transformer forward pass itself is [`TransformerLm`]'s; this module only maps the file.

pub mod llama;
pub mod reader;
pub mod tokenizer;

pub use llama::{llama_config, llama_tensor_specs, llama_weights, WeightFormat, LLAMA_ARCH};
pub use reader::{dtype_name, GgufFile, GgufTensorInfo, GGUF_MAGIC};
pub use tokenizer::GgufTokenizer;

use crate::error::Result;
use crate::transformer::{TransformerConfig, TransformerLm, TransformerWeights};
use seqlab_tokenizer::Tokenizer;
use std::path::Path;

/// Loads a `llama` GGUF file as a [`TransformerLm`] with quantized weights
/// ([`WeightFormat::Quantized`]) and its embedded tokenizer. Errors are one line naming what
/// is wrong: not a GGUF file, a truncated file (and the first tensor cut off), an unsupported
/// architecture or tokenizer, a missing metadata key or tensor, a tensor of the wrong shape.
pub fn load_gguf(path: &Path) -> Result<(TransformerLm, GgufTokenizer)> {
    load_gguf_with(path, WeightFormat::Quantized)
}

/// [`load_gguf`] with the weights held in `format`.
pub fn load_gguf_with(path: &Path, format: WeightFormat) -> Result<(TransformerLm, GgufTokenizer)> {
    let file = GgufFile::open(path)?;
    let (cfg, weights) = load_gguf_parts(&file, format)?;
    let tokenizer = GgufTokenizer::from_gguf(&file)?;
    if tokenizer.vocab_size() > cfg.vocab_size {
        return Err(reader::corrupt(
            path,
            format!(
                "the tokenizer has {} tokens but token_embd.weight only {} rows",
                tokenizer.vocab_size(),
                cfg.vocab_size
            ),
        ));
    }
    Ok((TransformerLm::new(cfg, weights)?, tokenizer))
}

/// The config and weights of an open `llama` GGUF, before they become a model (to change the
/// config first, e.g. the RoPE layout in an experiment).
pub fn load_gguf_parts(
    file: &GgufFile,
    format: WeightFormat,
) -> Result<(TransformerConfig, TransformerWeights)> {
    let cfg = llama_config(file)?;
    let weights = llama_weights(file, &cfg, format)?;
    Ok((cfg, weights))
}
