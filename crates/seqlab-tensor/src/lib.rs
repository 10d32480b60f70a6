//! seqlab's shared tensor layer.
//!
//! - [`device`]: `--device cpu|cuda|cuda:N` → a candle [`Device`](candle_core::Device), with clear
//!   errors when CUDA is not compiled in or no GPU/driver is present.
//! - [`dtype`]: `f32|f16|bf16|f64` names → candle dtypes; conversion to the compute dtype.
//! - [`checkpoint`]: safetensors I/O that checks names, shapes and dtypes (first mismatch by
//!   name), reads headers cheaply, and saves atomically.
//! - [`ops`]: RMSNorm, softplus and the batch-shape check, shared by every model.
//! - [`sampling`], [`categorical`], [`no_repeat`]: log-softmax, temperature, top-k, top-p,
//!   repetition-free greedy and categorical draws, all in f64.

pub mod categorical;
pub mod checkpoint;
pub mod device;
pub mod dtype;
pub mod error;
pub mod limits;
pub mod no_repeat;
pub mod ops;
pub mod sampling;

pub use candle_core;
pub use categorical::{sample_categorical, Categorical};
pub use checkpoint::{
    check_file, load, load_checked, load_checked_with, read_header, read_specs, save_atomic,
    save_atomic_with_metadata, CheckOptions, CheckpointHeader, TensorSpec,
};
pub use device::{cuda_compiled, select_device, DeviceChoice};
pub use dtype::{dtype_name, is_compute_dtype, parse_dtype, to_compute_dtype, DTYPE_NAMES};
pub use error::{Result, TensorError};
pub use no_repeat::banned_ngram_tokens;
pub use ops::{batch_rows, rms_norm, softplus};
pub use sampling::{argmax, argmax_f64, log_softmax, mask_vocab, softmax, Sampler, SamplerConfig};
