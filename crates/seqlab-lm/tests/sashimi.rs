//! SaShiMi behind the `CausalLm` seam: conformance (the parallel forward with its causal
//! pooling shifts equals the recurrent mode that steps the pooled stages every 4 / 16
//! samples) for S4D and S4-LegS, causality of the parallel forward, and save / load.

use seqlab_lm::conformance::{check_causal_lm, max_rel_diff};
use seqlab_lm::{load_lm, AnyLm, CausalLm, Sashimi, SashimiConfig, SsmName};

fn tokens(n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 37 + i * i * 3 + 11) % 256)
        .collect()
}

fn small(ssm: SsmName) -> Sashimi {
    Sashimi::init(&SashimiConfig::new(256, 8, 1, 4, ssm, 64), 7).unwrap()
}

#[test]
fn sashimi_s4d_conforms() {
    // 37 tokens: crosses several 4- and 16-sample pooling boundaries, split inside a group.
    check_causal_lm(&small(SsmName::S4d), &tokens(37), 13, 1e-3).unwrap();
}

#[test]
fn sashimi_s4legs_conforms() {
    check_causal_lm(&small(SsmName::S4legs), &tokens(37), 18, 1e-3).unwrap();
}

#[test]
fn stepping_matches_every_parallel_row() {
    let m = small(SsmName::S4d);
    let t = tokens(48);
    let par = m.logits_parallel(&t).unwrap();
    let mut st = m.new_state().unwrap();
    for (i, &x) in t.iter().enumerate() {
        let l = m.step(&mut st, x).unwrap();
        let d = max_rel_diff(&l, &par[i * 256..(i + 1) * 256]);
        assert!(d < 1e-3, "position {i}: {d}");
    }
}

#[test]
fn changing_sample_t_never_changes_earlier_logits() {
    let m = small(SsmName::S4d);
    let base = tokens(64);
    let a = m.logits_parallel(&base).unwrap();
    for t in [0usize, 3, 4, 15, 16, 17, 31, 47, 63] {
        let mut x = base.clone();
        x[t] = (x[t] + 128) % 256;
        let b = m.logits_parallel(&x).unwrap();
        // Logits at positions < t (which predict samples ≤ t) are unchanged up to FFT
        // round-off (a leak through a pooling stage moves them by ~1e-1)...
        let before = max_rel_diff(&a[..t * 256], &b[..t * 256]);
        assert!(before < 1e-5, "sample {t} leaked backwards: {before:e}");
        // ...and position t itself does change (the model reads its input).
        let at = max_rel_diff(&a[t * 256..(t + 1) * 256], &b[t * 256..(t + 1) * 256]);
        assert!(at > 1e-3, "sample {t} is ignored: {at:e}");
    }
}

#[test]
fn saves_and_loads_through_load_lm() {
    let dir = tempfile::tempdir().unwrap();
    let m = small(SsmName::S4d);
    m.save(dir.path()).unwrap();
    let loaded = load_lm(dir.path()).unwrap();
    assert!(matches!(loaded.model, AnyLm::Sashimi(_)));
    let t = tokens(20);
    assert_eq!(
        m.prefill(&t).unwrap().0,
        loaded.model.prefill(&t).unwrap().0
    );
    assert!(m.forward(&tokens(20), 1, None).is_err()); // not a multiple of 16
    assert!(m.prefill(&[256]).is_err());
}

#[test]
fn trains_and_resumes_bit_exactly() {
    use seqlab_data::{prepare_text_inputs, TextInput, TextOptions};
    use seqlab_lm::train::{MetricRow, ModelKind};
    use seqlab_lm::{train, TrainConfig, TrainOptions};
    use seqlab_tokenizer::{CharTokenizer, Tokenizer};
    let tmp = tempfile::tempdir().unwrap();
    let tok = CharTokenizer::from_texts(&[seqlab_data::SAMPLE_TEXT]).unwrap();
    let tok_path = tmp.path().join("char.json");
    tok.save(&tok_path).unwrap();
    let data = tmp.path().join("data");
    prepare_text_inputs(
        &tok,
        &tok_path,
        &[TextInput::sample()],
        &data,
        &TextOptions::default(),
    )
    .unwrap();
    let c = TrainConfig {
        model: ModelKind::Sashimi,
        d_model: 8,
        n_layer: 1,
        d_state: 4,
        batch_size: 4,
        seq_len: 32,
        lr: 1e-2,
        warmup_steps: 2,
        max_steps: 12,
        eval_every: 6,
        eval_batches: 2,
        seed: 9,
        ..TrainConfig::default()
    };
    let opts = |run: &std::path::Path| TrainOptions {
        data: data.clone(),
        run_dir: run.to_path_buf(),
        resume: false,
        stop_at: None,
        progress: false,
    };
    let a = train(&c, &opts(&tmp.path().join("a"))).unwrap();
    let (first, last) = (
        a.metrics[0].train_loss,
        a.metrics.last().unwrap().train_loss,
    );
    assert!(
        last < first - 0.3,
        "SaShiMi did not learn: {first} → {last}"
    );
    let mut o = opts(&tmp.path().join("b"));
    o.stop_at = Some(5);
    train(&c, &o).unwrap();
    o.stop_at = None;
    o.resume = true;
    let b = train(&c, &o).unwrap();
    let key = |r: &MetricRow| (r.step, r.train_loss.to_bits(), r.grad_norm.to_bits());
    let want: Vec<_> = a.metrics[5..].iter().map(key).collect();
    let got: Vec<_> = b.metrics.iter().map(key).collect();
    assert_eq!(got, want, "resumed SaShiMi run differs");
    // A seq_len that is not a multiple of the pooling product is a config error.
    let bad = TrainConfig {
        seq_len: 30,
        ..c.clone()
    };
    assert!(bad.validate().unwrap_err().contains("seq_len"));
}
