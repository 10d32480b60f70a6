//! Every model config's plausibility check in one place: which field of which config counts
//! what ([`seqlab_tensor::limits::Dim`]), checked when the config is read, before a tensor list
//! or a parameter is allocated. The bounds themselves, and why each is what it is, are in
//! [`seqlab_tensor::limits`].
//!
//! Two checks go further than fixed bounds: [`check_weights_cover`] compares the parameters a
//! config implies with the bytes of the weights file before a model that initialises its
//! parameters first (S4 LM, SaShiMi) allocates them, and [`check_train_fits`] estimates the
//! bytes a training run will hold (weights, gradients, AdamW moments, activations) against the
//! memory available.

use crate::mamba::{MambaConfig, MambaLayout};
use crate::s4lm::S4LmConfig;
use crate::sashimi::SashimiConfig;
use crate::train::{ModelKind, TrainConfig};
use crate::transformer::TransformerConfig;
use seqlab_tensor::limits::{check_fits_in_memory, check_plausible, human_bytes, Dim};
use std::path::Path;

/// A Mamba `config.json` (keys named as the file's layout spells them).
pub fn check_mamba(c: &MambaConfig) -> Result<(), String> {
    let hf = c.layout == MambaLayout::Hf;
    let k = |hf_key: &'static str, original: &'static str| if hf { hf_key } else { original };
    Ok(check_plausible(&[
        ("vocab_size", c.vocab_size, Dim::Vocab),
        (k("hidden_size", "d_model"), c.d_model, Dim::Width),
        (k("num_hidden_layers", "n_layer"), c.n_layer, Dim::Layers),
        (k("state_size", "ssm_cfg.d_state"), c.d_state, Dim::State),
        (k("conv_kernel", "ssm_cfg.d_conv"), c.d_conv, Dim::Kernel),
        (
            k("intermediate_size", "ssm_cfg.expand × d_model"),
            c.d_inner,
            Dim::Width,
        ),
        (
            k("time_step_rank", "ssm_cfg.dt_rank"),
            c.dt_rank,
            Dim::Width,
        ),
    ])?)
}

/// A Transformer / Llama `config.json` (also the GGUF metadata, mapped to the same config).
pub fn check_transformer(c: &TransformerConfig) -> Result<(), String> {
    Ok(check_plausible(&[
        ("vocab_size", c.vocab_size, Dim::Vocab),
        ("hidden_size", c.d_model, Dim::Width),
        ("num_hidden_layers", c.n_layer, Dim::Layers),
        ("num_attention_heads", c.n_head, Dim::Heads),
        ("num_key_value_heads", c.n_kv_head, Dim::Heads),
        ("head_dim", c.head_dim, Dim::Width),
        ("intermediate_size", c.d_ff, Dim::Width),
        (
            "max_position_embeddings",
            c.max_position_embeddings,
            Dim::Sequence,
        ),
    ])?)
}

/// An S4 LM `config.json`.
pub fn check_s4(c: &S4LmConfig) -> Result<(), String> {
    Ok(check_plausible(&[
        ("vocab_size", c.vocab_size, Dim::Vocab),
        ("d_model", c.d_model, Dim::Width),
        ("n_layer", c.n_layer, Dim::Layers),
        ("d_state", c.d_state, Dim::State),
        ("l_max", c.l_max, Dim::Sequence),
    ])?)
}

/// A SaShiMi `config.json`; the widest stage (d_model · expand^levels) must be plausible too.
pub fn check_sashimi(c: &SashimiConfig) -> Result<(), String> {
    check_plausible(&[
        ("vocab_size", c.vocab_size, Dim::Vocab),
        ("d_model", c.d_model, Dim::Width),
        ("n_layer", c.n_layer, Dim::Layers),
        ("d_state", c.d_state, Dim::State),
        ("expand", c.expand, Dim::Factor),
        ("ff_expand", c.ff_expand, Dim::Factor),
        ("l_max", c.l_max, Dim::Sequence),
        ("number of pooling levels", c.pool.len(), Dim::Layers),
    ])?;
    check_pool(&c.pool)?;
    check_plausible(&[(
        "d_model · expand^levels (the innermost width)",
        innermost_width(c.d_model, c.expand, c.pool.len()),
        Dim::Width,
    )])?;
    Ok(())
}

