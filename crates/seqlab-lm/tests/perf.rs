//! Timing smoke test of the Mamba LM on mamba-tiny (ignored; the real benchmarks are criterion
//! benches): `cargo test --release -p seqlab-lm --test lm perf:: -- --ignored --nocapture`.

use crate::common;

use common::*;
use seqlab_lm::{LogitsMode, MambaLm};
use std::time::Instant;

#[test]
#[ignore = "timing only; run with --release --ignored --nocapture"]
fn prefill_and_step_timings() {
    let dir = golden_dir();
    let g = golden_tensors(&dir);
    let model = MambaLm::load(&dir).unwrap();
    let prompt = ids(&g["input_ids"]);
    let _ = model.prefill(&prompt, 1, LogitsMode::Last).unwrap();
    let n = 200;
    let t = Instant::now();
    let mut state = None;
    for _ in 0..n {
        state = Some(model.prefill(&prompt, 1, LogitsMode::Last).unwrap().1);
    }
    let prefill_ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let mut state = state.unwrap();
    let steps = 2000;
    let v = model.vocab_size();
    let t = Instant::now();
    model.in_decode_context(1, || {
        for i in 0..steps {
            model.step(&mut state, &[(i % v) as u32]).unwrap();
        }
    });
    let per_s = steps as f64 / t.elapsed().as_secs_f64();
    eprintln!(
        "mamba-tiny: prefill {} tokens {prefill_ms:.3} ms, decode {per_s:.0} tokens/s",
        prompt.len()
    );
}

/// A random model with mamba-130m's width and vocabulary (fewer layers), built in memory.
fn random_model(n_layer: usize) -> MambaLm {
    use seqlab_lm::mamba::weights::{expected_specs, MambaWeights};
    use seqlab_lm::MambaConfig;
    use seqlab_tensor::candle_core::{Device, Tensor};
    let cfg = MambaConfig::from_json_str(&format!(
        r#"{{"hidden_size": 768, "num_hidden_layers": {n_layer}, "vocab_size": 50280}}"#
    ))
    .unwrap();
    let mut t = std::collections::HashMap::new();
    for spec in expected_specs(&cfg) {
        let x = Tensor::randn(0f32, 0.02, spec.shape.clone(), &Device::Cpu).unwrap();
        t.insert(spec.name, x);
    }
    let w = MambaWeights::from_tensors(&mut t, &cfg).unwrap();
    MambaLm::from_parts(cfg, w).unwrap()
}

#[test]
#[ignore = "timing only; run with --release --ignored --nocapture"]
fn d768_timings() {
    let model = random_model(4);
    let prompt: Vec<u32> = (0..512).map(|i| (i * 7919 % 50000) as u32).collect();
    let _ = model.prefill(&prompt[..8], 1, LogitsMode::Last).unwrap();
    let t = Instant::now();
    let (_, mut state) = model.prefill(&prompt, 1, LogitsMode::Last).unwrap();
    let prefill_ms = t.elapsed().as_secs_f64() * 1e3;
    let steps = 100;
    let t = Instant::now();
    model.in_decode_context(1, || {
        for i in 0..steps {
            model.step(&mut state, &[i as u32]).unwrap();
        }
    });
    let per_s = steps as f64 / t.elapsed().as_secs_f64();
    eprintln!("d768 × 4 layers, vocab 50280: prefill 512 tokens {prefill_ms:.1} ms, decode {per_s:.1} tokens/s");
}
