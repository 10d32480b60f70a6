//! The training configuration file (`--config CFG.json`): model sizes and hyper-parameters.
//! Unknown keys are an error; every key has a default.

use serde::{Deserialize, Serialize};

/// Model sizes and training hyper-parameters. The vocabulary comes from the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Model width D.
    pub d_model: usize,
    /// Mamba blocks.
    pub n_layer: usize,
    /// SSM state size N.
    pub d_state: usize,
    /// Conv kernel K.
    pub d_conv: usize,
    /// Expansion E.
    pub expand: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// Tokens per row.
    pub seq_len: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine decay.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Total optimizer steps (the schedule's length).
    pub max_steps: u64,
    /// AdamW decoupled weight decay λ (matrices and embeddings only).
    pub weight_decay: f64,
    /// Global gradient-norm limit (0 = off).
    pub grad_clip: f64,
    /// Validation every this many steps (0 = only at the end).
    pub eval_every: u64,
    /// Validation batches (SequentialBatches over the val split, in order).
    pub eval_batches: usize,
    /// Checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Write a metrics line every this many steps.
    pub log_every: u64,
    /// Seed of the initialisation and the batch order.
    pub seed: u64,
    /// Reset the state at document boundaries inside a window (packed sequences).
    pub packed: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            d_model: 64,
            n_layer: 2,
            d_state: 16,
            d_conv: 4,
            expand: 2,
            batch_size: 8,
            seq_len: 128,
            lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 20,
            max_steps: 500,
            weight_decay: 0.1,
            grad_clip: 1.0,
            eval_every: 100,
            eval_batches: 8,
            checkpoint_every: 100,
            log_every: 1,
            seed: 0,
            packed: true,
        }
    }
}

impl TrainConfig {
    /// Parses JSON text; the error says which key or value is wrong.
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in [
            ("d_model", self.d_model),
            ("n_layer", self.n_layer),
            ("d_state", self.d_state),
            ("d_conv", self.d_conv),
            ("expand", self.expand),
            ("batch_size", self.batch_size),
            ("seq_len", self.seq_len),
            ("eval_batches", self.eval_batches),
        ] {
            if v == 0 {
                return Err(format!("`{k}` must be ≥ 1"));
            }
        }
        if self.max_steps == 0 || self.log_every == 0 {
            return Err("`max_steps` and `log_every` must be ≥ 1".into());
        }
        for (k, v) in [
            ("lr", self.lr),
            ("min_lr", self.min_lr),
            ("weight_decay", self.weight_decay),
            ("grad_clip", self.grad_clip),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("`{k}` must be a finite number ≥ 0, got {v}"));
            }
        }
        Ok(())
    }
}
