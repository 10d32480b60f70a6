//! `seqlab prepare text|audio`: corpora and WAV folders → memory-mapped token shards (seqlab-data).

use anyhow::Context;
use seqlab_data::{
    collect_text_files, prepare_audio, prepare_text_inputs, AudioOptions, Meta, Split, TextInput,
    TextOptions, SAMPLE_NAME,
};
use std::path::PathBuf;
use std::time::Instant;

/// Turn text files or a WAV folder into memory-mapped token shards + meta.json.
#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    #[command(subcommand)]
    command: PrepareCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PrepareCommand {
    /// Tokenize text files into u16/u32 token shards (train/val) + meta.json.
    #[command(
        after_help = "Each file is one document; the last --val-fraction of each file's tokens \
                      form the val split. With no FILES, the bundled sample (Hamlet) is used.\n\
                      Example: seqlab prepare text --tokenizer datasets/tokenizers/gpt2/encoder.json \
                      datasets/sample -o data/hamlet"
    )]
    Text(TextArgs),
    /// Mu-law encode a folder of 16 kHz mono WAV files into fixed-length clips (train/val/test).
    #[command(
        after_help = "WAV_DIR/{train,val,test}/ subfolders, if present, define the splits; \
                      otherwise files are split by a hash of their name. Nothing is resampled: \
                      convert other rates first (sox in.wav -r 16000 -c 1 out.wav).\n\
                      Example: seqlab prepare audio datasets/generated/digits -o data/digits"
    )]
    Audio(AudioArgs),
}

#[derive(Debug, clap::Args)]
struct TextArgs {
    /// Tokenizer: an HF tokenizer.json, a file from `seqlab tokenizer train`, or a GPT-2
    /// encoder.json (with vocab.bpe beside it).
    #[arg(long, short = 't', value_name = "FILE")]
    tokenizer: PathBuf,
    /// Text files, or directories (every *.txt below them, sorted). Default: the bundled sample.
    #[arg(value_name = "FILES")]
    files: Vec<PathBuf>,
    /// Output directory (created if needed).
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Fraction of each file's tokens (its end) that goes to the val split, in (0, 1): training
    /// evaluates on the val split, so it cannot be empty.
    #[arg(long, default_value_t = 0.05, value_name = "F")]
    val_fraction: f64,
    /// Maximum tokens per shard file.
    #[arg(long, default_value_t = 8 << 20, value_name = "N")]
    shard_tokens: usize,
    /// Do not append the tokenizer's end-of-text token after each file.
    #[arg(long)]
    no_eos: bool,
}

#[derive(Debug, clap::Args)]
struct AudioArgs {
    /// Folder of 16 kHz mono WAV files (searched recursively).
    #[arg(value_name = "WAV_DIR")]
    wav_dir: PathBuf,
    /// Output directory (created if needed).
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Clip length in seconds (16000 samples per second).
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    clip_seconds: f64,
    /// Distance between clip starts in long files, in seconds (default: the clip length).
    #[arg(long, value_name = "S")]
    hop_seconds: Option<f64>,
    /// Fraction of files for val when WAV_DIR has no split subfolders.
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    val_fraction: f64,
    /// Fraction of files for test when WAV_DIR has no split subfolders.
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    test_fraction: f64,
    /// Refuse (before writing anything) when the clips would take more than this many times
    /// the bytes of the WAV files: a hop much shorter than the clip copies every sample into
    /// clip/hop clips.
    #[arg(long, default_value_t = seqlab_data::DEFAULT_MAX_GROWTH, value_name = "X")]
    max_growth: f64,
}

/// Run `seqlab prepare ...`.
pub fn run(args: PrepareArgs) -> anyhow::Result<()> {
    match args.command {
        PrepareCommand::Text(a) => run_text(a),
        PrepareCommand::Audio(a) => run_audio(a),
    }
}

