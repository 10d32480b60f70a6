//! The latency experiment: decode every prompt with a policy and with the big model alone *in
//! the same run* (interleaved prompt by prompt, after an untimed warm-up), and report per prompt
//! and overall: wall time, time to first token, tokens/s, speedup, acceptance rate, fallbacks,
//! rollbacks, model calls, agreement with big-only greedy output, and the perplexity of the
//! output under the big model.
//!
//! **Speedup** is `tokens/s(policy) / tokens/s(big-only)` (the wall-time ratio when both produce
//! the same number of tokens). The analytic expectation for speculative sampling (Leviathan et
//! al. 2023, Theorem 3.8) is `(1 − α^{γ+1}) / ((1 − α)(γc + 1))` with α the acceptance rate and
//! `c` the cost of a little-model token relative to a big-model one, assuming one verification
//! costs one big step. `predicted_speedup` replaces that `1` by the measured cost of verifying
//! γ + 1 tokens, `(γ + 1)·v` (v = `big_verify_s_per_token / big_step_s`), which is ≈ γ + 1 for
//! a Mamba verifier (its `score` steps through the block) and well below it for a Transformer;
//! `cost_ratio` = 1/c. A pair with a small cost ratio or an expensive verification gains
//! little whatever the acceptance rate.

use crate::bild::BildConfig;
use crate::cursor::ModelWork;
use crate::decode::{decode, DecodeConfig, DecodeOutput, Policy};
use crate::error::{Result, SpecError};
use crate::speculative_sampling::SpecConfig;
use seqlab_lm::CausalLm;
use seqlab_tensor::{log_softmax, SamplerConfig};
use serde::Serialize;

/// One prompt's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct PromptReport {
    /// Index in the prompt list.
    pub index: usize,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// New tokens produced by the policy.
    pub new_tokens: usize,
    /// The policy's output.
    pub tokens: Vec<u32>,
    /// The policy's wall time, seconds.
    pub wall_s: f64,
    /// The policy's time to first token, seconds.
    pub first_token_s: f64,
    /// New tokens per second.
    pub tokens_per_s: f64,
    /// Big-only wall time (same sampler settings), seconds.
    pub baseline_wall_s: f64,
    /// Big-only tokens per second.
    pub baseline_tokens_per_s: f64,
    /// `tokens_per_s / baseline_tokens_per_s`.
    pub speedup: f64,
    /// Little tokens proposed.
    pub drafted: usize,
    /// Little tokens committed.
    pub accepted: usize,
    /// `accepted / drafted`.
    pub acceptance_rate: f64,
    /// BiLD fallbacks.
    pub fallbacks: usize,
    /// Rounds that discarded little tokens.
    pub rollbacks: usize,
    /// Big-model calls (prefill + step + score).
    pub big_calls: usize,
    /// Little-model calls.
    pub little_calls: usize,
    /// Seconds inside the big model.
    pub big_s: f64,
    /// Seconds inside the little model.
    pub little_s: f64,
    /// Seconds per token the big model spent verifying (`score` calls, prefill excluded):
    /// compare with a big-only step to see what one verified token costs.
    pub big_s_per_scored_token: f64,
    /// Positions where the output equals big-only greedy output, over the longer length.
    pub agreement: f64,
    /// Length of the common prefix with big-only greedy output.
    pub common_prefix: usize,
    /// Perplexity of the output under the big model (given the prompt).
    pub big_ppl: f64,
}

/// Totals over all prompts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overall {
    /// Prompts.
    pub prompts: usize,
    /// New tokens (policy).
    pub new_tokens: usize,
    /// Total policy wall time, seconds.
    pub wall_s: f64,
    /// Mean time to first token, seconds.
    pub first_token_s: f64,
    /// Policy tokens per second over all prompts.
    pub tokens_per_s: f64,
    /// Big-only tokens per second over all prompts.
    pub baseline_tokens_per_s: f64,
    /// `tokens_per_s / baseline_tokens_per_s`.
    pub speedup: f64,
    /// Little tokens proposed.
    pub drafted: usize,
    /// Little tokens committed.
    pub accepted: usize,
    /// `accepted / drafted`.
    pub acceptance_rate: f64,
    /// BiLD fallbacks.
    pub fallbacks: usize,
    /// Rounds that discarded little tokens.
    pub rollbacks: usize,
    /// Big-model calls.
    pub big_calls: usize,
    /// Little-model calls.
    pub little_calls: usize,
    /// Token-weighted agreement with big-only greedy output.
    pub agreement: f64,
    /// Perplexity of all outputs under the big model.
    pub big_ppl: f64,
    /// Seconds per big-model step (big-only runs) / seconds per little-model token (policy
    /// runs), prefills excluded: 1/c.
    pub cost_ratio: f64,
    /// Seconds per big-model step in the big-only runs (prefill excluded).
    pub big_step_s: f64,
    /// Seconds per little-model token in the policy runs (prefill excluded).
    pub little_step_s: f64,
    /// Seconds per token the big model spent in the policy runs (verification `score` calls
    /// for BiLD / spec, prefill excluded): below `big_step_s` only if scoring a block is
    /// cheaper per token than stepping.
    pub big_verify_s_per_token: f64,
    /// Leviathan et al.'s expected speedup for the measured α, γ and c (speculative sampling
    /// with a fixed γ only).
    pub predicted_speedup: Option<f64>,
}

