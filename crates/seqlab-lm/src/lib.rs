//! seqlab-lm: autoregressive language models over seqlab's sequence layers, behind one
//! interface, with loading, generation, evaluation and training (docs/architecture.md).
//!
//! - [`causal_lm`]: the [`CausalLm`] trait (prefill / step / score / truncate, `Clone` state)
//!   that every model implements and every decoder is written against
//!   (docs/architecture.md#the-causallm-seam); [`conformance`]: the contract each model passes
//!   in the tests.
//! - [`mamba`]: the Mamba LM of Gu & Dao (2023) — embedding → n × (residual add → RMSNorm →
//!   Mamba mixer) → norm_f → tied lm_head (docs/ssm.md#mamba-lm) — loaded from Hugging Face
//!   (`MambaForCausalLM`) or original `mamba_ssm` checkpoints, single-file or sharded, with every
//!   wrong or missing tensor reported by name; f32 on the CPU (parallel scan forward, prefill,
//!   recurrent steps, block scoring), a recurrent path of tensor ops for a CUDA GPU, and a
//!   trainable candle-autodiff version.
//! - [`transformer`]: a pre-norm decoder-only Transformer LM (RMSNorm, RoPE in the HF `half` or
//!   GGUF `interleaved` layout, grouped-query attention, SwiGLU or GELU MLP, tied or untied head)
//!   with a KV cache, a bidirectional mode, dense or quantized linear layers, HF Llama
//!   checkpoints ([`TransformerLm::load`]) and training.
//! - [`gguf`]: llama.cpp's GGUF files (`llama` architecture, e.g. SmolLM2-135M-Instruct Q4_1)
//!   as a Transformer LM with quantized (`QMatMul`) or dequantized weights, plus the byte-level
//!   BPE tokenizer embedded in the file; corrupt files give one clear line.
//! - [`s4lm`]: an S4 / S4D language model ([`S4Lm`]) and [`sashimi`]: the multi-scale SaShiMi
//!   audio model ([`Sashimi`]), both trainable (docs/s4.md).
//! - [`any_lm`]: one loader for every kind ([`load_lm`]; [`load_lm_on`] puts Mamba and dense
//!   Transformer weights on a CUDA GPU, feature `cuda`) and [`AnyLm`], which implements
//!   [`CausalLm`] by dispatching to the model inside.
//! - [`generate`](mod@generate): prompt prefill, then recurrent decoding with the shared f64
//!   sampler (greedy / temperature / top-k / top-p), stop tokens, a per-token callback and
//!   timings; [`eval`]: perplexity on a token stream. Both work with any [`CausalLm`].
//! - `train`: the training of every trainable model (AdamW, warmup + cosine schedule,
//!   clipping, validation, metrics, loss-curve PNG, atomic checkpoints, bit-exact resume;
//!   docs/training.md); [`synthetic_train`]: selective copying and induction heads (Mamba paper
//!   §4.1.1) for any trainable backbone, scored on the answer positions only.
//!
//! Every model runs on the CPU. The `cuda` feature adds candle's CUDA backend and seqlab-ssm's
//! kernels: every trainable model then trains on a GPU, and Mamba and dense Transformer models
//! generate there (`--device cuda`).
//! Errors are [`LmError`]s whose one-line messages name the file, tensor or token involved.

pub mod any_lm;
pub mod causal_lm;
pub mod conformance;
pub mod error;
pub mod eval;
pub mod generate;
pub mod gguf;
pub mod limits;
pub mod mamba;
pub mod s4lm;
pub mod sashimi;
pub mod synthetic_train;
pub mod train;
pub mod transformer;

pub use any_lm::{load_lm, load_lm_on, AnyLm, AnyState, LoadedLm};
pub use causal_lm::CausalLm;
pub use error::{LmError, Result};
pub use eval::{perplexity, token_log_probs, PplReport};
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
