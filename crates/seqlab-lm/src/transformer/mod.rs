//! The Transformer LM: a pre-norm decoder (RMSNorm, multi-head / grouped-query attention with
//! RoPE, SwiGLU or GELU MLP, tied or untied head) with a KV cache, a bidirectional mode, HF
//! Llama checkpoints, and training through the shared loop.
//!
//! - [`config`]: [`TransformerConfig`] (HF Llama `config.json` + `seqlab_mlp`,
//!   `seqlab_rope_layout`);
//! - [`weights`]: [`Linear`] (dense or quantized), [`TransformerWeights`], checked loading;
//! - [`quant_linear`]: quantized linear layers through seqlab-quant's kernels;
//! - [`model`]: [`TransformerLm`] — forward passes, [`KvCache`], [`crate::CausalLm`];
//! - [`train_model`]: [`TrainTransformer`], the trainable twin holding `Var`s.

pub mod causal_attn;
pub mod config;
pub mod model;
pub mod quant_linear;
pub mod train_model;
pub mod weights;

pub use config::{GeluKind, MlpKind, RopeLayout, TransformerConfig};
pub use model::{attention, rope, KvCache, TransformerLm, TransformerState};
pub use train_model::TrainTransformer;
pub use weights::{expected_specs, LayerWeights, Linear, TransformerWeights};
