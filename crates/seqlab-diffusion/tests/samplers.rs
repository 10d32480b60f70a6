//! The samplers against exact laws on a tiny vocabulary: the ancestral step against brute-force
//! enumeration, the first-hitting clock against its closed-form law (KS), first-hitting vs
//! ancestral with many steps against the exact random-order distribution (chi-square), the
//! no-change cache, infilling, semi-AR blocks, and f64 vs the reference's f32 Gumbel draws.
//! Each check also runs against a deliberately wrong law, which it must reject.

use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_diffusion::sampler::{
    all_masked, ancestral_step_row, draw_token, first_hitting_time, sample_ancestral,
    sample_first_hitting, sample_semi_ar, AncestralConfig, Draw, FhsConfig, InfillTemplate,
    InnerSampler, NoiseSchedule, SemiArConfig, ToyDenoiser,
};
use seqlab_diffusion::subs::subs_log_probs;
use seqlab_diffusion::Denoiser;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::collections::HashMap;

const LOGLIN: NoiseSchedule = NoiseSchedule::LogLinear { eps: 1e-3 };

/// SUBS probabilities (f64) of one row: len × V.
fn probs(den: &ToyDenoiser, row: &[u32]) -> Vec<Vec<f64>> {
    let logits = den.logits(row, 1, &[0.5]).unwrap();
    let lp = subs_log_probs(&logits, row, den.mask_id()).unwrap();
    let flat = lp.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    flat.chunks_exact(den.vocab_size())
        .map(|c| c.iter().map(|&l| f64::from(l).exp()).collect())
        .collect()
}

fn log_probs_f32(den: &ToyDenoiser, row: &[u32]) -> Vec<f32> {
    let logits = den.logits(row, 1, &[0.5]).unwrap();
    let lp = subs_log_probs(&logits, row, den.mask_id()).unwrap();
    lp.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Pearson chi-square p-value of `counts` (n draws) against `expected` probabilities; bins
/// expected below 5 draws are pooled; any draw outside the support gives p = 0.
fn chi2_p(counts: &HashMap<Vec<u32>, usize>, expected: &HashMap<Vec<u32>, f64>) -> f64 {
    let n: usize = counts.values().sum();
    if counts
        .keys()
        .any(|k| expected.get(k).copied().unwrap_or(0.0) == 0.0)
    {
        return 0.0;
    }
    let (mut stat, mut bins) = (0.0, 0usize);
    let (mut pool_o, mut pool_e) = (0.0, 0.0);
    for (k, &p) in expected {
        let e = p * n as f64;
        let o = counts.get(k).copied().unwrap_or(0) as f64;
        if e < 5.0 {
            pool_o += o;
            pool_e += e;
        } else {
            stat += (o - e).powi(2) / e;
            bins += 1;
        }
    }
    if pool_e > 0.0 {
        stat += (pool_o - pool_e).powi(2) / pool_e.max(1e-300);
        bins += 1;
    }
    1.0 - ChiSquared::new((bins - 1) as f64).unwrap().cdf(stat)
}

fn tally(rows: impl Iterator<Item = Vec<u32>>) -> HashMap<Vec<u32>, usize> {
    let mut m = HashMap::new();
    for r in rows {
        *m.entry(r).or_insert(0) += 1;
    }
    m
}

/// Kolmogorov–Smirnov statistic of `xs` against the CDF `f`.
fn ks(xs: &mut [f64], f: impl Fn(f64) -> f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = f(x);
            (c - i as f64 / n).abs().max(((i + 1) as f64 / n - c).abs())
        })
        .fold(0.0, f64::max)
}

/// Critical KS value at level 0.001.
fn ks_crit(n: usize) -> f64 {
    1.95 / (n as f64).sqrt()
}

