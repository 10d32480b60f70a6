//! SUBS (mask never predicted, carry-over exact, gradients), the masking process, and the NELBO
//! loss against hand-computed values and its exact expectation for a uniform denoiser.

use candle_core::{Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::SeedableRng;
use seqlab_diffusion::loss::{diffusion_loss, mask_tokens, nelbo_loss, scalar};
use seqlab_diffusion::subs::{subs_log_probs, subs_log_probs_diff, subs_target_log_probs};
use seqlab_diffusion::{Denoiser, NoiseSchedule, Result};

const M: u32 = 3; // mask id of a 3-token vocabulary

fn logits_4() -> Tensor {
    let v: Vec<f32> = vec![
        0.0, 1.0, 2.0, 5.0, // masked, x0 = 2
        0.3, -1.0, 0.7, 2.0, // unmasked (x_t = 1)
        1.0, 1.0, 1.0, 9.0, // masked, x0 = 0
        0.0, 0.0, 0.0, 0.0, // masked, x0 = 1
    ];
    Tensor::from_vec(v, (2, 2, 4), &Device::Cpu).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let (b, l, v) = t.dims3().unwrap();
    let d = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (0..b * l).map(|i| d[i * v..(i + 1) * v].to_vec()).collect()
}

#[test]
fn subs_never_predicts_mask_and_carries_over_exactly() {
    let xt = [M, 1, M, M];
    for out in [
        subs_log_probs(&logits_4(), &xt, M).unwrap(),
        subs_log_probs_diff(&logits_4(), &xt, M).unwrap(),
    ] {
        let r = rows(&out);
        for (i, row) in r.iter().enumerate() {
            assert_eq!(
                row[M as usize],
                f32::NEG_INFINITY,
                "row {i}: mask predicted"
            );
            let total: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
            assert!((total - 1.0).abs() < 1e-6, "row {i} sums to {total}");
        }
        // carry-over: the point mass on x_t, exactly.
        assert_eq!(
            r[1],
            vec![f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, f32::NEG_INFINITY]
        );
        // masked: log-softmax over the non-mask ids, e.g. row 2 is uniform.
        for x in &r[2][..3] {
            assert!((*x as f64 + 3f64.ln()).abs() < 1e-6);
        }
        let lse0 = (1.0f64 + 1f64.exp() + 2f64.exp()).ln();
        assert!((r[0][2] as f64 - (2.0 - lse0)).abs() < 1e-6);
    }
    let a = rows(&subs_log_probs(&logits_4(), &xt, M).unwrap());
    let b = rows(&subs_log_probs_diff(&logits_4(), &xt, M).unwrap());
    for (ra, rb) in a.iter().zip(&b) {
        for (x, y) in ra.iter().zip(rb) {
            assert!(
                x == y || (x - y).abs() < 1e-6,
                "training and sampling SUBS agree"
            );
        }
    }
}

#[test]
fn subs_gradient_is_softmax_minus_onehot_and_zero_on_mask() {
    let var = Var::from_tensor(&logits_4()).unwrap();
    let lp = subs_target_log_probs(var.as_tensor(), &[0, 2], &[2, 0], M).unwrap();
    let g = lp.sum_all().unwrap().backward().unwrap();
    let grad = rows(&g.get(var.as_tensor()).unwrap().reshape((2, 2, 4)).unwrap());
    let lse0 = (1.0f64 + 1f64.exp() + 2f64.exp()).ln();
    for j in 0..3 {
        let p = (j as f64 - lse0).exp();
        let want = if j == 2 { 1.0 - p } else { -p };
        assert!((grad[0][j] as f64 - want).abs() < 1e-6, "{:?}", grad[0]);
    }
    assert_eq!(grad[0][3], 0.0, "no gradient into the −∞ mask logit");
    assert_eq!(grad[1], vec![0.0; 4], "unselected rows get no gradient");
    assert!(grad.iter().flatten().all(|x| x.is_finite()));
}

#[test]
fn subs_rejects_bad_ids() {
    assert!(subs_log_probs_diff(&logits_4(), &[M, 1, M], M).is_err());
    assert!(subs_log_probs_diff(&logits_4(), &[M, 7, M, M], M).is_err());
    assert!(subs_log_probs_diff(&logits_4(), &[0, 1, 2, 0], 4).is_err());
    assert!(subs_target_log_probs(&logits_4(), &[0], &[M], M).is_err());
    assert!(subs_target_log_probs(&logits_4(), &[9], &[0], M).is_err());
}

#[test]
fn loss_equals_the_hand_computed_value() {
    let x0 = [2, 1, 0, 1];
    let xt = [M, 1, M, M];
    let t = [0.5, 0.25];
    let s = NoiseSchedule::LogLinear { eps: 1e-3 };
    // w(t) = −1/t: −2 for row 0, −4 for row 1.
    assert_eq!((s.weight(0.5), s.weight(0.25)), (-2.0, -4.0));
    let lse0 = (1.0f64 + 1f64.exp() + 2f64.exp()).ln();
    let want = (2.0 * (lse0 - 2.0) + 4.0 * 3f64.ln() + 4.0 * 3f64.ln()) / 4.0;
    let got = scalar(&nelbo_loss(&logits_4(), &x0, &xt, &t, &s, M).unwrap()).unwrap();
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // Nothing masked: exactly 0. Inconsistent x_t: an error.
    let zero = nelbo_loss(&logits_4(), &x0, &x0, &t, &s, M).unwrap();
    assert_eq!(scalar(&zero).unwrap(), 0.0);
    assert!(nelbo_loss(&logits_4(), &x0, &[M, 2, M, M], &t, &s, M).is_err());
    // Another schedule weighs by its own α′/(1 − α).
    let c = NoiseSchedule::from_name("cosine").unwrap();
    let want_c = (c.weight(0.5) * (2.0 - lse0) - 2.0 * c.weight(0.25) * 3f64.ln()) / 4.0;
    let got_c = scalar(&nelbo_loss(&logits_4(), &x0, &xt, &t, &c, M).unwrap()).unwrap();
    assert!(
        (got_c - want_c).abs() < 1e-5 * want_c,
        "{got_c} vs {want_c}"
    );
}

/// A tiny "model": fixed logits per vocabulary id, the same at every position.
struct Fixed {
    row: Vec<f32>,
}

impl Denoiser for Fixed {
    fn vocab_size(&self) -> usize {
        self.row.len()
    }
    fn mask_id(&self) -> u32 {
        (self.row.len() - 1) as u32
    }
    fn logits(&self, tokens: &[u32], batch: usize, _t: &[f64]) -> Result<Tensor> {
        let n = tokens.len();
        let data: Vec<f32> = (0..n).flat_map(|_| self.row.clone()).collect();
        Ok(Tensor::from_vec(
            data,
            (batch, n / batch, self.row.len()),
            &Device::Cpu,
        )?)
    }
}

#[test]
fn loss_of_a_tiny_model_matches_its_draws_and_expectation() {
    // logits (0, ln 2, ln 3, ·, mask 7): p = (1/6, 2/6, 3/6)
    let model = Fixed {
        row: vec![0.0, 2f32.ln(), 3f32.ln(), 7.0],
    };
    let s = NoiseSchedule::default();
    let x0: Vec<u32> = (0..4 * 16).map(|i| (i % 3) as u32).collect();
    let mut rng = StdRng::seed_from_u64(5);
    let (loss, nb) = diffusion_loss(&model, &x0, 4, &s, 1e-3, &mut rng).unwrap();
    let mut want = 0.0;
    for (i, (&a, &c)) in nb.xt.iter().zip(&x0).enumerate() {
        if a == 3 {
            want += (1.0 / nb.t[i / 16]) * -((c as f64 + 1.0) / 6.0).ln();
        } else {
            assert_eq!(a, c);
        }
    }
    want /= 64.0;
    assert!((scalar(&loss).unwrap() - want).abs() < 1e-5 * want);
    // Uniform logits: E[loss | t] = (1 − ε)·ln 3 for every t (E[#masked] = L (1 − ε) t).
    let uni = Fixed {
        row: vec![0.0, 0.0, 0.0, 0.0],
    };
    let x0: Vec<u32> = (0..8 * 64).map(|i| (i * 7 % 3) as u32).collect();
    let mut sum = 0.0;
    let n = 200;
    for _ in 0..n {
        let (l, _) = diffusion_loss(&uni, &x0, 8, &s, 1e-3, &mut rng).unwrap();
        sum += scalar(&l).unwrap();
    }
    let mean = sum / n as f64;
    let exact = 0.999 * 3f64.ln();
    assert!((mean - exact).abs() < 0.02 * exact, "{mean} vs {exact}");
}

#[test]
fn masking_rate_is_one_minus_alpha() {
    let s = NoiseSchedule::from_name("cosine").unwrap();
    let x0 = vec![1u32; 2 * 20_000];
    let t = [0.3, 0.8];
    let xt = mask_tokens(&x0, &t, &s, 9, &mut StdRng::seed_from_u64(1)).unwrap();
    for (r, &tr) in t.iter().enumerate() {
        let frac = xt[r * 20_000..(r + 1) * 20_000]
            .iter()
            .filter(|&&x| x == 9)
            .count() as f64
            / 20_000.0;
        let p = 1.0 - s.alpha(tr);
        // 5 standard deviations of a binomial proportion
        assert!(
            (frac - p).abs() < 5.0 * (p * (1.0 - p) / 20_000.0).sqrt(),
            "{frac} vs {p}"
        );
    }
    assert!(mask_tokens(&x0, &[0.5; 3], &s, 9, &mut StdRng::seed_from_u64(1)).is_err());
}
