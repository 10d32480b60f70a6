//! `seqlab generate`: text generation with any model seqlab loads (`seqlab_lm::load_lm`): a Mamba
//! LM (HF or original mamba_ssm layout), a Transformer LM directory, or a GGUF file. The prompt
//! is prefilled in parallel (scan / attention), then each new token is one recurrent step (SSM
//! state / KV cache); tokens are chosen greedily or sampled (temperature / top-k / top-p, seeded).
//!
//! Output: the generated text streamed to stdout (ids when there is no tokenizer) and a timing
//! line on stderr; or, with `--json`, exactly one JSON object
//! `{"prompt_ids":[…],"generated_ids":[…],"text":…,"prefill_ms":…,"decode_tokens_per_s":…,`
//! `"device":…}` (`text` is null without a tokenizer; `device` is `cpu` or `cuda:N`).

use crate::flag_context::with_flag;
use crate::sampling_args::SamplingArgs;
use anyhow::{bail, Context};
use seqlab_lm::{generate, load_lm_on, CausalLm, GenerateConfig, LmError};
use seqlab_tensor::DeviceChoice;
use seqlab_tokenizer::Tokenizer;
use std::io::Write;
use std::path::PathBuf;

/// Generate text with a Mamba, Transformer or GGUF model.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Model: a directory with config.json + model.safetensors (or model.safetensors.index.json
    /// and its shards) — Mamba (HF or mamba_ssm layout) or Llama-style Transformer — or a .gguf
    /// file.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Prompt text (needs a tokenizer: tokenizer.json in the model directory, the one inside a
    /// GGUF, or --tokenizer).
    #[arg(
        long,
        conflicts_with = "prompt_ids",
        required_unless_present = "prompt_ids"
    )]
    prompt: Option<String>,
    /// Prompt as comma-separated token ids, e.g. `1,2,3`.
    #[arg(long, value_name = "IDS")]
    prompt_ids: Option<String>,
    /// Tokenizer file (default: tokenizer.json in the model directory, when present).
    #[arg(long, value_name = "FILE")]
    tokenizer: Option<PathBuf>,
    /// Most tokens to generate (at most 1,048,576).
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = crate::bounds::count(0, crate::bounds::MAX_NEW_TOKENS))]
    max_new_tokens: usize,
    /// Greedy or sampled decoding, and the seed.
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Stop after generating this id (repeat or comma-separate for several). The tokenizer's
    /// (else the config's) end-of-sequence id is a stop id unless --ignore-eos.
    #[arg(long = "stop-id", value_name = "ID", value_delimiter = ',')]
    stop_ids: Vec<u32>,
    /// Do not stop at the end-of-sequence token.
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Compute device: `cpu`, or `cuda` / `cuda:N` for Mamba and dense Transformer models
    /// (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// Parses `1,2,3` (spaces allowed) into ids.
fn parse_ids(s: &str) -> anyhow::Result<Vec<u32>> {
    let ids = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u32>()
                .with_context(|| format!("--prompt-ids: `{t}` is not a token id"))
        })
        .collect::<anyhow::Result<Vec<u32>>>()?;
    if ids.is_empty() {
        bail!("--prompt-ids is empty: give at least one token id");
    }
    Ok(ids)
}