#[test]
fn ancestral_step_matches_brute_force_enumeration() {
    let den = ToyDenoiser::new(4, 7, 2.0).unwrap();
    let m = den.mask_id();
    let x_t = vec![m, 1, m];
    let lp = log_probs_f32(&den, &x_t);
    let p = probs(&den, &x_t);
    let (mc_t, mc_s) = (0.8, 0.5);
    // Exact law by enumerating every x_s ∈ {0, 1, 2, M}^3: positions independent; masked ones
    // stay with (1 − α_s)/(1 − α_t), else take v with x_θ,v (α_s − α_t)/(1 − α_t).
    let law = |stay: f64| {
        let mut exact = HashMap::new();
        for a in 0..4u32 {
            for b in 0..4u32 {
                for c in 0..4u32 {
                    let x = vec![a, b, c];
                    let mut pr = 1.0;
                    for (i, (&xs, &xt)) in x.iter().zip(&x_t).enumerate() {
                        pr *= if xt != m {
                            f64::from(u8::from(xs == xt))
                        } else if xs == m {
                            stay
                        } else {
                            (1.0 - stay) * p[i][xs as usize]
                        };
                    }
                    exact.insert(x, pr);
                }
            }
        }
        exact
    };
    let exact = law(mc_s / mc_t);
    let total: f64 = exact.values().sum();
    assert!((total - 1.0).abs() < 1e-6, "{total}");
    for draw in [Draw::F64, Draw::F32Gumbel] {
        let mut rng = StdRng::seed_from_u64(11);
        let n = 40_000;
        let counts = tally((0..n).map(|_| {
            let mut row = x_t.clone();
            ancestral_step_row(&mut row, &lp, m, mc_t, mc_s, draw, None, &mut rng).unwrap();
            row
        }));
        let p_ok = chi2_p(&counts, &exact);
        assert!(p_ok > 1e-3, "{draw:?}: p = {p_ok}");
        // A wrong rule (stay with prob 1 − α_s instead of the ratio) is rejected.
        let p_wrong = chi2_p(&counts, &law(mc_s));
        assert!(p_wrong < 1e-12, "{draw:?}: wrong rule p = {p_wrong}");
    }
}

#[test]
fn first_hitting_clock_follows_the_exact_law_per_row() {
    // Rows with 1, 2 and 5 masked tokens (of 5) in one batch, each with its own clock.
    let den = ToyDenoiser::new(4, 3, 1.0).unwrap().recording();
    let m = den.mask_id();
    let per = 1500;
    let groups = [1usize, 2, 5];
    let mut init = Vec::new();
    for &n in &groups {
        for _ in 0..per {
            init.extend((0..5).map(|i| if i < n { m } else { 0 }));
        }
    }
    let batch = per * groups.len();
    let mut rng = StdRng::seed_from_u64(5);
    let out =
        sample_first_hitting(&den, &LOGLIN, &init, batch, &FhsConfig::default(), &mut rng).unwrap();
    assert_eq!(out.stats.network_calls, per * (1 + 2 + 5));
    assert!(!out.tokens.contains(&m));
    let calls = den.take_calls();
    assert_eq!(calls.len(), 5, "the longest row needs 5 calls");
    // First call: s = 1·u^{1/n}, P(s ≤ x) = x^n.
    for (g, &n) in groups.iter().enumerate() {
        let mut s: Vec<f64> = calls[0].t[g * per..(g + 1) * per].to_vec();
        let d = ks(&mut s, |x| x.powi(n as i32));
        assert!(d < ks_crit(per), "n = {n}: D = {d}");
        // A clock that ignores one of the masked tokens (law x^{n+1}) is rejected.
        let wrong = ks(&mut s, |x| x.powi(n as i32 + 1));
        assert!(wrong > ks_crit(per), "n = {n}: wrong law D = {wrong}");
    }
    // Second call: rows with n ≥ 2 (in order); s₂/s₁ has law x^{n−1}.
    assert_eq!(calls[1].batch, 2 * per);
    for (j, n) in [2usize, 5].into_iter().enumerate() {
        let g = groups.iter().position(|&x| x == n).unwrap();
        let mut ratio: Vec<f64> = (0..per)
            .map(|i| calls[1].t[j * per + i] / calls[0].t[g * per + i])
            .collect();
        let d = ks(&mut ratio, |x| x.powi(n as i32 - 1));
        assert!(d < ks_crit(per), "n = {n}: D = {d}");
    }
}

