//! Autoregressive generation with any [`CausalLm`] (Mamba, Transformer, GGUF Llama, S4 LM,
//! SaShiMi, or an [`crate::AnyLm`] holding one): the prompt goes through the model's parallel
//! mode once (prefill: the scan of an SSM, attention filling a KV cache), which yields the
//! logits of the first new token and the state; every further token is one recurrent
//! [`CausalLm::step`] (Mamba's inference mode, Gu & Dao 2023 §3.3).
//!
//! Tokens are chosen by the shared f64 [`Sampler`] (greedy argmax, or temperature → top-k →
//! top-p → categorical draw, seeded). Generation stops after `max_new_tokens`, or right after a
//! stop token is produced (it is included in the output).

use crate::causal_lm::CausalLm;
use crate::error::{LmError, Result};
use seqlab_tensor::{mask_vocab, Sampler, SamplerConfig};
use std::time::Instant;

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Most tokens to produce.
    pub max_new_tokens: usize,
    /// Greedy or sampling parameters.
    pub sampler: SamplerConfig,
    /// Seed of the sampler's random stream.
    pub seed: u64,
    /// Generation ends after producing any of these ids.
    pub stop_ids: Vec<u32>,
    /// When set, only ids `< limit` can be produced (the model's padded vocabulary rows beyond
    /// the tokenizer's vocabulary are masked out).
    pub vocab_limit: Option<usize>,
}

impl Default for GenerateConfig {
    /// 32 greedy tokens, seed 0, no stop ids.
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            sampler: SamplerConfig::greedy(),
            seed: 0,
            stop_ids: Vec::new(),
            vocab_limit: None,
        }
    }
}

impl GenerateConfig {
    /// `max_new_tokens` greedy tokens, seed 0, no stop ids, no vocabulary limit.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            ..Self::default()
        }
    }
}

/// Why generation (or speculative decoding, which reuses it) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `max_new_tokens` were produced.
    MaxTokens,
    /// A stop id was produced.
    StopToken,
}

/// The generated ids and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOutput {
    /// New ids (the prompt excluded; a final stop id included).
    pub generated_ids: Vec<u32>,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Wall time of the prompt prefill, milliseconds.
    pub prefill_ms: f64,
    /// Recurrent steps per second (tokens after the first, which comes from the prefill);
    /// 0 when there was no step.
    pub decode_tokens_per_s: f64,
}

/// Generates up to `cfg.max_new_tokens` ids after `prompt` (batch 1), calling `on_token` with
/// each new id as soon as it is chosen. The decode loop may run on a dedicated thread
/// ([`CausalLm::in_decode_context`]), hence `Send`.
pub fn generate<M: CausalLm>(
    model: &M,
    prompt: &[u32],
    cfg: &GenerateConfig,
    mut on_token: impl FnMut(u32) -> Result<()> + Send,
) -> Result<GenerateOutput> {
    if prompt.is_empty() {
        return Err(LmError::Shape(
            "the prompt is empty: give at least one token".into(),
        ));
    }
    let mut sampler = Sampler::new(cfg.sampler.clone(), cfg.seed)?;
    let mut history: Vec<u32> = prompt.to_vec();
    let mut generated = Vec::with_capacity(cfg.max_new_tokens.min(1 << 16));
    if cfg.max_new_tokens == 0 {
        return Ok(GenerateOutput {
            generated_ids: generated,
            stop_reason: StopReason::MaxTokens,
            prefill_ms: 0.0,
            decode_tokens_per_s: 0.0,
        });
    }

    let t0 = Instant::now();
    let (mut logits, mut state) = model.prefill(prompt)?;
    let prefill_ms = t0.elapsed().as_secs_f64() * 1e3;

    let t1 = Instant::now();
    let mut steps = 0usize;
    let mut stop_reason = StopReason::MaxTokens;
    let mut decode = || -> Result<()> {
        loop {
            mask_vocab(&mut logits, cfg.vocab_limit);
            let id = sampler.sample(&logits, &history)?;
            generated.push(id);
            history.push(id);
            on_token(id)?;
            if cfg.stop_ids.contains(&id) {
                stop_reason = StopReason::StopToken;
                break;
            }
            if generated.len() >= cfg.max_new_tokens {
                break;
            }
            logits = model.step(&mut state, id)?;
            steps += 1;
        }
        Ok(())
    };
    model.in_decode_context(&mut decode)?;
    let decode_s = t1.elapsed().as_secs_f64();
    Ok(GenerateOutput {
        generated_ids: generated,
        stop_reason,
        prefill_ms,
        decode_tokens_per_s: if steps > 0 && decode_s > 0.0 {
            steps as f64 / decode_s
        } else {
            0.0
        },
    })
}
