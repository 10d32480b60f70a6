//! Evaluating generated samples (docs/diffusion.md#evaluation): generative perplexity under an
//! autoregressive model, unigram entropy (low = repetitive), and speed; plus the gen-PPL vs
//! steps plot of `seqlab diffusion eval`.
//!
//! gen-PPL = exp(−(1/M) Σ log p_AR(x_i | x_{<i})) over the M predicted tokens of all samples.
//! Without a BOS id the first token of each sample has no prediction (as `seqlab eval ppl`
//! scores a window); with one, the AR model starts from BOS and every token is predicted.

use crate::ar_score::ar_log_probs;
use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use crate::sampler::dispatch::{run_sampler, SamplerSpec};
use crate::sampler::edlm::{ArEnergy, EnergyModel};
use crate::sampler::{NoiseSchedule, Samples};
use plotters::prelude::*;
use rand::Rng;
use seqlab_lm::CausalLm;

/// Generative perplexity of samples under an AR model.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GenPpl {
    /// Predicted tokens M.
    pub predictions: usize,
    /// Mean negative log-likelihood per prediction, nats.
    pub nll: f64,
    /// exp(nll).
    pub perplexity: f64,
}

/// gen-PPL (module docs) of `samples` under `lm`.
pub fn generative_perplexity<M: CausalLm>(
    lm: &M,
    samples: &[Vec<u32>],
    bos: Option<u32>,
) -> Result<GenPpl> {
    let (mut nll, mut m) = (0.0, 0usize);
    for s in samples {
        let lp = ar_log_probs(lm, s, bos)?;
        let first = if bos.is_some() { 0 } else { 1 };
        for &l in lp.iter().skip(first) {
            nll -= l;
            m += 1;
        }
    }
    if m == 0 {
        return Err(DiffusionError::Input(
            "gen-PPL: the samples hold no token to predict".into(),
        ));
    }
    let mean = nll / m as f64;
    Ok(GenPpl {
        predictions: m,
        nll: mean,
        perplexity: mean.exp(),
    })
}

/// Entropy (nats) of one sample's token histogram: −Σ_v (c_v/n) ln(c_v/n).
pub fn unigram_entropy(sample: &[u32]) -> f64 {
    if sample.is_empty() {
        return 0.0;
    }
    let mut sorted = sample.to_vec();
    sorted.sort_unstable();
    let n = sample.len() as f64;
    let mut h = 0.0;
    for run in sorted.chunk_by(|a, b| a == b) {
        let p = run.len() as f64 / n;
        h -= p * p.ln();
    }
    h
}

/// Per-sample unigram entropy averaged over `samples` (MDLM's repetitiveness check).
pub fn mean_unigram_entropy(samples: &[Vec<u32>]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|s| unigram_entropy(s)).sum::<f64>() / samples.len() as f64
}

/// One measured sampler setting.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalRow {
    /// `ancestral`, `fhs` or `edlm`.
    pub sampler: String,
    /// Steps T (ancestral / EDLM); 0 for FHS, which has none.
    pub steps: usize,
    /// No-change cache on.
    pub cache: bool,
    /// `f64` or `f32-gumbel`.
    pub draw: String,
    /// EDLM candidates k (0 otherwise).
    pub k: usize,
    /// Samples generated.
    pub samples: usize,
    /// Tokens per sample.
    pub len: usize,
    /// gen-PPL under the AR model.
    pub gen_ppl: f64,
    /// Mean per-sample unigram entropy, nats.
    pub entropy: f64,
    /// Denoiser forward passes per sample.
    pub calls_per_sample: f64,
    /// Sampling wall time (AR evaluation excluded), seconds.
    pub seconds: f64,
    /// Samples per second.
    pub samples_per_s: f64,
}

/// x of a row in the plot: log₂ T, or for FHS (no steps) log₂ of its calls per sample.
fn plot_x(r: &EvalRow) -> f64 {
    let steps = if r.steps == 0 {
        r.calls_per_sample
    } else {
        r.steps as f64
    };
    steps.max(1.0).log2()
}

/// Width and height of the gen-PPL plot.
pub const PLOT_SIZE: (u32, u32) = (640, 480);

