//! The error type of the language-model layer.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a language model. Messages are one line and
/// name the file, tensor or token involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LmError {
    /// The model directory does not exist (or is not a directory).
    #[error("model directory {} does not exist", path.display())]
    ModelDirNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A file the model needs is absent.
    #[error("{what} not found: {}", path.display())]
    FileNotFound {
        /// What the file is (e.g. `config.json`).
        what: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The model configuration is missing a field, has a bad value or describes an unsupported
    /// architecture.
    #[error("bad model config {}: {reason}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A GGUF file's header, metadata or tensor table is wrong or unsupported.
    #[error("bad GGUF file {}: {reason}", path.display())]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the model needs is not listed in a sharded checkpoint's index.
    #[error("checkpoint index {} does not list tensor `{name}`", path.display())]
    MissingTensor {
        /// The index file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// A checkpoint could not be loaded (missing / misshapen tensor named in the message).
    #[error(transparent)]
    Tensor(#[from] seqlab_tensor::TensorError),
    /// An SSM kernel refused its inputs.
    #[error("SSM kernel: {0}")]
    Ssm(#[from] seqlab_ssm::SsmError),
    /// A candle tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// A token id outside the model's vocabulary.
    #[error("token id {id} is out of range: the model's vocabulary has {vocab} ids (0..{vocab})")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size (embedding rows).
        vocab: usize,
    },
    /// Inputs whose shape does not fit the call (empty prompt, ragged batch, state of another
    /// batch size, ...).
    #[error("invalid input: {0}")]
    Input(String),
    /// Training failed (bad config, data / model mismatch, diverged loss, checkpoint I/O).
    #[error("{0}")]
    Train(String),
    /// The step loop, the optimizer or a checkpoint, metrics or plot file failed (seqlab-train).
    /// Boxed: the training errors carry paths and sources, and would double the size of
    /// every `Result` of this crate.
    #[error(transparent)]
    TrainLoop(Box<seqlab_train::TrainError>),
    /// The dataset could not be opened or read.
    #[error(transparent)]
    Data(#[from] seqlab_data::DataError),
    /// A tokenizer could not be loaded or used.
    #[error(transparent)]
    Tokenizer(#[from] seqlab_tokenizer::TokenizerError),
}

impl From<seqlab_train::TrainError> for LmError {
    fn from(e: seqlab_train::TrainError) -> Self {
        LmError::TrainLoop(Box::new(e))
    }
}

/// `Result` with [`LmError`].
pub type Result<T> = std::result::Result<T, LmError>;
