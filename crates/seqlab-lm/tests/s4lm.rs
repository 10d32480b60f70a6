//! The S4 LM behind the `CausalLm` seam: conformance (prefill / score / step / truncate agree)
//! for S4D and S4-LegS, save / load round trip through `load_lm`, and training reduces loss.

use seqlab_lm::conformance::check_causal_lm;
use seqlab_lm::{load_lm, AnyLm, CausalLm, S4Lm, S4LmConfig, SsmName};

fn tokens(n: usize, v: u32) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 7 + i * i) % v).collect()
}

#[test]
fn s4d_lm_conforms() {
    let m = S4Lm::init(&S4LmConfig::new(40, 16, 2, 8, SsmName::S4d, 64), 3).unwrap();
    check_causal_lm(&m, &tokens(21, 40), 9, 1e-3).unwrap();
}

#[test]
fn s4legs_lm_conforms() {
    let m = S4Lm::init(&S4LmConfig::new(40, 16, 2, 8, SsmName::S4legs, 64), 5).unwrap();
    check_causal_lm(&m, &tokens(21, 40), 9, 1e-3).unwrap();
    // Past l_max the prefill runs recurrently and still agrees with stepping.
    let long = tokens(70, 40);
    let (last, _) = m.prefill(&long).unwrap();
    let (_, mut st) = m.prefill(&long[..60]).unwrap();
    let mut l = Vec::new();
    for &t in &long[60..] {
        l = m.step(&mut st, t).unwrap();
    }
    assert!(seqlab_lm::conformance::max_rel_diff(&l, &last) < 1e-3);
}

#[test]
fn a_broken_state_is_caught() {
    // The suite must fail on a model whose prefill state is wrong: compare the real prefill
    // state against a zero state after a prefix.
    let m = S4Lm::init(&S4LmConfig::new(40, 16, 1, 8, SsmName::S4d, 64), 1).unwrap();
    let t = tokens(12, 40);
    let (full, _) = m.prefill(&t).unwrap();
    let mut zero = m.new_state().unwrap();
    let mut l = Vec::new();
    for &x in &t[6..] {
        l = m.step(&mut zero, x).unwrap();
    }
    assert!(seqlab_lm::conformance::max_rel_diff(&l, &full) > 1e-3);
}

#[test]
fn saves_and_loads_through_load_lm() {
    let dir = tempfile::tempdir().unwrap();
    let m = S4Lm::init(&S4LmConfig::new(30, 8, 2, 4, SsmName::S4d, 32), 2).unwrap();
    m.save(dir.path()).unwrap();
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(cfg.contains("\"seqlab_s4\""), "{cfg}");
    let loaded = load_lm(dir.path()).unwrap();
    assert!(matches!(loaded.model, AnyLm::S4(_)));
    let t = tokens(10, 30);
    let (a, _) = m.prefill(&t).unwrap();
    let (b, _) = loaded.model.prefill(&t).unwrap();
    assert_eq!(a, b);
    check_causal_lm(&loaded.model, &t, 4, 1e-3).unwrap();
    // Empty prompts and out-of-range tokens are errors, not panics.
    assert!(m.prefill(&[]).is_err());
    assert!(m.prefill(&[30]).is_err());
}

mod training {
    use seqlab_data::{prepare_text_inputs, TextInput, TextOptions};
    use seqlab_lm::train::{find_checkpoint, MetricRow, ModelKind};
    use seqlab_lm::{load_lm, train, AnyLm, TrainConfig, TrainOptions};
    use seqlab_tokenizer::{CharTokenizer, Tokenizer};

    fn cfg() -> TrainConfig {
        TrainConfig {
            model: ModelKind::S4,
            d_model: 16,
            n_layer: 2,
            d_state: 8,
            batch_size: 4,
            seq_len: 32,
            lr: 1e-2,
            min_lr: 1e-3,
            warmup_steps: 2,
            max_steps: 16,
            eval_every: 8,
            eval_batches: 2,
            checkpoint_every: 100,
            seed: 4,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn trains_resumes_bit_exactly_and_loads() {
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
        let opts = |run: &std::path::Path| TrainOptions {
            data: data.clone(),
            run_dir: run.to_path_buf(),
            resume: false,
            overwrite: false,
            stop_at: None,
            progress: false,
        };
        let c = cfg();
        let full = tmp.path().join("full");
        let a = train(&c, &opts(&full)).unwrap();
        let first = a.metrics[0].train_loss;
        let last = a.metrics.last().unwrap().train_loss;
        assert!(last < first - 0.5, "S4 LM did not learn: {first} → {last}");
        let part = tmp.path().join("part");
        let mut o = opts(&part);
        o.stop_at = Some(7);
        train(&c, &o).unwrap();
        o.stop_at = None;
        o.resume = true;
        let b = train(&c, &o).unwrap();
        let key = |r: &MetricRow| (r.step, r.train_loss.to_bits(), r.grad_norm.to_bits());
        let want: Vec<_> = a.metrics[7..].iter().map(key).collect();
        let got: Vec<_> = b.metrics.iter().map(key).collect();
        assert_eq!(got, want, "resumed S4 run differs");
        let ck = find_checkpoint(&full).unwrap();
        let cfg_text = std::fs::read_to_string(ck.join("config.json")).unwrap();
        assert!(cfg_text.contains("seqlab_s4"));
        let lm = load_lm(&ck).unwrap();
        assert!(matches!(lm.model, AnyLm::S4(_)));
        assert!(lm.tokenizer.is_some());
    }
}

#[test]
fn clonable_step_matches_s4block_step() {
    // The f64 step with a Clone state (S4BlockState is not Clone) equals S4Block::step.
    use seqlab_lm::s4lm::layer::S4StepCache;
    use seqlab_ssm::s4::{S4Block, S4BlockConfig};
    use seqlab_tensor::candle_core::{DType, Device, Tensor};
    for ssm in [SsmName::S4d, SsmName::S4legs] {
        let mut bc = S4BlockConfig::new(6, ssm.kind(), 32);
        bc.d_state = 8;
        bc.seed = 3;
        let b = S4Block::new(bc, DType::F64, &Device::Cpu).unwrap();
        let cache = S4StepCache::new(&b).unwrap();
        let mut st_ref = b.init_state(1).unwrap();
        let mut st = cache.zero_state();
        for t in 0..20 {
            let x: Vec<f64> = (0..6).map(|i| ((t * 6 + i) as f64 * 0.37).sin()).collect();
            let want = b
                .step(
                    &Tensor::from_vec(x.clone(), (1, 6), &Device::Cpu).unwrap(),
                    &mut st_ref,
                )
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let got = cache.step(&x, &mut st).unwrap();
            for (a, w) in got.iter().zip(&want) {
                assert!((a - w).abs() < 1e-9, "{ssm:?} step {t}: {a} vs {w}");
            }
        }
    }
}
