//! What the model configs' plausibility checks share. Each config says which of its fields
//! counts what ([`seqlab_tensor::limits::Dim`]) in a `check_sizes` method beside its parser
//! (`MambaConfig`, `TransformerConfig`, `S4LmConfig`, `SashimiConfig`, `TrainConfig`), run when
//! the config is read, before a tensor list or a parameter is allocated; the bounds themselves,
//! and why each is what it is, are in [`seqlab_tensor::limits`].
//!
//! Two checks go further than fixed bounds: [`check_weights_cover`] compares the parameters a
//! config implies with the bytes of the weights file before a model that initialises its
//! parameters first (S4 LM, SaShiMi) allocates them, and `TrainConfig::check_fits` estimates the
//! bytes a training run will hold (weights, gradients, AdamW moments, activations) against the
//! memory available.

use seqlab_tensor::limits::{check_plausible, human_bytes, Dim};
use std::path::Path;

/// Each pooling factor, and their product (the length every sequence is padded to a multiple
/// of; computed saturating, so an overflow is refused rather than wrapped).
pub(crate) fn check_pool(pool: &[usize]) -> Result<(), String> {
    for &p in pool {
        check_plausible(&[("pool", p, Dim::Factor)])?;
    }
    let product = pool.iter().fold(1usize, |a, &p| a.saturating_mul(p));
    Ok(check_plausible(&[(
        "the product of `pool`",
        product,
        Dim::Sequence,
    )])?)
}

/// d · e^levels, saturating (a huge value is then refused as implausible).
pub(crate) fn innermost_width(d: usize, e: usize, levels: usize) -> usize {
    (0..levels).fold(d, |w, _| w.saturating_mul(e))
}

/// `1.2e9`-style count for messages.
pub(crate) fn human_count(x: f64) -> String {
    if x < 1e4 {
        format!("{x:.0}")
    } else {
        format!("{x:.2e}")
    }
}

/// Refuses a weights file too small for the `params` parameters a config implies (each
/// parameter takes at least one byte in any dtype a loader reads), before a model that
/// initialises its parameters first allocates them. The message is about the config (the
/// caller names its file).
pub fn check_weights_cover(params: f64, weights: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::metadata(weights) else {
        // A missing file is the loader's own error, with its own message.
        return Ok(());
    };
    if params > meta.len() as f64 {
        return Err(format!(
            "it implies at least {} parameters, but {} holds only {}: the config does not \
             describe these weights",
            human_count(params),
            weights.display(),
            human_bytes(meta.len() as f64)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sashimi_innermost_width_saturates() {
        assert_eq!(innermost_width(64, 2, 2), 256);
        assert_eq!(innermost_width(1 << 20, 1 << 10, 8), usize::MAX);
    }
}
