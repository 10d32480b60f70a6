//! `seqlab speculate`: big-little decoding latency experiments (seqlab-speculative). Decodes
//! every prompt with a policy — `bild` (Big Little Decoder: fallback α_FB, rollback α_RB),
//! `spec` (lossless speculative sampling, fixed or adaptive γ), `big-only` or `little-only` —
//! and with the big model alone in the same run, and reports per prompt and overall: wall time,
//! time to first token, tokens/s, speedup vs big-only, acceptance rate, fallbacks, rollbacks,
//! model calls, agreement with big-only greedy output and the output's perplexity under the big
//! model. `--sweep` runs the policy's threshold grid instead and prints a markdown table, writes
//! it into the JSON, and draws the speed/quality frontier as a PNG.
//!
//! Prompts file: one prompt per line, encoded with the big model's tokenizer; a line
//! `ids: 1,2,3` gives token ids directly (for models without a tokenizer); blank lines and
//! lines starting with `#` are skipped.
//!
//! JSON (`--json OUT`): `{"big","little","policy","max_new_tokens","sampler","seed","bild",
//! "spec","prompts":[{index,prompt_tokens,new_tokens,tokens,wall_s,first_token_s,tokens_per_s,
//! baseline_wall_s,baseline_tokens_per_s,speedup,drafted,accepted,acceptance_rate,fallbacks,
//! rollbacks,big_calls,little_calls,big_s,little_s,agreement,common_prefix,big_ppl}],
//! "overall":{…, cost_ratio, predicted_speedup}}`; with `--sweep`, `"sweep":[{setting,speedup,
//! agreement,big_ppl,acceptance_rate,tokens_per_s,fallbacks,rollbacks}]` and `"frontier_png"`.

use crate::flag_context::with_flag;
use crate::sampling_args::SamplingArgs;
use anyhow::{bail, Context};
use seqlab_lm::{load_lm, CausalLm, GenerateConfig, LoadedLm};
use seqlab_speculative::harness::{self, markdown_table, sweep_grid, sweep_row};
use seqlab_speculative::{BildConfig, DecodeConfig, Policy, SpecConfig};
use std::path::{Path, PathBuf};

/// Big-little decoding latency experiments.
#[derive(Debug, clap::Args)]
pub struct SpeculateArgs {
    /// The big (target) model: a directory (config.json + model.safetensors) or a .gguf file.
    #[arg(long, value_name = "PATH")]
    big: PathBuf,
    /// The little (draft) model; must share the big model's vocabulary and tokenizer.
    #[arg(long, value_name = "PATH")]
    little: PathBuf,
    /// Decoder.
    #[arg(long, value_enum, default_value_t = PolicyArg::Spec)]
    policy: PolicyArg,
    /// Prompts file: one prompt per line (text, or `ids: 1,2,3`); `#` lines are comments.
    #[arg(long, value_name = "FILE")]
    prompts: PathBuf,
    /// Most new tokens per prompt (at most 1,048,576).
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_NEW_TOKENS))]
    max_new_tokens: usize,
    /// Draft length γ (spec; the starting value with --adaptive; at most 1024).
    #[arg(long, value_name = "G", default_value_t = 4,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_CANDIDATES))]
    gamma: usize,
    /// Adaptive draft length: +2 after a fully accepted round, −1 otherwise (spec).
    #[arg(long)]
    adaptive: bool,
    /// Largest adaptive draft length (at most 1024).
    #[arg(long, value_name = "G", default_value_t = 16,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_CANDIDATES))]
    gamma_max: usize,
    /// BiLD fallback threshold: the little model hands over when its top probability is below.
    #[arg(long, value_name = "A", default_value_t = 0.6)]
    alpha_fb: f64,
    /// BiLD rollback threshold on the big model's cross-entropy of a little token (nats).
    #[arg(long, value_name = "R", default_value_t = 5.0)]
    alpha_rb: f64,
    /// BiLD: most consecutive little-model tokens (at most 1024).
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_CANDIDATES))]
    max_small: usize,
    /// Greedy (the default) or sampled decoding (spec, big-only, little-only; BiLD decodes
    /// greedily), and the seed of the random stream.
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Do not stop at the end-of-sequence token.
    #[arg(long)]
    ignore_eos: bool,
    /// Timed runs per prompt of the policy and of big-only, interleaved; the fastest of each
    /// is reported (outputs are deterministic in the seed; at most 1000).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_REPEATS))]
    repeats: usize,
    /// Run the policy's threshold grid (bild: α_FB × α_RB; spec: γ and adaptive).
    #[arg(long)]
    sweep: bool,
    /// Write the report as JSON here.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// Where --sweep draws the speedup/agreement frontier (default: the --json path with .png).
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
}

