//! The error type of the tensor layer: one variant per thing a user can get wrong, each with a
//! message that says what happened and, where there is one, what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong in `seqlab-tensor`.
///
/// Messages are written for the person running `seqlab`: they name the file, tensor or value
/// involved and, where possible, the fix (the CLI adds which flag gave the value).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    /// A device name that is not `cpu`, `cuda` or `cuda:N`.
    #[error("unknown device `{input}`: expected `cpu`, `cuda` or `cuda:N` (N = GPU index, e.g. `cuda:0`)")]
    InvalidDevice {
        /// What the user typed.
        input: String,
    },

    /// CUDA was asked for, but this binary was built without the `cuda` feature.
    #[error(
        "device `{requested}` was requested, but this build of seqlab has no CUDA support; \
         rebuild with `cargo build --release --features cuda` (needs a CUDA toolkit), or run on the CPU"
    )]
    CudaNotCompiled {
        /// The device that was asked for, e.g. `cuda:0`.
        requested: String,
    },

    /// CUDA support is compiled in, but the GPU cannot be opened (no driver, no such GPU, ...).
    #[error(
        "cannot use device `{requested}`: no CUDA GPU/driver found ({reason}); run on the CPU instead"
    )]
    CudaUnavailable {
        /// The device that was asked for, e.g. `cuda:1`.
        requested: String,
        /// What the driver (or candle) said.
        reason: String,
    },

    /// A dtype name other than `f32`, `f16`, `bf16` or `f64`.
    #[error("unknown dtype `{input}`: expected one of f32, f16, bf16, f64")]
    InvalidDtype {
        /// What the user typed.
        input: String,
    },

    /// A candle tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),

    /// The checkpoint file does not exist.
    #[error("checkpoint {} does not exist", path.display())]
    CheckpointNotFound {
        /// The path that was tried.
        path: PathBuf,
    },

    /// The checkpoint file exists but could not be read.
    #[error("cannot read checkpoint {}: {source}", path.display())]
    CheckpointRead {
        /// The checkpoint.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// The file ends before the data its header announces (interrupted download or save).
    #[error(
        "checkpoint {} is truncated: {detail} (an interrupted download or save?)",
        path.display()
    )]
    CheckpointTruncated {
        /// The checkpoint.
        path: PathBuf,
        /// How many bytes were expected and how many are there.
        detail: String,
    },

    /// The file is not a valid safetensors file.
    #[error("checkpoint {} is not a valid safetensors file: {reason}", path.display())]
    CheckpointCorrupt {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A tensor the model needs is absent from the checkpoint.
    #[error("checkpoint {} is missing tensor `{name}` (expected {expected})", path.display())]
    MissingTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The absent tensor.
        name: String,
        /// Its expected dtype and shape, e.g. `f32[768, 50280]`.
        expected: String,
    },

    /// A tensor has a different shape from the one the model needs.
    #[error(
        "checkpoint {}: tensor `{name}` has shape {found:?} but expected {expected:?}",
        path.display()
    )]
    ShapeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its shape in the file.
        found: Vec<usize>,
        /// The shape the model needs.
        expected: Vec<usize>,
    },

    /// A tensor has a different dtype from the one the model needs.
    #[error(
        "checkpoint {}: tensor `{name}` has dtype {found} but expected {expected}",
        path.display()
    )]
    DtypeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype in the file.
        found: String,
        /// The dtype the model needs.
        expected: String,
    },

    /// The checkpoint has tensors the model does not know (only when extras are rejected).
    #[error(
        "checkpoint {} has {count} unexpected tensor(s), first `{first}` (wrong model, or a checkpoint for another config?)",
        path.display()
    )]
    UnexpectedTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The first unexpected name, in sorted order.
        first: String,
        /// How many unexpected tensors there are.
        count: usize,
    },

    /// A tensor is stored with a dtype that seqlab cannot load (e.g. BOOL, U16).
    #[error(
        "checkpoint {}: tensor `{name}` has dtype {dtype}, which seqlab cannot load",
        path.display()
    )]
    UnsupportedCheckpointDtype {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype as safetensors names it.
        dtype: String,
    },

    /// Writing a checkpoint failed; any previous file at `path` is untouched.
    #[error("cannot write checkpoint {}: {reason}", path.display())]
    CheckpointWrite {
        /// The destination.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// Sampling temperature that is not a finite number > 0.
    #[error("temperature must be a finite number > 0 (got {value}); use greedy decoding instead of temperature 0")]
    InvalidTemperature {
        /// The rejected value.
        value: f64,
    },

    /// top-p outside (0, 1].
    #[error("top-p must be in (0, 1] (got {value})")]
    InvalidTopP {
        /// The rejected value.
        value: f64,
    },

    /// top-k of 0.
    #[error("top-k must be at least 1 (got 0); leave it unset to disable top-k")]
    InvalidTopK,

    /// no-repeat n-gram size of 0.
    #[error("no-repeat n-gram size must be at least 1 (got 0); leave it unset to disable it")]
    InvalidNoRepeatNgram,

    /// A logit is NaN: the model produced garbage.
    #[error("logit {index} is NaN: the model produced an invalid output (diverged weights or a bad checkpoint?)")]
    NanLogit {
        /// Token id of the first NaN logit.
        index: usize,
    },

    /// A logit is +inf, so the distribution is undefined.
    #[error("logit {index} is +inf: the model produced an invalid output")]
    InfiniteLogit {
        /// Token id of the first +inf logit.
        index: usize,
    },

    /// An empty logits vector (vocabulary of size 0).
    #[error("cannot sample from an empty logits vector")]
    EmptyLogits,

    /// Every token is masked (-inf) or banned, so nothing can be sampled.
    #[error("every token is masked or banned (e.g. by the no-repeat n-gram rule): nothing can be sampled")]
    NoValidToken,

    /// Weights given to a categorical distribution are not usable.
    #[error("invalid categorical weights: {reason}")]
    InvalidWeights {
        /// What is wrong (negative, NaN, all zero, ...).
        reason: String,
    },

    /// A flat id array does not split into the batch of equal, non-empty rows the caller named.
    #[error("{tokens} tokens do not form a non-empty batch of {batch} equal-length rows")]
    RaggedBatch {
        /// Ids given.
        tokens: usize,
        /// Rows asked for.
        batch: usize,
    },

    /// A batch of logits does not have the layout the caller described.
    #[error("bad logits batch: {reason}")]
    BatchShape {
        /// What does not fit.
        reason: String,
    },
}

/// `Result` with [`TensorError`].
pub type Result<T> = std::result::Result<T, TensorError>;
