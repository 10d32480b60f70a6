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
    /// The data passed in does not fit: token buffers that do not make the rows given, ids
    /// outside the vocabulary, times outside [0, 1], an empty or malformed infill template,
    /// a split with nothing to score.
    #[error("{0}")]
    Input(String),
    /// A setting is out of range: noise schedule, sampler (steps, window, EDLM's k and τ),
    /// training or model configuration.
    #[error("{0}")]
    Config(String),
    /// Two things that must agree do not: the vocabularies (tokenizers) of two models or of a
    /// model and its data, a checkpoint and the configuration it resumes.
    #[error("{0}")]
    Mismatch(String),
    /// A model or checkpoint file is not what it should be: unparsable, another format, a
    /// tensor missing or misshapen.
    #[error("{0}")]
    Checkpoint(String),
    /// A file or directory cannot be read or written (or does not exist), or an output (the
    /// plot) cannot be produced.
    #[error("{0}")]
    Io(String),
    /// A computation gave no usable number: non-finite logits or energies, a categorical draw
    /// with no category of positive probability.
    #[error("{0}")]
    NotFinite(String),
}

impl From<seqlab_train::TrainError> for DiffusionError {
    fn from(e: seqlab_train::TrainError) -> Self {
        DiffusionError::Train(Box::new(e))
    }
}

/// Result alias for the diffusion crate.
pub type Result<T> = std::result::Result<T, DiffusionError>;
