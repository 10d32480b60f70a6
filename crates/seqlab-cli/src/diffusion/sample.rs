//! `seqlab diffusion sample --model DIR -n N --length L --sampler ancestral|fhs|edlm [--steps T]
//! [--no-cache] [--draw f64|f32-gumbel] [--infill TEXT] [--seed S]`: generate text with a
//! masked diffusion LM (`seqlab_diffusion::sampler`, `seqlab_diffusion::edlm`).
//!
//! `--infill` takes text with gaps written `{N}` (N tokens to generate there), e.g.
//! `"HAMLET. To be{12}the question"`; fixed text stays, the gaps (and any positions up to
//! `--length` after the template) are generated. Lengths above `--window` (default: the model's
//! training length) are generated semi-autoregressively, `--stride` new tokens per block.
//! EDLM needs exactly one energy: `--ar-model PATH` (any model `seqlab generate` loads, same
//! tokenizer) or `--energy-head DIR` (an NCE head from `seqlab diffusion energy-head` trained
//! against this denoiser).
//!
//! Output: each sample's decoded text (ids without a tokenizer), then a summary line on stderr;
//! with `--json` one object `{"samples":[{"tokens":[…],"text":…}],"sampler":…,
//! "energy":"ar"|"nce"|null,"calls_per_sample":…,"seconds":…}`.

use super::load::{load_ar, load_denoiser, load_head, tokenizer_of};
use crate::sampling_args::SamplingArgs;
use anyhow::bail;
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_diffusion::edlm::{ArEnergy, EdlmConfig, EnergyModel};
use seqlab_diffusion::sampler::{run_sampler, SamplerSpec};
use seqlab_diffusion::sampler::{
    sample_semi_ar, AncestralConfig, Draw, FhsConfig, InfillTemplate, InnerSampler, SemiArConfig,
};
use seqlab_diffusion::Denoiser;
use std::path::PathBuf;

/// Sample text from a masked diffusion LM.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// A denoiser directory (config.json, model.safetensors, tokenizer.json), or a run
    /// directory (its `checkpoint/`).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Number of samples (at most 100,000).
    #[arg(
        short = 'n',
        long = "num-samples",
        value_name = "N",
        default_value_t = 1,
        value_parser = crate::bounds::count(0, crate::bounds::MAX_SAMPLES)
    )]
    n: usize,
    /// Tokens per sample (default: the model's training length, or the infill template's; at
    /// most 1,048,576).
    #[arg(long, value_name = "L",
          value_parser = crate::bounds::count(0, crate::bounds::MAX_SEQUENCE_TOKENS))]
    length: Option<usize>,
    /// Sampler.
    #[arg(long, value_enum, default_value_t = SamplerArg::Ancestral)]
    sampler: SamplerArg,
    /// Reverse steps T (ancestral, EDLM; at most 1,048,576).
    #[arg(long, value_name = "T", default_value_t = 128,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_STEPS))]
    steps: usize,
    /// Call the network at every step even when the previous step unmasked nothing.
    #[arg(long)]
    no_cache: bool,
    /// Categorical draws.
    #[arg(long, value_enum, default_value_t = DrawArg::F64)]
    draw: DrawArg,
    /// Infill template: text with `{N}` gaps (module docs).
    #[arg(long, value_name = "TEXT")]
    infill: Option<String>,
    /// Tokens the denoiser sees at once (default: its training length); longer samples are
    /// generated block by block (at most 1,048,576).
    #[arg(long, value_name = "W",
          value_parser = crate::bounds::count(0, crate::bounds::MAX_SEQUENCE_TOKENS))]
    window: Option<usize>,
    /// New tokens per semi-autoregressive block (default: half the window; at most 1,048,576).
    #[arg(long, value_name = "S",
          value_parser = crate::bounds::count(0, crate::bounds::MAX_SEQUENCE_TOKENS))]
    stride: Option<usize>,
    /// EDLM: the AR model of the energy (a model directory or .gguf, same tokenizer).
    #[arg(long, value_name = "PATH")]
    ar_model: Option<PathBuf>,
    /// EDLM: an NCE energy head trained against this denoiser (instead of --ar-model).
    #[arg(long, value_name = "DIR")]
    energy_head: Option<PathBuf>,
    /// EDLM: candidates per importance-sampling step (at most 1024).
    #[arg(long, value_name = "K", default_value_t = 2,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_CANDIDATES))]
    k: usize,
    /// EDLM: window start (largest t).
    #[arg(long, default_value_t = 0.6)]
    is_start: f64,
    /// EDLM: window end (smallest t).
    #[arg(long, default_value_t = 0.4)]
    is_end: f64,
    /// `--temperature` (EDLM's energy temperature, default 1) and `--seed`; the token-sampler
    /// flags (`--greedy`, `--top-k`, `--top-p`) are rejected.
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The samplers `--sampler` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SamplerArg {
    /// Ancestral sampling of the reverse process (MDLM), with the no-change cache.
    Ancestral,
    /// The first-hitting sampler (Zheng et al. 2024): one network call per unmasked token.
    Fhs,
    /// EDLM importance sampling with an energy (Xu et al. 2024).
    Edlm,
}