fn run_text(args: TextArgs) -> anyhow::Result<()> {
    let inputs: Vec<TextInput> = if args.files.is_empty() {
        eprintln!("no FILES given: using the bundled sample {SAMPLE_NAME}");
        vec![TextInput::sample()]
    } else {
        collect_text_files(&args.files)?
            .into_iter()
            .map(TextInput::File)
            .collect()
    };
    if !(args.val_fraction.is_finite() && args.val_fraction > 0.0 && args.val_fraction < 1.0) {
        anyhow::bail!(
            "--val-fraction must be in (0, 1), got {}: `seqlab train` evaluates on the val split, \
             which would be empty",
            args.val_fraction
        );
    }
    let tokenizer = seqlab_tokenizer::load(&args.tokenizer)
        .with_context(|| format!("cannot load tokenizer {}", args.tokenizer.display()))?;
    let options = TextOptions {
        val_fraction: args.val_fraction,
        shard_tokens: args.shard_tokens,
        eos_between_docs: !args.no_eos,
        progress: true,
    };
    let start = Instant::now();
    let meta = prepare_text_inputs(
        tokenizer.as_ref(),
        &args.tokenizer,
        &inputs,
        &args.out,
        &options,
    )?;
    let secs = start.elapsed().as_secs_f64();
    let text = meta.text.as_ref().expect("text dataset");
    let bytes: u64 = text.sources.iter().map(|s| s.bytes).sum();
    let tokens = meta.total_tokens();
    println!(
        "prepared {} ({} file{}, {}, {} tokenizer, vocab {})",
        args.out.display(),
        text.sources.len(),
        if text.sources.len() == 1 { "" } else { "s" },
        human_bytes(bytes),
        meta.tokenizer.kind,
        meta.vocab_size
    );
    print_splits(&meta, "tokens");
    println!(
        "  dtype {}, {:.2} bytes of text per token, {:.0} tokens/s ({:.2} s)",
        meta.dtype,
        bytes as f64 / tokens.max(1) as f64,
        tokens as f64 / secs.max(1e-9),
        secs
    );
    Ok(())
}

fn run_audio(args: AudioArgs) -> anyhow::Result<()> {
    let samples = |secs: f64, what: &str| -> anyhow::Result<usize> {
        let n = (secs * f64::from(seqlab_data::SAMPLE_RATE)).round();
        if !(secs.is_finite() && (2.0..=1e9).contains(&n)) {
            anyhow::bail!("--{what} must be at least 2 samples (1/8000 s), got {secs}");
        }
        Ok(n as usize)
    };
    let options = AudioOptions {
        clip_samples: samples(args.clip_seconds, "clip-seconds")?,
        hop_samples: args
            .hop_seconds
            .map(|h| samples(h, "hop-seconds"))
            .transpose()?,
        val_fraction: args.val_fraction,
        test_fraction: args.test_fraction,
        max_growth: args.max_growth,
        progress: true,
        ..AudioOptions::default()
    };
    let start = Instant::now();
    let meta = prepare_audio(&args.wav_dir, &args.out, &options)?;
    let secs = start.elapsed().as_secs_f64();
    let audio = meta.audio.as_ref().expect("audio dataset");
    println!(
        "prepared {} ({} WAV files, {} Hz, clips of {} samples, mu-law μ={})",
        args.out.display(),
        audio.sources.len(),
        audio.sample_rate,
        audio.clip_samples,
        audio.mu
    );
    print_splits(&meta, "samples");
    println!(
        "  dtype {}, split {}; {:.0} samples/s ({:.2} s)",
        meta.dtype,
        if audio.split_rule.starts_with("by subfolder") {
            "by subfolder"
        } else {
            "by file-name hash"
        },
        meta.total_tokens() as f64 / secs.max(1e-9),
        secs
    );
    Ok(())
}

/// One line per split: tokens, shards, documents or clips.
fn print_splits(meta: &Meta, unit: &str) {
    let (one, many) = if meta.audio.is_some() {
        ("clip", "clips")
    } else {
        ("doc", "docs")
    };
    for split in Split::ALL {
        if let Some(s) = meta.split(split) {
            println!(
                "  {:<5} {:>12} {unit} in {} shard{}, {} {}",
                split.name(),
                s.tokens,
                s.shards.len(),
                if s.shards.len() == 1 { "" } else { "s" },
                s.docs,
                if s.docs == 1 { one } else { many }
            );
        }
    }
}

/// `1.2 MB`-style sizes.
fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}
