//! `seqlab tokenizer`: train a tokenizer on text files, encode and decode with one, show one.
//!
//! Every tokenizer file that `seqlab_tokenizer::load` reads works here: an HF `tokenizer.json`
//! (GPT-2, GPT-NeoX, a trained BPE), a seqlab char/byte JSON, or GPT-2's `encoder.json` with its
//! `vocab.bpe` beside it.

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use seqlab_tokenizer::{
    load, train_bpe, BpeTrainOptions, ByteTokenizer, CharTokenizer, Tokenizer,
    BYTE_DEFAULT_SPECIALS, CHAR_DEFAULT_SPECIALS, GPT2_ENDOFTEXT,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Train, inspect and apply tokenizers.
#[derive(Debug, clap::Args)]
pub struct TokenizerArgs {
    #[command(subcommand)]
    command: TokenizerCommand,
}

#[derive(Debug, Subcommand)]
enum TokenizerCommand {
    /// Train a tokenizer on UTF-8 text files and save it (`-o tok.json`).
    Train(TrainArgs),
    /// Print the token ids of a text.
    Encode(EncodeArgs),
    /// Print the text of token ids.
    Decode(DecodeArgs),
    /// Show a tokenizer's kind, vocabulary size and special ids.
    Info(InfoArgs),
}

/// Which tokenizer `train` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Byte-level BPE (GPT-2 style), saved as an HF tokenizer.json.
    Bpe,
    /// Character-level: the distinct characters of the corpus.
    Char,
    /// Byte-level: the 256 byte values.
    Byte,
}

#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// Text files to learn from (UTF-8).
    #[arg(required = true, value_name = "FILES")]
    files: Vec<PathBuf>,
    /// Where to write the tokenizer.
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// Kind of tokenizer.
    #[arg(long, value_enum, default_value_t = Kind::Bpe)]
    kind: Kind,
    /// Vocabulary size, special tokens included. Required for bpe (a small corpus may give
    /// fewer); for char, keeps the most frequent characters; not used for byte.
    #[arg(long, value_name = "N")]
    vocab_size: Option<usize>,
    /// bpe: merge only pairs seen at least this often.
    #[arg(long, default_value_t = 2, value_name = "F")]
    min_frequency: u64,
    /// Special tokens, repeatable, first gets id 0 (default: <|endoftext|>, plus <unk> for char).
    #[arg(long = "special", value_name = "TOKEN")]
    specials: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct EncodeArgs {
    /// Tokenizer file.
    #[arg(short, long, value_name = "FILE")]
    tokenizer: PathBuf,
    /// Text to encode (or use --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    text: Option<String>,
    /// Encode the content of this UTF-8 file instead of TEXT.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Print a JSON array instead of comma-separated ids.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct DecodeArgs {
    /// Tokenizer file.
    #[arg(short, long, value_name = "FILE")]
    tokenizer: PathBuf,
    /// Token ids, separated by commas and/or spaces, e.g. `15496,995` (a JSON array works too).
    #[arg(required = true, num_args = 1.., value_name = "IDS")]
    ids: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct InfoArgs {
    /// Tokenizer file.
    #[arg(value_name = "FILE")]
    tokenizer: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Run one `seqlab tokenizer` subcommand.
pub fn run(args: TokenizerArgs) -> anyhow::Result<()> {
    match args.command {
        TokenizerCommand::Train(a) => train(a),
        TokenizerCommand::Encode(a) => encode(a),
        TokenizerCommand::Decode(a) => decode(a),
        TokenizerCommand::Info(a) => info(a),
    }
}

fn open(path: &Path) -> anyhow::Result<Box<dyn Tokenizer>> {
    Ok(load(path)?)
}

/// Fail before a long training run if the output cannot be created where asked.
fn check_output_dir(output: &Path) -> anyhow::Result<()> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "cannot write {}: {} is not a directory",
            output.display(),
            dir.display()
        ),
        Err(e) => bail!(
            "cannot write {}: folder {}: {e}",
            output.display(),
            dir.display()
        ),
    }
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    check_output_dir(&args.output)?;
    let specials = |defaults: &[&str]| -> Vec<String> {
        if args.specials.is_empty() {
            defaults.iter().map(|s| (*s).to_owned()).collect()
        } else {
            args.specials.clone()
        }
    };
    let start = Instant::now();
    let tok: Box<dyn Tokenizer> = match args.kind {
        Kind::Bpe => {
            let Some(vocab_size) = args.vocab_size else {
                bail!("--vocab-size is required for --kind bpe");
            };
            let options = BpeTrainOptions {
                vocab_size,
                min_frequency: args.min_frequency,
                special_tokens: specials(&[GPT2_ENDOFTEXT]),
                show_progress: false,
            };
            let bytes: u64 = args
                .files
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum();
            let bar = spinner(format!(
                "training byte-level BPE (vocab {vocab_size}) on {} file(s), {:.1} MB",
                args.files.len(),
                bytes as f64 / 1e6
            ));
            let result = train_bpe(&args.files, &options);
            bar.finish_and_clear();
            Box::new(result?)
        }
        Kind::Char => Box::new(CharTokenizer::from_files(
            &args.files,
            &specials(CHAR_DEFAULT_SPECIALS),
            args.vocab_size,
        )?),
        Kind::Byte => {
            let tok = ByteTokenizer::new(&specials(BYTE_DEFAULT_SPECIALS))?;
            // Check the corpus as the other kinds do, so a bad file is reported here too.
            let mut total = 0;
            for f in &args.files {
                total += read_corpus_file(f)?.len();
            }
            if total == 0 {
                let names: Vec<String> =
                    args.files.iter().map(|f| f.display().to_string()).collect();
                bail!("empty corpus: no text in {}", names.join(", "));
            }
            Box::new(tok)
        }
    };
    tok.save(&args.output)?;

    let (mut bytes, mut tokens) = (0usize, 0usize);
    for f in &args.files {
        let text = read_corpus_file(f)?;
        bytes += text.len();
        tokens += tok.encode(&text)?.len();
    }
    println!(
        "trained {} tokenizer in {:.1} s: vocab size {}{} -> {}",
        tok.kind(),
        start.elapsed().as_secs_f64(),
        tok.vocab_size(),
        match (args.kind, args.vocab_size) {
            (Kind::Byte, Some(_)) => " (--vocab-size is not used for --kind byte)".into(),
            (_, Some(n)) if n != tok.vocab_size() => format!(" (asked {n})"),
            _ => String::new(),
        },
        args.output.display()
    );
    println!(
        "compression on the training corpus: {bytes} bytes -> {tokens} tokens = {:.3} bytes/token",
        bytes as f64 / tokens.max(1) as f64
    );
    Ok(())
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn read_corpus_file(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not valid UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn encode(args: EncodeArgs) -> anyhow::Result<()> {
    let tok = open(&args.tokenizer)?;
    let text = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => read_corpus_file(f)?,
        (None, None) => bail!("give the TEXT to encode or --file PATH"),
    };
    let ids = tok.encode(&text)?;
    if args.json {
        println!("{}", serde_json::to_string(&ids)?);
    } else {
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("{}", ids.join(","));
    }
    Ok(())
}

