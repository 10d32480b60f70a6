//! Statistical tests of the sampler: over many seeded draws the empirical frequencies must match
//! the target distribution (Pearson chi-square goodness of fit), including tokens whose
//! probability is ~4e-8 of the top one. Seeds are fixed, so the tests are deterministic; the
//! acceptance level p > 1e-4 lets a correct sampler pass, and `chi_square_rejects_wrong_targets`
//! shows the same statistic throws out a sampler that ignores the temperature.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab_tensor::{sample_categorical, Categorical, Sampler, SamplerConfig};
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Significance level: a correct sampler fails a given test with probability 1e-4.
const ALPHA: f64 = 1e-4;

/// Pearson's goodness of fit of `counts` (n draws) against `probs`: bins with expected count
/// < 5 are pooled into one bin, `X² = Σ (O − E)² / E`, `df = bins − 1`, and the p-value is
/// `P(χ²_df ≥ X²)`. Tokens with probability 0 must have count 0 (checked, not pooled).
fn chi_square(counts: &[u64], probs: &[f64]) -> (f64, usize, f64) {
    assert_eq!(counts.len(), probs.len());
    let n: u64 = counts.iter().sum();
    let n = n as f64;
    let (mut stat, mut bins) = (0.0, 0usize);
    let (mut pool_o, mut pool_e) = (0.0, 0.0);
    for (i, (&o, &p)) in counts.iter().zip(probs).enumerate() {
        if p == 0.0 {
            assert_eq!(o, 0, "token {i} has probability 0 but was drawn {o} times");
            continue;
        }
        let e = n * p;
        if e < 5.0 {
            pool_o += o as f64;
            pool_e += e;
        } else {
            stat += (o as f64 - e).powi(2) / e;
            bins += 1;
        }
    }
    if pool_e > 0.0 {
        stat += (pool_o - pool_e).powi(2) / pool_e;
        bins += 1;
    }
    let df = bins - 1;
    let p = ChiSquared::new(df as f64).unwrap().sf(stat);
    (stat, df, p)
}

/// The target computed independently of the crate: `p_i ∝ exp(l_i / T)` in f64.
fn tempered(logits: &[f32], t: f64) -> Vec<f64> {
    let m = logits
        .iter()
        .map(|&l| l as f64 / t)
        .fold(f64::MIN, f64::max);
    let w: Vec<f64> = logits.iter().map(|&l| (l as f64 / t - m).exp()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|x| x / s).collect()
}

/// Keeps the `k` largest probabilities (all distinct here), renormalised.
fn top_k_ref(p: &[f64], k: usize) -> Vec<f64> {
    let mut sorted = p.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let kth = sorted[k - 1];
    renorm(p.iter().map(|&x| if x >= kth { x } else { 0.0 }).collect())
}

/// Keeps the smallest set of most likely tokens with mass ≥ `top_p`, renormalised.
fn top_p_ref(p: &[f64], top_p: f64) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut keep = vec![0.0; p.len()];
    let mut mass = 0.0;
    for &i in &idx {
        keep[i] = p[i];
        mass += p[i];
        if mass >= top_p {
            break;
        }
    }
    renorm(keep)
}

fn renorm(v: Vec<f64>) -> Vec<f64> {
    let s: f64 = v.iter().sum();
    v.into_iter().map(|x| x / s).collect()
}

/// 40 logits spread over [-4, 4], fixed seed.
fn logits() -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(20240601);
    (0..40).map(|_| rng.random_range(-4.0f32..4.0)).collect()
}

const N: usize = 200_000;

/// Token counts of `n` draws from a sampler with `config` and `seed` on `logits`.
fn counts_of(
    config: SamplerConfig,
    seed: u64,
    logits: &[f32],
    history: &[u32],
    n: usize,
) -> Vec<u64> {
    let mut s = Sampler::new(config, seed).unwrap();
    let mut c = vec![0u64; logits.len()];
    for _ in 0..n {
        c[s.sample(logits, history).unwrap() as usize] += 1;
    }
    c
}

fn assert_fits(name: &str, counts: &[u64], target: &[f64]) {
    let (stat, df, p) = chi_square(counts, target);
    eprintln!("{name}: X² = {stat:.2}, df = {df}, p = {p:.4}");
    assert!(
        p > ALPHA,
        "{name}: X² = {stat:.2} with df = {df} (p = {p:.3e}) rejects the sampler"
    );
}

#[test]
fn plain_softmax_matches() {
    let l = logits();
    let c = counts_of(SamplerConfig::default(), 1, &l, &[], N);
    assert_fits("softmax", &c, &tempered(&l, 1.0));
}

#[test]
fn temperatures_07_and_15_match() {
    let l = logits();
    for (t, seed) in [(0.7, 2), (1.5, 3)] {
        let c = counts_of(SamplerConfig::with_temperature(t), seed, &l, &[], N);
        assert_fits(&format!("T = {t}"), &c, &tempered(&l, t));
    }
}

