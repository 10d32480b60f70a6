//! candle-transformers 0.11.1 `models::quantized_llama` on the SmolLM2-135M-Instruct Q4_1 GGUF,
//! fed the token ids seqlab's `smollm2_decode` example wrote (`--ids-out`), so both sides run
//! identical inputs:
//! - perplexity of the prose ids (candle's `forward` returns only the last position's logits,
//!   so the text is stepped in one token at a time, which gives every position's logits);
//! - decode at batch 1: the prompt in one `forward`, then N greedy single-token `forward`s
//!   (median of runs).
//!
//! Usage: `candle-smollm2-bench GGUF IDS_JSON [STEPS] [RUNS]`. Prints one JSON object.

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use serde_json::{json, Value};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn argmax(v: &[f32]) -> u32 {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0) as u32
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ids(v: &Value, key: &str) -> Res<Vec<u32>> {
    Ok(v.get(key)
        .and_then(Value::as_array)
        .ok_or(format!("ids file has no `{key}` array"))?
        .iter()
        .filter_map(Value::as_u64)
        .map(|x| x as u32)
        .collect())
}

fn load(path: &str) -> Res<ModelWeights> {
    let mut f = std::fs::File::open(path)?;
    let content = gguf_file::Content::read(&mut f)?;
    Ok(ModelWeights::from_gguf(content, &mut f, &Device::Cpu)?)
}

fn logits(model: &mut ModelWeights, toks: &[u32], pos: usize) -> Res<Vec<f32>> {
    let x = Tensor::new(toks, &Device::Cpu)?.unsqueeze(0)?;
    Ok(model.forward(&x, pos)?.flatten_all()?.to_vec1()?)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let (gguf, ids_path) = match (args.get(1), args.get(2)) {
        (Some(g), Some(i)) => (g.clone(), i.clone()),
        _ => return Err("usage: candle-smollm2-bench GGUF IDS_JSON [STEPS] [RUNS]".into()),
    };
    let steps: usize = args.get(3).map_or(Ok(128), |s| s.parse())?;
    let runs: usize = args.get(4).map_or(Ok(3), |s| s.parse())?;
    let all: Value = serde_json::from_str(&std::fs::read_to_string(&ids_path)?)?;
    let (prompt, prose) = (ids(&all, "prompt")?, ids(&all, "prose")?);

    let t0 = Instant::now();
    let mut model = load(&gguf)?;
    let load_s = t0.elapsed().as_secs_f64();

    // Perplexity: step the text in, scoring each next token (log-softmax in f64).
    let t1 = Instant::now();
    let mut nll = 0.0;
    for (i, &t) in prose[..prose.len() - 1].iter().enumerate() {
        let row = logits(&mut model, &[t], i)?;
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        nll += lse - row[prose[i + 1] as usize] as f64;
    }
    let ppl = (nll / (prose.len() - 1) as f64).exp();
    let ppl_s = t1.elapsed().as_secs_f64();
    eprintln!("candle perplexity {ppl:.3} ({ppl_s:.2}s)");

    let mut decode = Vec::new();
    let mut prefill = Vec::new();
    let mut generated = Vec::new();
    for run in 0..=runs {
        model.clear_kv_cache();
        let n = if run == 0 { 8 } else { steps }; // run 0 warms up
        let t = Instant::now();
        let mut next = argmax(&logits(&mut model, &prompt, 0)?);
        let p = t.elapsed().as_secs_f64();
        let mut out = vec![next];
        let t = Instant::now();
        for k in 0..n {
            next = argmax(&logits(&mut model, &[next], prompt.len() + k)?);
            out.push(next);
        }
        if run > 0 {
            decode.push(t.elapsed().as_secs_f64());
            prefill.push(p);
            generated = out;
        }
    }
    let decode_s = median(decode);
    println!(
        "{}",
        json!({
            "impl": "candle-transformers quantized_llama",
            "candle": "0.11.1",
            "load_s": load_s,
            "perplexity": ppl,
            "perplexity_tokens": prose.len(),
            "prompt_tokens": prompt.len(),
            "prefill_ms": median(prefill) * 1e3,
            "decode_steps": steps,
            "decode_tokens_per_s": steps as f64 / decode_s,
            "greedy_ids": generated,
        })
    );
    Ok(())
}
