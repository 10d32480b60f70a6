//! The real pair: SmolLM2-135M-Instruct (GGUF Q4_1, `datasets/fetch_smollm2.sh`) verifying
//! `models/smollm2-drafter` (a 2-layer Mamba trained here on SmolLM2's tokenizer). Without the
//! GGUF file (CI) every test prints a skip message and passes; the drafter-only checks run
//! always.

use seqlab_lm::{generate, load_lm, CausalLm, GenerateConfig};
use seqlab_speculative::{decode, BildConfig, DecodeConfig, Policy, SpecConfig};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn smollm2() -> Option<PathBuf> {
    let p = root().join("datasets/downloads/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        println!(
            "skipped: {} not found; run datasets/fetch_smollm2.sh, then \
             cargo test -p seqlab-speculative --release --test speculative smollm2:: -- --nocapture",
            p.display()
        );
        None
    }
}

const PROMPT: &str = "Because of our powerful sanctions, the Iranian economy is doing very poorly.";

/// The drafter is a full-vocabulary Mamba with SmolLM2's tokenizer; the ids outside its
/// compact training vocabulary have zero rows, so their logits are exactly 0.
#[test]
fn drafter_loads_with_the_smollm2_vocabulary() {
    let lm = load_lm(&root().join("models/smollm2-drafter")).unwrap();
    assert_eq!(lm.model.kind(), "mamba");
    assert_eq!(lm.model.vocab_size(), 49152);
    let tok = lm.tokenizer.as_ref().unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    let ids = tok.encode(PROMPT).unwrap();
    assert!(ids.len() > 10, "{ids:?}");
    let (logits, _) = lm.model.prefill(&ids).unwrap();
    assert!(logits.iter().all(|x| x.is_finite()));
    let zeros = logits.iter().filter(|&&x| x == 0.0).count();
    assert!(
        zeros > 30_000 && zeros < 49152 - 4096,
        "{zeros} zero logits: expected the ids outside the 8191 kept"
    );
    // A sensible continuation scores better than the same tokens reversed.
    let ppl = |ids: &[u32]| {
        seqlab_speculative::harness::perplexity_of(&lm.model, &ids[..1], &ids[1..])
            .unwrap()
            .0
    };
    let mut scrambled = ids.clone();
    scrambled.reverse();
    assert!(ppl(&ids) < ppl(&scrambled));
}

/// The exported tokenizer and the drafter pair with the GGUF model; greedy lossless
/// speculative decoding and BiLD with α_RB = 0 reproduce SmolLM2's own greedy output.
#[test]
fn smollm2_pair_is_lossless() {
    let Some(gguf) = smollm2() else { return };
    let big = load_lm(&gguf).unwrap();
    let little = load_lm(&root().join("models/smollm2-drafter")).unwrap();
    let (tb, tl) = (
        big.tokenizer.as_ref().unwrap(),
        little.tokenizer.as_ref().unwrap(),
    );
    let ids = tb.encode(PROMPT).unwrap();
    assert_eq!(ids, tl.encode(PROMPT).unwrap());
    let n = 8;
    let want = generate(
        &big.model,
        &ids,
        &GenerateConfig {
            max_new_tokens: n,
            ..GenerateConfig::default()
        },
        |_| Ok(()),
    )
    .unwrap()
    .generated_ids;
    for policy in [
        Policy::Speculative(SpecConfig {
            gamma: 3,
            ..SpecConfig::default()
        }),
        Policy::Bild(BildConfig {
            alpha_rb: 0.0,
            ..BildConfig::default()
        }),
    ] {
        let out = decode(
            &big.model,
            &little.model,
            &ids,
            &DecodeConfig::greedy(policy, n),
        )
        .unwrap();
        assert_eq!(out.tokens, want, "{policy:?}");
        // (BiLD may fall back at every token with a weak drafter; speculation always drafts.)
        if matches!(policy, Policy::Speculative(_)) {
            assert!(out.stats.drafted > 0);
        }
    }
}
