//! The training configuration file (`--config CFG.json`): model sizes and hyper-parameters.
//! Unknown keys are an error; every key has a default.

use crate::transformer::{MlpKind, TransformerConfig};
use seqlab_data::{BatchSampler, SamplerState, SequentialBatches, SplitView};
use seqlab_tensor::limits::{check_fits_in_memory, check_plausible, Dim};
use serde::{Deserialize, Serialize};

/// Which model family a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The Mamba LM (`d_model`, `n_layer`, `d_state`, `d_conv`, `expand`).
    #[default]
    Mamba,
    /// The Transformer LM (`d_model`, `n_layer`, `n_head`, `n_kv_head`, `d_ff`, `mlp`,
    /// `rope_theta`).
    Transformer,
    /// The S4 LM (`d_model`, `n_layer`, `d_state`, `ssm`).
    S4,
    /// SaShiMi (`d_model`, `n_layer` per stage, `d_state`, `ssm`, `pool`, `expand`, `ff_expand`).
    Sashimi,
}

impl ModelKind {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mamba => "mamba",
            ModelKind::Transformer => "transformer",
            ModelKind::S4 => "s4",
            ModelKind::Sashimi => "sashimi",
        }
    }
}

/// The Transformer's MLP in a training config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MlpName {
    /// SwiGLU (gate, up, down).
    #[default]
    Swiglu,
    /// GELU (up, down).
    Gelu,
}

/// Model sizes and training hyper-parameters. The vocabulary comes from the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Model family (`"mamba"` | `"transformer"`).
    pub model: ModelKind,
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
    /// Transformer: attention heads H.
    pub n_head: usize,
    /// Transformer: key/value heads (0 = H; otherwise must divide H).
    pub n_kv_head: usize,
    /// Transformer: MLP width (0 = auto: 8·D/3 rounded up to a multiple of 8 for SwiGLU, 4·D
    /// for GELU).
    pub d_ff: usize,
    /// Transformer: MLP kind (`"swiglu"` | `"gelu"`).
    pub mlp: MlpName,
    /// Transformer: RoPE base θ.
    pub rope_theta: f64,
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
    /// Audio: each row is the first `seq_len + 1` samples of a random clip (validation: of every
    /// clip) instead of a window starting anywhere, so the model learns where in a clip it is, as
    /// SaShiMi trains on whole 1 s SC09 clips. `seq_len` must be below the clip length.
    pub clip_start: bool,
    /// S4 / SaShiMi: the SSM of the S4 blocks (`"s4d"` | `"s4legs"`).
    pub ssm: crate::s4lm::SsmName,
    /// SaShiMi: pooling factors, outermost first (`seq_len` must be a multiple of their product).
    pub pool: Vec<usize>,
    /// SaShiMi: feed-forward expansion.
    pub ff_expand: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: ModelKind::Mamba,
            n_head: 4,
            n_kv_head: 0,
            d_ff: 0,
            mlp: MlpName::Swiglu,
            rope_theta: 10_000.0,
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
            clip_start: false,
            ssm: crate::s4lm::SsmName::S4d,
            pool: vec![4, 4],
            ff_expand: 2,
        }
    }
}

impl TrainConfig {
    /// The training batches of this config over `view` from batch `step` on: random windows,
    /// or random clip prefixes with `clip_start`. Batch `t` depends only on `(seed, t)`.
    pub fn train_batches(
        &self,
        view: &SplitView,
        step: u64,
    ) -> Result<BatchSampler, seqlab_data::DataError> {
        let mut sampler = if self.clip_start {
            BatchSampler::clip_prefixes(view.clone(), self.batch_size, self.seq_len, self.seed)?
        } else {
            BatchSampler::new(view.clone(), self.batch_size, self.seq_len, self.seed)?
        };
        sampler.set_state(SamplerState {
            seed: self.seed,
            step,
        });
        Ok(sampler)
    }

    /// The evaluation batches of this config over `view`: every non-overlapping window, or
    /// every clip's prefix with `clip_start`.
    pub fn eval_batches(
        &self,
        view: &SplitView,
    ) -> Result<SequentialBatches, seqlab_data::DataError> {
        if self.clip_start {
            SequentialBatches::clip_prefixes(view.clone(), self.batch_size, self.seq_len)
        } else {
            SequentialBatches::new(view.clone(), self.batch_size, self.seq_len)
        }
    }

