//! The training loop on a byte-level Hamlet dataset: the NELBO falls, files are written, a
//! stopped-and-resumed run reproduces an uninterrupted one bit for bit, and the NELBO bound of a
//! uniform denoiser is exactly ln V (the estimator is unbiased), and of the trained one is below.

use candle_core::{Device, Tensor};
use seqlab_data::{prepare_text_inputs, Split, TextInput, TextOptions, TokenDataset};
use seqlab_diffusion::backbone::DiffusionConfig;
use seqlab_diffusion::train::train;
use seqlab_diffusion::{nelbo_bound, AnyDenoiser, Denoiser, NelboOptions, NoiseSchedule};
use seqlab_lm::TrainOptions;
use seqlab_tokenizer::{ByteTokenizer, Tokenizer};
use std::path::Path;

fn dataset(dir: &Path) -> std::path::PathBuf {
    let tok = ByteTokenizer::new(&[]).unwrap();
    let tok_path = dir.join("bytes.json");
    tok.save(&tok_path).unwrap();
    let data = dir.join("data");
    prepare_text_inputs(
        &tok,
        &tok_path,
        &[TextInput::sample()],
        &data,
        &TextOptions::default(),
    )
    .unwrap();
    data
}

fn opts(data: &Path, run: &Path, resume: bool, stop_at: Option<u64>) -> TrainOptions {
    TrainOptions {
        data: data.to_path_buf(),
        run_dir: run.to_path_buf(),
        resume,
        overwrite: false,
        stop_at,
        progress: false,
    }
}

#[test]
fn trains_resumes_bit_exactly_and_bounds_the_nelbo() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    for backbone in ["transformer", "mamba"] {
        let cfg = DiffusionConfig::from_json_str(&format!(
            r#"{{"model": "{backbone}", "d_model": 32, "n_layer": 1, "n_head": 2, "d_state": 4,
                "batch_size": 4, "seq_len": 32, "lr": 0.01, "min_lr": 0.001, "warmup_steps": 2,
                "max_steps": 12, "eval_every": 6, "eval_batches": 2, "checkpoint_every": 4,
                "seed": 7}}"#
        ))
        .unwrap();
        let full = tmp.path().join(format!("{backbone}-full"));
        let s = train(&cfg, &opts(&data, &full, false, None)).unwrap();
        assert_eq!(s.steps, 12);
        for f in [
            "metrics.jsonl",
            "loss.png",
            "train_config.json",
            "checkpoint/config.json",
            "checkpoint/model.safetensors",
            "checkpoint/tokenizer.json",
            "checkpoint/optimizer.safetensors",
            "checkpoint/trainer_state.json",
        ] {
            assert!(full.join(f).is_file(), "{backbone}: {f} missing");
        }
        let rows = &s.metrics;
        let first = rows[..3].iter().map(|r| r.train_loss).sum::<f64>() / 3.0;
        let last = rows[9..].iter().map(|r| r.train_loss).sum::<f64>() / 3.0;
        assert!(
            last < first,
            "{backbone}: NELBO did not fall: {first} -> {last}"
        );
        assert!(rows.iter().all(|r| r.train_loss.is_finite()));

        // Stop after 5 steps, resume: identical metrics and weights.
        let part = tmp.path().join(format!("{backbone}-part"));
        train(&cfg, &opts(&data, &part, false, Some(5))).unwrap();
        train(&cfg, &opts(&data, &part, true, None)).unwrap();
        let strip = |p: &Path| -> Vec<(u64, u64, u64)> {
            std::fs::read_to_string(p.join("metrics.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let f = |k: &str| v[k].as_f64().map(f64::to_bits).unwrap_or(0);
                    (v["step"].as_u64().unwrap(), f("train_loss"), f("val_loss"))
                })
                .collect()
        };
        // The stopped run also validates at its stop (step 5); every other value is identical.
        let mut b = strip(&part);
        b[4].2 = 0;
        assert_eq!(strip(&full), b, "{backbone}: resume is not bit-exact");
        let wa =
            seqlab_tensor::load(full.join("checkpoint/model.safetensors"), &Device::Cpu).unwrap();
        let wb =
            seqlab_tensor::load(part.join("checkpoint/model.safetensors"), &Device::Cpu).unwrap();
        for (k, a) in &wa {
            let b: &Tensor = &wb[k];
            let d = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(d, 0.0, "{backbone}: weight {k} differs after resume");
        }

        // The NELBO bound of the trained model on the val split: finite and below ln V.
        let model = AnyDenoiser::load(&full.join("checkpoint")).unwrap();
        let ds = TokenDataset::open(&data).unwrap();
        let val = ds.split(Split::Val).unwrap();
        let o = NelboOptions {
            t_points: 2,
            batch_size: 4,
            seq_len: 32,
            max_batches: Some(2),
            seed: 1,
            schedule: NoiseSchedule::default(),
        };
        let r = nelbo_bound(&model, &val, &o).unwrap();
        assert!(
            r.nelbo.is_finite() && r.nelbo < 256f64.ln(),
            "{backbone}: {r:?}"
        );
        assert_eq!((r.windows, r.tokens), (8, 256));
        assert!((r.ppl_bound - r.nelbo.exp()).abs() < 1e-9 * r.ppl_bound);
    }
    // Resume errors: a different model, no checkpoint.
    let cfg = DiffusionConfig::from_json_str(
        r#"{"model": "transformer", "d_model": 16, "n_layer": 1, "n_head": 2, "batch_size": 4,
            "seq_len": 32, "max_steps": 12, "seed": 7}"#,
    )
    .unwrap();
    let e = train(
        &cfg,
        &opts(&data, &tmp.path().join("transformer-full"), true, None),
    )
    .unwrap_err();
    assert!(e.to_string().contains("differs"), "{e}");
    let e = train(&cfg, &opts(&data, &tmp.path().join("none"), true, None)).unwrap_err();
    assert!(e.to_string().contains("no checkpoint"), "{e}");
}

/// Uniform logits over the V real ids: every masked token costs ln V, so NELBO = ln V exactly
/// in expectation; the stratified estimator is unbiased, so it lands within a few standard errors.
struct Uniform(usize);

impl Denoiser for Uniform {
    fn vocab_size(&self) -> usize {
        self.0 + 1
    }
    fn mask_id(&self) -> u32 {
        self.0 as u32
    }
    fn logits(&self, tokens: &[u32], batch: usize, _t: &[f64]) -> seqlab_diffusion::Result<Tensor> {
        Ok(Tensor::zeros(
            (batch, tokens.len() / batch, self.0 + 1),
            candle_core::DType::F32,
            &Device::Cpu,
        )?)
    }
}

#[test]
fn nelbo_bound_of_a_uniform_model_is_ln_v() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let ds = TokenDataset::open(&data).unwrap();
    let val = ds.split(Split::Val).unwrap();
    let o = NelboOptions {
        t_points: 4,
        batch_size: 16,
        seq_len: 64,
        max_batches: Some(4),
        seed: 3,
        schedule: NoiseSchedule::default(),
    };
    let r = nelbo_bound(&Uniform(256), &val, &o).unwrap();
    let exact = 256f64.ln();
    assert!(
        (r.nelbo - exact).abs() < 4.0 * r.std_err + 1e-9,
        "{} ± {} vs {exact}",
        r.nelbo,
        r.std_err
    );
    assert!(r.std_err < 0.05 * exact, "{r:?}");
    let e = nelbo_bound(&Uniform(100), &val, &o).unwrap_err();
    assert!(e.to_string().contains("mask id"), "{e}");
}
