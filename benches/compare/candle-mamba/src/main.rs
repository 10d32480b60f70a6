//! candle-transformers 0.11.1 `models::mamba` on the HF-layout weights written by
//! `benches/compare/mamba_pytorch.py`. candle's Mamba is step-only (one token per call, no
//! parallel scan) and, in 0.11.1, batch 1 only (B/C broadcast fails for batch > 1), so its
//! "forward" of a B × L batch is B × L single-token steps, which is what a candle user gets.
//! Checks parity with the PyTorch dump first (logits of the 2 × 16 input, fed token by token;
//! the 32 greedy tokens), then times
//! - decode at batch 1: 16-token prompt stepped in, then N greedy steps (median of 3);
//! - forward of batch 4 × length 1024 by stepping, logits at every position (median of runs).
//!
//! Prints one JSON object.
//!
//! Name mapping: HF `backbone.embeddings.weight` → candle/mamba_ssm `backbone.embedding.weight`
//! (everything else is identical); lm_head is tied in both.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::mamba::{Config, Model, State};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
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

fn step(model: &Model, state: &mut State, toks: &[u32], dev: &Device) -> Res<Tensor> {
    let t = Tensor::new(toks, dev)?;
    Ok(model.forward(&t, state)?)
}

/// Greedy: prompt stepped in, then `new` tokens; returns (tokens, seconds of the decode steps).
fn greedy(
    model: &Model,
    cfg: &Config,
    prompt: &[u32],
    new: usize,
    dev: &Device,
) -> Res<(Vec<u32>, f64)> {
    let mut state = State::new(1, cfg, DType::F32, dev)?;
    let mut logits = None;
    for &p in prompt {
        logits = Some(step(model, &mut state, &[p], dev)?);
    }
    let mut next = argmax(
        &logits
            .ok_or("empty prompt")?
            .flatten_all()?
            .to_vec1::<f32>()?,
    );
    let mut out = vec![next];
    let t0 = Instant::now();
    for _ in 1..new {
        let l = step(model, &mut state, &[next], dev)?;
        next = argmax(&l.flatten_all()?.to_vec1::<f32>()?);
        out.push(next);
    }
    Ok((out, t0.elapsed().as_secs_f64()))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).ok_or("usage: candle-mamba-bench DIR")?);
    let runs: usize = std::env::var("SEQLAB_BENCH_FWD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let new: usize = std::env::var("SEQLAB_BENCH_DECODE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let dev = Device::Cpu;

    let hf: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let cfg = Config {
        d_model: hf["hidden_size"].as_u64().ok_or("hidden_size")? as usize,
        n_layer: hf["num_hidden_layers"]
            .as_u64()
            .ok_or("num_hidden_layers")? as usize,
        vocab_size: hf["vocab_size"].as_u64().ok_or("vocab_size")? as usize,
        pad_vocab_size_multiple: 8,
    };
    let t = Instant::now();
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &dev)?;
    let tensors: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.replace("backbone.embeddings.", "backbone.embedding."), v))
        .collect();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let model = Model::new(&cfg, vb.pp("backbone"))?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    // ---- parity ----
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("ref_meta.json"))?)?;
    let rows: Vec<Vec<u32>> = meta["input_ids"]
        .as_array()
        .ok_or("input_ids")?
        .iter()
        .map(ids)
        .collect();
    let (sb, sl) = (rows.len(), rows[0].len());
    let raw = std::fs::read(dir.join("ref_logits.f32"))?;
    let reference: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let v = reference.len() / (sb * sl);
    // candle 0.11.1's MambaBlock only runs batch 1 (`b.broadcast_as((b_sz, d_inner, D_STATE))`
    // fails for b_sz > 1: "cannot broadcast [2, 16] to [2, 512, 16]"), so rows go one by one.
    let mut max_abs = 0f32;
    for (b, row) in rows.iter().enumerate() {
        let mut state = State::new(1, &cfg, DType::F32, &dev)?;
        for (t, &tok) in row.iter().enumerate() {
            let l = step(&model, &mut state, &[tok], &dev)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let r = &reference[(b * sl + t) * v..][..v];
            for (x, y) in l.iter().zip(r) {
                max_abs = max_abs.max((x - y).abs());
            }
        }
    }
    let prompt = ids(&meta["prompt_ids"]);
    let want = ids(&meta["greedy_ids"]);
    let (got, _) = greedy(&model, &cfg, &prompt, want.len(), &dev)?;
    let greedy_match = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
    let parity_ok = max_abs <= 1e-4 && greedy_match == want.len();

    // ---- decode at batch 1 ----
    greedy(&model, &cfg, &prompt, 16, &dev)?;
    let mut dec = Vec::new();
    for _ in 0..3 {
        let (_, secs) = greedy(&model, &cfg, &prompt, new, &dev)?;
        dec.push((new - 1) as f64 / secs);
    }

    // ---- forward of batch 4 × 1024 by stepping (4 rows one after the other: batch 1 only) ----
    let (batch, len) = (4usize, 1024usize);
    let vocab = v as u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let tokens: Vec<u32> = (0..batch * len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % vocab) as u32
        })
        .collect();
    let mut fwd = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for b in 0..batch {
            let mut state = State::new(1, &cfg, DType::F32, &dev)?;
            for p in 0..len {
                let l = step(&model, &mut state, &[tokens[b * len + p]], &dev)?;
                drop(l);
            }
        }
        fwd.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let fwd_med = median(fwd.clone());

    let out = json!({
        "impl": "candle-transformers",
        "candle": "0.11.1",
        "weights": dir.display().to_string(),
        "load_ms": load_ms,
        "parity": {"max_abs_diff": max_abs, "greedy_tokens_matching": greedy_match,
                   "greedy_tokens": want.len(), "ok": parity_ok},
        "decode_prompt_len": prompt.len(),
        "decode_new_tokens": new,
        "decode_tokens_per_s": median(dec.clone()),
        "decode_tokens_per_s_all": dec,
        "forward_mode": "stepwise, batch 1 x 4 rows (candle 0.11.1 mamba: step-only, and batch > 1 fails to broadcast B)",
        "forward_shape": [batch, len],
        "forward_ms": fwd_med,
        "forward_ms_all": fwd,
        "forward_tokens_per_s": (batch * len) as f64 / (fwd_med / 1e3),
    });
    println!("{out}");
    if !parity_ok {
        return Err("candle parity with the PyTorch reference failed (see JSON)".into());
    }
    Ok(())
}