/// The categorical draws `--draw` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DrawArg {
    /// Inverse CDF in f64.
    #[value(name = "f64")]
    F64,
    /// The reference implementation's float32 Gumbel trick (capped noise; kept to measure it).
    #[value(name = "f32-gumbel")]
    F32Gumbel,
}

impl DrawArg {
    /// The sampler library's draw.
    fn draw(self) -> Draw {
        match self {
            DrawArg::F64 => Draw::F64,
            DrawArg::F32Gumbel => Draw::F32Gumbel,
        }
    }
}

/// Runs `seqlab diffusion sample`.
pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    let temperature = args.sampling.temperature_only("seqlab diffusion sample")?;
    let (dir, den) = load_denoiser(&args.model)?;
    let tok = tokenizer_of(&dir)?;
    let sched = den.config().diffusion.schedule;
    let mask = den.mask_id();
    if args.n == 0 {
        bail!("-n must be at least 1");
    }
    let template = match &args.infill {
        Some(text) => {
            let Some(t) = &tok else {
                bail!(
                    "--infill needs a tokenizer, but {} has no tokenizer.json",
                    dir.display()
                );
            };
            Some(InfillTemplate::parse(text, args.length, |s| {
                t.encode(s).map_err(|e| e.to_string())
            })?)
        }
        None => None,
    };
    let len = match (&template, args.length) {
        (Some(t), _) => t.len(),
        (None, Some(l)) => l,
        (None, None) => den.config().lm.seq_len,
    };
    if len == 0 {
        bail!("--length must be at least 1");
    }
    // One network call holds the logits (f32) of every sample at every position of a window,
    // for each of EDLM's k candidates: check that against the memory before sampling.
    let rows = len.min(args.window.unwrap_or(den.config().lm.seq_len).max(1));
    let candidates = if args.sampler == SamplerArg::Edlm {
        args.k.max(1)
    } else {
        1
    };
    let logits_bytes =
        args.n as f64 * candidates as f64 * rows as f64 * den.vocab_size() as f64 * 4.0;
    seqlab_tensor::limits::check_fits_in_memory(
        &format!("sampling {} × {len} tokens", args.n),
        logits_bytes,
    )?;
    let ancestral = AncestralConfig {
        steps: args.steps,
        cache: !args.no_cache,
        draw: args.draw.draw(),
        ..AncestralConfig::default()
    };
    let spec = match args.sampler {
        SamplerArg::Ancestral => SamplerSpec::Ancestral(ancestral),
        SamplerArg::Fhs => SamplerSpec::FirstHitting(FhsConfig {
            draw: ancestral.draw,
        }),
        SamplerArg::Edlm => SamplerSpec::Edlm(EdlmConfig {
            ancestral,
            k: args.k,
            is_start: args.is_start,
            is_end: args.is_end,
            temperature,
        }),
    };
    let edlm = matches!(spec, SamplerSpec::Edlm(_));
    let (ar, head) = match (&args.ar_model, &args.energy_head) {
        (Some(_), Some(_)) | (None, None) if edlm => {
            bail!("--sampler edlm needs exactly one energy: --ar-model PATH or --energy-head DIR")
        }
        (Some(p), None) if edlm => (Some(load_ar(p, &dir, &den, "--ar-model")?), None),
        (None, Some(d)) if edlm => (None, Some(load_head(d, &den)?)),
        _ => (None, None),
    };
    let ar_energy = ar.as_ref().map(|m| ArEnergy::new(m, None));
    let energy: Option<&dyn EnergyModel> = match (&ar_energy, &head) {
        (Some(e), _) => Some(e),
        (None, Some(h)) => Some(h),
        (None, None) => None,
    };
    // Which energy EDLM used: the AR model's log-likelihood or the NCE head.
    let energy_name = match (&ar_energy, &head) {
        (Some(_), _) => Some("ar"),
        (None, Some(_)) => Some("nce"),
        (None, None) => None,
    };
    let window = args.window.unwrap_or(den.config().lm.seq_len).max(1);
    let mut rng = StdRng::seed_from_u64(args.sampling.seed);
    let samples = if len > window {
        let prefix: Vec<u32> = match &template {
            Some(t) if t.slots[t.len().min(window)..].iter().all(Option::is_none) => t.slots
                [..t.len().min(window)]
                .iter()
                .map(|s| s.unwrap_or(mask))
                .collect(),
            Some(_) => bail!(
                "--infill with fixed tokens beyond the window ({window}) is not supported; \
                 raise --window or shorten the template"
            ),
            None => Vec::new(),
        };
        let inner = match spec {
            SamplerSpec::Ancestral(c) => InnerSampler::Ancestral(c),
            SamplerSpec::FirstHitting(c) => InnerSampler::FirstHitting(c),
            SamplerSpec::Edlm(_) => bail!("EDLM runs inside one window; use --length ≤ {window}"),
        };
        let cfg = SemiArConfig {
            window,
            stride: args.stride.unwrap_or(window / 2).max(1),
            total_len: len,
            inner,
        };
        sample_semi_ar(&den, &sched, &prefix, args.n, &cfg, &mut rng)?
    } else {
        let init = match &template {
            Some(t) => t.rows(args.n, mask),
            None => vec![mask; len * args.n],
        };
        run_sampler(&den, &sched, &spec, energy, &init, args.n, &mut rng)?
    };
    let texts: Vec<Option<String>> = (0..args.n)
        .map(|r| match &tok {
            Some(t) => t
                .decode(samples.row(r))
                .map(Some)
                .map_err(anyhow::Error::from),
            None => Ok(None),
        })
        .collect::<anyhow::Result<_>>()?;
    if args.json {
        let v = serde_json::json!({
            "samples": (0..args.n).map(|r| serde_json::json!({
                "tokens": samples.row(r),
                "text": texts[r],
            })).collect::<Vec<_>>(),
            "sampler": spec.name(),
            "energy": energy_name,
            "steps": spec.steps(),
            "cache": spec.cache(),
            "draw": spec.draw().name(),
            "length": len,
            "calls_per_sample": samples.calls_per_sample(),
            "seconds": samples.stats.seconds,
        });
        println!("{v}");
    } else {
        for (r, text) in texts.iter().enumerate() {
            if r > 0 {
                println!();
            }
            match text {
                Some(t) => println!("{t}"),
                None => println!(
                    "{}",
                    samples
                        .row(r)
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            }
        }
        eprintln!(
            "{} sample(s) × {len} tokens with {} ({:.1} network calls per sample) in {:.2} s",
            args.n,
            spec.name(),
            samples.calls_per_sample(),
            samples.stats.seconds
        );
    }
    Ok(())
}
