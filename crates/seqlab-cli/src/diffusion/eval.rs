//! `seqlab diffusion eval --model DIR --ar-model PATH [-n N] [--length L] [--steps 64,256,1024]
//! [--samplers ancestral,ancestral-nocache,fhs,edlm] [--k 2,4] [--edlm-steps T]
//! [--energy-head DIR] [--f32-at T] [-o DIR]`: generative quality and speed of the samplers
//! (`seqlab_diffusion::gen_eval`). For every setting, N unconditional samples of L tokens
//! (one batch, the same seed) are generated and scored under the AR model: gen-PPL, mean
//! per-sample unigram entropy, network calls per sample, wall time and samples/s. EDLM rows use
//! the AR model as energy (`edlm`); with `--energy-head`, each k also gets a row with the NCE
//! head as energy (`edlm-nce`, still scored by the AR model).
//!
//! Output: a markdown table on stdout (or one JSON object `{"rows":[…]}` with `--json`); with
//! `-o DIR`, also `DIR/results.json` and `DIR/gen_ppl.png` (gen-PPL against log₂ steps, one
//! line per sampler setting; FHS sits at its calls per sample).

use super::load::{load_ar, load_denoiser, load_head};
use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_diffusion::edlm::EdlmConfig;
use seqlab_diffusion::gen_eval::{
    evaluate_sampler, evaluate_sampler_with, gen_ppl_plot_png, markdown_table, EvalRow,
};
use seqlab_diffusion::sampler::{AncestralConfig, Draw, FhsConfig, SamplerSpec};
use std::path::PathBuf;

/// Measure the samplers of a masked diffusion LM.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A denoiser directory, or a run directory (its `checkpoint/`).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// The AR model that scores the samples (gen-PPL) and is EDLM's energy.
    #[arg(long, value_name = "PATH")]
    ar_model: PathBuf,
    /// Samples per setting (at most 100,000).
    #[arg(
        short = 'n',
        long = "num-samples",
        value_name = "N",
        default_value_t = 8,
        value_parser = crate::bounds::count(0, crate::bounds::MAX_SAMPLES)
    )]
    n: usize,
    /// Tokens per sample (default: the model's training length; at most 1,048,576).
    #[arg(long, value_name = "L",
          value_parser = crate::bounds::count(0, crate::bounds::MAX_SEQUENCE_TOKENS))]
    length: Option<usize>,
    /// Ancestral step counts T (each at most 1,048,576).
    #[arg(long, value_name = "T,…", value_delimiter = ',', default_values_t = [64usize, 256, 1024],
          value_parser = crate::bounds::count(0, crate::bounds::MAX_STEPS))]
    steps: Vec<usize>,
    /// Samplers: ancestral (cached), ancestral-nocache, fhs, edlm (an unknown name is the
    /// command's one-line error).
    #[arg(long, value_name = "NAME,…", value_delimiter = ',',
          default_values_t = ["ancestral".to_string(), "ancestral-nocache".into(), "fhs".into(), "edlm".into()])]
    samplers: Vec<String>,
    /// EDLM candidate counts k (each at most 1024).
    #[arg(long, value_name = "K,…", value_delimiter = ',', default_values_t = [2usize, 4],
          value_parser = crate::bounds::count(0, crate::bounds::MAX_CANDIDATES))]
    k: Vec<usize>,
    /// EDLM steps T (at most 1,048,576).
    #[arg(long, value_name = "T", default_value_t = 256,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_STEPS))]
    edlm_steps: usize,
    /// Also run EDLM with this NCE energy head (`seqlab diffusion energy-head`) as energy.
    #[arg(long, value_name = "DIR")]
    energy_head: Option<PathBuf>,
    /// Also run the cached ancestral sampler with the reference's f32 Gumbel draws at these T.
    #[arg(long, value_name = "T,…", value_delimiter = ',',
          value_parser = crate::bounds::count(0, crate::bounds::MAX_STEPS))]
    f32_at: Vec<usize>,
    /// Seed (the same for every setting).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write results.json and gen_ppl.png here.
    #[arg(short = 'o', long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The samplers `--samplers` lists. Parsed after clap (an unknown name is the command's own
