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
    /// Another process holds the run directory's lock ([`crate::RunLock`]).
    #[error(
        "run directory {} is in use by {holder} (lock file {}); wait for that run to end or stop it",
        run.display(),
        lock.display()
    )]
    RunLocked {
        /// The run directory.
        run: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// Who holds it: pid, host and start time, as the holder wrote them.
        holder: String,
    },
    /// A fresh run was asked for in a directory that already holds one.
    #[error(
        "{} already holds a run ({what}); continue it with --resume, or start over with --overwrite",
        run.display()
    )]
    RunExists {
        /// The run directory.
        run: PathBuf,
        /// What was found (a checkpoint and its step, metrics.jsonl).
        what: String,
    },
    /// A resume's config changes a key that may not change (docs/training.md#resume).
    #[error(
        "`{key}` cannot change on resume: the run has {stored}, the config says {requested} \
         (only {allowed} may change)"
    )]
    ConfigChanged {
        /// The key.
        key: String,
        /// Its value in the checkpoint's config (JSON).
        stored: String,
        /// Its value in the config given now (JSON).
        requested: String,
        /// The keys that may change, comma-separated.
        allowed: String,
    },
    /// A resume's `max_steps` ends the schedule before the step the checkpoint reached.
    #[error("max_steps {max_steps} is below the step the checkpoint reached ({step})")]
    ScheduleEndsBeforeCheckpoint {
        /// The requested schedule length.
        max_steps: u64,
        /// The checkpoint's step.
        step: u64,
    },
    /// A checkpoint file does not match its checksum or size in the manifest.
    #[error("checkpoint file {} is corrupt: {reason} (per {})", path.display(), manifest.display())]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// The manifest.
        manifest: PathBuf,
        /// What differs.
        reason: String,
    },
    /// `trainer_state.json` parses but cannot describe a run this trainer wrote.
    #[error("implausible trainer state {}: {reason}", path.display())]
    ImplausibleState {
        /// The state file.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// A line of `metrics.jsonl` is not a metrics row.
    #[error("bad metrics file {} line {line}: {reason}", path.display())]
    BadMetrics {
        /// The metrics file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
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
