//! The generation loop: stop ids, the vocabulary limit, the streaming callback, edge cases.

use crate::common;

use common::*;
use seqlab_lm::{generate, GenerateConfig, MambaLm, StopReason};
use seqlab_tensor::SamplerConfig;

fn setup() -> (MambaLm, Vec<u32>, Vec<u32>) {
    let dir = golden_dir();
    let g = golden_tensors(&dir);
    (
        MambaLm::load(&dir).unwrap(),
        ids(&g["input_ids"]),
        ids(&g["generated_ids"]),
    )
}

#[test]
fn callback_sees_every_token_and_stop_ids_end_generation() {
    let (model, prompt, want) = setup();
    let mut seen = Vec::new();
    // As many new tokens as the golden continuation holds (32 for mamba-tiny).
    let all = GenerateConfig {
        max_new_tokens: want.len(),
        ..GenerateConfig::default()
    };
    let out = generate(&model, &prompt, &all, |id| {
        seen.push(id);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, out.generated_ids);
    assert_eq!(out.generated_ids, want);
    assert_eq!(out.stop_reason, StopReason::MaxTokens);

    let cfg = GenerateConfig {
        stop_ids: vec![want[3]],
        ..all
    };
    let out = generate(&model, &prompt, &cfg, |_| Ok(())).unwrap();
    let first = want.iter().position(|&t| t == want[3]).unwrap();
    assert_eq!(out.generated_ids, want[..=first].to_vec());
    assert_eq!(out.stop_reason, StopReason::StopToken);
}

#[test]
fn vocab_limit_masks_padded_rows() {
    let (model, prompt, _) = setup();
    let cfg = GenerateConfig {
        max_new_tokens: 64,
        sampler: SamplerConfig::with_temperature(2.0),
        vocab_limit: Some(10),
        seed: 1,
        ..GenerateConfig::default()
    };
    let out = generate(&model, &prompt, &cfg, |_| Ok(())).unwrap();
    assert_eq!(out.generated_ids.len(), 64);
    assert!(
        out.generated_ids.iter().all(|&t| t < 10),
        "{:?}",
        out.generated_ids
    );
}

#[test]
fn edge_cases() {
    let (model, prompt, _) = setup();
    let zero = GenerateConfig {
        max_new_tokens: 0,
        ..GenerateConfig::default()
    };
    assert!(generate(&model, &prompt, &zero, |_| Ok(()))
        .unwrap()
        .generated_ids
        .is_empty());
    assert!(generate(&model, &[], &GenerateConfig::default(), |_| Ok(())).is_err());
    let one = GenerateConfig {
        max_new_tokens: 1,
        ..GenerateConfig::default()
    };
    let out = generate(&model, &prompt, &one, |_| Ok(())).unwrap();
    assert_eq!(out.generated_ids.len(), 1);
    assert_eq!(out.decode_tokens_per_s, 0.0);
}

#[test]
fn causal_lm_score_and_snapshot_rollback() {
    use seqlab_lm::CausalLm;
    let (model, prompt, want) = setup();
    let v = CausalLm::vocab_size(&model);
    let (_, mut state) = CausalLm::prefill(&model, &prompt).unwrap();
    let snapshot = state.clone();
    // score(tokens) = the step logits after each token.
    let scored = model.score(&mut state, &want[..8]).unwrap();
    let mut st = snapshot.clone();
    for (i, &t) in want[..8].iter().enumerate() {
        let step = CausalLm::step(&model, &mut st, t).unwrap();
        assert!(max_abs("score vs step", &scored[i * v..][..v], &step) <= 1e-4);
    }
    let last = state.current.ssm.len() - 1;
    assert!(max_abs("state", &state.current.ssm[last], &st.current.ssm[last]) <= 1e-4);
    // Rolling back = restoring the snapshot: the same continuation again.
    let mut back = snapshot;
    let again = model.score(&mut back, &want[..8]).unwrap();
    assert_eq!(again, scored);
}
