//! The sampling flags that `seqlab generate`, `seqlab speculate` and `seqlab diffusion sample`
//! share: one definition, flattened into each command (`#[command(flatten)]`), so the three
//! spell and document them the same way.
//!
//! Defaults per command: `generate` and `speculate` decode greedily unless `--temperature`,
//! `--top-k` or `--top-p` is given (then the temperature defaults to 1); `diffusion sample`
//! reads only `--temperature` (EDLM's energy temperature, default 1) and `--seed`, and rejects
//! the token-sampler flags. Every command's seed defaults to 0.

use anyhow::bail;
use seqlab_tensor::{SamplerConfig, TensorError};

/// Token sampling: greedy, or temperature / top-k / top-p; and the seed of the random stream.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SamplingArgs {
    /// Greedy decoding (argmax; the default unless a sampling option is given).
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p"])]
    pub greedy: bool,
    /// Sampling temperature (> 0; default 1 once any sampling option is given). In `diffusion
    /// sample`: EDLM's energy temperature (default 1).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,
    /// Keep only the K most likely tokens (speculate: applied to both models).
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Nucleus sampling: keep the most likely tokens up to mass P, in (0, 1] (speculate: applied
    /// to both models).
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,
    /// Seed of the random stream (outputs are deterministic in it).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    /// Whether a token-sampling option (`--temperature`, `--top-k`, `--top-p`) was given.
    fn samples(&self) -> bool {
        self.temperature.is_some() || self.top_k.is_some() || self.top_p.is_some()
    }

    /// The token sampler these flags describe, checked (`SamplerConfig::validate`): greedy with
    /// `--greedy` or when no sampling option is given, else temperature (default 1), top-k and
    /// top-p. A rejected value is reported with its flag.
    pub fn sampler(&self) -> anyhow::Result<SamplerConfig> {
        let sampler = if self.greedy || !self.samples() {
            SamplerConfig::greedy()
        } else {
            SamplerConfig {
                temperature: self.temperature.unwrap_or(1.0),
                top_k: self.top_k,
                top_p: self.top_p,
                ..SamplerConfig::default()
            }
        };
        sampler.validate().map_err(|e| {
            let flag = match e {
                TensorError::InvalidTemperature { .. } => "--temperature",
                TensorError::InvalidTopP { .. } => "--top-p",
                TensorError::InvalidTopK => "--top-k",
                _ => "sampling options",
            };
            anyhow::Error::from(e).context(flag)
        })?;
        Ok(sampler)
    }

    /// For a command whose samplers take no token-sampler options (`diffusion sample`): fails
    /// on `--greedy`, `--top-k` or `--top-p`, and returns `--temperature` (default 1).
    pub fn temperature_only(&self, command: &str) -> anyhow::Result<f64> {
        for (given, flag) in [
            (self.greedy, "--greedy"),
            (self.top_k.is_some(), "--top-k"),
            (self.top_p.is_some(), "--top-p"),
        ] {
            if given {
                bail!("{flag} does not apply to `{command}`: its samplers draw from the model's own distributions");
            }
        }
        Ok(self.temperature.unwrap_or(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_unless_a_sampling_option_is_given() {
        let none = SamplingArgs::default();
        assert!(none.sampler().unwrap().greedy);
        let hot = SamplingArgs {
            top_k: Some(5),
            ..SamplingArgs::default()
        };
        let s = hot.sampler().unwrap();
        assert!(!s.greedy);
        assert_eq!((s.temperature, s.top_k), (1.0, Some(5)));
    }

    #[test]
    fn a_bad_value_names_its_flag() {
        let bad = SamplingArgs {
            top_p: Some(1.5),
            ..SamplingArgs::default()
        };
        let msg = format!("{:#}", bad.sampler().unwrap_err());
        assert!(msg.starts_with("--top-p: "), "{msg}");
        let cold = SamplingArgs {
            temperature: Some(0.0),
            ..SamplingArgs::default()
        };
        let msg = format!("{:#}", cold.sampler().unwrap_err());
        assert!(msg.starts_with("--temperature: "), "{msg}");
    }

    #[test]
    fn temperature_only_rejects_token_sampler_flags() {
        let k = SamplingArgs {
            top_k: Some(3),
            ..SamplingArgs::default()
        };
        assert!(k
            .temperature_only("x")
            .unwrap_err()
            .to_string()
            .contains("--top-k"));
        let t = SamplingArgs {
            temperature: Some(0.5),
            ..SamplingArgs::default()
        };
        assert_eq!(t.temperature_only("x").unwrap(), 0.5);
        assert_eq!(SamplingArgs::default().temperature_only("x").unwrap(), 1.0);
    }
}
