//! Mamba LM end-to-end benchmark (issue 3, "Benchmark"): seqlab's side of the comparison with
//! PyTorch / HF transformers (`benches/compare/mamba_pytorch.py`) and candle-transformers
//! (`benches/compare/candle-mamba`), on the same saved weights.
//!
//! `cargo bench --bench mamba_lm` (the weights come from the Python script; directory
//! overridable with `SEQLAB_MAMBA_BENCH_DIR`). It first checks parity against the PyTorch dump
//! (logits of a 2 × 16 input, max abs diff ≤ 1e-4, and the 32 greedy tokens), then times
//! - forward logits of batch 4 × length 1024 (parallel scan; median of `SEQLAB_BENCH_RUNS`, 5), and
//!   the same pass without the lm_head (`LogitsMode::Skip`);
//! - decode at batch 1: prefill a 16-token prompt, then `SEQLAB_BENCH_DECODE` (128) greedy
//!   `step`s inside `in_decode_context`, tokens/s of the steps alone (median of 3),
//!
//! and prints one JSON object. Without the weights it says how to make them and exits 0.

use seqlab::lm::{LogitsMode, MambaLm};
use seqlab::tensor::argmax;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect()
        })
        .unwrap_or_default()
}

/// Greedy decode of `new` tokens after `prompt`; returns (tokens, step seconds).
fn greedy(model: &MambaLm, prompt: &[u32], new: usize) -> Res<(Vec<u32>, f64)> {
    let (logits, mut state) = model.prefill(prompt, 1, LogitsMode::Last)?;
    let mut next = argmax(&logits.ok_or("no logits")?.flatten_all()?.to_vec1::<f32>()?)?;
    let mut out = vec![next];
    let t0 = Instant::now();
    model.in_decode_context(1, || -> Res<()> {
        for _ in 1..new {
            let l = model.step(&mut state, &[next])?;
            next = argmax(&l.flatten_all()?.to_vec1::<f32>()?)?;
            out.push(next);
        }
        Ok(())
    })?;
    Ok((out, t0.elapsed().as_secs_f64()))
}

fn main() -> Res<()> {
    let dir = std::env::var("SEQLAB_MAMBA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/compare/weights/mamba-256x4")
        });
    if !dir.join("model.safetensors").exists() {
        eprintln!(
            "mamba_lm: no weights in {} — run benches/compare/run.sh (or mamba_pytorch.py) first",
            dir.display()
        );
        return Ok(());
    }
    let runs = env_usize("SEQLAB_BENCH_RUNS", 5);
    let new = env_usize("SEQLAB_BENCH_DECODE", 128);
    let (batch, len) = (4usize, 1024usize);

    let t = Instant::now();
    let model = MambaLm::load(&dir)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    // ---- parity with the PyTorch dump ----
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("ref_meta.json"))?)?;
    let small: Vec<u32> = meta["input_ids"]
        .as_array()
        .ok_or("input_ids")?
        .iter()
        .flat_map(ids)
        .collect();
    let sb = meta["input_ids"].as_array().ok_or("input_ids")?.len();
    let raw = std::fs::read(dir.join("ref_logits.f32"))?;
    let reference: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let ours = model.forward(&small, sb)?.flatten_all()?.to_vec1::<f32>()?;
    if ours.len() != reference.len() {
        return Err(format!(
            "logits length {} vs reference {}",
            ours.len(),
            reference.len()
        )
        .into());
    }
    let max_abs = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let max_ref = reference.iter().map(|v| v.abs()).fold(0f32, f32::max);
    let prompt = ids(&meta["prompt_ids"]);
    let want = ids(&meta["greedy_ids"]);
    let (got, _) = greedy(&model, &prompt, want.len())?;
    let greedy_match = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
    let parity_ok = max_abs <= 1e-4 && greedy_match == want.len();

    // ---- forward B × L ----
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let vocab = model.vocab_size() as u64;
    let tokens: Vec<u32> = (0..batch * len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % vocab) as u32
        })
        .collect();
    let time_fwd = |mode: LogitsMode| -> Res<Vec<f64>> {
        model.forward_with(&tokens, batch, None, mode, false)?; // warmup
        let mut ts = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let out = model.forward_with(&tokens, batch, None, mode, false)?;
            ts.push(t.elapsed().as_secs_f64() * 1e3);
            drop(out);
        }
        Ok(ts)
    };
    let fwd = time_fwd(LogitsMode::All)?;
    let bb = time_fwd(LogitsMode::Skip)?;

    // ---- decode at batch 1 ----
    greedy(&model, &prompt, 16)?; // warmup
    let mut dec = Vec::new();
    let mut prefill_ms = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        model.prefill(&prompt, 1, LogitsMode::Last)?;
        prefill_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let (_, secs) = greedy(&model, &prompt, new)?;
        dec.push((new - 1) as f64 / secs);
    }

    let fwd_med = median(fwd.clone());
    let out = json!({
        "impl": "seqlab",
        "weights": dir.display().to_string(),
        "threads": rayon_threads(),
        "load_ms": load_ms,
        "parity": {
            "logits_shape": meta["logits_shape"],
            "max_abs_diff": max_abs,
            "max_abs_ref": max_ref,
            "greedy_tokens_matching": greedy_match,
            "greedy_tokens": want.len(),
            "ok": parity_ok,
        },
        "forward_shape": [batch, len],
        "forward_ms": fwd_med,
        "forward_ms_all": fwd,
        "backbone_ms": median(bb.clone()),
        "backbone_ms_all": bb,
        "forward_tokens_per_s": (batch * len) as f64 / (fwd_med / 1e3),
        "decode_prompt_len": prompt.len(),
        "decode_new_tokens": new,
        "prefill_ms": median(prefill_ms),
        "decode_tokens_per_s": median(dec.clone()),
        "decode_tokens_per_s_all": dec,
    });
    println!("{out}");
    if !parity_ok {
        return Err("parity with the PyTorch reference failed (see JSON)".into());
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