    /// The keys a resume may change from this (the checkpoint's) config: the schedule's
    /// length `max_steps` and the cadence of checkpoints, validation and metrics rows, none of
    /// which changes the weights of the steps already taken; and `seq_len` for the S4D models
    /// (S4 LM, SaShiMi with `ssm` "s4d"), whose weights do not depend on the length, so
    /// training may go on at another one. docs/training.md#resume.
    pub fn resume_changeable(&self) -> Vec<&'static str> {
        let mut keys = vec!["max_steps", "checkpoint_every", "eval_every", "log_every"];
        if matches!(self.model, ModelKind::S4 | ModelKind::Sashimi)
            && self.ssm == crate::s4lm::SsmName::S4d
        {
            keys.push("seq_len");
        }
        keys
    }

    /// The step loop's settings of this config (the schedule, clipping, how often to validate,
    /// log and checkpoint; a step's batch holds `batch_size · seq_len` tokens).
    pub fn loop_config(&self) -> seqlab_train::LoopConfig {
        seqlab_train::LoopConfig {
            max_steps: self.max_steps,
            lr: self.lr,
            min_lr: self.min_lr,
            warmup_steps: self.warmup_steps,
            grad_clip: self.grad_clip,
            eval_every: self.eval_every,
            log_every: self.log_every,
            checkpoint_every: self.checkpoint_every,
            tokens_per_step: self.batch_size * self.seq_len,
        }
    }

    /// Parses JSON text; the error says which key or value is wrong.
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Plausible sizes ([`seqlab_tensor::limits`]) of a training config (`seqlab train --config`,
    /// `audio train`, and the LM part of a diffusion config): model sizes and the batch.
    pub fn check_sizes(&self) -> Result<(), String> {
        check_plausible(&[
            ("d_model", self.d_model, Dim::Width),
            ("n_layer", self.n_layer, Dim::Layers),
            ("d_state", self.d_state, Dim::State),
            ("d_conv", self.d_conv, Dim::Kernel),
            ("expand", self.expand, Dim::Factor),
            ("n_head", self.n_head, Dim::Heads),
            ("n_kv_head", self.n_kv_head, Dim::Heads),
            ("d_ff", self.d_ff, Dim::Width),
            ("batch_size", self.batch_size, Dim::Batch),
            ("seq_len", self.seq_len, Dim::Sequence),
            ("eval_batches", self.eval_batches, Dim::Batch),
            ("ff_expand", self.ff_expand, Dim::Factor),
            ("number of pooling levels", self.pool.len(), Dim::Layers),
        ])?;
        crate::limits::check_pool(&self.pool)?;
        check_plausible(&[(
            "expand · d_model",
            self.expand.saturating_mul(self.d_model),
            Dim::Width,
        )])?;
        Ok(())
    }

    /// A lower bound on the parameters of a training config over `vocab` ids: the embedding
    /// (V·D) plus, per layer, the model's largest projections — Mamba: in_proj and out_proj
    /// (3·E·D²); Transformer: the attention projections (at least 2·D²) and the MLP (2·D·F);
    /// S4 / SaShiMi: the output linear and the feed-forward (D² each at the outer width).
    pub fn params_lower_bound(&self, vocab: usize) -> f64 {
        let (d, l) = (self.d_model as f64, self.n_layer as f64);
        let per_layer = match self.model {
            ModelKind::Mamba => 3.0 * self.expand as f64 * d * d,
            ModelKind::Transformer => 2.0 * d * d + 2.0 * d * self.d_ff.max(self.d_model) as f64,
            _ => d * d,
        };
        vocab as f64 * d + l * per_layer
    }

    /// Refuses a training run whose estimated memory exceeds what is available
    /// ([`seqlab_tensor::limits::check_fits_in_memory`]). The estimate is a lower bound, so it never
    /// refuses a run that fits: f32 weights, gradients and the two AdamW moments (16 bytes per
    /// parameter, [`TrainConfig::params_lower_bound`]), plus the activations kept for the backward pass,
    /// at least the residual stream of every layer (batch · seq_len · D · layers · 4 bytes) and the
    /// logits (batch · seq_len · V · 4 bytes).
    pub fn check_fits(&self, vocab: usize) -> Result<(), String> {
        let tokens = self.batch_size as f64 * self.seq_len as f64;
        let params = self.params_lower_bound(vocab);
        let activations = tokens * (self.d_model as f64 * self.n_layer as f64 + vocab as f64) * 4.0;
        let bytes = 16.0 * params + activations;
        Ok(check_fits_in_memory(
            &format!(
                "training this config ({} parameters at least, batch {} × seq_len {})",
                crate::limits::human_count(params),
                self.batch_size,
                self.seq_len
            ),
            bytes,
        )?)
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), String> {
        self.check_sizes()?;
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
        if self.model == ModelKind::Transformer {
            if self.n_head == 0 || !self.d_model.is_multiple_of(self.n_head) {
                return Err(format!(
                    "`n_head` ({}) must be ≥ 1 and divide `d_model` ({})",
                    self.n_head, self.d_model
                ));
            }
            if !(self.d_model / self.n_head).is_multiple_of(2) {
                return Err(format!(
                    "the head width d_model / n_head = {} must be even (RoPE)",
                    self.d_model / self.n_head
                ));
            }
            if self.n_kv_head != 0 && !self.n_head.is_multiple_of(self.n_kv_head) {
                return Err(format!(
                    "`n_kv_head` ({}) must divide `n_head` ({})",
                    self.n_kv_head, self.n_head
                ));
            }
            if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
                return Err(format!("`rope_theta` must be > 0, got {}", self.rope_theta));
            }
        }
        if matches!(self.model, ModelKind::S4 | ModelKind::Sashimi)
            && !self.d_state.is_multiple_of(2)
        {
            return Err(format!("`d_state` ({}) must be even for S4", self.d_state));
        }
        if self.model == ModelKind::Sashimi {
            let tp: usize = self.pool.iter().product();
            if self.pool.contains(&0) || self.ff_expand == 0 || !self.seq_len.is_multiple_of(tp) {
                return Err(format!(
                    "SaShiMi: `pool` factors and `ff_expand` must be ≥ 1 and `seq_len` ({}) a \
                     multiple of the pooling product ({tp})",
                    self.seq_len
                ));
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

    /// The Transformer of this config for a `vocab`-sized vocabulary: hd = D/H, H_kv
    /// (`n_kv_head`, 0 = H), F (`d_ff`, 0 = auto), tied embeddings, ε = 1e−5, half RoPE layout.
    pub fn transformer_config(&self, vocab: usize) -> TransformerConfig {
        let mlp = match self.mlp {
            MlpName::Swiglu => MlpKind::SwiGlu,
            MlpName::Gelu => MlpKind::Gelu,
        };
        let d_ff = match (self.d_ff, mlp) {
            (0, MlpKind::SwiGlu) => (8 * self.d_model).div_ceil(3).div_ceil(8) * 8,
            (0, MlpKind::Gelu) => 4 * self.d_model,
            (f, _) => f,
        };
        let mut c = TransformerConfig::new(vocab, self.d_model, self.n_layer, self.n_head, d_ff);
        c.n_kv_head = if self.n_kv_head == 0 {
            self.n_head
        } else {
            self.n_kv_head
        };
        c.mlp = mlp;
        c.rope_theta = self.rope_theta;
        c.max_position_embeddings = self.seq_len;
        c
    }

    /// The S4 LM of this config (kernel length `seq_len`).
    pub fn s4_config(&self, vocab: usize) -> crate::s4lm::S4LmConfig {
        crate::s4lm::S4LmConfig::new(
            vocab,
            self.d_model,
            self.n_layer,
            self.d_state,
            self.ssm,
            self.seq_len,
        )
    }

    /// The SaShiMi of this config (kernel length `seq_len`).
    pub fn sashimi_config(&self, vocab: usize) -> crate::sashimi::SashimiConfig {
        let mut c = crate::sashimi::SashimiConfig::new(
            vocab,
            self.d_model,
            self.n_layer,
            self.d_state,
            self.ssm,
            self.seq_len,
        );
        c.pool = self.pool.clone();
        c.expand = self.expand;
        c.ff_expand = self.ff_expand;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_estimate_is_a_lower_bound_that_refuses_the_absurd() {
        let mut c = TrainConfig::default();
        assert!(c.check_fits(256).is_ok());
        c.d_model = 1 << 17;
        c.n_layer = 4096;
        let e = c.check_fits(256).unwrap_err();
        assert!(e.starts_with("training this config ("), "{e}");
        assert!(e.contains("would need about"), "{e}");
    }

    #[test]
    fn old_configs_stay_valid_and_default_to_mamba() {
        let c =
            TrainConfig::from_json_str(r#"{"d_model": 16, "n_layer": 1, "d_state": 4}"#).unwrap();
        assert_eq!(c.model, ModelKind::Mamba);
        let e = TrainConfig::from_json_str(r#"{"model": "gpt"}"#).unwrap_err();
        assert!(e.contains("gpt"), "{e}");
        let e = TrainConfig::from_json_str(r#"{"n_heads": 2}"#).unwrap_err();
        assert!(e.contains("n_heads"), "{e}");
    }

    #[test]
    fn transformer_keys_validate_and_derive_sizes() {
        let c = TrainConfig::from_json_str(
            r#"{"model": "transformer", "d_model": 48, "n_head": 6, "n_kv_head": 2,
                "mlp": "swiglu", "rope_theta": 500.0}"#,
        )
        .unwrap();
        let t = c.transformer_config(100);
        assert_eq!((t.head_dim, t.n_kv_head, t.d_ff), (8, 2, 128)); // ⌈8·48/3⌉ = 128
        assert_eq!(t.rope_theta, 500.0);
        let g = TrainConfig {
            mlp: MlpName::Gelu,
            ..c.clone()
        };
        assert_eq!(g.transformer_config(100).d_ff, 192);
        for (json, key) in [
            (
                r#"{"model": "transformer", "d_model": 48, "n_head": 5}"#,
                "n_head",
            ),
            (
                r#"{"model": "transformer", "d_model": 48, "n_head": 16}"#,
                "even",
            ),
            (
                r#"{"model": "transformer", "d_model": 48, "n_head": 6, "n_kv_head": 4}"#,
                "n_kv_head",
            ),
            (r#"{"model": "transformer", "mlp": "relu"}"#, "relu"),
        ] {
            let e = TrainConfig::from_json_str(json).unwrap_err();
            assert!(e.contains(key), "{json}: {e}");
        }
        // Mamba ignores the transformer keys' values.
        TrainConfig::from_json_str(r#"{"d_model": 48, "n_head": 5}"#).unwrap();
    }
}
