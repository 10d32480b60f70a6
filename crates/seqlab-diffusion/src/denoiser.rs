//! The denoiser interface: the bidirectional network of a masked diffusion model.

use crate::error::Result;
use candle_core::Tensor;

/// A bidirectional network x_t ↦ logits over the clean token x_0 at every position.
///
/// The vocabulary includes the absorbing [MASK] token ([`Denoiser::mask_id`]). Samplers and the
/// loss never use the raw logits directly: they go through [`crate::subs::subs_log_probs`]
/// (mask never predicted, unmasked tokens carried over).
pub trait Denoiser {
    /// Vocabulary size V, [MASK] included.
    fn vocab_size(&self) -> usize;

    /// The id of the absorbing [MASK] token (< [`Denoiser::vocab_size`]).
    fn mask_id(&self) -> u32;

    /// Raw logits (batch, len, V), f32, for `tokens` = `batch` rows of equal length
    /// (row-major). `t` holds each row's diffusion time in [0, 1]; a time-agnostic denoiser
    /// (MDLM's default) ignores it.
    fn logits(&self, tokens: &[u32], batch: usize, t: &[f64]) -> Result<Tensor>;
}
