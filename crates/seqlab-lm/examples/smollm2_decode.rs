//! SmolLM2-135M-Instruct (GGUF Q4_1) through seqlab: load, perplexity of a prose paragraph,
//! and decode speed at batch 1 (prompt prefill, then greedy `CausalLm::step`s, timed), and the
//! time of a prefill of 7 and of all the prose's tokens.
//! seqlab's side of `benches/compare/smollm2.sh`.
//!
//! ```sh
//! datasets/fetch_smollm2.sh
//! cargo run --release -p seqlab-lm --example smollm2_decode -- \
//!     [--gguf FILE] [--steps 128] [--runs 3] [--ids-out ids.json]
//! ```
//!
//! `--ids-out` writes the token ids used (prompt and perplexity text) for the candle
//! comparison, so both sides run on identical inputs. The last line printed is one JSON object.

use seqlab_lm::gguf::{load_gguf, GgufTokenizer};
use seqlab_lm::transformer::TransformerLm;
use seqlab_lm::CausalLm;
use seqlab_tensor::argmax;
use seqlab_tokenizer::Tokenizer;
use std::path::PathBuf;
use std::time::Instant;

/// Opening of "The Wind in the Willows" (Kenneth Grahame, 1908; public domain): the held-out
/// prose whose perplexity is measured (the same text as `tests/gguf.rs`).
const PROSE: &str = "The Mole had been working very hard all the morning, spring-cleaning his \
little home. First with brooms, then with dusters; then on ladders and steps and chairs, with a \
brush and a pail of whitewash; till he had dust in his throat and eyes, and splashes of \
whitewash all over his black fur, and an aching back and weary arms. Spring was moving in the \
air above and in the earth below and around him, penetrating even his dark and lowly little \
house with its spirit of divine discontent and longing. It was small wonder, then, that he \
suddenly flung down his brush on the floor, said \"Bother!\" and \"O blow!\" and also \"Hang \
spring-cleaning!\" and bolted out of the house without even waiting to put on his coat. \
Something up above was calling him imperiously, and he made for the steep little tunnel which \
answered in his case to the gravelled carriage-drive owned by animals whose residences are \
nearer to the sun and air. So he scraped and scratched and scrabbled and scrooged and then he \
scrooged again and scrabbled and scratched and scraped, working busily with his little paws \
and muttering to himself, \"Up we go! Up we go!\" till at last, pop! his snout came out into \
the sunlight, and he found himself rolling in the warm grass of a great meadow.";

/// The decode prompt (16 tokens or so of plain English).
const PROMPT: &str =
    "Once upon a time, in a small village at the edge of a great forest, there lived";

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// exp(mean NLL) of `ids[1..]`, one causal pass, log-softmax in f64.
fn perplexity(lm: &TransformerLm, ids: &[u32]) -> Res<f64> {
    let v = lm.config().vocab_size;
    let logits: Vec<f32> = lm.forward_causal(ids, 1, None)?.flatten_all()?.to_vec1()?;
    let mut nll = 0.0;
    for (i, &next) in ids.iter().enumerate().skip(1) {
        let row = &logits[(i - 1) * v..i * v];
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        nll += lse - row[next as usize] as f64;
    }
    Ok((nll / (ids.len() - 1) as f64).exp())
}

/// Prefill `prompt`, then `steps` greedy steps; (generated ids, prefill s, decode s).
fn greedy(lm: &TransformerLm, prompt: &[u32], steps: usize) -> Res<(Vec<u32>, f64, f64)> {
    let t0 = Instant::now();
    let (logits, mut state) = lm.prefill(prompt)?;
    let prefill = t0.elapsed().as_secs_f64();
    let mut next = argmax(&logits)?;
    let mut out = vec![next];
    let t1 = Instant::now();
    for _ in 0..steps {
        let logits = lm.step(&mut state, next)?;
        next = argmax(&logits)?;
        out.push(next);
    }
    Ok((out, prefill, t1.elapsed().as_secs_f64()))
}

fn main() -> Res<()> {
    let mut gguf = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/downloads/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let (mut steps, mut runs, mut ids_out) = (128usize, 3usize, None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--gguf" => gguf = PathBuf::from(val()?),
            "--steps" => steps = val()?.parse()?,
            "--runs" => runs = val()?.parse::<usize>()?.max(1),
            "--ids-out" => ids_out = Some(PathBuf::from(val()?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if !gguf.is_file() {
        return Err(format!(
            "{} not found: run datasets/fetch_smollm2.sh first",
            gguf.display()
        )
        .into());
    }

    let t0 = Instant::now();
    let (lm, tok): (TransformerLm, GgufTokenizer) = load_gguf(&gguf)?;
    let load_s = t0.elapsed().as_secs_f64();
    let prompt = tok.encode(PROMPT)?;
    let prose = tok.encode(PROSE)?;
    if let Some(p) = &ids_out {
        let j = serde_json::json!({"prompt": prompt, "prose": prose});
        std::fs::write(p, j.to_string())?;
    }
    eprintln!("loaded {} in {load_s:.2}s", gguf.display());

    let t1 = Instant::now();
    let ppl = perplexity(&lm, &prose)?;
    let ppl_s = t1.elapsed().as_secs_f64();
    eprintln!(
        "perplexity {ppl:.3} on {} tokens ({ppl_s:.2}s)",
        prose.len()
    );

    let mut decode = Vec::new();
    let mut prefill = Vec::new();
    let mut generated = Vec::new();
    lm.in_decode_context(|| -> Res<()> {
        greedy(&lm, &prompt, 8)?; // warm-up
        for _ in 0..runs {
            let (g, p, d) = greedy(&lm, &prompt, steps)?;
            prefill.push(p);
            decode.push(d);
            generated = g;
        }
        Ok(())
    })?;
    // Prefill alone (one causal pass with a fresh KV cache, last-row logits) of the first 7
    // prose tokens and of the whole prose: the weights are read once per block of rows.
    let mut prefill_short = Vec::new();
    let mut prefill_long = Vec::new();
    let short = &prose[..prose.len().min(7)];
    for _ in 0..runs {
        for (ids, times) in [(short, &mut prefill_short), (&prose[..], &mut prefill_long)] {
            let t = Instant::now();
            lm.prefill(ids)?;
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let text = tok.decode(&generated)?;
    eprintln!("greedy: {PROMPT}{text}");
    let decode_s = median(decode);
    let out = serde_json::json!({
        "impl": "seqlab",
        "gguf": gguf.display().to_string(),
        "load_s": load_s,
        "perplexity": ppl,
        "perplexity_tokens": prose.len(),
        "prompt_tokens": prompt.len(),
        "prefill_ms": median(prefill) * 1e3,
        "prefill_short_tokens": short.len(),
        "prefill_short_ms": median(prefill_short) * 1e3,
        "prefill_long_tokens": prose.len(),
        "prefill_long_ms": median(prefill_long) * 1e3,
        "decode_steps": steps,
        "decode_tokens_per_s": steps as f64 / decode_s,
        "greedy_ids": generated,
        "greedy_text": text,
    });
    println!("{out}");
    Ok(())
}