#[test]
fn top_k_excludes_the_rest_and_renormalises() {
    let l = logits();
    let cfg = SamplerConfig {
        top_k: Some(7),
        temperature: 1.2,
        ..Default::default()
    };
    let target = top_k_ref(&tempered(&l, 1.2), 7);
    assert_eq!(target.iter().filter(|&&p| p > 0.0).count(), 7);
    let c = counts_of(cfg.clone(), 4, &l, &[], N);
    // chi_square asserts that excluded tokens (target 0) never appear.
    assert_fits("top-k 7", &c, &target);
    let d = cfg.distribution(&l, &[]).unwrap();
    for (a, b) in d.iter().zip(&target) {
        assert!((a - b).abs() < 1e-12);
    }
}

#[test]
fn top_p_excludes_the_rest_and_renormalises() {
    let l = logits();
    for (top_p, t, seed) in [(0.9, 1.0, 5), (0.5, 0.8, 6)] {
        let cfg = SamplerConfig {
            top_p: Some(top_p),
            temperature: t,
            ..Default::default()
        };
        let target = top_p_ref(&tempered(&l, t), top_p);
        let kept = target.iter().filter(|&&p| p > 0.0).count();
        assert!(
            kept > 1 && kept < l.len(),
            "test needs a real cut, kept {kept}"
        );
        let c = counts_of(cfg, seed, &l, &[], N);
        assert_fits(&format!("top-p {top_p} at T = {t}"), &c, &target);
    }
}

#[test]
fn no_repeat_ngram_while_sampling_bans_and_renormalises() {
    let l = logits();
    // History "... 3 9 ... 3 12 ... 3": the bigrams (3, 9) and (3, 12) exist, so 9 and 12 are banned.
    let history = [3u32, 9, 1, 3, 12, 5, 3];
    let cfg = SamplerConfig {
        no_repeat_ngram: Some(2),
        ..Default::default()
    };
    let mut target = tempered(&l, 1.0);
    target[9] = 0.0;
    target[12] = 0.0;
    let target = renorm(target);
    let c = counts_of(cfg, 7, &l, &history, N);
    assert_fits("no-repeat bigram", &c, &target);
}

#[test]
fn batch_rows_each_follow_their_own_distribution() {
    let l = logits();
    let mut rev = l.clone();
    rev.reverse();
    let mut batch = l.clone();
    batch.extend_from_slice(&rev);
    let mut s = Sampler::new(SamplerConfig::default(), 8).unwrap();
    let (mut c0, mut c1) = (vec![0u64; 40], vec![0u64; 40]);
    let none: &[&[u32]] = &[];
    for _ in 0..N / 2 {
        let t = s.sample_batch(&batch, 40, none).unwrap();
        c0[t[0] as usize] += 1;
        c1[t[1] as usize] += 1;
    }
    assert_fits("batch row 0", &c0, &tempered(&l, 1.0));
    assert_fits("batch row 1", &c1, &tempered(&rev, 1.0));
}

/// The same statistic must reject wrong samplers, or the tests above prove nothing.
#[test]
fn chi_square_rejects_wrong_targets() {
    let l = logits();
    // A sampler that ignores the temperature: draws at T = 1, target T = 0.7 / 1.5.
    let c = counts_of(SamplerConfig::default(), 9, &l, &[], N);
    for t in [0.7, 1.5] {
        let (stat, df, p) = chi_square(&c, &tempered(&l, t));
        eprintln!("T ignored (target {t}): X² = {stat:.0}, df = {df}, p = {p:.1e}");
        assert!(
            p < 1e-30,
            "temperature {t} not applied went undetected (p = {p})"
        );
    }
    // A milder error: temperature 1.05 instead of 1.
    let (_, _, p) = chi_square(&c, &tempered(&l, 1.05));
    assert!(p < ALPHA, "5% temperature error went undetected (p = {p})");
    // And the correct target is accepted on the same draws.
    assert!(chi_square(&c, &tempered(&l, 1.0)).2 > ALPHA);
}

#[test]
fn categorical_and_one_shot_draws_agree_exactly() {
    // Same seed, same f64 uniform, same rule `min{i : C_i > u·C_V}`: identical draws.
    let w: Vec<f64> = tempered(&logits(), 1.0);
    let cat = Categorical::new(&w).unwrap();
    let (mut a, mut b) = (StdRng::seed_from_u64(10), StdRng::seed_from_u64(10));
    for _ in 0..20_000 {
        assert_eq!(cat.sample(&mut a), sample_categorical(&w, &mut b).unwrap());
    }
}

