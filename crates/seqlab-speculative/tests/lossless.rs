//! Greedy big-little decoding reproduces big-only greedy decoding token for token: lossless
//! speculative sampling (fixed and adaptive γ) and BiLD with α_RB = 0, for every pairing of
//! Transformer and Mamba drafters and verifiers. The reference is `seqlab_lm::generate` (the
//! plain prefill + step loop), not this crate's own big-only policy.

use crate::support;

use seqlab_lm::{generate, CausalLm, GenerateConfig};
use seqlab_speculative::{
    decode, decode_batch, BildConfig, DecodeConfig, Policy, SpecConfig, SpecError, StopReason,
};
use seqlab_tensor::SamplerConfig;

const PROMPTS: [&[u32]; 3] = [
    &[7],
    &[3, 1, 4, 1, 5],
    &[9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 12],
];
const NEW: usize = 24;

fn reference<M: CausalLm>(big: &M, prompt: &[u32]) -> Vec<u32> {
    let cfg = GenerateConfig {
        max_new_tokens: NEW,
        ..GenerateConfig::default()
    };
    generate(big, prompt, &cfg, |_| Ok(()))
        .unwrap()
        .generated_ids
}

fn policies() -> Vec<Policy> {
    let spec = |gamma, adaptive| {
        Policy::Speculative(SpecConfig {
            gamma,
            adaptive,
            ..SpecConfig::default()
        })
    };
    vec![
        Policy::BigOnly,
        spec(1, false),
        spec(4, false),
        spec(3, true),
        Policy::Bild(BildConfig {
            alpha_rb: 0.0,
            ..BildConfig::default()
        }),
        Policy::Bild(BildConfig {
            alpha_fb: 0.0,
            alpha_rb: 0.0,
            max_small: 7,
        }),
        // Always falls back: every token is the big model's.
        Policy::Bild(BildConfig {
            alpha_fb: 1.0,
            ..BildConfig::default()
        }),
    ]
}

/// Every greedy lossless policy equals the reference on every prompt; returns the total
/// acceptance counts so callers can check the drafter was actually used.
fn check_pair<B: CausalLm, L: CausalLm>(name: &str, big: &B, little: &L) -> (usize, usize) {
    let (mut drafted, mut accepted) = (0, 0);
    for prompt in PROMPTS {
        let want = reference(big, prompt);
        for policy in policies() {
            let out = decode(big, little, prompt, &DecodeConfig::greedy(policy, NEW)).unwrap();
            assert_eq!(out.tokens, want, "{name}, {policy:?}, prompt {prompt:?}");
            assert_eq!(out.stop_reason, StopReason::MaxTokens);
            assert!(out.stats.accepted <= out.stats.drafted);
            drafted += out.stats.drafted;
            accepted += out.stats.accepted;
        }
    }
    assert!(drafted > 0, "{name}: nothing was drafted");
    (drafted, accepted)
}

#[test]
fn greedy_transformer_pairs() {
    let big = support::transformer(64, 32, 2, 1, 1.5);
    let little = support::transformer(64, 16, 1, 5, 1.5);
    let (d, a) = check_pair("transformer/transformer", &big, &little);
    assert!(0 < a && a < d, "accepted {a} of {d}");
    // The big model drafting for itself: every draft is accepted (bonus-token path).
    let (d, a) = check_pair("transformer/itself", &big, &big);
    assert_eq!(d, a);
}

#[test]
fn greedy_mamba_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let big = support::golden_mamba();
    let little = support::perturbed_golden(dir.path(), 0.3, 3);
    let (d, a) = check_pair("mamba/mamba", &big, &little);
    assert!(0 < a && a < d, "accepted {a} of {d}");
    let (d, a) = check_pair("mamba/itself", &big, &big);
    assert_eq!(d, a);
}

#[test]
fn greedy_mixed_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let mamba_big = support::golden_mamba();
    let mamba_little = support::mamba(dir.path(), 256, 16, 1, 4, 1.5);
    let tf_big = support::transformer(256, 32, 2, 5, 1.5);
    let tf_little = support::transformer(256, 16, 1, 6, 1.5);
    for (d, a) in [
        check_pair(
            "mamba verifier / transformer drafter",
            &mamba_big,
            &tf_little,
        ),
        check_pair(
            "transformer verifier / mamba drafter",
            &tf_big,
            &mamba_little,
        ),
    ] {
        assert!(a < d, "accepted {a} of {d}");
    }
}