/// A policy's measurement over a prompt set.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    /// `big-only`, `little-only`, `bild` or `spec`.
    pub policy: String,
    /// BiLD thresholds, when BiLD.
    pub bild: Option<BildConfig>,
    /// Draft-length settings, when speculative sampling.
    pub spec: Option<SpecConfig>,
    /// Per prompt.
    pub prompts: Vec<PromptReport>,
    /// Over all prompts.
    pub overall: Overall,
}

/// Big-only greedy reference outputs for a prompt set (the agreement reference), computed
/// once and reused by every policy of a sweep.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// Big-only greedy outputs.
    pub greedy: Vec<DecodeOutput>,
    /// Timed runs per prompt and policy in [`measure`] (the fastest is kept: interference on
    /// a shared machine only ever adds time); 1 from [`baseline`].
    pub repeats: usize,
}

fn with_policy(cfg: &DecodeConfig, policy: Policy) -> DecodeConfig {
    DecodeConfig {
        policy,
        ..cfg.clone()
    }
}

/// Runs one untimed short decode of each policy (thread pools, allocator, caches).
fn warm_up<B: CausalLm, L: CausalLm>(
    big: &B,
    little: &L,
    prompt: &[u32],
    cfg: &DecodeConfig,
) -> Result<()> {
    let mut w = cfg.clone();
    w.generate.max_new_tokens = cfg.generate.max_new_tokens.min(8);
    for policy in [Policy::BigOnly, cfg.policy] {
        decode(big, little, prompt, &with_policy(&w, policy))?;
    }
    Ok(())
}

/// Decodes every prompt with the big model alone, greedily (the agreement reference).
pub fn baseline<B: CausalLm, L: CausalLm>(
    big: &B,
    little: &L,
    prompts: &[Vec<u32>],
    cfg: &DecodeConfig,
) -> Result<Baseline> {
    let mut greedy_cfg = with_policy(cfg, Policy::BigOnly);
    greedy_cfg.generate.sampler = SamplerConfig::greedy();
    let greedy = prompts
        .iter()
        .map(|p| decode(big, little, p, &greedy_cfg))
        .collect::<Result<Vec<_>>>()?;
    Ok(Baseline { greedy, repeats: 1 })
}

/// Perplexity of `tokens` under `model` after `prompt`: `exp(−mean log p(y_i | prompt, y_<i))`,
/// and the number of tokens scored.
pub fn perplexity_of<M: CausalLm>(
    model: &M,
    prompt: &[u32],
    tokens: &[u32],
) -> Result<(f64, usize)> {
    if tokens.is_empty() {
        return Ok((1.0, 0));
    }
    let (first, mut state) = model.prefill(prompt)?;
    let mut nll = -log_softmax(&first)[tokens[0] as usize];
    if tokens.len() > 1 {
        let v = model.vocab_size();
        let rows = model.score(&mut state, &tokens[..tokens.len() - 1])?;
        for (row, &y) in rows.chunks_exact(v).zip(&tokens[1..]) {
            nll -= log_softmax(row)[y as usize];
        }
    }
    Ok(((nll / tokens.len() as f64).exp(), tokens.len()))
}

/// `(positions equal / longer length, common prefix length)`; 1.0 for two empty outputs.
pub fn agreement(a: &[u32], b: &[u32]) -> (f64, usize) {
    let n = a.len().max(b.len());
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    (if n == 0 { 1.0 } else { same as f64 / n as f64 }, prefix)
}

fn add_work(total: &mut ModelWork, w: &ModelWork) {
    total.calls += w.calls;
    total.tokens += w.tokens;
    total.seconds += w.seconds;
    total.prefill_tokens += w.prefill_tokens;
    total.prefill_s += w.prefill_s;
}

fn per_s(tokens: usize, s: f64) -> f64 {
    if s > 0.0 {
        tokens as f64 / s
    } else {
        0.0
    }
}

