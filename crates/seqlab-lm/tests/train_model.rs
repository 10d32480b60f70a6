//! The trainable Mamba (candle autodiff): parity with the inference model, packed sequences,
//! gradients against finite differences.

use crate::common;

use common::golden_dir;
use seqlab_lm::mamba::train_model::{cross_entropy, MambaDims};
use seqlab_lm::mamba::weights::{expected_specs, load_tensors};
use seqlab_lm::{MambaConfig, MambaLm, TrainMamba};
use seqlab_tensor::candle_core::{DType, Tensor};

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn tiny_cfg(vocab: usize) -> MambaConfig {
    MambaDims {
        vocab_size: vocab,
        d_model: 8,
        n_layer: 2,
        d_state: 4,
        d_conv: 3,
        expand: 2,
    }
    .config()
}

#[test]
fn logits_equal_inference_model_on_golden_weights() {
    let dir = golden_dir();
    let lm = MambaLm::load(&dir).unwrap();
    let cfg = lm.config().clone();
    let t = load_tensors(&dir, &expected_specs(&cfg)).unwrap();
    let tm = TrainMamba::from_tensors(&cfg, t).unwrap();
    let v = cfg.vocab_size as u32;
    let tokens: Vec<u32> = (0..2 * 19).map(|i| (i * 7919 + 3) % v).collect();
    let want = f32s(&lm.forward(&tokens, 2).unwrap());
    let got = f32s(&tm.forward(&tokens, 2, None).unwrap());
    let err = max_abs(&want, &got);
    assert!(err <= 1e-4, "train vs inference logits: max abs {err}");
}

#[test]
fn saved_model_loads_with_mamba_lm_and_matches() {
    let cfg = tiny_cfg(13);
    let tm = TrainMamba::init(&cfg, 7, DType::F32).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tm.save(dir.path()).unwrap();
    let lm = MambaLm::load(dir.path()).unwrap();
    assert_eq!(lm.config(), &cfg);
    let tokens: Vec<u32> = (0..30).map(|i| (i * 5 + 1) % 13).collect();
    let err = max_abs(
        &f32s(&lm.forward(&tokens, 2).unwrap()),
        &f32s(&tm.forward(&tokens, 2, None).unwrap()),
    );
    assert!(err <= 1e-5, "max abs {err}");
}

#[test]
fn init_follows_reference_rules_and_is_seeded() {
    let cfg = tiny_cfg(13);
    let a = TrainMamba::init(&cfg, 1, DType::F32).unwrap();
    let b = TrainMamba::init(&cfg, 1, DType::F32).unwrap();
    let c = TrainMamba::init(&cfg, 2, DType::F32).unwrap();
    let get = |m: &TrainMamba, n: &str| f32s(m.param(n).unwrap().as_tensor());
    let e = "backbone.embeddings.weight";
    assert_eq!(get(&a, e), get(&b, e));
    assert_ne!(get(&a, e), get(&c, e));
    let p = "backbone.layers.1.mixer";
    let a_log = get(&a, &format!("{p}.A_log"));
    for (i, v) in a_log.iter().enumerate() {
        assert!((v - ((i % 4) as f32 + 1.0).ln()).abs() < 1e-6);
    }
    assert!(get(&a, &format!("{p}.D")).iter().all(|&v| v == 1.0));
    // softplus(dt bias) ∈ [1e-4, 0.1].
    for b in get(&a, &format!("{p}.dt_proj.bias")) {
        let dt = (b as f64).exp().ln_1p();
        assert!((1e-4 * 0.999..=0.1 * 1.001).contains(&dt), "dt {dt}");
    }
    let r = cfg.dt_rank as f32;
    assert!(get(&a, &format!("{p}.dt_proj.weight"))
        .iter()
        .all(|v| v.abs() <= r.powf(-0.5)));
    let bound = (cfg.d_inner as f32).powf(-0.5) / (cfg.n_layer as f32).sqrt();
    assert!(get(&a, &format!("{p}.out_proj.weight"))
        .iter()
        .all(|v| v.abs() <= bound));
    let emb = get(&a, e);
    let std = (emb.iter().map(|v| v * v).sum::<f32>() / emb.len() as f32).sqrt();
    assert!((0.012..0.028).contains(&std), "embedding std {std}");
}

