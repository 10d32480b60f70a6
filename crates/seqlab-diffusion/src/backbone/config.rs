//! The diffusion model / training configuration: every key of `seqlab train`'s
//! [`TrainConfig`] (model sizes, optimiser, schedule of the learning rate, checkpoints; `model`
//! is the backbone, `"transformer"` or `"mamba"`) plus the diffusion keys:
//!
//! - `schedule`: `"loglinear"` (default) | `"linear"` | `"geometric"` | `"cosine"`, or an object
//!   such as `{"kind": "log_linear", "eps": 0.001}` ([`NoiseSchedule`]);
//! - `t_eps`: the smallest training time (antithetic t ∈ [t_eps, 1), default 1e−3);
//! - `bidir`: bidirectional Mamba merge, `"sum"` (default) or `"concat"` (then a linear
//!   2D → D projection per block);
//! - `share_weights`: the reversed Mamba scan reuses the forward scan's weights (default false);
//! - `time_conditioning`: add a learned embedding of t to the input (default false:
//!   time-agnostic, MDLM's default).

use crate::error::{DiffusionError, Result};
use crate::schedule::NoiseSchedule;
use seqlab_lm::train::ModelKind;
use seqlab_lm::TrainConfig;
use serde::{Deserialize, Serialize};

/// How a bidirectional Mamba block merges its forward and reversed scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BidirMerge {
    /// h ← h + y_fwd + flip(y_rev).
    #[default]
    Sum,
    /// h ← h + W [y_fwd; flip(y_rev)], W ∈ R^{D×2D}.
    Concat,
}

/// The diffusion-only keys (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffusionKeys {
    /// Masking schedule.
    pub schedule: NoiseSchedule,
    /// Smallest training time.
    pub t_eps: f64,
    /// Bidirectional Mamba merge.
    pub bidir: BidirMerge,
    /// Bidirectional Mamba: one set of weights for both directions.
    pub share_weights: bool,
    /// Add an embedding of t to the input.
    pub time_conditioning: bool,
}

impl Default for DiffusionKeys {
    fn default() -> Self {
        Self {
            schedule: NoiseSchedule::default(),
            t_eps: 1e-3,
            bidir: BidirMerge::Sum,
            share_weights: false,
            time_conditioning: false,
        }
    }
}

/// A masked-diffusion run's configuration: the shared LM training keys and the diffusion keys.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffusionConfig {
    /// Model sizes and training hyper-parameters (`model`: the backbone).
    pub lm: TrainConfig,
    /// Diffusion keys.
    pub diffusion: DiffusionKeys,
}

const DIFFUSION_KEYS: [&str; 5] = [
    "schedule",
    "t_eps",
    "bidir",
    "share_weights",
    "time_conditioning",
];

impl Default for DiffusionConfig {
    fn default() -> Self {
        Self {
            lm: TrainConfig {
                model: ModelKind::Transformer,
                ..TrainConfig::default()
            },
            diffusion: DiffusionKeys::default(),
        }
    }
}

impl DiffusionConfig {
    /// Parses a JSON object holding both key sets (model defaults to the transformer); the
    /// error names the bad key or value.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| DiffusionError::Config(format!("config: {e}")))?;
        Self::from_value(v)
    }

    /// [`Self::from_json_str`] from a parsed JSON value.
    pub fn from_value(v: serde_json::Value) -> Result<Self> {
        let serde_json::Value::Object(mut all) = v else {
            return Err(DiffusionError::Config(
                "config: expected a JSON object".into(),
            ));
        };
        let mut diff = serde_json::Map::new();
        for k in DIFFUSION_KEYS {
            if let Some(x) = all.remove(k) {
                diff.insert(k.to_string(), x);
            }
        }
        if let Some(serde_json::Value::String(name)) = diff.get("schedule") {
            let s = NoiseSchedule::from_name(name)?;
            diff.insert(
                "schedule".into(),
                serde_json::to_value(s).expect("a schedule serialises"),
            );
        }
        if !all.contains_key("model") {
            all.insert("model".into(), "transformer".into());
        }
        let lm: TrainConfig = serde_json::from_value(serde_json::Value::Object(all))
            .map_err(|e| DiffusionError::Config(format!("config: {e}")))?;
        let diffusion: DiffusionKeys = serde_json::from_value(serde_json::Value::Object(diff))
            .map_err(|e| DiffusionError::Config(format!("config: {e}")))?;
        let c = Self { lm, diffusion };
        c.validate()?;
        Ok(c)
    }

    /// One JSON object with every key (what [`Self::from_json_str`] reads back).
    pub fn to_value(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.lm).expect("a config serialises");
        let d = serde_json::to_value(&self.diffusion).expect("a config serialises");
        if let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (&mut v, d) {
            a.extend(b);
        }
        v
    }

    /// Checks the values: the LM keys as `seqlab train` does, the backbone is a transformer or
    /// a Mamba, the schedule's parameters, 0 ≤ t_eps < 1.
    pub fn validate(&self) -> Result<()> {
        self.lm
            .validate()
            .map_err(|e| DiffusionError::Config(format!("config: {e}")))?;
        if !matches!(self.lm.model, ModelKind::Transformer | ModelKind::Mamba) {
            return Err(DiffusionError::Config(format!(
                "config: the diffusion backbone must be \"transformer\" or \"mamba\", got \"{}\"",
                self.lm.model.name()
            )));
        }
        self.diffusion.schedule.validate()?;
        let e = self.diffusion.t_eps;
        if !(e.is_finite() && (0.0..1.0).contains(&e)) {
            return Err(DiffusionError::Config(format!(
                "config: `t_eps` must be in [0, 1), got {e}"
            )));
        }
        Ok(())
    }

    /// Whether a model built from `other` has exactly the parameters one built from `self` has
    /// (what a resumed checkpoint must satisfy).
    pub fn same_model(&self, other: &Self) -> bool {
        let a = &self.lm;
        let b = &other.lm;
        let v = 16; // any vocabulary: the sizes are compared, the vocab separately
        let net = match a.model {
            ModelKind::Transformer => a.transformer_config(v) == b.transformer_config(v),
            _ => {
                (a.d_model, a.n_layer, a.d_state, a.d_conv, a.expand)
                    == (b.d_model, b.n_layer, b.d_state, b.d_conv, b.expand)
            }
        };
        a.model == b.model
            && net
            && self.diffusion.bidir == other.diffusion.bidir
            && self.diffusion.share_weights == other.diffusion.share_weights
            && self.diffusion.time_conditioning == other.diffusion.time_conditioning
    }
}