/// one-line error, exit status 1, as it has always been).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EvalSampler {
    /// Ancestral sampling with the no-change cache, at each `--steps` T.
    Ancestral,
    /// Ancestral sampling calling the network at every step, at each `--steps` T.
    #[value(name = "ancestral-nocache")]
    AncestralNocache,
    /// The first-hitting sampler.
    Fhs,
    /// EDLM at `--edlm-steps`, for each `--k`.
    Edlm,
}

/// Parses `--samplers`.
fn parse_samplers(names: &[String]) -> anyhow::Result<Vec<EvalSampler>> {
    use clap::ValueEnum;
    names
        .iter()
        .map(|name| {
            EvalSampler::from_str(name, false).map_err(|_| {
                anyhow::anyhow!(
                    "unknown sampler `{name}` in --samplers (ancestral, ancestral-nocache, fhs, edlm)"
                )
            })
        })
        .collect()
}

/// Runs `seqlab diffusion eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let (dir, den) = load_denoiser(&args.model)?;
    let ar = load_ar(&args.ar_model, &dir, &den, "--ar-model")?;
    let sched = den.config().diffusion.schedule;
    let len = args.length.unwrap_or(den.config().lm.seq_len);
    let samplers = parse_samplers(&args.samplers)?;
    let head = match &args.energy_head {
        Some(d) if samplers.contains(&EvalSampler::Edlm) => Some(load_head(d, &den)?),
        Some(_) => bail!("--energy-head is EDLM's energy: add edlm to --samplers"),
        None => None,
    };
    // (setting, whether EDLM's energy is the NCE head rather than the AR model)
    let mut specs: Vec<(SamplerSpec, bool)> = Vec::new();
    for &sampler in &samplers {
        match sampler {
            EvalSampler::Ancestral | EvalSampler::AncestralNocache => {
                for &steps in &args.steps {
                    specs.push((
                        SamplerSpec::Ancestral(AncestralConfig {
                            steps,
                            cache: sampler == EvalSampler::Ancestral,
                            ..AncestralConfig::default()
                        }),
                        false,
                    ));
                }
            }
            EvalSampler::Fhs => {
                specs.push((SamplerSpec::FirstHitting(FhsConfig::default()), false))
            }
            EvalSampler::Edlm => {
                for &k in &args.k {
                    let spec = SamplerSpec::Edlm(EdlmConfig {
                        ancestral: AncestralConfig {
                            steps: args.edlm_steps,
                            ..AncestralConfig::default()
                        },
                        k,
                        ..EdlmConfig::default()
                    });
                    specs.push((spec, false));
                    if head.is_some() {
                        specs.push((spec, true));
                    }
                }
            }
        }
    }
    for &steps in &args.f32_at {
        specs.push((
            SamplerSpec::Ancestral(AncestralConfig {
                steps,
                draw: Draw::F32Gumbel,
                ..AncestralConfig::default()
            }),
            false,
        ));
    }
    if specs.is_empty() {
        bail!("nothing to evaluate: --samplers is empty");
    }
    let mut rows: Vec<EvalRow> = Vec::new();
    for (spec, nce) in &specs {
        let mut rng = StdRng::seed_from_u64(args.seed);
        let (row, _) = match (&head, nce) {
            (Some(h), true) => {
                let (mut row, s) =
                    evaluate_sampler_with(&den, &sched, spec, h, &ar, None, args.n, len, &mut rng)?;
                row.sampler = "edlm-nce".into();
                (row, s)
            }
            _ => evaluate_sampler(&den, &sched, spec, &ar, None, args.n, len, &mut rng)?,
        };
        if !args.json {
            eprintln!(
                "{} T={} cache={} draw={} k={}: gen-PPL {:.2}, {:.1} calls/sample, {:.2} s",
                row.sampler,
                row.steps,
                row.cache,
                row.draw,
                row.k,
                row.gen_ppl,
                row.calls_per_sample,
                row.seconds
            );
        }
        rows.push(row);
    }
    let json = serde_json::json!({
        "model": dir.display().to_string(),
        "ar_model": args.ar_model.display().to_string(),
        "energy_head": args.energy_head.as_ref().map(|d| d.display().to_string()),
        "samples": args.n,
        "length": len,
        "seed": args.seed,
        "rows": rows,
    });
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        let write = |name: &str, bytes: &[u8]| {
            let p = out.join(name);
            std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))
        };
        write("results.json", format!("{json:#}\n").as_bytes())?;
        write("gen_ppl.png", &gen_ppl_plot_png(&rows)?)?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", markdown_table(&rows));
    }
    Ok(())
}
