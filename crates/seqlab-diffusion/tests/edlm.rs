//! EDLM's importance sampling on a tiny enumerable model: a table AR `CausalLm` as the energy,
//! the toy denoiser as proposal, every x_0 ∈ {0, 1, 2}^3 enumerated. The resampled candidate
//! follows the exact sampling-importance-resampling law for k = 2 and 4, that law tends to the
//! reweighted target p ∝ p_AR as k grows (and k = 128 samples land on it), and the
//! reciprocal weight (the public code's +E) is rejected.

use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_diffusion::ar_score::ar_log_probs;
use seqlab_diffusion::edlm::{importance_resample, sample_edlm, ArEnergy, EdlmConfig, FnEnergy};
use seqlab_diffusion::gen_eval::generative_perplexity;
use seqlab_diffusion::sampler::{
    all_masked, sample_ancestral, AncestralConfig, NoiseSchedule, ToyDenoiser,
};
use seqlab_diffusion::subs::subs_log_probs;
use seqlab_diffusion::Denoiser;
use seqlab_lm::{CausalLm, LmError};
use seqlab_tensor::log_softmax;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::collections::HashMap;

const LOGLIN: NoiseSchedule = NoiseSchedule::LogLinear { eps: 1e-3 };
const BOS: u32 = 3;

