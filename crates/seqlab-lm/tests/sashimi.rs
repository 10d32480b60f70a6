//! SaShiMi behind the `CausalLm` seam: conformance (the parallel forward with its causal
//! pooling shifts equals the recurrent mode that steps the pooled stages every 4 / 16
//! samples) for S4D and S4-LegS, causality of the parallel forward, save / load, and training
//! (resume, clip-prefix batches, continuing at another length).

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

/// A SaShiMi of width 8, one layer per stage and N = 4, trained at lr 1e-2 in batches of 4.
fn tiny_config() -> seqlab_lm::TrainConfig {
    seqlab_lm::TrainConfig {
        model: seqlab_lm::train::ModelKind::Sashimi,
        d_model: 8,
        n_layer: 1,
        d_state: 4,
        batch_size: 4,
        lr: 1e-2,
        warmup_steps: 2,
        ..Default::default()
    }
}

/// The last logged training loss is at least 0.3 nats below the first.
fn assert_learned(run: &seqlab_lm::train::TrainSummary) {
    let first = run.metrics[0].train_loss;
    let last = run.metrics.last().unwrap().train_loss;
    assert!(
        last < first - 0.3,
        "SaShiMi did not learn: {first} → {last}"
    );
}

#[test]
fn trains_and_resumes_bit_exactly() {
    use seqlab_data::{prepare_text_inputs, TextInput, TextOptions};
    use seqlab_lm::train::MetricRow;
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
        seq_len: 32,
        max_steps: 12,
        eval_every: 6,
        eval_batches: 2,
        seed: 9,
        ..tiny_config()
    };
    let opts = |run: &std::path::Path| TrainOptions {
        data: data.clone(),
        run_dir: run.to_path_buf(),
        resume: false,
        overwrite: false,
        stop_at: None,
        progress: false,
    };
    let a = train(&c, &opts(&tmp.path().join("a"))).unwrap();
    assert_learned(&a);
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
    // Text has no clips to start rows at.
    let clips = TrainConfig {
        clip_start: true,
        ..c.clone()
    };
    let e = train(&clips, &opts(&tmp.path().join("c")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("audio dataset"), "{e}");
}

/// An audio dataset of 16 clips of 160 samples (10 ms) per split folder: chirps whose pitch
/// depends on the clip, each starting with 40 samples of silence.
fn clip_dataset(dir: &std::path::Path) -> std::path::PathBuf {
    let wavs = dir.join("wavs");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    for (split, n) in [("train", 16), ("val", 4), ("test", 2)] {
        std::fs::create_dir_all(wavs.join(split)).unwrap();
        for c in 0..n {
            let path = wavs.join(split).join(format!("clip_{c:02}.wav"));
            let mut w = hound::WavWriter::create(path, spec).unwrap();
            for i in 0..160usize {
                let x = if i < 40 {
                    0.0
                } else {
                    let t = (i - 40) as f64;
                    0.5 * (t * (0.2 + 0.02 * c as f64 + 0.001 * t)).sin()
                };
                w.write_sample((x * 32767.0) as i16).unwrap();
            }
            w.finalize().unwrap();
        }
    }
    let data = dir.join("data");
    let opts = seqlab_data::AudioOptions {
        clip_samples: 160,
        ..Default::default()
    };
    seqlab_data::prepare_audio(&wavs, &data, &opts).unwrap();
    data
}

#[test]
fn trains_on_clip_prefixes_and_continues_at_another_length() {
    use seqlab_data::{Split, TokenDataset};
    use seqlab_lm::train::{evaluate, read_checkpoint};
    use seqlab_lm::{train, TrainConfig, TrainOptions};
    let tmp = tempfile::tempdir().unwrap();
    let data = clip_dataset(tmp.path());
    let ds = TokenDataset::open(&data).unwrap();
    let (train_view, val_view) = (
        ds.split(Split::Train).unwrap(),
        ds.split(Split::Val).unwrap(),
    );
    let c = TrainConfig {
        seq_len: 64,
        clip_start: true,
        max_steps: 10,
        eval_every: 5,
        eval_batches: 8,
        seed: 3,
        ..tiny_config()
    };
    // Every training row is the first 65 samples of one clip; validation sees every clip once.
    for step in [0, 7] {
        let batch = c.train_batches(&train_view, step).unwrap().batch_at(step);
        for r in 0..4 {
            assert_eq!(batch.starts[r] % 160, 0);
            let clip = train_view.clip(batch.starts[r] / 160).unwrap();
            assert_eq!(batch.input_row(r), &clip[..64]);
            assert_eq!(batch.target_row(r), &clip[1..65]);
        }
    }
    let val_starts: Vec<usize> = c
        .eval_batches(&val_view)
        .unwrap()
        .flat_map(|b| b.starts)
        .collect();
    assert_eq!(val_starts, vec![0, 160, 320, 480]);

    let run = tmp.path().join("run");
    let opts = TrainOptions {
        data: data.clone(),
        run_dir: run.clone(),
        resume: false,
        overwrite: false,
        stop_at: None,
        progress: false,
    };
    let a = train(&c, &opts).unwrap();
    assert_learned(&a);
    // The reported validation loss is the mean over the clip prefixes.
    let (model, _, _) = read_checkpoint(&run.join("checkpoint"), c.weight_decay).unwrap();
    let again = evaluate(&model, &val_view, &c).unwrap();
    assert!(
        (again - a.val_loss.unwrap()).abs() < 1e-6,
        "{again} vs {:?}",
        a.val_loss
    );

    // S4D weights do not depend on the length: training goes on over 144-sample prefixes.
    let longer = TrainConfig {
        seq_len: 144,
        max_steps: 14,
        ..c.clone()
    };
    let resumed = TrainOptions {
        resume: true,
        ..opts.clone()
    };
    let b = train(&longer, &resumed).unwrap();
    assert_eq!(b.steps, 14);
    assert!(b.val_loss.unwrap().is_finite());
    // A prefix must leave room for the target.
    let too_long = TrainConfig {
        seq_len: 160,
        max_steps: 16,
        ..c.clone()
    };
    let e = train(&too_long, &resumed).unwrap_err().to_string();
    assert!(e.contains("does not fit a clip of 160"), "{e}");

    // S4-LegS's C̃ is set up for one length: a run cannot change it.
    let legs = TrainConfig {
        ssm: SsmName::S4legs,
        max_steps: 2,
        ..c.clone()
    };
    let legs_run = TrainOptions {
        run_dir: tmp.path().join("legs"),
        ..opts.clone()
    };
    train(&legs, &legs_run).unwrap();
    let legs_longer = TrainConfig {
        seq_len: 144,
        max_steps: 4,
        ..legs
    };
    let e = train(
        &legs_longer,
        &TrainOptions {
            resume: true,
            ..legs_run
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("model sizes differ"), "{e}");
}
