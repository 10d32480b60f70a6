//! seqlab: sequence models in Rust.
//!
//! This crate re-exports the layers so a user can depend on one crate:
//! [`io`] (atomic writes, careful reads), [`tensor`] (devices, checked safetensors I/O,
//! sampling), [`tokenizer`] (HF tokenizer.json, BPE training, char/byte vocabularies, mu-law
//! audio), [`data`] (token shards, memory-mapped seeded batches, audio clips), [`ssm`]
//! (selective scan, causal conv1d, recurrent steps, S4/S4D kernels), [`train`] (the step loop,
//! AdamW, checkpoints, metrics and the loss plot every trainer shares), [`lm`] (the `CausalLm`
//! interface; Mamba, Transformer, GGUF Llama, S4 LM and SaShiMi; generation, evaluation,
//! training), [`diffusion`] (masked diffusion LMs, their samplers and EDLM) and [`speculative`]
//! (BiLD and lossless speculative decoding).

pub use seqlab_data as data;
pub use seqlab_diffusion as diffusion;
pub use seqlab_io as io;
pub use seqlab_lm as lm;
pub use seqlab_speculative as speculative;
pub use seqlab_ssm as ssm;
pub use seqlab_tensor as tensor;
pub use seqlab_tokenizer as tokenizer;
pub use seqlab_train as train;