/// A table AR model over 4 ids (0, 1, 2 and BOS = 3): logits hashed from the whole context.
#[derive(Debug)]
struct TableLm {
    seed: u64,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl TableLm {
    fn next(&self, ctx: &[u32]) -> Vec<f32> {
        let mut h = mix(self.seed);
        for &t in ctx {
            h = mix(h ^ u64::from(t));
        }
        (0..4u64)
            .map(|v| 1.5 * ((mix(h ^ v) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0))
            .collect()
    }
}

impl CausalLm for TableLm {
    type State = Vec<u32>;
    fn vocab_size(&self) -> usize {
        4
    }
    fn prefill(&self, tokens: &[u32]) -> seqlab_lm::Result<(Vec<f32>, Vec<u32>)> {
        Ok((self.next(tokens), tokens.to_vec()))
    }
    fn step(&self, s: &mut Vec<u32>, token: u32) -> seqlab_lm::Result<Vec<f32>> {
        s.push(token);
        Ok(self.next(s))
    }
    fn score(&self, s: &mut Vec<u32>, tokens: &[u32]) -> seqlab_lm::Result<Vec<f32>> {
        let mut out = Vec::new();
        for &t in tokens {
            s.push(t);
            out.extend(self.next(s));
        }
        Ok(out)
    }
    fn state_len(&self, s: &Vec<u32>) -> usize {
        s.len()
    }
    fn truncate(&self, s: &mut Vec<u32>, len: usize) -> seqlab_lm::Result<()> {
        if len > s.len() {
            return Err(LmError::State(format!("cannot grow {} to {len}", s.len())));
        }
        s.truncate(len);
        Ok(())
    }
}

/// Every x_0 ∈ {0, 1, 2}^3.
fn space() -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for a in 0..3 {
        for b in 0..3 {
            for c in 0..3 {
                out.push(vec![a, b, c]);
            }
        }
    }
    out
}

struct Setup {
    lp: Vec<f32>,
    /// Proposal q(x) = Π x_θ,i(x_i) and the importance weight w(x) = p_AR(x)/q(x).
    q: Vec<f64>,
    w: Vec<f64>,
    index: HashMap<Vec<u32>, usize>,
}

/// Proposal and weights; `bos` None leaves position 0 out of both AR and proposal terms.
fn setup(den: &ToyDenoiser, lm: &TableLm, bos: Option<u32>) -> Setup {
    let m = den.mask_id();
    let x_t = vec![m; 3];
    let logits = den.logits(&x_t, 1, &[0.5]).unwrap();
    let lp: Vec<f32> = subs_log_probs(&logits, &x_t, m)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let v = den.vocab_size();
    let (mut q, mut w, mut index) = (Vec::new(), Vec::new(), HashMap::new());
    for (j, x) in space().into_iter().enumerate() {
        let lq: Vec<f64> = (0..3)
            .map(|i| f64::from(lp[i * v + x[i] as usize]))
            .collect();
        // p_AR by the chain rule, straight from the table.
        let mut ctx: Vec<u32> = bos.into_iter().collect();
        let mut lar = [0.0; 3];
        for i in 0..3 {
            if !ctx.is_empty() {
                lar[i] = log_softmax(&lm.next(&ctx))[x[i] as usize];
            }
            ctx.push(x[i]);
        }
        let skip = usize::from(bos.is_none());
        q.push(lq.iter().sum::<f64>().exp());
        w.push((lar[skip..].iter().sum::<f64>() - lq[skip..].iter().sum::<f64>()).exp());
        index.insert(x, j);
    }
    Setup { lp, q, w, index }
}

/// The exact law of sampling-importance-resampling with k candidates:
/// P(x) = k q(x) E_{Y_2..Y_k ~ q}[w(x) / (w(x) + Σ w(Y_i))] (k ≤ 4, by enumeration).
fn sir_law(q: &[f64], w: &[f64], k: usize) -> Vec<f64> {
    let n = q.len();
    // Distribution of S = Σ_{i<k} w(Y_i) as (value, prob) pairs.
    let mut sums = vec![(0.0f64, 1.0f64)];
    for _ in 1..k {
        let mut next = Vec::with_capacity(sums.len() * n);
        for &(s, p) in &sums {
            for y in 0..n {
                next.push((s + w[y], p * q[y]));
            }
        }
        sums = next;
    }
    (0..n)
        .map(|x| {
            k as f64
                * q[x]
                * sums
                    .iter()
                    .map(|&(s, p)| p * w[x] / (w[x] + s))
                    .sum::<f64>()
        })
        .collect()
}

fn target(q: &[f64], w: &[f64]) -> Vec<f64> {
    let t: Vec<f64> = q.iter().zip(w).map(|(a, b)| a * b).collect();
    let z: f64 = t.iter().sum();
    t.into_iter().map(|x| x / z).collect()
}

fn tv(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

fn chi2_p(counts: &[usize], p: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    let (mut stat, mut bins, mut po, mut pe) = (0.0, 0usize, 0.0, 0.0);
    for (&c, &pi) in counts.iter().zip(p) {
        let e = pi * n as f64;
        if e < 5.0 {
            po += c as f64;
            pe += e;
        } else {
            stat += (c as f64 - e).powi(2) / e;
            bins += 1;
        }
    }
    if pe > 0.0 {
        stat += (po - pe).powi(2) / pe;
        bins += 1;
    }
    1.0 - ChiSquared::new((bins - 1) as f64).unwrap().cdf(stat)
}

fn draw_counts<E: seqlab_diffusion::edlm::EnergyModel>(
    s: &Setup,
    m: u32,
    k: usize,
    energy: &E,
    n: usize,
    seed: u64,
) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = vec![0usize; s.q.len()];
    for _ in 0..n {
        let x = importance_resample(&[m; 3], &s.lp, m, k, 1.0, energy, &mut rng).unwrap();
        counts[s.index[&x]] += 1;
    }
    counts
}

#[test]
fn importance_resampling_follows_the_exact_law_and_tends_to_the_ar_target() {
    let den = ToyDenoiser::new(4, 17, 1.0).unwrap();
    let lm = TableLm { seed: 5 };
    let m = den.mask_id();
    let s = setup(&den, &lm, Some(BOS));
    let goal = target(&s.q, &s.w);
    let flipped: Vec<f64> = s.w.iter().map(|w| 1.0 / w).collect();
    assert!(
        tv(&s.q, &goal) > 0.2,
        "the AR target must differ from the proposal"
    );
    let energy = ArEnergy::new(&lm, Some(BOS));
    let mut last_tv = tv(&sir_law(&s.q, &s.w, 1), &goal);
    for k in [2usize, 4] {
        let law = sir_law(&s.q, &s.w, k);
        assert!((law.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        let d = tv(&law, &goal);
        assert!(d < last_tv, "k = {k}: TV {d} not below {last_tv}");
        last_tv = d;
        let counts = draw_counts(&s, m, k, &energy, 20_000, k as u64);
        let p = chi2_p(&counts, &law);
        assert!(p > 1e-3, "k = {k}: p = {p}");
        // The reciprocal weight p_θ/p_AR (the public code's +E) gives another law: rejected.
        let p_wrong = chi2_p(&counts, &sir_law(&s.q, &flipped, k));
        assert!(p_wrong < 1e-10, "k = {k}: flipped-sign p = {p_wrong}");
    }
    assert_eq!(energy.evals(), 20_000 * (2 + 4));
    // Large k: on the target.
    let counts = draw_counts(&s, m, 128, &energy, 6_000, 9);
    let emp: Vec<f64> = counts.iter().map(|&c| c as f64 / 6_000.0).collect();
    let (d_goal, d_prop) = (tv(&emp, &goal), tv(&emp, &s.q));
    assert!(
        d_goal < 0.04 && d_prop > 0.2,
        "TV to target {d_goal}, to proposal {d_prop}"
    );
}

#[test]
fn without_bos_position_zero_keeps_the_proposal_marginal() {
    let den = ToyDenoiser::new(4, 2, 2.0).unwrap();
    let lm = TableLm { seed: 8 };
    let m = den.mask_id();
    let s = setup(&den, &lm, None);
    let law = sir_law(&s.q, &s.w, 2);
    let counts = draw_counts(&s, m, 2, &ArEnergy::new(&lm, None), 20_000, 1);
    assert!(chi2_p(&counts, &law) > 1e-3);
    // The same law through a closure energy: log_target = log q_0(x_0) + log p_AR(x_1, x_2 | x_0).
    let q0: Vec<f64> = (0..3).map(|v| f64::from(s.lp[v]).exp()).collect();
    let f = FnEnergy(|x: &[u32]| {
        let ar = ar_log_probs(&lm, x, None).map_err(|e| e.to_string())?;
        Ok(q0[x[0] as usize].ln() + ar.iter().sum::<f64>())
    });
    let counts = draw_counts(&s, m, 2, &f, 20_000, 2);
    assert!(chi2_p(&counts, &law) > 1e-3);
}

#[test]
fn edlm_sampler_resamples_inside_its_window_only() {
    let den = ToyDenoiser::new(4, 17, 2.0).unwrap();
    let lm = TableLm { seed: 5 };
    let m = den.mask_id();
    let s = setup(&den, &lm, Some(BOS));
    let energy = ArEnergy::new(&lm, Some(BOS));
    // One step from t = 1 inside a window [0, 1]: every token unmasks towards the resampled
    // candidate, so the rows follow the k = 4 SIR law.
    let n = 20_000;
    let one_step = AncestralConfig {
        steps: 1,
        ..AncestralConfig::default()
    };
    let cfg = EdlmConfig {
        ancestral: one_step,
        k: 4,
        is_start: 1.0,
        is_end: 0.0,
        temperature: 1.0,
    };
    let out = sample_edlm(
        &den,
        &LOGLIN,
        &energy,
        &all_masked(3, n, m),
        n,
        &cfg,
        &mut StdRng::seed_from_u64(4),
    )
    .unwrap();
    assert_eq!(out.is_steps, n);
    assert_eq!(out.energy_evals, 4 * n);
    let mut counts = vec![0usize; 27];
    for r in 0..n {
        counts[s.index[out.samples.row(r)]] += 1;
    }
    let p = chi2_p(&counts, &sir_law(&s.q, &s.w, 4));
    assert!(p > 1e-3, "p = {p}");
    // Outside the window EDLM is plain MDLM: the same draws as the ancestral sampler.
    let outside = EdlmConfig {
        is_start: 0.6,
        is_end: 0.4,
        ..cfg
    };
    let init = all_masked(3, 64, m);
    let e = sample_edlm(
        &den,
        &LOGLIN,
        &energy,
        &init,
        64,
        &outside,
        &mut StdRng::seed_from_u64(6),
    )
    .unwrap();
    let a = sample_ancestral(
        &den,
        &LOGLIN,
        &init,
        64,
        &one_step,
        &mut StdRng::seed_from_u64(6),
    )
    .unwrap();
    assert_eq!(e.is_steps, 0);
    assert_eq!(e.samples.tokens, a.tokens);
    // Many steps: the window's steps importance-sample, the rest do not.
    let many = EdlmConfig {
        ancestral: AncestralConfig {
            steps: 100,
            ..AncestralConfig::default()
        },
        ..outside
    };
    let e = sample_edlm(
        &den,
        &LOGLIN,
        &energy,
        &init,
        64,
        &many,
        &mut StdRng::seed_from_u64(6),
    )
    .unwrap();
    assert!(e.is_steps > 0 && e.is_steps <= 64 * 21, "{}", e.is_steps);
    assert!(!e.samples.tokens.contains(&m));
    let bad = EdlmConfig { k: 0, ..cfg };
    assert!(sample_edlm(
        &den,
        &LOGLIN,
        &energy,
        &init,
        64,
        &bad,
        &mut StdRng::seed_from_u64(0)
    )
    .is_err());
}

#[test]
fn generative_perplexity_is_the_chain_rule_nll() {
    let lm = TableLm { seed: 3 };
    let samples = vec![vec![0u32, 2, 1, 1], vec![2, 2, 0, 1]];
    let mut nll = 0.0;
    for s in &samples {
        for i in 1..s.len() {
            nll -= log_softmax(&lm.next(&s[..i]))[s[i] as usize];
        }
    }
    let g = generative_perplexity(&lm, &samples, None).unwrap();
    assert_eq!(g.predictions, 6);
    assert!(
        (g.nll - nll / 6.0).abs() < 1e-12,
        "{} vs {}",
        g.nll,
        nll / 6.0
    );
    let e = generative_perplexity(&lm, &[vec![0, 7]], None).unwrap_err();
    assert!(e.to_string().contains("token 7"), "{e}");
}

#[test]
fn nce_energy_head_learns_the_data_and_steers_edlm() {
    use seqlab_diffusion::energy_head::{
        nce_batch, train_energy_head, EnergyHead, EnergyHeadConfig, EnergyTrainConfig,
    };
    // Real data: constant rows (k, k, k, k); the toy denoiser knows nothing of that.
    let den = ToyDenoiser::new(5, 4, 1.0).unwrap();
    let m = den.mask_id();
    let real: Vec<Vec<u32>> = (0..4).map(|k| vec![k; 4]).collect();
    let head_cfg = EnergyHeadConfig {
        vocab: 5,
        d_embed: 8,
        d_hidden: 16,
    };
    let cfg = EnergyTrainConfig {
        steps: 150,
        batch: 16,
        lr: 1e-2,
        ..EnergyTrainConfig::default()
    };
    let (head, losses) = train_energy_head(&den, &LOGLIN, &real, head_cfg, &cfg).unwrap();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&losses[..10]), mean(&losses[140..]));
    assert!(
        last < first && last < 2.0 * 2f64.ln() - 0.4,
        "NCE loss {first} -> {last}"
    );
    // Real rows get lower energy than the denoiser's samples from the same x_t.
    let mut rng = StdRng::seed_from_u64(77);
    let x0: Vec<u32> = real.concat().repeat(8);
    let t = vec![0.6; 32];
    let (x_t, neg) = nce_batch(&den, &LOGLIN, &x0, 32, &t, &mut rng).unwrap();
    let e = |a: &[u32]| {
        let v = head.energy(a, &x_t, 32).unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|&x| f64::from(x)).sum::<f64>() / 32.0
    };
    assert!(
        e(&x0) + 1.0 < e(&neg),
        "E(real) {} vs E(neg) {}",
        e(&x0),
        e(&neg)
    );
    // Save / load gives the same energies.
    let dir = tempfile::tempdir().unwrap();
    head.save(dir.path()).unwrap();
    let back = EnergyHead::load(dir.path()).unwrap();
    assert_eq!(
        back.energy(&x0, &x_t, 32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        head.energy(&x0, &x_t, 32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    // As EDLM's energy: from x_t = (2, M, M, 2) the resampled candidate is the real-looking
    // (2, 2, 2, 2) far more often than under the proposal alone (k = 1).
    let x_t = vec![2, m, m, 2];
    let logits = den.logits(&x_t, 1, &[0.5]).unwrap();
    let lp: Vec<f32> = subs_log_probs(&logits, &x_t, m)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let hits = |k: usize| {
        let mut rng = StdRng::seed_from_u64(k as u64);
        (0..2000)
            .filter(|_| {
                importance_resample(&x_t, &lp, m, k, 1.0, &head, &mut rng).unwrap() == [2, 2, 2, 2]
            })
            .count()
    };
    let (h1, h16) = (hits(1), hits(16));
    eprintln!(
        "NCE loss {first:.3} -> {last:.3}; (2,2,2,2) drawn {h1} (k = 1) vs {h16} (k = 16) of 2000"
    );
    assert!(
        h16 > 3 * h1.max(20),
        "proposal {h1}, EDLM with the head {h16} of 2000"
    );
    assert!(EnergyHead::load(&dir.path().join("nope")).is_err());
}
