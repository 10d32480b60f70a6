//! seqlab-lm: language models over seqlab's sequence layers.
//!
//! - [`mamba`]: the Mamba LM of Gu & Dao (2023) in f32 on CPU — embedding → n × (residual add →
//!   RMSNorm → Mamba mixer) → norm_f → tied lm_head — loaded from Hugging Face
//!   (`MambaForCausalLM`) or original `mamba_ssm` checkpoints, single-file or sharded, with every
//!   wrong or missing tensor reported by name. Parallel forward (selective scan over the whole
//!   sequence), prefill returning the recurrent [`MambaState`], and one-token recurrent steps.
//! - [`causal_lm`]: the [`CausalLm`] trait (prefill / step / score, `Clone` state) that
//!   decoders are written against; [`MambaLm`] implements it.
//! - [`generate`](mod@generate): prompt prefill with the parallel scan, then recurrent decoding with the shared
//!   f64 sampler (greedy / temperature / top-k / top-p), stop tokens, a per-token callback and
//!   timings.
//!
//! - [`train`]: training — a candle-autodiff Mamba ([`mamba::TrainMamba`], HF tensor names, packed
//!   sequences), AdamW, warmup + cosine schedule, clipping, validation, metrics, loss-curve PNG,
//!   atomic checkpoints and bit-exact resume.
//!
//! - [`gguf`]: llama.cpp's GGUF files (`llama` architecture, e.g. SmolLM2-135M-Instruct Q4_1)
//!   as a Transformer LM with quantized (`QMatMul`) or dequantized weights, plus the byte-level
//!   BPE tokenizer embedded in the file ([`gguf::load_gguf`]); corrupt files give one clear line.
//!
//! - [`transformer`]: a pre-norm decoder-only Transformer LM (RMSNorm, RoPE in the HF `half` or
//!   GGUF `interleaved` layout, grouped-query attention, SwiGLU or GELU MLP, tied or untied head)
//!   with a KV cache, a bidirectional mode, dense or quantized linear layers, HF Llama
//!   checkpoints ([`TransformerLm::load`]) and training ([`TrainTransformer`]).
//!
//! - [`s4lm`]: an S4 / S4D language model ([`S4Lm`]) and [`sashimi`]: the multi-scale SaShiMi
//!   audio model ([`Sashimi`]), both trainable and behind [`CausalLm`].
//!
//! - [`synthetic_train`]: selective copying and induction heads (Mamba paper §4.1.1) for any
//!   trainable backbone, with the loss and the accuracy on the answer positions only.
//!
//! Errors are [`LmError`]s whose one-line messages name the file, tensor or token involved.

pub mod any_lm;
pub mod causal_lm;
pub mod conformance;
pub mod error;
pub mod eval;
pub mod generate;
pub mod gguf;
pub mod mamba;
pub mod s4lm;
pub mod sashimi;
pub mod synthetic_train;
pub mod train;
pub mod transformer;

pub use any_lm::{load_lm, load_lm_on, AnyLm, AnyState, LoadedLm};
pub use causal_lm::CausalLm;
pub use error::{LmError, Result};
pub use eval::{perplexity, PplReport};
pub use generate::{generate, GenerateConfig, GenerateOutput, StopReason};
pub use mamba::{
    LogitsMode, MambaConfig, MambaDims, MambaLayout, MambaLm, MambaLmState, MambaOutput,
    MambaState, TrainMamba,
};
pub use s4lm::{S4Lm, S4LmConfig, S4LmState, SsmName};
pub use sashimi::{Sashimi, SashimiConfig, SashimiState};
pub use train::{train, train_on, TrainConfig, TrainOptions, TrainSummary};
pub use transformer::{
    KvCache, LayerWeights, Linear, MlpKind, RopeLayout, TrainTransformer, TransformerConfig,
    TransformerLm, TransformerState, TransformerWeights,
};
