//! Masked discrete diffusion language models (MDLM; docs/diffusion.md).
//!
//! The seam between models and samplers is [`Denoiser`]: a bidirectional network that maps a
//! partly masked sequence x_t to logits over the clean token at every position. [`subs`] turns
//! those logits into the SUBS-parameterised x_θ(x_t, t) every sampler and the loss use.
//!
//! Model side:
//! - [`schedule`]: masking schedules α_t (log-linear, linear, geometric, cosine) and the NELBO
//!   weight α′/(1 − α);
//! - [`loss`]: the continuous-time NELBO with antithetic t;
//! - [`backbone`]: trainable bidirectional Transformer and Mamba denoisers, save / load
//!   ([`load_denoiser`]);
//! - [`train`]: `seqlab diffusion train`'s loop; [`nelbo`]: the validation NELBO bound.
//!
//! Sampler side:
//! - [`sampler`]: the ancestral sampler with the no-change cache, the first-hitting sampler
//!   (per-row clocks), semi-autoregressive blocks, infilling templates; f64 or the reference's
//!   f32 Gumbel draws; [`sampler::edlm`]: EDLM importance sampling with an AR energy (any
//!   `CausalLm`) or the NCE [`energy_head`]; [`sampler::dispatch`]: one [`SamplerSpec`] and
//!   [`run_sampler`] for all of them (what `seqlab diffusion sample` runs).
//!
//! Shared by both sides: [`ar_score`], per-token log p_AR of a sequence under an AR model
//! (EDLM's AR energy and gen-PPL).
//!
//! Evaluation side (imports the sampler side, never the other way round):
//! - [`gen_eval`]: gen-PPL under an AR model, unigram entropy, speed, the gen-PPL plot.

pub mod ar_score;
pub mod backbone;
pub mod denoiser;
pub mod energy_head;
pub mod error;
pub mod gen_eval;
pub mod loss;
pub mod nelbo;
pub mod sampler;
pub mod schedule;
pub mod subs;
pub mod train;

pub use backbone::{
    load_denoiser, AnyDenoiser, BidirMerge, DiffusionConfig, MambaDenoiser, TransformerDenoiser,
};
pub use denoiser::Denoiser;
pub use error::{DiffusionError, Result};
pub use nelbo::{nelbo_bound, NelboOptions, NelboReport};
pub use sampler::dispatch::{run_sampler, SamplerSpec};
pub use sampler::edlm;
pub use schedule::NoiseSchedule;