#[test]
fn stop_ids_end_the_output_as_in_big_only_decoding() {
    let big = support::transformer(64, 32, 2, 1, 1.5);
    let little = support::transformer(64, 16, 1, 2, 1.5);
    let want = reference(&big, PROMPTS[1]);
    let stop = want[5];
    let first = want.iter().position(|&t| t == stop).unwrap();
    for policy in policies() {
        let cfg = DecodeConfig {
            policy,
            generate: GenerateConfig {
                stop_ids: vec![stop],
                ..GenerateConfig::greedy(NEW)
            },
        };
        let out = decode(&big, &little, PROMPTS[1], &cfg).unwrap();
        assert_eq!(out.tokens, want[..=first], "{policy:?}");
        assert_eq!(out.stop_reason, StopReason::StopToken);
    }
}

#[test]
fn a_batch_equals_its_rows_decoded_alone() {
    let dir = tempfile::tempdir().unwrap();
    let big = support::mamba(dir.path(), 32, 16, 2, 7, 1.0);
    let little = support::transformer(32, 16, 1, 8, 1.0);
    let prompts: Vec<Vec<u32>> = PROMPTS
        .iter()
        .map(|p| p.iter().map(|&t| t % 32).collect())
        .collect();
    let cfg = DecodeConfig {
        policy: Policy::Speculative(SpecConfig {
            gamma: 3,
            adaptive: true,
            ..SpecConfig::default()
        }),
        generate: GenerateConfig {
            sampler: SamplerConfig::with_temperature(1.0),
            seed: 11,
            ..GenerateConfig::greedy(NEW)
        },
    };
    let batch = decode_batch(&big, &little, &prompts, &cfg).unwrap();
    let mut lengths = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let alone = decode(
            &big,
            &little,
            p,
            &DecodeConfig {
                generate: GenerateConfig {
                    seed: cfg.generate.seed + i as u64,
                    ..cfg.generate.clone()
                },
                ..cfg.clone()
            },
        )
        .unwrap();
        assert_eq!(batch[i].tokens, alone.tokens, "row {i}");
        assert_eq!(batch[i].stats.accepted, alone.stats.accepted);
        lengths.push(batch[i].stats.rounds);
    }
    assert_eq!(batch.len(), 3);
}

#[test]
fn settings_and_pairs_are_checked() {
    let big = support::transformer(64, 16, 1, 1, 1.0);
    let other = support::transformer(32, 16, 1, 2, 1.0);
    let spec = DecodeConfig::greedy(Policy::Speculative(SpecConfig::default()), 4);
    let e = decode(&big, &other, &[1], &spec).unwrap_err();
    assert!(
        matches!(
            e,
            SpecError::VocabMismatch {
                big: 64,
                little: 32
            }
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with("mismatched vocabularies"));
    let e = decode(&big, &big, &[], &spec).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let bild_sampling = DecodeConfig {
        policy: Policy::Bild(BildConfig::default()),
        generate: GenerateConfig {
            sampler: SamplerConfig::with_temperature(0.7),
            ..GenerateConfig::greedy(4)
        },
    };
    let e = decode(&big, &big, &[1], &bild_sampling).unwrap_err();
    assert!(e.to_string().contains("greedily"), "{e}");
    let bad_gamma = DecodeConfig::greedy(
        Policy::Speculative(SpecConfig {
            gamma: 0,
            ..SpecConfig::default()
        }),
        4,
    );
    assert!(decode(&big, &big, &[1], &bad_gamma).is_err());
    let bad_fb = DecodeConfig::greedy(
        Policy::Bild(BildConfig {
            alpha_fb: 1.5,
            ..BildConfig::default()
        }),
        4,
    );
    assert!(decode(&big, &big, &[1], &bad_fb)
        .unwrap_err()
        .to_string()
        .contains("alpha_fb"));
    // No tokens asked: nothing produced, no error.
    let out = decode(
        &big,
        &big,
        &[1],
        &DecodeConfig::greedy(Policy::Speculative(SpecConfig::default()), 0),
    )
    .unwrap();
    assert!(out.tokens.is_empty());
}
