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
    /// The model configuration file (or a saved synthetic task file) is missing a field, has a
    /// bad value or describes an unsupported architecture.
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
    /// The data directory given to training does not exist (or is not a directory). Pass an
    /// existing directory prepared for training.
    #[error("data directory {} does not exist", path.display())]
    DataDirNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path exists but is neither a model directory (`config.json` + weights) nor a
    /// `.gguf` file. Point at a model directory or a GGUF file.
    #[error("{} is neither a model directory (config.json + weights) nor a .gguf file", path.display())]
    NotAModel {
        /// The path given.
        path: PathBuf,
    },
    /// A file or directory could not be created, written or renamed into place (a saved model,
    /// a run directory, a task file). The path and the operating system's reason are in the
    /// message; check permissions and free space.
    #[error(transparent)]
    Io(#[from] seqlab_io::IoError),
    /// A training run's directory cannot be created (a file stands where it should be, or no
    /// permission): choose another run directory.
    #[error("cannot create run directory {}: {source}", path.display())]
    RunDir {
        /// The run directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Arguments of the wrong shape or length for the call: an empty prompt or token list, a
    /// ragged batch, not one token per row, `seq_idx` or targets of the wrong count, a layer
    /// index out of range, an evaluation window or split too short. A bug in the caller: fix
    /// the arguments.
    #[error("{0}")]
    Shape(String),
    /// A recurrent state or KV cache that does not fit this model or batch (another model,
    /// another kind, another batch size), or that cannot be rolled back to the asked length.
    /// Speculative decoders act on this: re-prefill from the tokens instead of rolling back.
    #[error("{0}")]
    State(String),
    /// Building a model from in-memory tensors (not from a file: see [`LmError::Tensor`] and
    /// [`LmError::MissingTensor`]) found a tensor missing, misshapen, unexpected or not where
    /// the fast path needs it. The tensor is named; build the tensors for this config.
    #[error("{0}")]
    Weights(String),
    /// A model, training or task configuration given in code has a bad value (a size of 0, an
    /// odd state size, …). File-based config errors are [`LmError::Config`]. Fix the value
    /// named in the message.
    #[error("{0}")]
    InvalidConfig(String),
    /// A valid request this model cannot do: saving a quantized model, a model kind on a device
    /// it does not run on, training a non-HF layout, an audio model on a text task. Choose
    /// another model, device or operation.
    #[error("{0}")]
    Unsupported(String),
    /// A checkpoint and the config or data it is used with disagree (model kind, vocabulary,
    /// sizes, seed), or the data is too small for the config. Use the matching checkpoint,
    /// config or data.
    #[error("{0}")]
    Mismatch(String),
    /// Training produced a non-finite loss or gradient norm at `step`. Lower the learning rate
    /// (or raise gradient clipping) and train again.
    #[error("training diverged: the {what} is {value} at step {step} (lower the learning rate)")]
    Diverged {
        /// The 1-based step.
        step: u64,
        /// What became non-finite (`"loss"`, `"gradient norm"`).
        what: &'static str,
        /// Its value (NaN or ±inf).
        value: f64,
    },
    /// The model assigns a token of the evaluated text zero probability (log p = −inf or NaN):
    /// its perplexity is infinite. Evaluate on text the model's vocabulary covers, or check the
    /// model for non-finite weights.
    #[error("the model gives token {token} zero probability (log p = {log_p})")]
    ZeroProbability {
        /// The token.
        token: u32,
        /// Its log-probability.
        log_p: f64,
    },
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