#[test]
fn first_hitting_time_inverts_any_schedule() {
    let mut rng = StdRng::seed_from_u64(9);
    let (t, n, draws) = (0.7, 3usize, 4000);
    for sched in [
        NoiseSchedule::Cosine { eps: 1e-3 },
        NoiseSchedule::Geometric {
            sigma_min: 1e-3,
            sigma_max: 1.0,
        },
        LOGLIN,
    ] {
        let mut s: Vec<f64> = (0..draws)
            .map(|_| {
                let u: f64 = rand::Rng::random_range(&mut rng, 1e-12..1.0);
                first_hitting_time(&sched, t, n, u).unwrap()
            })
            .collect();
        assert!(s.iter().all(|&x| (0.0..=t).contains(&x)));
        let law = |x: f64| (sched.mask_prob(x) / sched.mask_prob(t)).powi(n as i32);
        let d = ks(&mut s, law);
        assert!(d < ks_crit(draws), "{sched:?}: D = {d}");
        let wrong = ks(&mut s, |x| law(x).powf(1.5));
        assert!(wrong > 2.0 * ks_crit(draws), "{sched:?}: wrong D = {wrong}");
    }
    // log-linear closed form s = t·u^{1/n}.
    let s = first_hitting_time(&LOGLIN, 0.6, 4, 0.3).unwrap();
    assert!((s - 0.6 * 0.3f64.powf(0.25)).abs() < 1e-12, "{s}");
    assert!(first_hitting_time(&LOGLIN, 0.6, 0, 0.3).is_err());
}

/// Exact law of unmasking one uniformly chosen (or, `left_to_right`, the leftmost) masked
/// position at a time, each from x_θ(x_t) — FHS's law, and ancestral's as T → ∞.
fn exact_order_law(den: &ToyDenoiser, x: Vec<u32>, left_to_right: bool) -> HashMap<Vec<u32>, f64> {
    fn rec(den: &ToyDenoiser, x: Vec<u32>, w: f64, l2r: bool, out: &mut HashMap<Vec<u32>, f64>) {
        let m = den.mask_id();
        let masked: Vec<usize> = (0..x.len()).filter(|&i| x[i] == m).collect();
        if masked.is_empty() {
            *out.entry(x).or_insert(0.0) += w;
            return;
        }
        let p = probs(den, &x);
        let choices: Vec<usize> = if l2r { vec![masked[0]] } else { masked };
        let k = choices.len() as f64;
        for &i in &choices {
            for (v, &pv) in p[i].iter().enumerate() {
                if pv > 0.0 {
                    let mut y = x.clone();
                    y[i] = v as u32;
                    rec(den, y, w * pv / k, l2r, out);
                }
            }
        }
    }
    let mut out = HashMap::new();
    rec(den, x, 1.0, left_to_right, &mut out);
    out
}

#[test]
fn first_hitting_and_many_step_ancestral_match_the_exact_law() {
    let den = ToyDenoiser::new(4, 21, 2.5).unwrap();
    let m = den.mask_id();
    let len = 3;
    let exact = exact_order_law(&den, vec![m; len], false);
    let l2r = exact_order_law(&den, vec![m; len], true);
    let tv: f64 = exact
        .iter()
        .map(|(k, &p)| (p - l2r.get(k).copied().unwrap_or(0.0)).abs())
        .sum::<f64>()
        / 2.0;
    assert!(tv > 0.05, "the negative control must differ: TV = {tv}");
    let n = 20_000;
    let init = all_masked(len, n, m);
    let mut rng = StdRng::seed_from_u64(1);
    let fhs =
        sample_first_hitting(&den, &LOGLIN, &init, n, &FhsConfig::default(), &mut rng).unwrap();
    assert_eq!(fhs.calls_per_sample(), len as f64);
    let cfg = AncestralConfig {
        steps: 1000,
        ..AncestralConfig::default()
    };
    let anc = sample_ancestral(&den, &LOGLIN, &init, n, &cfg, &mut rng).unwrap();
    assert!(
        anc.calls_per_sample() <= (len + 1) as f64,
        "cache: {}",
        anc.calls_per_sample()
    );
    for (name, s) in [("fhs", &fhs), ("ancestral", &anc)] {
        let counts = tally((0..n).map(|r| s.row(r).to_vec()));
        let p = chi2_p(&counts, &exact);
        assert!(p > 1e-3, "{name}: p = {p}");
        let p_wrong = chi2_p(&counts, &l2r);
        assert!(p_wrong < 1e-10, "{name} vs left-to-right: p = {p_wrong}");
    }
}

