//! The error type of the training machinery: one line each, naming the file or the step.

use std::path::PathBuf;

/// What the step loop, the optimizer, checkpoints, metrics and the plot can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A candle tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a safetensors file (the optimizer moments) failed.
    #[error(transparent)]
    Tensor(#[from] seqlab_tensor::TensorError),
    /// An atomic write (state, metrics, plot, tokenizer copy) failed.
    #[error(transparent)]
    Io(#[from] seqlab_io::IoError),
    /// A file or directory operation on the run directory failed.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        /// What was tried (`read`, `create`, `rename`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A resume was asked for but the run directory holds no complete checkpoint.
    #[error(
        "no checkpoint to resume in {} (expected {}/checkpoint/trainer_state.json)",
        run.display(),
        run.display()
    )]
    NoCheckpoint {
        /// The run directory.
        run: PathBuf,
    },
    /// `trainer_state.json` is not valid JSON of the expected shape.
    #[error("bad trainer state {}: {reason}", path.display())]
    BadState {
        /// The state file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// `optimizer.safetensors` lacks the moments of a parameter.
    #[error("optimizer state of `{name}` missing in {}", dir.display())]
    MissingMoments {
        /// The parameter.
        name: String,
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// The optimizer state was built for other parameters (count or names differ).
    #[error("the optimizer does not fit the parameters: {0}")]
    OptimizerMismatch(String),
    /// The loss of a step is NaN or infinite.
    #[error("training diverged: the loss is {value} at step {step} (lower the learning rate)")]
    LossNotFinite {
        /// The loss.
        value: f64,
        /// The step (1-based).
        step: u64,
    },
    /// The gradient norm of a step is NaN or infinite.
    #[error("training diverged: the gradient norm is {value} at step {step}")]
    GradNormNotFinite {
        /// The norm.
        value: f64,
        /// The step (1-based).
        step: u64,
    },
    /// The loss curve could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
}

impl TrainError {
    /// A [`TrainError::File`] for `action` on `path`.
    pub(crate) fn file(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        TrainError::File {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
