//! The training loop on the bundled Hamlet sample (char tokenizer): learning, exact resume,
//! optimizer groups, schedule, clipping, divergence detection, checkpoint loading.

use seqlab_data::{prepare_text_inputs, Split, TextInput, TextOptions, TokenDataset};
use seqlab_lm::mamba::train_model::{cross_entropy, decays};
use seqlab_lm::train::{
    clip_grad_norm, find_checkpoint, global_norm, lr_at, AdamW, MetricRow, METRICS_FILE, PLOT_FILE,
};
use seqlab_lm::{train, MambaLm, TrainConfig, TrainMamba, TrainOptions};
use seqlab_tensor::candle_core::{DType, Tensor};
use seqlab_tokenizer::{CharTokenizer, Tokenizer};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Hamlet prepared with a char tokenizer, once per test binary.
fn data_dir() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let tok = CharTokenizer::from_texts(&[seqlab_data::SAMPLE_TEXT]).unwrap();
        let tok_path = tmp.path().join("char.json");
        tok.save(&tok_path).unwrap();
        let out = tmp.path().join("data");
        prepare_text_inputs(
            &tok,
            &tok_path,
            &[TextInput::sample()],
            &out,
            &TextOptions::default(),
        )
        .unwrap();
        (tmp, out)
    })
    .1
}

fn small_cfg() -> TrainConfig {
    TrainConfig {
        d_model: 32,
        n_layer: 2,
        d_state: 8,
        batch_size: 8,
        seq_len: 64,
        lr: 1e-2,
        min_lr: 1e-3,
        warmup_steps: 10,
        max_steps: 200,
        weight_decay: 0.1,
        grad_clip: 1.0,
        eval_every: 100,
        eval_batches: 8,
        checkpoint_every: 100,
        seed: 11,
        ..TrainConfig::default()
    }
}

fn opts(run: &Path) -> TrainOptions {
    TrainOptions {
        data: data_dir().to_path_buf(),
        run_dir: run.to_path_buf(),
        resume: false,
        overwrite: false,
        stop_at: None,
        progress: false,
    }
}

/// Unigram entropy (nats) of the train split: −Σ p log p over token frequencies.
fn unigram_entropy(dir: &Path) -> f64 {
    let ds = TokenDataset::open(dir).unwrap();
    let view = ds.split(Split::Train).unwrap();
    let ids = view.get(0..view.len()).unwrap();
    let mut counts = vec![0u64; ds.vocab_size()];
    for &i in &ids {
        counts[i as usize] += 1;
    }
    let n = ids.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

#[test]
fn learns_below_unigram_entropy_and_checkpoint_loads() {
    let run = tempfile::tempdir().unwrap();
    let cfg = small_cfg();
    let t = std::time::Instant::now();
    let s = train(&cfg, &opts(run.path())).unwrap();
    let h = unigram_entropy(data_dir());
    let val = s.val_loss.unwrap();
    eprintln!(
        "{} steps in {:.1} s: val loss {val:.4} nats vs unigram entropy {h:.4} nats (first train loss {:.4})",
        s.steps,
        t.elapsed().as_secs_f64(),
        s.metrics[0].train_loss
    );
    assert_eq!(s.steps, cfg.max_steps);
    assert!(
        val < h - 0.8,
        "val loss {val} not well below unigram entropy {h}"
    );
    for f in [METRICS_FILE, PLOT_FILE] {
        assert!(run.path().join(f).is_file(), "{f}");
    }
    let png = std::fs::read(run.path().join(PLOT_FILE)).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let lines = std::fs::read_to_string(run.path().join(METRICS_FILE)).unwrap();
    let rows: Vec<MetricRow> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, cfg.max_steps);
    assert_eq!(rows.iter().filter(|r| r.val_loss.is_some()).count(), 2);

    // (g) The checkpoint loads with MambaLm and gives the training model's logits.
    let ck = run.path().join("checkpoint");
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "trainer_state.json",
        "optimizer.safetensors",
    ] {
        assert!(ck.join(f).is_file(), "{f}");
    }
    let lm = MambaLm::load(&ck).unwrap();
    let tm = TrainMamba::load(&ck).unwrap();
    let tokens: Vec<u32> = (0..40).map(|i| (i * 7 + 2) % 30).collect();
    let a = lm
        .forward(&tokens, 2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = tm
        .forward(&tokens, 2, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let err = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-4, "checkpoint logits differ: {err}");
}

#[test]
fn resume_reproduces_uninterrupted_losses_exactly() {
    let cfg = TrainConfig {
        max_steps: 12,
        warmup_steps: 3,
        eval_every: 4,
        eval_batches: 2,
        checkpoint_every: 100,
        seq_len: 32,
        batch_size: 4,
        ..small_cfg()
    };
    let full = tempfile::tempdir().unwrap();
    let a = train(&cfg, &opts(full.path())).unwrap();
    let part = tempfile::tempdir().unwrap();
    let mut o = opts(part.path());
    o.stop_at = Some(6);
    let b1 = train(&cfg, &o).unwrap();
    assert_eq!(b1.steps, 6);
    // A resume without a checkpoint is refused.
    let empty = tempfile::tempdir().unwrap();
    let mut oe = opts(empty.path());
    oe.resume = true;
    let e = train(&cfg, &oe).unwrap_err().to_string();
    assert!(e.contains("no checkpoint"), "{e}");
    o.stop_at = None;
    o.resume = true;
    let b2 = train(&cfg, &o).unwrap();
    assert_eq!(b2.steps, 12);
    let key = |r: &MetricRow| {
        (
            r.step,
            r.lr.to_bits(),
            r.train_loss.to_bits(),
            r.grad_norm.to_bits(),
            r.val_loss.map(f64::to_bits),
        )
    };
    let want: Vec<_> = a.metrics[6..].iter().map(key).collect();
    let got: Vec<_> = b2.metrics.iter().map(key).collect();
    assert_eq!(got, want, "resumed run differs from the uninterrupted one");
    // The metrics file of the resumed run holds all 12 steps once.
    let text = std::fs::read_to_string(part.path().join(METRICS_FILE)).unwrap();
    let steps: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<MetricRow>(l).unwrap().step)
        .collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>());
    assert!(find_checkpoint(part.path()).is_some());
}

