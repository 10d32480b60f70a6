//! Noise schedules of the absorbing-state (masking) process (MDLM, Sahoo et al. 2024, §3;
//! kuleshov-group/mdlm `noise_schedule.py`).
//!
//! Each token of x_0 is independently [MASK] at time t with probability 1 − α_t, where α is
//! decreasing from α_0 ≈ 1. Written with the total noise σ(t) = −ln α_t:
//!
//! | schedule | α_t | α′_t |
//! |---|---|---|
//! | log-linear (default) | 1 − (1 − ε) t | −(1 − ε) |
//! | linear (in σ) | exp(−(σ_min + t (σ_max − σ_min))) | −(σ_max − σ_min) α_t |
//! | geometric (in σ) | exp(−σ_min^{1−t} σ_max^t) | −σ(t) ln(σ_max/σ_min) α_t |
//! | cosine | ε + (1 − ε) cos(π t / 2) | −(1 − ε) (π/2) sin(π t / 2) |
//!
//! The continuous-time NELBO weight is w(t) = α′_t / (1 − α_t) (≤ 0; MDLM eq. 10 uses −w). For
//! the log-linear schedule it is **exactly** −1/t for every ε, since 1 − α_t = (1 − ε) t: ε only
//! sets α_1 = ε (a token survives to t = 1 with probability ε) and does not enter the weight.

use crate::error::{DiffusionError, Result};
use serde::{Deserialize, Serialize};
use std::f64::consts::FRAC_PI_2;

/// A masking schedule α(t), t ∈ [0, 1] (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NoiseSchedule {
    /// α_t = 1 − (1 − ε) t (MDLM's default, ε = 1e−3).
    LogLinear {
        /// ε: α_1 = ε.
        eps: f64,
    },
    /// σ(t) = σ_min + t (σ_max − σ_min), α_t = e^{−σ(t)} (MDLM `LinearNoise`, 0 and 10).
    Linear {
        /// σ(0).
        sigma_min: f64,
        /// σ(1).
        sigma_max: f64,
    },
    /// σ(t) = σ_min^{1−t} σ_max^t, α_t = e^{−σ(t)} (MDLM `GeometricNoise`, 1e−3 and 1).
    Geometric {
        /// σ(0) > 0.
        sigma_min: f64,
        /// σ(1) > σ_min.
        sigma_max: f64,
    },
    /// α_t = ε + (1 − ε) cos(π t / 2) (MDLM `CosineNoise`, ε = 1e−3).
    Cosine {
        /// ε: α_1 = ε.
        eps: f64,
    },
}

impl Default for NoiseSchedule {
    fn default() -> Self {
        NoiseSchedule::LogLinear { eps: 1e-3 }
    }
}

/// The schedule names [`NoiseSchedule::from_name`] accepts.
pub const SCHEDULE_NAMES: [&str; 4] = ["loglinear", "linear", "geometric", "cosine"];

impl NoiseSchedule {
    /// The schedule `name` (one of [`SCHEDULE_NAMES`]) with MDLM's default parameters.
    pub fn from_name(name: &str) -> Result<Self> {
        let s = match name {
            "loglinear" | "log_linear" | "log-linear" => NoiseSchedule::LogLinear { eps: 1e-3 },
            "linear" => NoiseSchedule::Linear {
                sigma_min: 0.0,
                sigma_max: 10.0,
            },
            "geometric" => NoiseSchedule::Geometric {
                sigma_min: 1e-3,
                sigma_max: 1.0,
            },
            "cosine" => NoiseSchedule::Cosine { eps: 1e-3 },
            other => {
                return Err(DiffusionError::Config(format!(
                    "unknown noise schedule `{other}` (expected one of {})",
                    SCHEDULE_NAMES.join(", ")
                )))
            }
        };
        Ok(s)
    }