/// Measures `cfg.policy` on every prompt against `base` (from [`baseline`] with the same
/// prompts and settings); each prompt's big-only run is re-timed right before the policy's
/// run so both see the same machine state (the baseline's outputs give the agreement); with
/// `base.repeats` > 1 both are timed that many times, interleaved, and the fastest run of
/// each is kept (decoding is deterministic in the seed, so the outputs are the same).
pub fn measure<B: CausalLm, L: CausalLm>(
    big: &B,
    little: &L,
    prompts: &[Vec<u32>],
    cfg: &DecodeConfig,
    base: &Baseline,
) -> Result<Experiment> {
    if prompts.len() != base.greedy.len() {
        return Err(SpecError::Config(
            "the baseline was measured on other prompts".into(),
        ));
    }
    warm_up(big, little, &prompts[0], cfg)?;
    let big_cfg = with_policy(cfg, Policy::BigOnly);
    let mut reports = Vec::with_capacity(prompts.len());
    let mut o = Overall {
        prompts: prompts.len(),
        ..Overall::default()
    };
    let (mut base_tokens, mut base_wall, mut nll_sum, mut agree_sum) =
        (0usize, 0.0f64, 0.0f64, 0.0f64);
    // Per-token decode cost (prefills excluded): big from the big-only runs, little from
    // the policy's runs.
    let (mut big_work, mut little_work) = (ModelWork::default(), ModelWork::default());
    let mut verify_work = ModelWork::default();
    let mut agree_len = 0usize;
    for (i, p) in prompts.iter().enumerate() {
        let mut again = decode(big, little, p, &big_cfg)?;
        let mut out = decode(big, little, p, cfg)?;
        for _ in 1..base.repeats {
            let a = decode(big, little, p, &big_cfg)?;
            if a.stats.wall_s < again.stats.wall_s {
                again = a;
            }
            let r = decode(big, little, p, cfg)?;
            if r.stats.wall_s < out.stats.wall_s {
                out = r;
            }
        }
        let b = &again;
        let b_wall = again.stats.wall_s;
        let s = &out.stats;
        let (agree, prefix) = agreement(&out.tokens, &base.greedy[i].tokens);
        let (ppl, n) = perplexity_of(big, p, &out.tokens)?;
        let tps = per_s(out.tokens.len(), s.wall_s);
        let btps = per_s(b.tokens.len(), b_wall);
        reports.push(PromptReport {
            index: i,
            prompt_tokens: p.len(),
            new_tokens: out.tokens.len(),
            tokens: out.tokens.clone(),
            wall_s: s.wall_s,
            first_token_s: s.first_token_s,
            tokens_per_s: tps,
            baseline_wall_s: b_wall,
            baseline_tokens_per_s: btps,
            speedup: if btps > 0.0 { tps / btps } else { 0.0 },
            drafted: s.drafted,
            accepted: s.accepted,
            acceptance_rate: s.acceptance_rate(),
            fallbacks: s.fallbacks,
            rollbacks: s.rollbacks,
            big_calls: s.big.calls,
            little_calls: s.little.calls,
            big_s: s.big.seconds,
            little_s: s.little.seconds,
            big_s_per_scored_token: s.big.decode_s_per_token(),
            agreement: agree,
            common_prefix: prefix,
            big_ppl: ppl,
        });
        o.new_tokens += out.tokens.len();
        o.wall_s += s.wall_s;
        o.first_token_s += s.first_token_s / prompts.len() as f64;
        o.drafted += s.drafted;
        o.accepted += s.accepted;
        o.fallbacks += s.fallbacks;
        o.rollbacks += s.rollbacks;
        o.big_calls += s.big.calls;
        o.little_calls += s.little.calls;
        base_tokens += b.tokens.len();
        base_wall += b_wall;
        nll_sum += ppl.ln() * n as f64;
        let len = out.tokens.len().max(base.greedy[i].tokens.len());
        agree_sum += agree * len as f64;
        agree_len += len;
        add_work(&mut big_work, &again.stats.big);
        add_work(&mut little_work, &s.little);
        add_work(&mut verify_work, &s.big);
    }
    o.tokens_per_s = per_s(o.new_tokens, o.wall_s);
    o.baseline_tokens_per_s = per_s(base_tokens, base_wall);
    o.speedup = if o.baseline_tokens_per_s > 0.0 {
        o.tokens_per_s / o.baseline_tokens_per_s
    } else {
        0.0
    };
    o.acceptance_rate = if o.drafted > 0 {
        o.accepted as f64 / o.drafted as f64
    } else {
        0.0
    };
    o.agreement = if agree_len > 0 {
        agree_sum / agree_len as f64
    } else {
        1.0
    };
    o.big_ppl = if o.new_tokens > 0 {
        (nll_sum / o.new_tokens as f64).exp()
    } else {
        1.0
    };
    let little_per_token = little_work.decode_s_per_token();
    let big_per_token = big_work.decode_s_per_token();
    o.big_step_s = big_per_token;
    o.little_step_s = little_per_token;
    o.big_verify_s_per_token = verify_work.decode_s_per_token();
    o.cost_ratio = if little_per_token > 0.0 {
        big_per_token / little_per_token
    } else {
        0.0
    };
    let (bild, spec) = match cfg.policy {
        Policy::Bild(b) => (Some(b), None),
        Policy::Speculative(s) => (None, Some(s)),
        _ => (None, None),
    };
    o.predicted_speedup = spec.filter(|s| !s.adaptive && o.cost_ratio > 0.0).map(|s| {
        let (a, g, c) = (
            o.acceptance_rate.min(1.0 - 1e-12),
            s.gamma as f64,
            1.0 / o.cost_ratio,
        );
        // One verification of γ + 1 tokens, in big-step units, as measured.
        let verify = (g + 1.0) * o.big_verify_s_per_token / o.big_step_s;
        (1.0 - a.powf(g + 1.0)) / ((1.0 - a) * (g * c + verify))
    });
    Ok(Experiment {
        policy: cfg.policy.name().into(),
        bild,
        spec,
        prompts: reports,
        overall: o,
    })
}

