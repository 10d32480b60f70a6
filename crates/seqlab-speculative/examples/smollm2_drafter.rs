//! Tools that build the SmolLM2-135M drafter in `models/smollm2-drafter/` (run by
//! `models/smollm2-drafter/build.sh`):
//!
//! ```sh
//! smollm2_drafter tokenizer --gguf F.gguf -o tokenizer.json
//! smollm2_drafter distill --gguf F.gguf --seconds 540 --prompt-tokens 16 --new-tokens 96 \
//!     -o distill.txt TEXT_FILES...
//! smollm2_drafter half --dir MODEL_DIR
//! smollm2_drafter expand --compact CKPT_DIR --id-map id_map.json --vocab 49152 -o MODEL_DIR
//! ```
//!
//! - `tokenizer`: writes the byte-level BPE embedded in the GGUF (`tokenizer.ggml.*`) as a
//!   standard Hugging Face `tokenizer.json`, so `seqlab prepare` tokenizes text exactly as the
//!   big model does and `seqlab speculate` accepts the pair.
//! - `distill`: sequence-level knowledge distillation (Kim & Rush 2016): the big model's greedy
//!   continuations of passages of public text become training text for the drafter, so the
//!   drafter learns the big model's own greedy choices (what speculative decoding accepts).
//!   Prompts are `--prompt-tokens` tokens taken at evenly spaced offsets of the text files
//!   (round-robin over the files); each line of the output is one prompt plus its continuation.
//!   Stops when `--seconds` have passed (the line in progress is finished) or at `--max-prompts`.
//! - `half`: rewrites `model.safetensors` with every tensor in f16 (seqlab's loaders cast
//!   half-precision checkpoints to f32 on load), halving the file of a vocabulary-heavy model.
//! - `expand`: turns a Mamba trained on a compact vocabulary (`compact_vocab.py`: the K most
//!   frequent SmolLM2 ids, plus one "rare" id K for all others) into a model over the full
//!   vocabulary: embedding row `id_map[j]` = compact row j; every id outside the map gets a zero
//!   row (tied lm_head: logit 0, input embedding 0), so the drafter can be paired with SmolLM2.
//!   The rare row is dropped. Weights are written in f16.

use seqlab_lm::gguf::load_gguf;
use seqlab_lm::CausalLm;
use seqlab_tensor::argmax;
use seqlab_tensor::candle_core::{DType, Device};
use seqlab_tokenizer::Tokenizer;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn usage() -> String {
    "usage: smollm2_drafter tokenizer --gguf F -o OUT | distill --gguf F [--seconds S] \
     [--prompt-tokens P] [--new-tokens N] [--max-prompts M] -o OUT FILES... | half --dir DIR | \
     expand --compact DIR --id-map FILE [--vocab V] -o DIR"
        .into()
}

/// `--name value` flags and the positional arguments.
struct Args {
    flags: HashMap<String, String>,
    rest: Vec<String>,
}

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Res<Self> {
        let (mut flags, mut rest) = (HashMap::new(), Vec::new());
        let mut it = args.peekable();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                flags.insert(name.to_string(), v);
            } else {
                rest.push(a);
            }
        }
        Ok(Self { flags, rest })
    }

    fn path(&self, name: &str) -> Res<PathBuf> {
        Ok(self
            .flags
            .get(name)
            .ok_or_else(|| format!("--{name} is required; {}", usage()))?
            .into())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Res<T> {
        match self.flags.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v} is not a number").into()),
        }
    }
}

fn tokenizer(a: &Args) -> Res<()> {
    let (_, tok) = load_gguf(&a.path("gguf")?)?;
    let out = a.path("o")?;
    tok.save(&out)?;
    // The export must tokenize like the original (the pair check in `seqlab speculate`).
    let back = seqlab_tokenizer::load(&out)?;
    let probe = "The Mole had been working very hard all the morning, 1908 — \"Bother!\"";
    if back.encode(probe)? != tok.encode(probe)? || back.vocab_size() != tok.vocab_size() {
        return Err(format!("{} does not encode like the GGUF tokenizer", out.display()).into());
    }
    println!("wrote {} ({} tokens)", out.display(), tok.vocab_size());
    Ok(())
}

