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
//! Errors are [`LmError`]s whose one-line messages name the file, tensor or token involved.

pub mod causal_lm;
pub mod error;
pub mod generate;
pub mod mamba;
pub mod train;

pub use causal_lm::CausalLm;
pub use error::{LmError, Result};
pub use generate::{generate, GenerateConfig, GenerateOutput, StopReason};
pub use mamba::{
    LogitsMode, MambaConfig, MambaDims, MambaLayout, MambaLm, MambaOutput, MambaState, TrainMamba,
};
pub use train::{train, TrainConfig, TrainOptions, TrainSummary};
