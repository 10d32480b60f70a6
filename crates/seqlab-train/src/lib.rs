//! seqlab-train: the model-independent half of training, shared by every trainer in seqlab
//! (`seqlab train` and `seqlab audio train` in seqlab-lm, `seqlab diffusion train` in
//! seqlab-diffusion, the synthetic tasks and the EDLM energy head). docs/training.md describes
//! the whole procedure.
//!
//! - [`step_loop`]: [`run_steps`], the optimisation loop; a trainer passes in its loss,
//!   validation and checkpoint writer as closures, and the loop's settings as a
//!   [`LoopConfig`];
//! - [`optim`]: AdamW with decoupled weight decay and decay groups (Loshchilov & Hutter 2019),
//!   the linear warmup + cosine schedule [`lr_at`], global-norm clipping;
//! - [`checkpoint`]: crash-safe checkpoint directories, the trainer state and the optimizer
//!   moments, restored exactly so a resumed run continues bit for bit;
//! - [`metrics`]: `metrics.jsonl` ([`MetricRow`]), append-only, read strictly on resume;
//! - [`manifest`]: the checksum manifest of a checkpoint, verified before it is loaded;
//! - [`run_lock`] and [`run_dir`]: one process per run directory, no fresh run over an old one
//!   without `overwrite`, and the config keys a resume may change;
//! - [`plot`]: the loss-curve PNG and the PNG encoder other plots use.
//!
//! What a model is (its parameters, forward pass, files and decay groups) stays with the
//! model's crate.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod manifest;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod run_dir;
pub mod run_lock;
pub mod step_loop;

pub use checkpoint::{
    checkpoint_to_resume, find_checkpoint, read_optimizer, read_optimizer_moments,
    read_trainer_state, write_checkpoint_with, TrainerState, CHECKPOINT_DIR, OPTIMIZER_FILE,
    STATE_FILE,
};
pub use config::{ConfigChange, LoopConfig};
pub use error::{Result, TrainError};
pub use manifest::{verify_manifest, write_manifest, Manifest, MANIFEST_FILE};
pub use metrics::{read_metrics, MetricRow, MetricsHistory, MetricsLog, METRICS_FILE};
pub use optim::{clip_grad_norm, global_norm, lr_at, AdamSlot, AdamW};
pub use plot::{write_plot, PLOT_FILE};
pub use run_dir::{
    claim_run_dir, config_changes, read_run_state, record_config_changes, CONFIG_CHANGES_FILE,
};
pub use run_lock::{RunLock, LOCK_FILE};
pub use step_loop::{run_steps, LoopStart, TrainOptions, TrainSummary};
