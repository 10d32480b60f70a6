//! Sample evaluation: unigram entropy against hand-computed values, gen-PPL of a uniform AR
//! model (exactly ln V), the per-setting measurement (calls, FHS = one call per token), the
//! markdown table and the gen-PPL plot.

use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_diffusion::edlm::EdlmConfig;
use seqlab_diffusion::gen_eval::{
    evaluate_sampler, gen_ppl_plot_png, generative_perplexity, markdown_table,
    mean_unigram_entropy, unigram_entropy,
};
use seqlab_diffusion::sampler::{
    AncestralConfig, FhsConfig, NoiseSchedule, SamplerSpec, ToyDenoiser,
};
use seqlab_lm::CausalLm;

/// An AR model with equal logits over `v` ids.
#[derive(Debug)]
struct Uniform(usize);

impl CausalLm for Uniform {
    type State = usize;
    fn vocab_size(&self) -> usize {
        self.0
    }
    fn prefill(&self, tokens: &[u32]) -> seqlab_lm::Result<(Vec<f32>, usize)> {
        Ok((vec![0.0; self.0], tokens.len()))
    }
    fn step(&self, s: &mut usize, _: u32) -> seqlab_lm::Result<Vec<f32>> {
        *s += 1;
        Ok(vec![0.0; self.0])
    }
    fn score(&self, s: &mut usize, tokens: &[u32]) -> seqlab_lm::Result<Vec<f32>> {
        *s += tokens.len();
        Ok(vec![0.0; self.0 * tokens.len()])
    }
    fn state_len(&self, s: &usize) -> usize {
        *s
    }
    fn truncate(&self, s: &mut usize, len: usize) -> seqlab_lm::Result<()> {
        *s = len.min(*s);
        Ok(())
    }
}

#[test]
fn unigram_entropy_matches_hand_values() {
    assert_eq!(unigram_entropy(&[]), 0.0);
    assert_eq!(unigram_entropy(&[5, 5, 5, 5]), 0.0);
    assert!((unigram_entropy(&[1, 2, 1, 2]) - 2f64.ln()).abs() < 1e-15);
    // counts 2, 1, 1 of 4: −(½ ln ½ + 2·¼ ln ¼) = 1.5 ln 2.
    assert!((unigram_entropy(&[7, 3, 7, 9]) - 1.5 * 2f64.ln()).abs() < 1e-15);
    let m = mean_unigram_entropy(&[vec![1, 1], vec![1, 2]]);
    assert!((m - 2f64.ln() / 2.0).abs() < 1e-15);
}

#[test]
fn uniform_ar_model_gives_gen_ppl_v() {
    let samples = vec![vec![0, 1, 2, 3], vec![3, 3, 3]];
    let g = generative_perplexity(&Uniform(7), &samples, None).unwrap();
    assert_eq!(g.predictions, 3 + 2);
    assert!((g.perplexity - 7.0).abs() < 1e-9, "{}", g.perplexity);
    let g = generative_perplexity(&Uniform(7), &samples, Some(6)).unwrap();
    assert_eq!(g.predictions, 7);
    assert!(generative_perplexity(&Uniform(7), &[vec![1]], None).is_err());
}

#[test]
fn evaluate_measures_calls_and_plots() {
    let den = ToyDenoiser::new(6, 1, 2.0).unwrap();
    let sched = NoiseSchedule::default();
    let ar = Uniform(5);
    let (n, len) = (4, 10);
    let mut rows = Vec::new();
    let specs = [
        SamplerSpec::Ancestral(AncestralConfig {
            steps: 8,
            cache: false,
            ..Default::default()
        }),
        SamplerSpec::Ancestral(AncestralConfig {
            steps: 64,
            ..Default::default()
        }),
        SamplerSpec::FirstHitting(FhsConfig::default()),
        SamplerSpec::Edlm(EdlmConfig {
            k: 3,
            ..Default::default()
        }),
    ];
    for spec in &specs {
        let mut rng = StdRng::seed_from_u64(0);
        let (row, s) = evaluate_sampler(&den, &sched, spec, &ar, None, n, len, &mut rng).unwrap();
        assert_eq!(s.tokens.len(), n * len);
        assert!((row.gen_ppl - 5.0).abs() < 1e-9);
        assert!(row.entropy > 0.0 && row.entropy <= (len as f64).ln());
        rows.push(row);
    }
    assert!(rows[0].calls_per_sample <= 8.0 && rows[0].calls_per_sample > 4.0);
    assert!(rows[1].calls_per_sample <= (len + 1) as f64);
    assert_eq!(rows[2].calls_per_sample, len as f64);
    assert_eq!((rows[3].sampler.as_str(), rows[3].k), ("edlm", 3));
    let table = markdown_table(&rows);
    assert_eq!(table.lines().count(), 2 + rows.len());
    assert!(
        table.contains("| fhs | – | no | f64 | – | 5.00 |"),
        "{table}"
    );
    let png = gen_ppl_plot_png(&rows).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(gen_ppl_plot_png(&[]).is_err());
    let e = evaluate_sampler(
        &den,
        &sched,
        &specs[0],
        &ar,
        None,
        0,
        len,
        &mut StdRng::seed_from_u64(0),
    );
    assert!(e.is_err());
}
