//! Errors of the diffusion crate: one line each, never a panic on bad input.

/// What diffusion training, sampling and evaluation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A language-model operation (backbone, AR energy model) failed.
    #[error(transparent)]
    Lm(#[from] seqlab_lm::LmError),
    /// The step loop, the optimizer or a checkpoint, metrics or plot file failed (boxed, as
    /// in `LmError`, to keep every `Result` small).
    #[error(transparent)]
    Train(Box<seqlab_train::TrainError>),
    /// Reading or writing safetensors failed.
    #[error(transparent)]
    Tensor(#[from] seqlab_tensor::TensorError),
    /// Reading the token shards failed.
    #[error(transparent)]
    Data(#[from] seqlab_data::DataError),
    /// Invalid arguments or configuration (shapes, ids, schedule parameters, ...).
    #[error("{0}")]
    Invalid(String),
}

impl From<seqlab_train::TrainError> for DiffusionError {
    fn from(e: seqlab_train::TrainError) -> Self {
        DiffusionError::Train(Box::new(e))
    }
}

/// Result alias for the diffusion crate.
pub type Result<T> = std::result::Result<T, DiffusionError>;
