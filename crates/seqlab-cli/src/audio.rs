//! `seqlab audio train|generate`: SaShiMi (or an S4 LM) over 8-bit mu-law audio.
//!
//! - `seqlab audio train --data DIR -o RUN_DIR [--config CFG.json] [--resume]` trains on a
//!   dataset from `seqlab prepare audio` with the generic loop (`seqlab_lm::train`:
//!   metrics.jsonl in nats, loss.png, atomic checkpoints, bit-exact resume). The config's
//!   `model` defaults to `"sashimi"` (`"s4"` also works); the summary reports the NLL in bits
//!   per byte (nats / ln 2; a uniform 8-bit model scores 8). With `"clip_start": true` every row
//!   is the start of a whole clip (as SaShiMi trains on 1 s SC09 clips), so the model learns
//!   where in a clip it is: generation starts at a clip's start, and a model trained only on
//!   short windows anywhere can stay silent for the whole clip.
//! - `seqlab audio generate --model RUN_DIR -n 4 --seconds 1 -o OUT/ [--temperature T]
//!   [--seed S] [--spectrogram]` samples in recurrent mode from the silence code, writes
//!   `sample_{i}.wav` (16 kHz, 16-bit mono, written atomically), prints each sample's NLL under
//!   the model in bits per byte, and with `--spectrogram` a `sample_{i}.png` (log-magnitude
//!   STFT, 256-point Hann frames, hop 64, low frequencies at the bottom). Each clip's
//!   [`audio_stats`](crate::audio_stats) (RMS, envelope CV, spectral flatness, silent frames,
//!   verdict silence / noise / steady / structured) is printed and written to `OUT/stats.json`.

use crate::flag_context::{print_config_changes, with_flag};
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use seqlab_data::{DataKind, TokenDataset};
use seqlab_lm::train::{find_checkpoint, ModelKind};
use seqlab_lm::{load_lm, AnyLm, CausalLm, TrainConfig, TrainOptions};
use seqlab_tokenizer::MuLaw;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Sample rate of everything `seqlab audio` reads and writes.
const SAMPLE_RATE: u32 = 16_000;

