//! The settings the step loop reads: the schedule's length and shape, clipping, and how often
//! to validate, log and checkpoint. A trainer's own configuration (model sizes, data, seed)
//! stays with the trainer, which hands the loop a [`LoopConfig`].

use crate::optim::lr_at;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What [`crate::run_steps`] needs of a training configuration (the field names are those of
/// the trainers' JSON configs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopConfig {
    /// Total optimizer steps (the schedule's length).
    pub max_steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Global gradient-norm limit (0 = off).
    pub grad_clip: f64,
    /// Validation every this many steps (0 = only at the end).
    pub eval_every: u64,
    /// Write a metrics line every this many steps (≥ 1).
    pub log_every: u64,
    /// Checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Tokens in one step's batch (rows × tokens per row), for the throughput.
    pub tokens_per_step: usize,
}

impl LoopConfig {
    /// The learning rate of 0-based `step`: [`lr_at`] with this config's schedule.
    pub fn lr_at(&self, step: u64) -> f64 {
        lr_at(
            step,
            self.lr,
            self.min_lr,
            self.warmup_steps,
            self.max_steps,
        )
    }
}

/// One config key a resume changed (recorded in the run's `config_changes.jsonl`,
/// [`crate::record_config_changes`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// The checkpoint's step the change applies from.
    pub step: u64,
    /// The key.
    pub key: String,
    /// Its value in the checkpoint's config.
    pub from: Value,
    /// Its new value.
    pub to: Value,
}

impl std::fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} -> {} from step {}",
            self.key, self.from, self.to, self.step
        )
    }
}