/// Each pooling factor, and their product (the length every sequence is padded to a multiple
/// of; computed saturating, so an overflow is refused rather than wrapped).
fn check_pool(pool: &[usize]) -> Result<(), String> {
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
fn innermost_width(d: usize, e: usize, levels: usize) -> usize {
    (0..levels).fold(d, |w, _| w.saturating_mul(e))
}

/// A training config (`seqlab train --config`, `audio train`, and the LM part of a diffusion
/// config): model sizes and the batch.
pub fn check_train(c: &TrainConfig) -> Result<(), String> {
    check_plausible(&[
        ("d_model", c.d_model, Dim::Width),
        ("n_layer", c.n_layer, Dim::Layers),
        ("d_state", c.d_state, Dim::State),
        ("d_conv", c.d_conv, Dim::Kernel),
        ("expand", c.expand, Dim::Factor),
        ("n_head", c.n_head, Dim::Heads),
        ("n_kv_head", c.n_kv_head, Dim::Heads),
        ("d_ff", c.d_ff, Dim::Width),
        ("batch_size", c.batch_size, Dim::Batch),
        ("seq_len", c.seq_len, Dim::Sequence),
        ("eval_batches", c.eval_batches, Dim::Batch),
        ("ff_expand", c.ff_expand, Dim::Factor),
        ("number of pooling levels", c.pool.len(), Dim::Layers),
    ])?;
    check_pool(&c.pool)?;
    check_plausible(&[(
        "expand · d_model",
        c.expand.saturating_mul(c.d_model),
        Dim::Width,
    )])?;
    Ok(())
}

/// A lower bound on the parameters of a training config over `vocab` ids: the embedding
/// (V·D) plus, per layer, the model's largest projections — Mamba: in_proj and out_proj
/// (3·E·D²); Transformer: the attention projections (at least 2·D²) and the MLP (2·D·F);
/// S4 / SaShiMi: the output linear and the feed-forward (D² each at the outer width).
pub fn train_params_lower_bound(c: &TrainConfig, vocab: usize) -> f64 {
    let (d, l) = (c.d_model as f64, c.n_layer as f64);
    let per_layer = match c.model {
        ModelKind::Mamba => 3.0 * c.expand as f64 * d * d,
        ModelKind::Transformer => 2.0 * d * d + 2.0 * d * c.d_ff.max(c.d_model) as f64,
        _ => d * d,
    };
    vocab as f64 * d + l * per_layer
}

/// Refuses a training run whose estimated memory exceeds what is available
/// ([`seqlab_tensor::limits::check_fits_in_memory`]). The estimate is a lower bound, so it never
/// refuses a run that fits: f32 weights, gradients and the two AdamW moments (16 bytes per
/// parameter, [`train_params_lower_bound`]), plus the activations kept for the backward pass,
/// at least the residual stream of every layer (batch · seq_len · D · layers · 4 bytes) and the
/// logits (batch · seq_len · V · 4 bytes).
pub fn check_train_fits(c: &TrainConfig, vocab: usize) -> Result<(), String> {
    let tokens = c.batch_size as f64 * c.seq_len as f64;
    let params = train_params_lower_bound(c, vocab);
    let activations = tokens * (c.d_model as f64 * c.n_layer as f64 + vocab as f64) * 4.0;
    let bytes = 16.0 * params + activations;
    Ok(check_fits_in_memory(
        &format!(
            "training this config ({} parameters at least, batch {} × seq_len {})",
            human_count(params),
            c.batch_size,
            c.seq_len
        ),
        bytes,
    )?)
}

/// `1.2e9`-style count for messages.
fn human_count(x: f64) -> String {
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

/// A lower bound on an S4 LM's parameters: the embedding and one D×D output linear per layer.
pub fn s4_params_lower_bound(c: &S4LmConfig) -> f64 {
    let d = c.d_model as f64;
    c.vocab_size as f64 * d + c.n_layer as f64 * d * d
}

/// A lower bound on a SaShiMi's parameters: the embedding and, per layer of the outer stage,
/// the feed-forward's two D×(ff·D) matrices.
pub fn sashimi_params_lower_bound(c: &SashimiConfig) -> f64 {
    let d = c.d_model as f64;
    c.vocab_size as f64 * d + c.n_layer as f64 * 2.0 * c.ff_expand as f64 * d * d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_billion_layers_is_refused_by_its_key() {
        let e = MambaConfig::from_json_str(
            r#"{"hidden_size": 8, "num_hidden_layers": 1000000000, "vocab_size": 8}"#,
        )
        .unwrap_err();
        assert!(e.contains("`num_hidden_layers` = 1000000000"), "{e}");
        let e = MambaConfig::from_json_str(
            r#"{"d_model": 8, "n_layer": 2, "vocab_size": 8, "ssm_cfg": {"d_state": 100000000}}"#,
        )
        .unwrap_err();
        assert!(e.contains("`ssm_cfg.d_state` = 100000000"), "{e}");
        // An expand that would overflow d_inner is refused, not wrapped.
        let e = MambaConfig::from_json_str(
            r#"{"hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 8, "expand": 9223372036854775807}"#,
        )
        .unwrap_err();
        assert!(e.contains("intermediate_size"), "{e}");
    }

    #[test]
    fn sashimi_innermost_width_saturates() {
        assert_eq!(innermost_width(64, 2, 2), 256);
        assert_eq!(innermost_width(1 << 20, 1 << 10, 8), usize::MAX);
    }

    #[test]
    fn training_estimate_is_a_lower_bound_that_refuses_the_absurd() {
        let mut c = TrainConfig::default();
        assert!(check_train_fits(&c, 256).is_ok());
        c.d_model = 1 << 17;
        c.n_layer = 4096;
        let e = check_train_fits(&c, 256).unwrap_err();
        assert!(e.starts_with("training this config ("), "{e}");
        assert!(e.contains("would need about"), "{e}");
    }
}