/// The decoders `--policy` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PolicyArg {
    /// Big Little Decoder (Kim et al. 2023): fallback α_FB, rollback α_RB.
    Bild,
    /// Lossless speculative sampling (Leviathan et al. 2023; Chen et al. 2023), fixed or
    /// adaptive γ.
    Spec,
    /// The big model alone.
    #[value(name = "big-only")]
    BigOnly,
    /// The little model alone.
    #[value(name = "little-only")]
    LittleOnly,
}

/// Reads the prompts file (module docs).
fn read_prompts(path: &Path, big: &LoadedLm) -> anyhow::Result<Vec<Vec<u32>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the prompts file {}", path.display()))?;
    let mut prompts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let ids = if let Some(ids) = trimmed.strip_prefix("ids:") {
            ids.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse::<u32>().with_context(|| {
                        format!("{} line {}: `{t}` is not a token id", path.display(), n + 1)
                    })
                })
                .collect::<anyhow::Result<Vec<u32>>>()?
        } else {
            let Some(tok) = &big.tokenizer else {
                bail!(
                    "{} line {} is text, but the big model {} has no tokenizer; write `ids: 1,2,3` lines",
                    path.display(),
                    n + 1,
                    big.path.display()
                );
            };
            tok.encode(line)?
        };
        if ids.is_empty() {
            bail!(
                "{} line {}: the prompt has no tokens",
                path.display(),
                n + 1
            );
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= big.model.vocab_size()) {
            bail!(
                "{} line {}: token id {bad} is out of range (vocabulary {})",
                path.display(),
                n + 1,
                big.model.vocab_size()
            );
        }
        prompts.push(ids);
    }
    if prompts.is_empty() {
        bail!("the prompts file {} has no prompts", path.display());
    }
    Ok(prompts)
}

/// The two models must share logits rows and, when both have one, the tokenizer.
fn check_compatible(big: &LoadedLm, little: &LoadedLm) -> anyhow::Result<()> {
    let (b, l) = (big.model.vocab_size(), little.model.vocab_size());
    if b != l {
        bail!(
            "mismatched vocabularies: the big model {} has {b} ids, the little model {} has {l}",
            big.path.display(),
            little.path.display()
        );
    }
    if let (Some(tb), Some(tl)) = (&big.tokenizer, &little.tokenizer) {
        if let Err(diff) = seqlab_tokenizer::same_vocabulary(tb.as_ref(), tl.as_ref()) {
            bail!(
                "mismatched tokenizers: the big model {} ({} ids) and the little model {} ({} ids) encode text differently ({diff})",
                big.path.display(),
                tb.vocab_size(),
                little.path.display(),
                tl.vocab_size()
            );
        }
    }
    Ok(())
}

