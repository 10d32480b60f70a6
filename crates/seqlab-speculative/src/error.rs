//! The crate's error type: one line each, naming what was wrong.

use seqlab_lm::LmError;
use seqlab_tensor::TensorError;

/// What can go wrong while decoding with two models.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A model call failed.
    #[error(transparent)]
    Lm(#[from] LmError),
    /// Sampling failed (NaN logits, bad sampler settings).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// The two models cannot be paired.
    #[error("mismatched vocabularies: the big model has {big} logits per position, the little model {little}")]
    VocabMismatch {
        /// The big model's vocabulary size.
        big: usize,
        /// The little model's vocabulary size.
        little: usize,
    },
    /// A setting is out of range or the input is unusable.
    #[error("{0}")]
    Config(String),
    /// The frontier plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
}

/// `Result` with a [`SpecError`].
pub type Result<T> = std::result::Result<T, SpecError>;
