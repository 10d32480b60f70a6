//! Lossless speculative sampling at temperature 1 (and with temperature / top-k / top-p): the
//! token at every position is distributed as the big model's, checked by chi-square tests
//! against the exact big-model distributions computed by enumerating every continuation
//! through the same `CausalLm` (vocabulary 8, 3 new tokens), for a Transformer and a Mamba
//! verifier. Seeded, so the outcome is reproducible; each test rejects at p < 1e-3.

use crate::support;

use seqlab_lm::{CausalLm, GenerateConfig};
use seqlab_speculative::{decode, DecodeConfig, Policy, SpecConfig};
use seqlab_tensor::SamplerConfig;
use statrs::distribution::{ChiSquared, ContinuousCDF};

const V: usize = 8;
const NEW: usize = 3;
const PROMPT: &[u32] = &[1, 2];

/// Exact law of the big model's sampled continuation: `joint[prefix] = P(prefix)` for every
/// prefix of length 1..=NEW (ids in base V), enumerated with fresh prefills.
fn exact_marginals<M: CausalLm>(big: &M, sampler: &SamplerConfig) -> (Vec<Vec<f64>>, Vec<f64>) {
    // marg[j][t] = P(token j = t); pair[a * V + b] = P(tokens 0, 1 = a, b).
    let mut marg = vec![vec![0.0; V]; NEW];
    let mut pair = vec![0.0; V * V];
    fn walk<M: CausalLm>(
        big: &M,
        sampler: &SamplerConfig,
        seq: &mut Vec<u32>,
        prob: f64,
        marg: &mut [Vec<f64>],
        pair: &mut [f64],
    ) {
        let j = seq.len() - PROMPT.len();
        if j == NEW {
            return;
        }
        let (logits, _) = big.prefill(seq).unwrap();
        let p = sampler.distribution(&logits, seq).unwrap();
        for t in 0..V {
            if p[t] == 0.0 {
                continue;
            }
            let pt = prob * p[t];
            marg[j][t] += pt;
            if j == 1 {
                pair[seq[PROMPT.len()] as usize * V + t] += pt;
            }
            seq.push(t as u32);
            walk(big, sampler, seq, pt, marg, pair);
            seq.pop();
        }
    }
    let mut seq = PROMPT.to_vec();
    walk(big, sampler, &mut seq, 1.0, &mut marg, &mut pair);
    (marg, pair)
}

/// Pearson chi-square p-value of `counts` against probabilities `probs`; cells expecting
/// fewer than 5 draws are pooled into one (dropped if the pool still expects < 5).
fn chi_square_p(counts: &[usize], probs: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    let n = n as f64;
    let (mut stat, mut cells) = (0.0, 0usize);
    let (mut pool_o, mut pool_e) = (0.0, 0.0);
    for (&c, &p) in counts.iter().zip(probs) {
        let e = n * p;
        if e < 5.0 {
            pool_o += c as f64;
            pool_e += e;
            continue;
        }
        stat += (c as f64 - e).powi(2) / e;
        cells += 1;
    }
    if pool_e >= 5.0 {
        stat += (pool_o - pool_e).powi(2) / pool_e;
        cells += 1;
    } else {
        // A cell the model gives (almost) no mass must (almost) never be drawn.
        assert!(
            pool_o <= pool_e + 5.0,
            "{pool_o} draws where {pool_e} expected"
        );
    }
    if cells < 2 {
        // A (nearly) one-hot position: the pooled check above is the whole test.
        return 1.0;
    }
    ChiSquared::new((cells - 1) as f64).unwrap().sf(stat)
}

/// Runs `runs` seeded decodes and tests every position's marginal and the first two
/// positions' joint law against the enumeration; returns the acceptance rate.
fn check<B: CausalLm, L: CausalLm>(
    name: &str,
    big: &B,
    little: &L,
    sampler: SamplerConfig,
    spec: SpecConfig,
    runs: usize,
) -> f64 {
    let (marg, pair) = exact_marginals(big, &sampler);
    for m in &marg {
        assert!((m.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    let mut counts = vec![vec![0usize; V]; NEW];
    let mut pair_counts = vec![0usize; V * V];
    let (mut drafted, mut accepted) = (0, 0);
    for seed in 0..runs as u64 {
        let cfg = DecodeConfig {
            policy: Policy::Speculative(spec),
            generate: GenerateConfig {
                sampler: sampler.clone(),
                seed: 1_000_003 * seed + 17,
                ..GenerateConfig::greedy(NEW)
            },
        };
        let out = decode(big, little, PROMPT, &cfg).unwrap();
        assert_eq!(out.tokens.len(), NEW);
        for (j, &t) in out.tokens.iter().enumerate() {
            counts[j][t as usize] += 1;
        }
        pair_counts[out.tokens[0] as usize * V + out.tokens[1] as usize] += 1;
        drafted += out.stats.drafted;
        accepted += out.stats.accepted;
    }
    for j in 0..NEW {
        let p = chi_square_p(&counts[j], &marg[j]);
        assert!(
            p > 1e-3,
            "{name}: position {j}: p = {p:e}; counts {:?} vs probs {:?}",
            counts[j],
            marg[j]
        );
    }
    let p = chi_square_p(&pair_counts, &pair);
    assert!(p > 1e-3, "{name}: joint of positions 0, 1: p = {p:e}");
    let rate = accepted as f64 / drafted as f64;
    // The test means something only if drafts are both accepted and rejected.
    assert!(rate > 0.05 && rate < 0.99, "{name}: acceptance rate {rate}");
    rate
}

#[test]
fn transformer_verifier_samples_the_big_model_law() {
    let dir = tempfile::tempdir().unwrap();
    let big = support::transformer(V, 16, 2, 21, 2.0);
    let little = support::mamba(dir.path(), V, 16, 1, 22, 2.0);
    let spec = SpecConfig {
        gamma: 2,
        ..SpecConfig::default()
    };
    check(
        "transformer verifier, T = 1",
        &big,
        &little,
        SamplerConfig::default(),
        spec,
        2500,
    );
    // Temperature, top-k and top-p applied identically to p and q; adaptive γ.
    let warped = SamplerConfig {
        temperature: 1.3,
        top_k: Some(5),
        top_p: Some(0.95),
        ..SamplerConfig::default()
    };
    let little_tf = support::transformer(V, 16, 1, 23, 2.0);
    let adaptive = SpecConfig {
        gamma: 1,
        adaptive: true,
        gamma_min: 1,
        gamma_max: 4,
    };
    check(
        "transformer verifier, T = 1.3, top-k 5, top-p 0.95",
        &big,
        &little_tf,
        warped,
        adaptive,
        2000,
    );
}

#[test]
fn mamba_verifier_samples_the_big_model_law() {
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (dir.path().join("big"), dir.path().join("little"));
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    let big = support::mamba(&d1, V, 16, 2, 31, 2.0);
    let little = support::mamba(&d2, V, 16, 1, 32, 2.0);
    let spec = SpecConfig {
        gamma: 3,
        ..SpecConfig::default()
    };
    check(
        "mamba verifier, mamba drafter, T = 1",
        &big,
        &little,
        SamplerConfig::default(),
        spec,
        3000,
    );
    let little_tf = support::transformer(V, 16, 1, 33, 2.0);
    let spec = SpecConfig {
        gamma: 2,
        ..SpecConfig::default()
    };
    check(
        "mamba verifier, transformer drafter, T = 1",
        &big,
        &little_tf,
        SamplerConfig::default(),
        spec,
        2000,
    );
}