/// Exact probability that an f32 Gumbel-max sampler picks a tail token, for one top token with
/// logit `gap` and `m` tail tokens with logit 0.
///
/// The f32 sampler draws `u = k · 2^-24` (k uniform in 0..2^24, as `rand` makes an f32), sets
/// `g = -ln(-ln u)` and takes `argmax (l_i + g_i)` in f32 (top token first, so it wins ties).
/// A tail token wins iff `max_j g_j > gap + g_top`; with `c(y) = #{k : g(k) > y}`,
/// `P(tail) = 2^-24 Σ_k [1 − (1 − c(gap + g(k))/2^24)^m]`. Only the largest few `g(k)` exceed
/// `gap + g_min ≈ gap − 2.81`, so `c` is found among the top 64 grid points.
fn f32_gumbel_tail_mass(gap: f32, m: f64) -> f64 {
    const K: u32 = 1 << 24;
    let g = |k: u32| -> f32 { -(-((k as f32) * (1.0 / K as f32)).ln()).ln() };
    let mut top: Vec<f32> = (K - 64..K).map(g).collect();
    top.sort_by(|a, b| a.total_cmp(b));
    assert!(
        g(K - 65) < gap + g(1),
        "the top 64 grid points do not cover the tail"
    );
    let g_max = top[63];
    let mut mass = 0.0f64;
    for k in 0..K {
        let y = gap + g(k);
        if y >= g_max {
            break; // g(k) only grows with k: no tail token can win from here on.
        }
        let c = 64 - top.partition_point(|&v| v <= y);
        let c = if k == 0 { K as usize } else { c }; // g(0) = -inf: any tail token wins.
        let q = c as f64 / K as f64;
        mass += -(m * (-q).ln_1p()).exp_m1();
    }
    mass / K as f64
}

/// One top token and 10^6 tail tokens whose probability is e^-17 ≈ 4.1e-8 of the top one:
/// together they hold ≈ 3.98% of the mass. 2·10^5 draws through the f64 inverse CDF must put
/// that share in the tail (binomial/chi-square bound) and spread it evenly over the tail.
/// An f32 Gumbel-max sampler gives the tail only ≈ 1.75% (computed exactly below): the test
/// would reject it by ~50 standard deviations. With a gap of 20 (ratio 2e-9, tail mass 0.2%) the
/// f32 sampler's tail share is 2^-24 ≈ 6e-8 (only u = 0 lets a tail token win): it never
/// samples the tail at all.
#[test]
fn tiny_probabilities_get_their_mass() {
    const M: usize = 1_000_000;
    const GAP: f32 = 17.0;
    let mut logits = vec![0.0f32; M + 1];
    logits[0] = GAP;
    let dist = SamplerConfig::default().distribution(&logits, &[]).unwrap();
    let ratio = dist[1] / dist[0];
    assert!((ratio / (-17f64).exp() - 1.0).abs() < 1e-12 && ratio < 1e-7);
    let q = M as f64 * (-17f64).exp() / (1.0 + M as f64 * (-17f64).exp());
    let tail_mass: f64 = dist[1..].iter().sum();
    // 10^6 f64 additions: rounding error ~1e-16 per term, far below anything a test can see.
    assert!(
        (tail_mass / q - 1.0).abs() < 1e-9,
        "tail mass {tail_mass} vs {q}"
    );

    let cat = Categorical::new(&dist).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let draws = 200_000usize;
    const BUCKETS: usize = 10;
    let mut buckets = [0u64; BUCKETS];
    let mut top = 0u64;
    for _ in 0..draws {
        match cat.sample(&mut rng) {
            0 => top += 1,
            i => buckets[(i - 1) * BUCKETS / M] += 1,
        }
    }
    let tail: u64 = buckets.iter().sum();
    eprintln!(
        "tail draws {tail} of {draws}, expected {:.0}",
        q * draws as f64
    );
    // Top vs tail: chi-square with 1 df (= the two-sided binomial z-test).
    assert_fits("top vs tail", &[top, tail], &[1.0 - q, q]);
    // Within the tail: uniform over ten blocks of 10^5 tokens.
    assert_fits(
        "tail uniformity",
        &buckets,
        &[1.0 / BUCKETS as f64; BUCKETS],
    );

    // What an f32 Gumbel-max would do on the same problem.
    let f32_mass = f32_gumbel_tail_mass(GAP, M as f64);
    eprintln!("f32 Gumbel-max tail mass {f32_mass:.5} vs true {q:.5}");
    assert!(f32_mass < 0.5 * q, "f32 Gumbel tail mass {f32_mass}");
    let expected_f32 = f32_mass * draws as f64;
    let (_, _, p) = chi_square(&[top, tail], &[1.0 - f32_mass, f32_mass]);
    assert!(
        p < 1e-100,
        "the tail count cannot tell f32 Gumbel-max apart (p = {p})"
    );
    let sd = (draws as f64 * q * (1.0 - q)).sqrt();
    eprintln!(
        "f32 sampler's expected tail count {expected_f32:.0}: {:.0} sd away",
        (q * draws as f64 - expected_f32) / sd
    );

    let far = f32_gumbel_tail_mass(20.0, M as f64);
    assert!(far <= 1.0 / (1u64 << 24) as f64 * 1.000001, "gap 20: {far}");
}