#[test]
fn the_cache_saves_calls_and_changes_nothing() {
    let den = ToyDenoiser::new(6, 4, 2.0).unwrap();
    let (len, batch) = (8, 16);
    let init = all_masked(len, batch, den.mask_id());
    let run = |cache: bool| {
        let cfg = AncestralConfig {
            steps: 256,
            cache,
            ..AncestralConfig::default()
        };
        sample_ancestral(
            &den,
            &LOGLIN,
            &init,
            batch,
            &cfg,
            &mut StdRng::seed_from_u64(3),
        )
        .unwrap()
    };
    let (with, without) = (run(true), run(false));
    // A time-agnostic denoiser: the same draws, so the same samples, with fewer calls.
    assert_eq!(with.tokens, without.tokens);
    assert!(
        with.calls_per_sample() <= (len + 1) as f64,
        "{}",
        with.calls_per_sample()
    );
    assert!(
        without.calls_per_sample() > 200.0,
        "{}",
        without.calls_per_sample()
    );
    assert_eq!(without.stats.steps, 256);
}

#[test]
fn infilling_keeps_every_fixed_position() {
    let den = ToyDenoiser::new(9, 8, 2.0).unwrap();
    let m = den.mask_id();
    // A fake tokenizer: one id per character, 'a' → 0 …
    fn enc(s: &str) -> Result<Vec<u32>, String> {
        Ok(s.bytes().map(|b| u32::from(b - b'a') % 8).collect())
    }
    let templates = [
        InfillTemplate::parse("abc{5}", None, enc).unwrap(), // prefix
        InfillTemplate::parse("{4}hgf", None, enc).unwrap(), // suffix
        InfillTemplate::parse("a{2}b{3}cd{1}e", None, enc).unwrap(), // arbitrary
        InfillTemplate::parse("ab", Some(7), enc).unwrap(),  // continuation
    ];
    assert_eq!(templates[2].slots.len(), 11);
    assert_eq!(templates[2].gaps(), 6);
    assert_eq!(templates[3].len(), 7);
    for (k, tpl) in templates.iter().enumerate() {
        let batch = 8;
        let init = tpl.rows(batch, m);
        let mut rng = StdRng::seed_from_u64(k as u64);
        let anc = sample_ancestral(
            &den,
            &LOGLIN,
            &init,
            batch,
            &AncestralConfig {
                steps: 32,
                ..Default::default()
            },
            &mut rng,
        )
        .unwrap();
        let fhs =
            sample_first_hitting(&den, &LOGLIN, &init, batch, &FhsConfig::default(), &mut rng)
                .unwrap();
        assert_eq!(fhs.stats.network_calls, batch * tpl.gaps());
        for s in [&anc, &fhs] {
            for r in 0..batch {
                assert!(tpl.is_kept_by(s.row(r)), "template {k}: {:?}", s.row(r));
                assert!(!s.row(r).contains(&m));
            }
        }
    }
    for bad in ["ab{x}", "a{0}", "a{3", ""] {
        assert!(InfillTemplate::parse(bad, None, enc).is_err(), "{bad}");
    }
    assert!(InfillTemplate::parse("abcd", Some(2), enc).is_err());
}

#[test]
fn semi_ar_generates_each_block_conditioned_on_the_last() {
    let den = ToyDenoiser::new(6, 2, 2.0).unwrap().recording();
    let m = den.mask_id();
    let (w, k, total, batch) = (8, 3, 20, 2);
    let cfg = SemiArConfig {
        window: w,
        stride: k,
        total_len: total,
        inner: InnerSampler::FirstHitting(FhsConfig::default()),
    };
    let prefix = [1u32, 2];
    let out = sample_semi_ar(
        &den,
        &LOGLIN,
        &prefix,
        batch,
        &cfg,
        &mut StdRng::seed_from_u64(0),
    )
    .unwrap();
    assert_eq!(out.len, total);
    assert_eq!(out.tokens.len(), total * batch);
    // 6 tokens in the first window, then ⌈12/3⌉ = 4 blocks of 3.
    assert_eq!(out.stats.network_calls, batch * (6 + 4 * 3));
    let calls = den.take_calls();
    for r in 0..batch {
        let row = out.row(r);
        assert_eq!(&row[..2], &prefix);
        assert!(!row.contains(&m));
    }
    // The first call of block 1 (after 6 calls of the first window) sees the last w − k
    // tokens of the first window, then k masks.
    let c = &calls[6];
    assert_eq!(c.batch, batch);
    for r in 0..batch {
        let input = &c.tokens[r * w..(r + 1) * w];
        assert_eq!(&input[..w - k], &out.row(r)[k..w]);
        assert!(input[w - k..].iter().all(|&t| t == m));
    }
    let bad = SemiArConfig { stride: w, ..cfg };
    assert!(sample_semi_ar(&den, &LOGLIN, &[], 1, &bad, &mut StdRng::seed_from_u64(0)).is_err());
}