#[test]
fn no_weight_decay_on_a_log_d_norms_biases() {
    let cfg = seqlab_lm::MambaDims {
        vocab_size: 10,
        d_model: 8,
        n_layer: 1,
        d_state: 4,
        d_conv: 3,
        expand: 2,
    }
    .config();
    let m = TrainMamba::init(&cfg, 0, DType::F32).unwrap();
    let before: Vec<Vec<f32>> = m
        .params()
        .iter()
        .map(|(_, v)| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect();
    let mut opt = AdamW::new(m.params(), 0.5, decays).unwrap();
    // Zero gradients: the Adam term is 0, only decoupled decay moves a parameter.
    let grads = Tensor::zeros(1, DType::F32, &seqlab_tensor::candle_core::Device::Cpu)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    opt.step(m.params(), &grads, 0.1).unwrap();
    let mut decayed = Vec::new();
    for ((name, v), b) in m.params().iter().zip(&before) {
        let after = v
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let no_decay = name.ends_with(".A_log")
            || name.ends_with(".D")
            || name.contains("norm")
            || name.ends_with(".bias");
        if no_decay {
            assert_eq!(&after, b, "{name} changed with zero gradient");
        } else {
            for (x, y) in after.iter().zip(b) {
                assert!((x - y * 0.95).abs() <= 1e-7 * y.abs().max(1.0), "{name}");
            }
            decayed.push(name.clone());
        }
    }
    assert_eq!(decayed.len(), 6, "{decayed:?}"); // embedding, in/conv/x/dt/out_proj weights
}

#[test]
fn schedule_warmup_peak_and_end() {
    let (lr, min, w, t) = (1e-3, 1e-4, 10, 110);
    assert!((lr_at(0, lr, min, w, t) - 1e-4).abs() < 1e-15);
    assert!((lr_at(4, lr, min, w, t) - 5e-4).abs() < 1e-15);
    assert!((lr_at(9, lr, min, w, t) - lr).abs() < 1e-15);
    assert!((lr_at(10, lr, min, w, t) - lr).abs() < 1e-15);
    assert!((lr_at(60, lr, min, w, t) - (min + 0.5 * (lr - min))).abs() < 1e-12);
    assert!((lr_at(110, lr, min, w, t) - min).abs() < 1e-15);
    assert!((lr_at(500, lr, min, w, t) - min).abs() < 1e-15);
    let mut prev = f64::INFINITY;
    for s in 10..110 {
        let v = lr_at(s, lr, min, w, t);
        assert!(v <= prev && v >= min);
        prev = v;
    }
}

#[test]
fn clipping_scales_the_global_norm_to_the_limit() {
    let cfg = seqlab_lm::MambaDims {
        vocab_size: 10,
        d_model: 8,
        n_layer: 1,
        d_state: 4,
        d_conv: 3,
        expand: 2,
    }
    .config();
    let m = TrainMamba::init(&cfg, 0, DType::F32).unwrap();
    let tokens: Vec<u32> = (0..16).map(|i| i % 10).collect();
    let targets: Vec<u32> = (0..16).map(|i| (i * 3) % 10).collect();
    let loss = cross_entropy(&m.forward(&tokens, 2, None).unwrap(), &targets).unwrap();
    let mut grads = loss.backward().unwrap();
    let n0 = global_norm(m.params(), &grads).unwrap();
    assert!(n0 > 0.01);
    let limit = n0 / 4.0;
    let before = clip_grad_norm(m.params(), &mut grads, limit).unwrap();
    assert_eq!(before, n0);
    let n1 = global_norm(m.params(), &grads).unwrap();
    assert!((n1 - limit).abs() < 1e-5 * limit, "{n1} vs {limit}");
    // Below the limit nothing changes.
    assert_eq!(
        clip_grad_norm(m.params(), &mut grads, 10.0 * n0).unwrap(),
        n1
    );
    assert_eq!(global_norm(m.params(), &grads).unwrap(), n1);
}

#[test]
fn diverging_loss_names_the_step() {
    let cfg = TrainConfig {
        lr: 1e6,
        min_lr: 1e6,
        warmup_steps: 0,
        grad_clip: 0.0,
        weight_decay: 0.0,
        max_steps: 50,
        seq_len: 16,
        batch_size: 2,
        eval_every: 0,
        checkpoint_every: 0,
        ..small_cfg()
    };
    let run = tempfile::tempdir().unwrap();
    let e = train(&cfg, &opts(run.path())).unwrap_err().to_string();
    assert!(e.contains("at step "), "{e}");
    assert!(e.contains("diverged"), "{e}");
}

#[test]
fn bad_config_keys_and_values_are_errors() {
    let e = TrainConfig::from_json_str(r#"{"d_model": 8, "learning_rate": 1}"#).unwrap_err();
    assert!(e.contains("learning_rate"), "{e}");
    let e = TrainConfig::from_json_str(r#"{"batch_size": 0}"#).unwrap_err();
    assert!(e.contains("batch_size"), "{e}");
    let c = TrainConfig::from_json_str(r#"{"d_model": 16, "max_steps": 3}"#).unwrap();
    assert_eq!((c.d_model, c.max_steps, c.n_layer), (16, 3, 2));
}