/// PNG of gen-PPL (y) against log₂ steps (x): one polyline per (sampler, cache, draw, k)
/// series, coloured in order; like the project's other plots it has no text (plotters' text
/// needs system fonts) — the numbers are in the JSON. FHS, with no steps, is a point at its
/// network calls per sample.
pub fn gen_ppl_plot_png(rows: &[EvalRow]) -> Result<Vec<u8>> {
    let err = |e: String| DiffusionError::Io(format!("plot: {e}"));
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (plot_x(r), r.gen_ppl))
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if pts.is_empty() {
        return Err(err("no finite gen-PPL to plot".into()));
    }
    let (x0, x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let (y0, y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.1), a.1.max(p.1)));
    let (x0, x1) = (x0 - 0.5, x1 + 0.5);
    let pad = ((y1 - y0) * 0.1).max(1.0);
    let (y0, y1) = ((y0 - pad).max(0.0), y1 + pad);
    let (w, h) = PLOT_SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(e.to_string()))?;
        for line in [[(x0, y0), (x1, y0)], [(x0, y0), (x0, y1)]] {
            chart
                .draw_series(LineSeries::new(line, BLACK))
                .map_err(|e| err(e.to_string()))?;
        }
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for r in rows {
            let key = format!("{}/{}/{}/{}", r.sampler, r.cache, r.draw, r.k);
            let p = (plot_x(r), r.gen_ppl);
            if !(p.0.is_finite() && p.1.is_finite()) {
                continue;
            }
            match series.iter_mut().find(|s| s.0 == key) {
                Some(s) => s.1.push(p),
                None => series.push((key, vec![p])),
            }
        }
        for (i, (_, mut pts)) in series.into_iter().enumerate() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, colour.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    seqlab_train::plot::encode_png_rgb(&buf, w, h).map_err(err)
}

/// Generates `n` unconditional samples of `len` tokens with `spec` (one batch) and measures
/// them under the AR model `ar` (also EDLM's energy): gen-PPL, entropy, calls, time.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_sampler<D: Denoiser + ?Sized, M: CausalLm, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    spec: &SamplerSpec,
    ar: &M,
    bos: Option<u32>,
    n: usize,
    len: usize,
    rng: &mut R,
) -> Result<(EvalRow, Samples)> {
    let energy = ArEnergy::new(ar, bos);
    evaluate_sampler_with(den, sched, spec, &energy, ar, bos, n, len, rng)
}

/// [`evaluate_sampler`] with another EDLM energy (e.g. the NCE head,
/// [`crate::energy_head::EnergyHead`]); `ar` still scores the samples.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_sampler_with<D: Denoiser + ?Sized, E: EnergyModel + ?Sized, M: CausalLm, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    spec: &SamplerSpec,
    energy: &E,
    ar: &M,
    bos: Option<u32>,
    n: usize,
    len: usize,
    rng: &mut R,
) -> Result<(EvalRow, Samples)> {
    if n == 0 || len < 2 {
        return Err(DiffusionError::Config(format!(
            "eval: need at least 1 sample of at least 2 tokens, got {n} of {len}"
        )));
    }
    let init = crate::sampler::all_masked(len, n, den.mask_id());
    let s = run_sampler(den, sched, spec, Some(energy), &init, n, rng)?;
    let rows: Vec<Vec<u32>> = (0..n).map(|r| s.row(r).to_vec()).collect();
    let g = generative_perplexity(ar, &rows, bos)?;
    let seconds = s.stats.seconds;
    let row = EvalRow {
        sampler: spec.name().into(),
        steps: spec.steps(),
        cache: spec.cache(),
        draw: spec.draw().name().into(),
        k: spec.k(),
        samples: n,
        len,
        gen_ppl: g.perplexity,
        entropy: mean_unigram_entropy(&rows),
        calls_per_sample: s.calls_per_sample(),
        seconds,
        samples_per_s: if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        },
    };
    Ok((row, s))
}

/// The rows as a markdown table.
pub fn markdown_table(rows: &[EvalRow]) -> String {
    let mut out = String::from(
        "| sampler | T | cache | draw | k | gen-PPL | entropy | calls/sample | wall s | samples/s |\n\
         |---|---:|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.3} | {:.1} | {:.2} | {:.2} |\n",
            r.sampler,
            if r.sampler == "fhs" {
                "–".to_string()
            } else {
                r.steps.to_string()
            },
            if r.cache { "yes" } else { "no" },
            r.draw,
            if r.k == 0 {
                "–".to_string()
            } else {
                r.k.to_string()
            },
            r.gen_ppl,
            r.entropy,
            r.calls_per_sample,
            r.seconds,
            r.samples_per_s
        ));
    }
    out
}