#[test]
fn packed_row_equals_separate_documents() {
    let cfg = tiny_cfg(11);
    let m = TrainMamba::init(&cfg, 3, DType::F32).unwrap();
    let docs: [Vec<u32>; 3] = [vec![1, 2, 3, 4, 5], vec![6, 7], vec![8, 9, 10, 1, 2, 3, 4]];
    let mut row = Vec::new();
    let mut seq = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        row.extend(d);
        seq.extend(std::iter::repeat_n(i as i32, d.len()));
    }
    // Two rows: the packed one, and a second packing in another order (batch > 1).
    let mut row2 = docs[2].clone();
    row2.extend(&docs[0]);
    row2.extend(&docs[1]);
    let seq2: Vec<i32> = [0; 7].into_iter().chain([1; 5]).chain([2; 2]).collect();
    let tokens: Vec<u32> = row.iter().chain(&row2).copied().collect();
    let seqs: Vec<i32> = seq.iter().chain(&seq2).copied().collect();
    let packed = f32s(&m.forward(&tokens, 2, Some(&seqs)).unwrap());
    let v = 11;
    let sep: Vec<Vec<f32>> = docs
        .iter()
        .map(|d| f32s(&m.forward(d, 1, None).unwrap()))
        .collect();
    let want1: Vec<f32> = sep.iter().flatten().copied().collect();
    let want2: Vec<f32> = [&sep[2], &sep[0], &sep[1]]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let n = row.len() * v;
    assert!(max_abs(&packed[..n], &want1) < 1e-5);
    assert!(max_abs(&packed[n..], &want2) < 1e-5);
    // Without seq_idx the state crosses the boundary: the second document differs.
    let unpacked = f32s(&m.forward(&row, 1, None).unwrap());
    assert!(max_abs(&unpacked[5 * v..7 * v], &sep[1]) > 1e-4);
}

/// Central differences in f64 on a few entries of every kind of parameter, with and without
/// packed document ids.
#[test]
fn gradients_match_finite_differences_f64() {
    let cfg = tiny_cfg(9);
    let m = TrainMamba::init(&cfg, 5, DType::F64).unwrap();
    let tokens: Vec<u32> = (0..2 * 9).map(|i| (i * 4 + 1) % 9).collect();
    let targets: Vec<u32> = (0..2 * 9).map(|i| (i * 2 + 3) % 9).collect();
    for seq in [
        None,
        Some(vec![0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1]),
    ] {
        let loss = |m: &TrainMamba| -> Tensor {
            let l = m.forward(&tokens, 2, seq.as_deref()).unwrap();
            cross_entropy(&l, &targets).unwrap()
        };
        let grads = loss(&m).backward().unwrap();
        let names = [
            "backbone.embeddings.weight",
            "backbone.layers.0.norm.weight",
            "backbone.layers.0.mixer.in_proj.weight",
            "backbone.layers.0.mixer.conv1d.weight",
            "backbone.layers.0.mixer.conv1d.bias",
            "backbone.layers.0.mixer.x_proj.weight",
            "backbone.layers.1.mixer.dt_proj.weight",
            "backbone.layers.1.mixer.dt_proj.bias",
            "backbone.layers.1.mixer.out_proj.weight",
            "backbone.layers.1.mixer.A_log",
            "backbone.layers.1.mixer.D",
            "backbone.norm_f.weight",
        ];
        for name in names {
            let var = m.param(name).unwrap();
            let orig = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let g = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let shape = var.as_tensor().shape().clone();
            for &i in &[0, orig.len() / 2, orig.len() - 1] {
                let h = 1e-5;
                let eval = |delta: f64| {
                    let mut w = orig.clone();
                    w[i] += delta;
                    var.set(&Tensor::from_vec(w, shape.clone(), var.device()).unwrap())
                        .unwrap();
                    let v = loss(&m).to_scalar::<f64>().unwrap();
                    var.set(&Tensor::from_vec(orig.clone(), shape.clone(), var.device()).unwrap())
                        .unwrap();
                    v
                };
                let fd = (eval(h) - eval(-h)) / (2.0 * h);
                let err = (fd - g[i]).abs();
                assert!(
                    err <= 1e-6 + 1e-4 * fd.abs(),
                    "{name}[{i}] (packed {}): autodiff {} vs finite difference {fd}",
                    seq.is_some(),
                    g[i]
                );
            }
        }
    }
}