fn distill(a: &Args) -> Res<()> {
    let (lm, tok) = load_gguf(&a.path("gguf")?)?;
    let out = a.path("o")?;
    let seconds: f64 = a.num("seconds", 540.0)?;
    let p_len: usize = a.num("prompt-tokens", 16)?;
    let n_new: usize = a.num("new-tokens", 96)?;
    let max_prompts: usize = a.num("max-prompts", usize::MAX)?;
    let eos = lm.config().eos_token_id;
    if a.rest.is_empty() {
        return Err(format!("no text files; {}", usage()).into());
    }
    // Each file's ids, then prompts at evenly spaced offsets, round-robin over files.
    let mut docs = Vec::new();
    for f in &a.rest {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
        let ids = tok.encode(&text)?;
        if ids.len() > 4 * p_len {
            docs.push(ids);
        }
    }
    if docs.is_empty() {
        return Err("the text files are too short for one prompt".into());
    }
    let per_doc = 8;
    let mut prompts = Vec::new();
    for k in 0..per_doc {
        for ids in &docs {
            let span = ids.len() - p_len;
            // Offsets k/8 + 1/16 of the way in, so prompts avoid the opening formalities.
            let at = span * (2 * k + 1) / (2 * per_doc);
            prompts.push(ids[at..at + p_len].to_vec());
        }
    }
    let t0 = Instant::now();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    let (mut lines, mut generated) = (0usize, 0usize);
    for prompt in prompts.iter().take(max_prompts) {
        if t0.elapsed().as_secs_f64() >= seconds {
            break;
        }
        let (logits, mut state) = lm.prefill(prompt)?;
        let mut ids = prompt.clone();
        let mut next = argmax(&logits)?;
        for i in 0..n_new {
            if Some(next) == eos {
                break;
            }
            ids.push(next);
            generated += 1;
            if i + 1 < n_new {
                next = argmax(&lm.step(&mut state, next)?)?;
            }
        }
        let text = tok.decode(&ids)?.replace(['\n', '\r'], " ");
        writeln!(file, "{}", text.trim())?;
        file.flush()?;
        lines += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "wrote {} lines, {generated} generated tokens in {secs:.0} s ({:.1} tok/s) to {}",
        lines,
        generated as f64 / secs,
        out.display()
    );
    Ok(())
}

fn half(a: &Args) -> Res<()> {
    let path = a.path("dir")?.join("model.safetensors");
    let tensors = seqlab_tensor::load(&path, &Device::Cpu)?;
    let mut out = HashMap::with_capacity(tensors.len());
    for (name, t) in tensors {
        out.insert(name, t.to_dtype(DType::F16)?);
    }
    seqlab_tensor::save_atomic(&path, &out)?;
    println!(
        "{}: {} tensors in f16, {} bytes",
        path.display(),
        out.len(),
        std::fs::metadata(&path)?.len()
    );
    Ok(())
}

fn expand(a: &Args) -> Res<()> {
    let compact = a.path("compact")?;
    let out = a.path("o")?;
    let vocab: usize = a.num("vocab", 49152)?;
    let id_map: Vec<usize> = serde_json::from_str(&std::fs::read_to_string(a.path("id-map")?)?)?;
    if let Some(bad) = id_map.iter().find(|&&i| i >= vocab) {
        return Err(format!("id map names id {bad}, outside the vocabulary of {vocab}").into());
    }
    let tensors = seqlab_tensor::load(compact.join("model.safetensors"), &Device::Cpu)?;
    let mut outt = HashMap::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = if name.ends_with("embeddings.weight")
            || name.ends_with("embedding.weight")
            || name == "lm_head.weight"
        {
            let (rows, d) = t.dims2()?;
            if rows != id_map.len() + 1 {
                return Err(format!(
                    "{name} has {rows} rows; the id map has {} ids + the rare id",
                    id_map.len()
                )
                .into());
            }
            let src: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let mut full = vec![0f32; vocab * d];
            for (j, &id) in id_map.iter().enumerate() {
                full[id * d..(id + 1) * d].copy_from_slice(&src[j * d..(j + 1) * d]);
            }
            seqlab_tensor::candle_core::Tensor::from_vec(full, (vocab, d), &Device::Cpu)?
        } else {
            t
        };
        outt.insert(name, t.to_dtype(DType::F16)?);
    }
    std::fs::create_dir_all(&out)?;
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(compact.join("config.json"))?)?;
    cfg["vocab_size"] = vocab.into();
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&cfg)? + "\n",
    )?;
    seqlab_tensor::save_atomic(out.join("model.safetensors"), &outt)?;
    println!(
        "{}: {} of {vocab} ids from the compact model, {} bytes of f16 weights",
        out.display(),
        id_map.len(),
        std::fs::metadata(out.join("model.safetensors"))?.len()
    );
    Ok(())
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().ok_or_else(usage)?;
    let a = Args::parse(args)?;
    match cmd.as_str() {
        "tokenizer" => tokenizer(&a),
        "distill" => distill(&a),
        "half" => half(&a),
        "expand" => expand(&a),
        _ => Err(usage().into()),
    }
}