/// The grid `--sweep` explores for a policy: BiLD over α_FB × α_RB (max_small kept), speculative
/// sampling over γ ∈ {1, 2, 3, 4, 6, 8} fixed plus the adaptive schedule; a single-model policy
/// is its own one-point grid.
pub fn sweep_grid(policy: Policy) -> Vec<Policy> {
    match policy {
        Policy::Bild(b) => {
            let mut v = Vec::new();
            for fb in [0.2, 0.4, 0.6, 0.8, 0.9] {
                for rb in [0.0, 1.0, 2.0, 3.0, 5.0] {
                    v.push(Policy::Bild(BildConfig {
                        alpha_fb: fb,
                        alpha_rb: rb,
                        ..b
                    }));
                }
            }
            v
        }
        Policy::Speculative(s) => {
            let mut v: Vec<Policy> = [1, 2, 3, 4, 6, 8]
                .into_iter()
                .filter(|&g| g < crate::cursor::MAX_BLOCK)
                .map(|g| {
                    Policy::Speculative(SpecConfig {
                        gamma: g,
                        adaptive: false,
                        gamma_min: 1,
                        gamma_max: s.gamma_max.max(g),
                    })
                })
                .collect();
            v.push(Policy::Speculative(SpecConfig {
                adaptive: true,
                ..s
            }));
            v
        }
        p => vec![p],
    }
}

/// One sweep point, for the table.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    /// Setting, e.g. `fb=0.6 rb=5` or `gamma=4` / `adaptive`.
    pub setting: String,
    /// Overall speedup vs big-only.
    pub speedup: f64,
    /// Agreement with big-only greedy output.
    pub agreement: f64,
    /// Output perplexity under the big model.
    pub big_ppl: f64,
    /// Acceptance rate.
    pub acceptance_rate: f64,
    /// Tokens per second.
    pub tokens_per_s: f64,
    /// BiLD fallbacks.
    pub fallbacks: usize,
    /// Rollbacks / rejections.
    pub rollbacks: usize,
}

/// The short label of a policy's setting.
pub fn setting_label(p: &Policy) -> String {
    match p {
        Policy::Bild(b) => format!(
            "fb={} rb={} max_small={}",
            b.alpha_fb, b.alpha_rb, b.max_small
        ),
        Policy::Speculative(s) if s.adaptive => {
            format!(
                "adaptive gamma {}..={} from {}",
                s.gamma_min, s.gamma_max, s.gamma
            )
        }
        Policy::Speculative(s) => format!("gamma={}", s.gamma),
        p => p.name().into(),
    }
}

/// The sweep row of an experiment.
pub fn sweep_row(policy: &Policy, e: &Experiment) -> SweepRow {
    let o = &e.overall;
    SweepRow {
        setting: setting_label(policy),
        speedup: o.speedup,
        agreement: o.agreement,
        big_ppl: o.big_ppl,
        acceptance_rate: o.acceptance_rate,
        tokens_per_s: o.tokens_per_s,
        fallbacks: o.fallbacks,
        rollbacks: o.rollbacks,
    }
}

/// The sweep table in markdown.
pub fn markdown_table(policy: &str, rows: &[SweepRow]) -> String {
    let mut s = format!(
        "| {policy} setting | speedup | agreement | big-model ppl | acceptance | tokens/s | fallbacks | rollbacks |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {} | {} |\n",
            r.setting,
            r.speedup,
            r.agreement,
            r.big_ppl,
            r.acceptance_rate,
            r.tokens_per_s,
            r.fallbacks,
            r.rollbacks
        ));
    }
    s
}
