//! Tiny random models for the tests (untied output heads): Transformers built in memory, Mambas initialised, saved to
//! a temporary directory and loaded back (the inference `MambaLm` loads from files). The final
//! norm's weight is scaled so the random models have peaked, clearly different distributions.
#![allow(dead_code)] // each test file uses a subset

use candle_core::{DType, Tensor};
use seqlab_lm::{
    MambaDims, MambaLm, TrainMamba, TrainTransformer, TransformerConfig, TransformerLm,
};
use std::collections::HashMap;
use std::path::Path;

/// A random Transformer LM (SwiGLU, tied), logits scaled by `sharp`.
pub fn transformer(
    vocab: usize,
    d_model: usize,
    n_layer: usize,
    seed: u64,
    sharp: f64,
) -> TransformerLm {
    // Untied: with tied embeddings a random model's top logit is its input token (e·e is
    // large), so two random models agree by repeating the last token.
    let mut cfg = TransformerConfig::new(vocab, d_model, n_layer, 2, 2 * d_model);
    cfg.tie_embeddings = false;
    let t = TrainTransformer::init(&cfg, seed, DType::F32).unwrap();
    let mut tensors: HashMap<String, Tensor> = t
        .params()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    // Tied embeddings of std 0.02 give near-uniform logits; scale them up through the norm.
    let w = &tensors["model.norm.weight"];
    let scaled = (w * (sharp / 0.02 / (d_model as f64).sqrt())).unwrap();
    tensors.insert("model.norm.weight".into(), scaled);
    TrainTransformer::from_tensors(&cfg, tensors)
        .unwrap()
        .model()
        .clone()
}

/// A random Mamba LM saved into `dir` and loaded back, logits scaled by `sharp`.
pub fn mamba(
    dir: &Path,
    vocab: usize,
    d_model: usize,
    n_layer: usize,
    seed: u64,
    sharp: f64,
) -> MambaLm {
    let mut cfg = MambaDims {
        vocab_size: vocab,
        d_model,
        n_layer,
        d_state: 4,
        d_conv: 4,
        expand: 2,
    }
    .config();
    cfg.tie_embeddings = false;
    let t = TrainMamba::init(&cfg, seed, DType::F32).unwrap();
    let mut tensors: HashMap<String, Tensor> = t
        .params()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let w = &tensors["backbone.norm_f.weight"];
    let scaled = (w * (sharp / 0.02 / (d_model as f64).sqrt())).unwrap();
    tensors.insert("backbone.norm_f.weight".into(), scaled);
    TrainMamba::from_tensors(&cfg, tensors)
        .unwrap()
        .save(dir)
        .unwrap();
    MambaLm::load(dir).unwrap()
}

/// The golden mamba-tiny checkpoint (vocab 256) committed in the repository.
pub fn golden_mamba() -> MambaLm {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/mamba-tiny");
    MambaLm::load(dir).unwrap()
}

/// The golden mamba-tiny with every weight multiplied by `1 + noise·N(0, 1)` (seeded), saved to
/// `dir` and loaded back: a drafter that agrees with the golden model often but not always.
pub fn perturbed_golden(dir: &Path, noise: f64, seed: u64) -> MambaLm {
    use rand::{Rng, SeedableRng};
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/mamba-tiny");
    let t = TrainMamba::load(&golden).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tensors: HashMap<String, Tensor> = t
        .params()
        .iter()
        .map(|(n, v)| {
            let x = v.as_tensor();
            let f: Vec<f32> = (0..x.elem_count())
                .map(|_| {
                    let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
                    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                    (1.0 + noise * z) as f32
                })
                .collect();
            let f = Tensor::from_vec(f, x.dims(), x.device()).unwrap();
            (n.clone(), (x * f).unwrap())
        })
        .collect();
    TrainMamba::from_tensors(t.config(), tensors)
        .unwrap()
        .save(dir)
        .unwrap();
    MambaLm::load(dir).unwrap()
}