/// Ids from arguments like `15496,995`, `15496 995` or `[15496, 995]`.
fn parse_ids(args: &[String]) -> anyhow::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for arg in args {
        let arg = arg.trim().trim_start_matches('[').trim_end_matches(']');
        for part in arg.split(|c: char| c == ',' || c.is_whitespace()) {
            if part.is_empty() {
                continue;
            }
            let id = part.parse::<u32>().map_err(|_| {
                anyhow::anyhow!(
                    "invalid token id {part:?} in IDS: expected non-negative integers separated \
                     by commas, e.g. 15496,995"
                )
            })?;
            ids.push(id);
        }
    }
    Ok(ids)
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let ids = parse_ids(&args.ids)?;
    let tok = open(&args.tokenizer)?;
    let text = tok
        .decode(&ids)
        .with_context(|| format!("cannot decode with {}", args.tokenizer.display()))?;
    println!("{text}");
    Ok(())
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let tok = open(&args.tokenizer)?;
    let special = tok.special_ids();
    if args.json {
        let value = serde_json::json!({
            "file": args.tokenizer.display().to_string(),
            "kind": tok.kind(),
            "vocab_size": tok.vocab_size(),
            "special_ids": special,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("file: {}", args.tokenizer.display());
    println!("kind: {}", tok.kind());
    println!("vocab size: {}", tok.vocab_size());
    for (name, id) in [
        ("bos", special.bos),
        ("eos", special.eos),
        ("pad", special.pad),
        ("unk", special.unk),
        ("mask", special.mask),
    ] {
        match id {
            Some(id) => {
                let text = tok.decode(&[id]).unwrap_or_default();
                println!("{name}: {id} {text:?}");
            }
            None => println!("{name}: none"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ids;

    #[test]
    fn ids_in_several_spellings() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_ids(&s(&["15496,995"])).unwrap(), vec![15496, 995]);
        assert_eq!(parse_ids(&s(&["15496", "995"])).unwrap(), vec![15496, 995]);
        assert_eq!(parse_ids(&s(&["[15496, 995]"])).unwrap(), vec![15496, 995]);
        assert!(parse_ids(&s(&["1,-2"])).is_err());
        assert!(parse_ids(&s(&["x"])).is_err());
    }
}