#[test]
fn f64_draws_reach_the_tail_that_f32_gumbel_cuts() {
    // One top token and 2^21 tail tokens at probability ratio 2e-8 each: the tail holds
    // q = 2^21·2e-8/(1 + 2^21·2e-8) ≈ 4.0% of the mass. The f32 race noise is capped (−ln u
    // ≥ 6e-8 on the f32 grid), so a tail token only wins when the top token's noise exceeds
    // ~3: the f32 draw gives the tail a fraction of its mass.
    let tail = 1usize << 21;
    let ratio = 2e-8f64;
    let lse = (1.0 + tail as f64 * ratio).ln();
    let mut lp = vec![(ratio.ln() - lse) as f32; tail + 2];
    lp[0] = -lse as f32;
    lp[tail + 1] = f32::NEG_INFINITY; // [MASK]
    let q = 1.0 - (-lse).exp();
    let n = 300;
    let hits = |draw: Draw| {
        let mut rng = StdRng::seed_from_u64(42);
        (0..n)
            .filter(|_| draw_token(&lp, draw, &mut rng).unwrap() != 0)
            .count()
    };
    let (h64, h32) = (hits(Draw::F64), hits(Draw::F32Gumbel));
    let (mean, sd) = (n as f64 * q, (n as f64 * q * (1.0 - q)).sqrt());
    eprintln!("tail draws of {n}: f64 {h64}, f32 Gumbel {h32}, exact mean {mean:.1} ± {sd:.1}");
    assert!(
        (h64 as f64 - mean).abs() < 3.5 * sd,
        "f64: {h64} vs {mean:.1}"
    );
    assert!((h32 as f64) < mean - 2.0 * sd, "f32: {h32} vs {mean:.1}");
    assert!(h32 * 2 < h64, "f32 {h32} vs f64 {h64}");
}

#[test]
fn bad_input_is_one_clear_error() {
    let den = ToyDenoiser::new(4, 0, 1.0).unwrap();
    let m = den.mask_id();
    let mut rng = StdRng::seed_from_u64(0);
    let cfg0 = AncestralConfig {
        steps: 0,
        ..Default::default()
    };
    let e = sample_ancestral(&den, &LOGLIN, &[m; 4], 1, &cfg0, &mut rng).unwrap_err();
    assert!(e.to_string().contains("steps"), "{e}");
    let e = sample_ancestral(&den, &LOGLIN, &[m; 5], 2, &Default::default(), &mut rng).unwrap_err();
    assert!(e.to_string().contains("rows"), "{e}");
    let e = sample_first_hitting(&den, &LOGLIN, &[9, m], 1, &FhsConfig::default(), &mut rng)
        .unwrap_err();
    assert!(e.to_string().contains("token 9"), "{e}");
    let bad = NoiseSchedule::LogLinear { eps: 2.0 };
    assert!(sample_first_hitting(&den, &bad, &[m], 1, &FhsConfig::default(), &mut rng).is_err());
}

#[test]
fn errors_are_typed_by_what_happened() {
    use seqlab_diffusion::sampler::gumbel_argmax_f32;
    use seqlab_diffusion::DiffusionError;
    let den = ToyDenoiser::new(4, 0, 1.0).unwrap();
    let m = den.mask_id();
    let mut rng = StdRng::seed_from_u64(0);
    let zero_steps = AncestralConfig {
        steps: 0,
        ..Default::default()
    };
    let e = sample_ancestral(&den, &LOGLIN, &[m; 4], 1, &zero_steps, &mut rng).unwrap_err();
    assert!(matches!(e, DiffusionError::Config(_)), "{e:?}");
    let e = sample_first_hitting(&den, &LOGLIN, &[9, m], 1, &FhsConfig::default(), &mut rng)
        .unwrap_err();
    assert!(matches!(e, DiffusionError::Input(_)), "{e:?}");
    let e = sample_ancestral(&den, &LOGLIN, &[m; 5], 2, &Default::default(), &mut rng).unwrap_err();
    assert!(
        matches!(
            e,
            DiffusionError::Tensor(seqlab_tensor::TensorError::RaggedBatch { .. })
        ),
        "{e:?}"
    );
    let e = gumbel_argmax_f32(&[0.0, 0.0], &mut rng).unwrap_err();
    assert!(matches!(e, DiffusionError::NotFinite(_)), "{e:?}");
}