/// Train or sample an audio model (SaShiMi over 8-bit mu-law).
#[derive(Debug, clap::Args)]
pub struct AudioArgs {
    #[command(subcommand)]
    command: AudioCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AudioCommand {
    /// Train SaShiMi on a prepared audio dataset (`seqlab prepare audio`).
    Train(AudioTrainArgs),
    /// Generate audio clips with a trained model (recurrent mode).
    Generate(AudioGenerateArgs),
}

#[derive(Debug, clap::Args)]
struct AudioTrainArgs {
    /// Prepared audio dataset directory.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Run directory (metrics.jsonl, loss.png, checkpoint/).
    #[arg(short = 'o', long = "out", value_name = "RUN_DIR")]
    out: PathBuf,
    /// Training configuration JSON (the keys of `seqlab train --config`; `model` defaults to
    /// "sashimi"; SaShiMi keys: d_model, n_layer (per stage), d_state, ssm ("s4d" | "s4legs"),
    /// pool, expand, ff_expand; seq_len must be a multiple of the pooling product; clip_start:
    /// true trains on the first seq_len + 1 samples of whole clips instead of windows starting
    /// anywhere).
    #[arg(long, value_name = "CFG.json")]
    config: Option<PathBuf>,
    /// Continue from RUN_DIR/checkpoint with the run's stored config; a --config or
    /// --max-steps may change only the keys `seqlab train --help` lists (each change printed
    /// and recorded in RUN_DIR/config_changes.jsonl).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start a new run in RUN_DIR even though it holds one, deleting the old run.
    #[arg(long)]
    overwrite: bool,
    /// Override the config's max_steps.
    #[arg(long, value_name = "N")]
    max_steps: Option<u64>,
    /// Stop (with a checkpoint) after this many steps; continue with --resume.
    #[arg(long, value_name = "N")]
    stop_after: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Compute device: `cpu`, `cuda` or `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: seqlab_tensor::DeviceChoice,
}

#[derive(Debug, clap::Args)]
struct AudioGenerateArgs {
    /// A run directory (its checkpoint/ is used) or a model directory.
    #[arg(long, value_name = "RUN_DIR")]
    model: PathBuf,
    /// Number of clips (at most 100,000).
    #[arg(short = 'n', long, default_value_t = 4,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_SAMPLES))]
    num: usize,
    /// Seconds per clip (16,000 samples a second; at most 3600).
    #[arg(long, default_value_t = 1.0, value_parser = crate::bounds::audio_seconds)]
    seconds: f64,
    /// Output directory.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    out: PathBuf,
    /// Sampling temperature (> 0).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Seed (clip i uses seed + i).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write a spectrogram PNG per clip.
    #[arg(long)]
    spectrogram: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs `seqlab audio`.
pub fn run(args: AudioArgs) -> anyhow::Result<()> {
    match args.command {
        AudioCommand::Train(a) => train(a),
        AudioCommand::Generate(a) => generate(a),
    }
}

fn train(args: AudioTrainArgs) -> anyhow::Result<()> {
    let device = seqlab_tensor::select_device(args.device).map_err(|e| with_flag(e, "--device"))?;
    if !args.data.is_dir() {
        bail!("data directory {} does not exist", args.data.display());
    }
    let ds = TokenDataset::open(&args.data).map_err(|e| with_flag(e, "--data"))?;
    if ds.kind() != DataKind::Audio {
        bail!(
            "{} is a text dataset; `seqlab audio train` needs an audio dataset (`seqlab prepare audio WAV_DIR -o DIR`)",
            args.data.display()
        );
    }
    let mut cfg = if let (None, true) = (&args.config, args.resume) {
        // A resume without a config continues with the run's own config, never the defaults.
        seqlab_lm::train::stored_config(&args.out).map_err(|e| with_flag(e, "--resume"))?
    } else {
        audio_config(args.config.as_deref())?
    };
    if !matches!(cfg.model, ModelKind::Sashimi | ModelKind::S4) {
        bail!(
            "`seqlab audio train` trains \"sashimi\" or \"s4\" models, the config says \"{}\"",
            cfg.model.name()
        );
    }
    if let Some(n) = args.max_steps {
        cfg.max_steps = n;
    }
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("bad training config: {e}"))?;
    let opts = TrainOptions {
        data: args.data,
        run_dir: args.out.clone(),
        resume: args.resume,
        overwrite: args.overwrite,
        stop_at: args.stop_after,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };
    let s = seqlab_lm::train_on(&cfg, &opts, &device)?;
    print_config_changes(&opts.run_dir, &s.config_changes);
    let bits = |nats: f64| nats / std::f64::consts::LN_2;
    let last = s.metrics.last();
    eprintln!(
        "trained {} steps on {} in {:.1} s: train NLL {} bits/byte, val NLL {} bits/byte \
         (uniform 8-bit: 8); checkpoint {}",
        s.steps,
        args.device,
        s.seconds,
        last.map_or("-".into(), |r| format!("{:.4}", bits(r.train_loss))),
        s.val_loss.map_or("-".into(), |v| format!("{:.4}", bits(v))),
        args.out.join("checkpoint").display()
    );
    Ok(())
}

/// The audio training config: SaShiMi over 1,024-sample windows, with the keys of `config`
/// (a JSON file) on top.
fn audio_config(config: Option<&Path>) -> anyhow::Result<TrainConfig> {
    // Audio defaults under the file's keys: SaShiMi over 1,024-sample windows.
    let mut json = serde_json::json!({"model": "sashimi", "seq_len": 1024});
    if let Some(path) = config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("bad config {}: {e}", path.display()))?;
        let Some(obj) = v.as_object() else {
            bail!("bad config {}: not a JSON object", path.display());
        };
        for (k, x) in obj {
            json[k] = x.clone();
        }
    }
    TrainConfig::from_json_str(&json.to_string()).map_err(|e| {
        let what = config.map_or("the default config".into(), |p| p.display().to_string());
        anyhow::anyhow!("bad config {what}: {e}")
    })
}

/// splitmix64: a small seeded generator for sampling (deterministic across platforms).
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws from softmax(logits / t) (f64) and returns the id and its log-probability under
/// softmax(logits) (the model's own distribution, for the NLL).
fn sample(logits: &[f32], t: f64, rng: &mut Rng) -> (u32, f64) {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let w: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / t).exp())
        .collect();
    let total: f64 = w.iter().sum();
    let mut u = rng.next_f64() * total;
    let mut id = w.len() - 1;
    for (i, wi) in w.iter().enumerate() {
        if u < *wi {
            id = i;
            break;
        }
        u -= wi;
    }
    let lse = max
        + logits
            .iter()
            .map(|&l| (l as f64 - max).exp())
            .sum::<f64>()
            .ln();
    (id as u32, logits[id] as f64 - lse)
}

/// A RIFF/WAVE file: 16 kHz, 16-bit PCM, mono.
fn wav_bytes(samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    b.extend_from_slice(&(SAMPLE_RATE * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// Writes `bytes` to `path` with `seqlab_io::write_atomic` (temporary file, fsync, rename):
/// on any error — a full disk, a failed rename — the temporary file is removed and `path` is
/// left as it was.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(seqlab_io::write_atomic(path, bytes)?)
}

/// Log-magnitude spectrogram (256-point Hann STFT, hop 64) as an RGB PNG: one column per
/// frame, 129 rows (DC at the bottom), dark = quiet, bright yellow = loud (−100…0 dB).
fn spectrogram_png(x: &[f32]) -> anyhow::Result<Vec<u8>> {
    const N: usize = 256;
    const HOP: usize = 64;
    let bins = N / 2 + 1;
    let frames = if x.len() >= N {
        (x.len() - N) / HOP + 1
    } else {
        1
    };
    let hann: Vec<f64> = (0..N)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N as f64).cos())
        .collect();
    let (cos, sin): (Vec<f64>, Vec<f64>) = (0..N)
        .map(|k| {
            let a = 2.0 * std::f64::consts::PI * k as f64 / N as f64;
            (a.cos(), a.sin())
        })
        .unzip();
    let (w, h) = (frames as u32, bins as u32);
    let mut rgb = vec![0u8; frames * bins * 3];
    for f in 0..frames {
        let frame: Vec<f64> = (0..N)
            .map(|i| x.get(f * HOP + i).copied().unwrap_or(0.0) as f64 * hann[i])
            .collect();
        for k in 0..bins {
            let (mut re, mut im) = (0.0, 0.0);
            for (i, v) in frame.iter().enumerate() {
                let j = (k * i) % N;
                re += v * cos[j];
                im -= v * sin[j];
            }
            let db = 10.0 * ((re * re + im * im) / (N as f64) + 1e-12).log10();
            let t = ((db + 100.0) / 100.0).clamp(0.0, 1.0);
            let row = bins - 1 - k;
            let p = (row * frames + f) * 3;
            rgb[p] = (255.0 * t.sqrt()) as u8;
            rgb[p + 1] = (255.0 * t * t) as u8;
            rgb[p + 2] = (255.0 * (t * (1.0 - t) * 2.0).min(1.0)) as u8;
        }
    }
    seqlab_train::plot::encode_png_rgb(&rgb, w, h).map_err(|e| anyhow::anyhow!("png: {e}"))
}

fn generate(args: AudioGenerateArgs) -> anyhow::Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds must be > 0, got {}", args.seconds);
    }
    if args.num == 0 {
        bail!("-n must be ≥ 1");
    }
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        bail!("--temperature must be > 0, got {}", args.temperature);
    }
    let n_samples = (args.seconds * f64::from(SAMPLE_RATE)).round() as usize;
    if n_samples == 0 {
        bail!("--seconds {} is shorter than one sample", args.seconds);
    }
    if !args.model.exists() {
        bail!("model {} does not exist", args.model.display());
    }
    let dir = find_checkpoint(&args.model).unwrap_or_else(|| args.model.clone());
    let lm = load_lm(&dir).map_err(|e| with_flag(e, "--model"))?;
    let model = lm.model;
    if !matches!(model, AnyLm::Sashimi(_) | AnyLm::S4(_)) || model.vocab_size() != 256 {
        bail!(
            "{} holds a {} model with {} tokens, not an audio model over 256 mu-law codes",
            dir.display(),
            model.kind(),
            model.vocab_size()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let bar = if !args.quiet && std::io::stderr().is_terminal() {
        let b = ProgressBar::new((args.num * n_samples) as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} samples [{elapsed}<{eta}] {msg}")
                .expect("valid template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mu = MuLaw;
    let mut stats_json = Vec::with_capacity(args.num);
    for i in 0..args.num {
        bar.set_message(format!("clip {}/{}", i + 1, args.num));
        let mut rng = Rng(args.seed.wrapping_add(i as u64));
        let (mut logits, mut state) = model.prefill(&[u32::from(MuLaw::SILENCE)])?;
        let mut codes = Vec::with_capacity(n_samples);
        let mut nll = 0.0;
        for j in 0..n_samples {
            let (id, lp) = sample(&logits, args.temperature, &mut rng);
            nll -= lp;
            codes.push(id as u8);
            if j + 1 < n_samples {
                logits = model.step(&mut state, id)?;
            }
            if j % 256 == 0 {
                bar.inc(256.min((n_samples - j) as u64));
            }
        }
        let pcm = mu.decode_i16_slice(&codes);
        let wav = args.out.join(format!("sample_{i}.wav"));
        write_atomic(&wav, &wav_bytes(&pcm))?;
        let bpb = nll / n_samples as f64 / std::f64::consts::LN_2;
        let st = crate::audio_stats::clip_stats(&mu.decode_slice(&codes), SAMPLE_RATE);
        let mut line = format!(
            "{}: NLL {bpb:.4} bits/byte, RMS {:.4}, envelope CV {:.3}, spectral flatness {:.3}, \
             silent frames {:.2} ({})",
            wav.display(),
            st.rms,
            st.envelope_cv,
            st.spectral_flatness,
            st.silent_fraction,
            crate::audio_stats::verdict(&st)
        );
        let mut entry = st.to_json();
        entry["file"] = serde_json::json!(format!("sample_{i}.wav"));
        entry["nll_bits_per_byte"] = serde_json::json!(bpb);
        stats_json.push(entry);
        if args.spectrogram {
            let png = args.out.join(format!("sample_{i}.png"));
            write_atomic(&png, &spectrogram_png(&mu.decode_slice(&codes))?)?;
            line.push_str(&format!(", spectrogram {}", png.display()));
        }
        bar.suspend(|| println!("{line}"));
    }
    bar.finish_and_clear();
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "seconds": args.seconds, "temperature": args.temperature, "seed": args.seed,
        "clips": stats_json,
    }))
    .expect("a JSON value serialises");
    write_atomic(&args.out.join("stats.json"), format!("{text}\n").as_bytes())?;
    Ok(())
}