/// Runs `seqlab speculate`.
pub fn run(args: SpeculateArgs) -> anyhow::Result<()> {
    let sampler = args.sampling.sampler()?;
    let policy = match args.policy {
        PolicyArg::Bild => Policy::Bild(BildConfig {
            alpha_fb: args.alpha_fb,
            alpha_rb: args.alpha_rb,
            max_small: args.max_small,
        }),
        PolicyArg::Spec => Policy::Speculative(SpecConfig {
            gamma: args.gamma,
            adaptive: args.adaptive,
            gamma_min: 1,
            gamma_max: args.gamma_max.max(args.gamma),
        }),
        PolicyArg::BigOnly => Policy::BigOnly,
        PolicyArg::LittleOnly => Policy::LittleOnly,
    };
    let png_path = match (&args.png, &args.json) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(j)) => Some(j.with_extension("png")),
        (None, None) => None,
    };
    if args.sweep && png_path.is_none() {
        bail!("--sweep writes a frontier PNG: give --json OUT or --png FILE");
    }

    let big = load_lm(&args.big).map_err(|e| with_flag(e, "--big"))?;
    let little = load_lm(&args.little).map_err(|e| with_flag(e, "--little"))?;
    check_compatible(&big, &little)?;
    let prompts = read_prompts(&args.prompts, &big)?;
    let mut stop_ids = Vec::new();
    if !args.ignore_eos {
        stop_ids.extend(
            big.tokenizer
                .as_ref()
                .and_then(|t| t.special_ids().eos)
                .or(big.eos_id),
        );
    }
    let cfg = DecodeConfig {
        policy,
        generate: GenerateConfig {
            max_new_tokens: args.max_new_tokens,
            sampler,
            seed: args.sampling.seed,
            stop_ids,
            vocab_limit: big
                .tokenizer
                .as_ref()
                .map(|t| t.vocab_size())
                .filter(|&v| v < big.model.vocab_size()),
        },
    };
    cfg.validate()?;

    let (bm, lm) = (&big.model, &little.model);
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let mut base = harness::baseline(bm, lm, &prompts, &cfg)?;
    base.repeats = args.repeats;
    let mut report = serde_json::json!({
        "big": args.big.display().to_string(),
        "little": args.little.display().to_string(),
        "big_kind": bm.kind(),
        "little_kind": lm.kind(),
        "policy": policy.name(),
        "max_new_tokens": args.max_new_tokens,
        "sampler": {
            "greedy": cfg.generate.sampler.greedy,
            "temperature": cfg.generate.sampler.temperature,
            "top_k": cfg.generate.sampler.top_k,
            "top_p": cfg.generate.sampler.top_p,
        },
        "seed": args.sampling.seed,
        "repeats": args.repeats,
    });
    if args.sweep {
        let mut rows = Vec::new();
        for p in sweep_grid(policy) {
            let c = DecodeConfig {
                policy: p,
                ..cfg.clone()
            };
            if let Err(e) = c.validate() {
                bail!("sweep setting {}: {e}", harness::setting_label(&p));
            }
            let e = harness::measure(bm, lm, &prompts, &c, &base)?;
            rows.push(sweep_row(&p, &e));
        }
        print!("{}", markdown_table(policy.name(), &rows));
        let png_path = png_path.expect("checked above");
        let png = seqlab_speculative::frontier::frontier_png(&rows)?;
        std::fs::write(&png_path, png)
            .with_context(|| format!("cannot write {}", png_path.display()))?;
        report["sweep"] = serde_json::to_value(&rows)?;
        report["frontier_png"] = png_path.display().to_string().into();
    } else {
        let e = harness::measure(bm, lm, &prompts, &cfg, &base)?;
        let o = &e.overall;
        println!(
            "| prompt | new tokens | wall s | first token s | tokens/s | big-only tokens/s | speedup | acceptance | fallbacks | rollbacks | big calls | little calls | agreement | big ppl |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &e.prompts {
            println!(
                "| {} | {} | {:.3} | {:.4} | {:.1} | {:.1} | {:.3} | {:.3} | {} | {} | {} | {} | {:.3} | {:.3} |",
                r.index, r.new_tokens, r.wall_s, r.first_token_s, r.tokens_per_s, r.baseline_tokens_per_s,
                r.speedup, r.acceptance_rate, r.fallbacks, r.rollbacks, r.big_calls, r.little_calls,
                r.agreement, r.big_ppl
            );
        }
        println!(
            "| all | {} | {:.3} | {:.4} | {:.1} | {:.1} | {:.3} | {:.3} | {} | {} | {} | {} | {:.3} | {:.3} |",
            o.new_tokens, o.wall_s, o.first_token_s, o.tokens_per_s, o.baseline_tokens_per_s, o.speedup,
            o.acceptance_rate, o.fallbacks, o.rollbacks, o.big_calls, o.little_calls, o.agreement, o.big_ppl
        );
        println!(
            "{}: speedup {:.3}x vs big-only; per-token cost big step {:.3} ms, little step {:.3} ms (ratio {:.2}), big verification {:.3} ms per scored token{}",
            policy.name(),
            o.speedup,
            o.big_step_s * 1e3,
            o.little_step_s * 1e3,
            o.cost_ratio,
            o.big_verify_s_per_token * 1e3,
            o.predicted_speedup
                .map(|p| format!("; predicted speedup {p:.3}x"))
                .unwrap_or_default()
        );
        let v = serde_json::to_value(&e)?;
        for k in ["bild", "spec", "prompts", "overall"] {
            report[k] = v[k].clone();
        }
    }
    if let Some(out) = &args.json {
        std::fs::write(out, format!("{report}\n"))
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}