    /// The schedule's name.
    pub fn name(&self) -> &'static str {
        match self {
            NoiseSchedule::LogLinear { .. } => "loglinear",
            NoiseSchedule::Linear { .. } => "linear",
            NoiseSchedule::Geometric { .. } => "geometric",
            NoiseSchedule::Cosine { .. } => "cosine",
        }
    }

    /// Errors unless the parameters give a decreasing α with α_0 ≤ 1 and α_1 ≥ 0.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            NoiseSchedule::LogLinear { eps } | NoiseSchedule::Cosine { eps } => {
                eps.is_finite() && (0.0..1.0).contains(&eps)
            }
            NoiseSchedule::Linear {
                sigma_min,
                sigma_max,
            } => {
                sigma_min.is_finite()
                    && sigma_max.is_finite()
                    && 0.0 <= sigma_min
                    && sigma_min < sigma_max
            }
            NoiseSchedule::Geometric {
                sigma_min,
                sigma_max,
            } => {
                sigma_min.is_finite()
                    && sigma_max.is_finite()
                    && 0.0 < sigma_min
                    && sigma_min < sigma_max
            }
        };
        if ok {
            Ok(())
        } else {
            Err(DiffusionError::Config(format!(
                "bad {} schedule parameters {self:?} (need 0 ≤ ε < 1, or 0 ≤ σ_min < σ_max, σ_min > 0 for geometric)",
                self.name()
            )))
        }
    }

    /// Total noise σ(t) = −ln α_t.
    pub fn sigma(&self, t: f64) -> f64 {
        match *self {
            NoiseSchedule::LogLinear { eps } => -(-(1.0 - eps) * t).ln_1p(),
            NoiseSchedule::Linear {
                sigma_min,
                sigma_max,
            } => sigma_min + t * (sigma_max - sigma_min),
            NoiseSchedule::Geometric {
                sigma_min,
                sigma_max,
            } => sigma_min.powf(1.0 - t) * sigma_max.powf(t),
            NoiseSchedule::Cosine { .. } => -self.alpha(t).ln(),
        }
    }

    /// α_t: the probability that a token is still unmasked at time t.
    pub fn alpha(&self, t: f64) -> f64 {
        match *self {
            NoiseSchedule::LogLinear { eps } => 1.0 - (1.0 - eps) * t,
            NoiseSchedule::Cosine { eps } => eps + (1.0 - eps) * (FRAC_PI_2 * t).cos(),
            _ => (-self.sigma(t)).exp(),
        }
    }

    /// 1 − α_t, the masking probability, computed without cancellation (expm1 for σ forms).
    pub fn mask_prob(&self, t: f64) -> f64 {
        match *self {
            NoiseSchedule::LogLinear { eps } => (1.0 - eps) * t,
            NoiseSchedule::Cosine { eps } => {
                // 1 − cos x = 2 sin²(x/2)
                let s = (FRAC_PI_2 * t / 2.0).sin();
                (1.0 - eps) * 2.0 * s * s
            }
            _ => -(-self.sigma(t)).exp_m1(),
        }
    }

    /// dα/dt (≤ 0).
    pub fn alpha_prime(&self, t: f64) -> f64 {
        match *self {
            NoiseSchedule::LogLinear { eps } => -(1.0 - eps),
            NoiseSchedule::Linear {
                sigma_min,
                sigma_max,
            } => -(sigma_max - sigma_min) * self.alpha(t),
            NoiseSchedule::Geometric {
                sigma_min,
                sigma_max,
            } => -self.sigma(t) * (sigma_max / sigma_min).ln() * self.alpha(t),
            NoiseSchedule::Cosine { eps } => -(1.0 - eps) * FRAC_PI_2 * (FRAC_PI_2 * t).sin(),
        }
    }

    /// The NELBO weight w(t) = α′_t / (1 − α_t) (≤ 0; = −1/t exactly for log-linear). Infinite
    /// at t = 0 where α_0 = 1.
    pub fn weight(&self, t: f64) -> f64 {
        match *self {
            NoiseSchedule::LogLinear { .. } => -1.0 / t,
            _ => self.alpha_prime(t) / self.mask_prob(t),
        }
    }

    /// The time t at which α_t = `alpha` (the inverse of α on [0, 1], clamped there): what a
    /// first-hitting sampler needs to turn a drawn α into a time.
    pub fn time_at_alpha(&self, alpha: f64) -> f64 {
        let t = match *self {
            NoiseSchedule::LogLinear { eps } => (1.0 - alpha) / (1.0 - eps),
            NoiseSchedule::Linear {
                sigma_min,
                sigma_max,
            } => (-alpha.ln() - sigma_min) / (sigma_max - sigma_min),
            NoiseSchedule::Geometric {
                sigma_min,
                sigma_max,
            } => (-alpha.ln() / sigma_min).ln() / (sigma_max / sigma_min).ln(),
            NoiseSchedule::Cosine { eps } => {
                ((alpha - eps) / (1.0 - eps)).clamp(-1.0, 1.0).acos() / FRAC_PI_2
            }
        };
        if t.is_nan() {
            1.0
        } else {
            t.clamp(0.0, 1.0)
        }
    }
}