/// Runs `seqlab generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let choice = args.device;
    let device = seqlab_tensor::select_device(choice).map_err(|e| with_flag(e, "--device"))?;
    let sampler = args.sampling.sampler()?;
    let prompt_ids = args.prompt_ids.as_deref().map(parse_ids).transpose()?;

    let lm = load_lm_on(&args.model, &device).map_err(|e| match e {
        // A kind that runs on the CPU only, asked for on a GPU: say which flag fixes it.
        LmError::Unsupported(_) if !device.is_cpu() => {
            with_flag(anyhow::anyhow!("{e}; use `--device cpu`"), "--model")
        }
        e => with_flag(e, "--model"),
    })?;
    let model = &lm.model;
    let tokenizer: Option<Box<dyn Tokenizer>> = match &args.tokenizer {
        Some(p) => {
            let given = seqlab_tokenizer::load(p).map_err(|e| with_flag(e, "--tokenizer"))?;
            // The model's own tokenizer is the truth: another one would map ids to other text.
            if let Some(own) = &lm.tokenizer {
                if let Err(diff) = seqlab_tokenizer::same_vocabulary(given.as_ref(), own.as_ref()) {
                    bail!(
                        "mismatched tokenizers: --tokenizer {} is not the model {}'s own \
                         tokenizer ({diff})",
                        p.display(),
                        args.model.display()
                    );
                }
            }
            Some(given)
        }
        None => lm.tokenizer,
    };
    if let Some(t) = &tokenizer {
        if let Err(diff) =
            seqlab_tokenizer::check_model_vocabulary(model.vocab_size(), t.vocab_size())
        {
            bail!(
                "mismatched vocabularies for the model {}: {diff}",
                args.model.display()
            );
        }
    }
    let prompt = match (prompt_ids, &args.prompt, &tokenizer) {
        (Some(ids), _, _) => ids,
        (None, Some(text), Some(tok)) => tok.encode(text)?,
        (None, Some(_), None) => bail!(
            "--prompt needs a tokenizer, but the model {} has none; pass --tokenizer FILE or give --prompt-ids",
            args.model.display()
        ),
        (None, None, _) => bail!("give --prompt TEXT or --prompt-ids IDS"),
    };
    if prompt.is_empty() {
        bail!("the prompt encodes to no tokens");
    }

    let mut stop_ids = args.stop_ids.clone();
    if !args.ignore_eos {
        let eos = tokenizer
            .as_ref()
            .and_then(|t| t.special_ids().eos)
            .or(lm.eos_id);
        stop_ids.extend(eos);
    }
    let cfg = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        sampler,
        seed: args.sampling.seed,
        stop_ids,
        vocab_limit: tokenizer
            .as_ref()
            .map(|t| t.vocab_size())
            .filter(|&v| v < model.vocab_size()),
    };

    // `Stdout` (not a lock) so the callback is `Send`: the decode loop may run on another thread.
    let mut so = std::io::stdout();
    let mut io_err: Option<std::io::Error> = None;
    let mut so_far: Vec<u32> = Vec::new();
    let mut printed = String::new();
    let out = generate(model, &prompt, &cfg, |id| {
        if args.json || io_err.is_some() {
            return Ok(());
        }
        so_far.push(id);
        let piece = match &tokenizer {
            // Decode everything so far and print the new suffix: byte-level BPE pieces may
            // split a UTF-8 character.
            Some(t) => match t.decode(&so_far) {
                Ok(text) if text.starts_with(&printed) && !text.ends_with('\u{FFFD}') => {
                    let new = text[printed.len()..].to_string();
                    printed = text;
                    new
                }
                _ => String::new(),
            },
            None => format!("{}{id}", if so_far.len() > 1 { " " } else { "" }),
        };
        if let Err(e) = so.write_all(piece.as_bytes()).and_then(|_| so.flush()) {
            io_err = Some(e);
        }
        Ok(())
    })?;
    if let Some(e) = io_err {
        return Err(e).context("cannot write to stdout");
    }
    let text = match &tokenizer {
        Some(t) => Some(t.decode(&out.generated_ids)?),
        None => None,
    };
    if args.json {
        let line = serde_json::json!({
            "prompt_ids": prompt,
            "generated_ids": out.generated_ids,
            "text": text,
            "prefill_ms": out.prefill_ms,
            "decode_tokens_per_s": out.decode_tokens_per_s,
            "device": choice.to_string(),
        });
        writeln!(so, "{line}").context("cannot write to stdout")?;
    } else {
        if let Some(text) = &text {
            // Whatever the streaming held back (a trailing partial character).
            if let Some(rest) = text.strip_prefix(printed.as_str()) {
                write!(so, "{rest}").context("cannot write to stdout")?;
            }
        }
        writeln!(so).context("cannot write to stdout")?;
        eprintln!(
            "prefill {} tokens: {:.2} ms; decode: {} tokens, {:.1} tokens/s; on {choice}",
            prompt.len(),
            out.prefill_ms,
            out.generated_ids.len(),
            out.decode_tokens_per_s
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_ids_parse() {
        assert_eq!(parse_ids("1, 2,3").unwrap(), vec![1, 2, 3]);
        assert!(parse_ids("1,x").unwrap_err().to_string().contains("`x`"));
        assert!(parse_ids(" , ").is_err());
    }
}
