//! seqlab: sequence models in Rust.
//!
//! This crate re-exports the layers so a user can depend on one crate:
//! [`tensor`] (devices, checked safetensors I/O, sampling), [`tokenizer`]
//! (HF tokenizer.json, BPE training, char/byte vocabularies, mu-law audio) and
//! [`data`] (token shards, memory-mapped seeded batches, audio clips).

pub use seqlab_data as data;
pub use seqlab_tensor as tensor;
pub use seqlab_tokenizer as tokenizer;
