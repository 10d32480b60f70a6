//! EDLM's second energy source (Xu et al. 2024, §3.3 "NCE"; docs/diffusion.md#nce-energy-head):
//! a small network E_φ(x_0, x_t) trained by noise-contrastive estimation with the denoiser
//! frozen, to tell real clean sequences from the denoiser's own samples:
//!
//! L(φ) = E[ −log σ(−E_φ(x_0^data, x_t)) − log σ(E_φ(x_0^neg, x_t)) ],
//! x_t ~ q(x_t | x_0^data) at t ~ U[t_eps, 1), x_0^neg ~ p_θ(· | x_t) (independent per position,
//! carry-over), i.e. softplus(E_pos) + softplus(−E_neg). At the optimum e^{−E} is the density
//! ratio p_data(x_0 | x_t)/p_θ(x_0 | x_t), exactly the importance weight EDLM needs with the
//! denoiser as proposal ([`crate::sampler::edlm`]), so [`EnergyHead`] is an [`EnergyModel`] with
//! −E_φ as log-weight.
//!
//! Architecture (smaller than the reference's transformer head; a permutation-equivariant
//! "deep sets" mixer in its place): per position h_i = GELU([e_t(x_t,i); e_0(x_0,i)] W₁ + b₁),
//! one mixing layer h_i ← GELU(h_i W₂ + mean_j(h_j) W₃ + b₂), mean-pool, then an MLP
//! GELU(· W₄ + b₄) w₅ + b₅ → scalar E. Positions are not embedded: the head sees which token
//! sits where only through (x_t,i, x_0,i) pairs and the pooled context.

use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};
use crate::sampler::edlm::EnergyModel;
use crate::sampler::{draw_token, Draw, NoiseSchedule};
use crate::subs::subs_log_probs;
use candle_core::{DType, Device, Tensor, Var, D};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use seqlab_tensor::{batch_rows, softplus};
use seqlab_train::AdamW;
use std::collections::HashMap;
use std::path::Path;

/// Sizes of an [`EnergyHead`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnergyHeadConfig {
    /// Vocabulary V (`[MASK]` included), as the denoiser's.
    pub vocab: usize,
    /// Embedding width of each of x_t and x_0.
    pub d_embed: usize,
    /// Hidden width.
    pub d_hidden: usize,
}

/// NCE training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyTrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Real sequences per step (and as many negatives).
    pub batch: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// Smallest t drawn.
    pub t_eps: f64,
    /// Seed of initialisation, t, masks and negatives.
    pub seed: u64,
}

impl Default for EnergyTrainConfig {
    fn default() -> Self {
        Self {
            steps: 200,
            batch: 16,
            lr: 3e-3,
            t_eps: 1e-3,
            seed: 0,
        }
    }
}

/// The NCE energy head (module docs).
#[derive(Debug, Clone)]
pub struct EnergyHead {
    cfg: EnergyHeadConfig,
    params: Vec<(String, Var)>,
}

const NAMES: [&str; 11] = [
    "emb_t", "emb_0", "w1", "b1", "w2", "w3", "b2", "w4", "b4", "w5", "b5",
];

impl EnergyHead {
    fn shapes(c: &EnergyHeadConfig) -> [Vec<usize>; 11] {
        let (v, e, h) = (c.vocab, c.d_embed, c.d_hidden);
        [
            vec![v, e],
            vec![v, e],
            vec![2 * e, h],
            vec![h],
            vec![h, h],
            vec![h, h],
            vec![h],
            vec![h, h],
            vec![h],
            vec![h, 1],
            vec![1],
        ]
    }

    /// A freshly initialised head (normal weights with std 1/√fan-in, zero biases), the same
    /// for the same seed.
    pub fn init(cfg: EnergyHeadConfig, seed: u64) -> Result<Self> {
        if cfg.vocab < 2 || cfg.d_embed == 0 || cfg.d_hidden == 0 {
            return Err(DiffusionError::Config(format!(
                "energy head: need vocab ≥ 2 and non-zero widths, got {cfg:?}"
            )));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = Vec::new();
        for (name, shape) in NAMES.iter().zip(Self::shapes(&cfg)) {
            let n: usize = shape.iter().product();
            let std = if shape.len() == 1 {
                0.0
            } else if name.starts_with("emb") {
                1.0
            } else {
                1.0 / (shape[0] as f64).sqrt()
            };
            let data: Vec<f32> = (0..n)
                .map(|_| (std * rng.sample::<f64, _>(StandardNormal)) as f32)
                .collect();
            let t = Tensor::from_vec(data, shape, &Device::Cpu)?;
            params.push((name.to_string(), Var::from_tensor(&t)?));
        }
        Ok(Self { cfg, params })
    }

    /// Its sizes.
    pub fn config(&self) -> &EnergyHeadConfig {
        &self.cfg
    }

    fn p(&self, i: usize) -> &Tensor {
        self.params[i].1.as_tensor()
    }

    /// E_φ(x_0, x_t) for `batch` rows of equal length: (batch,) f32.
    pub fn energy(&self, x0: &[u32], x_t: &[u32], batch: usize) -> Result<Tensor> {
        if x0.len() != x_t.len() {
            return Err(DiffusionError::Input(format!(
                "energy head: {} clean and {} noisy tokens for {batch} rows",
                x0.len(),
                x_t.len()
            )));
        }
        let len = batch_rows(x0.len(), batch)?;
        let v = self.cfg.vocab;
        if let Some(&bad) = x0.iter().chain(x_t).find(|&&t| t as usize >= v) {
            return Err(DiffusionError::Input(format!(
                "energy head: token {bad} outside its vocabulary of {v}"
            )));
        }
        let dev = Device::Cpu;
        let it = Tensor::from_slice(x_t, x_t.len(), &dev)?;
        let i0 = Tensor::from_slice(x0, x0.len(), &dev)?;
        let et = self.p(0).index_select(&it, 0)?;
        let e0 = self.p(1).index_select(&i0, 0)?;
        let x = Tensor::cat(&[et, e0], 1)?.reshape((batch, len, 2 * self.cfg.d_embed))?;
        let h = x
            .broadcast_matmul(self.p(2))?
            .broadcast_add(self.p(3))?
            .gelu()?;
        let ctx = h.mean_keepdim(1)?;
        let h = (h.broadcast_matmul(self.p(4))?
            + ctx.broadcast_matmul(self.p(5))?.broadcast_as(h.shape())?)?
        .broadcast_add(self.p(6))?
        .gelu()?;
        let pooled = h.mean(1)?;
        let z = pooled.matmul(self.p(7))?.broadcast_add(self.p(8))?.gelu()?;
        let e = z.matmul(self.p(9))?.broadcast_add(self.p(10))?;
        Ok(e.squeeze(D::Minus1)?)
    }

    /// Writes `energy_head.json` and `energy_head.safetensors` into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| DiffusionError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let map: HashMap<String, Tensor> = self
            .params
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        seqlab_tensor::save_atomic(dir.join("energy_head.safetensors"), &map)?;
        let json = serde_json::to_string_pretty(&self.cfg)
            .map_err(|e| DiffusionError::Io(format!("energy head config: {e}")))?;
        seqlab_io::write_atomic(dir.join("energy_head.json"), json.as_bytes())
            .map_err(|e| DiffusionError::Io(e.to_string()))?;
        Ok(())
    }

    /// Loads a head written by [`EnergyHead::save`], checking every tensor's shape.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("energy_head.json");
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|e| DiffusionError::Io(format!("cannot read {}: {e}", cfg_path.display())))?;
        let cfg: EnergyHeadConfig = serde_json::from_str(&text)
            .map_err(|e| DiffusionError::Checkpoint(format!("{}: {e}", cfg_path.display())))?;
        let mut map = seqlab_tensor::load(dir.join("energy_head.safetensors"), &Device::Cpu)?;
        let mut params = Vec::new();
        for (name, shape) in NAMES.iter().zip(Self::shapes(&cfg)) {
            let t = map.remove(*name).ok_or_else(|| {
                DiffusionError::Checkpoint(format!("energy head: tensor `{name}` missing"))
            })?;
            if t.dims() != shape.as_slice() || t.dtype() != DType::F32 {
                return Err(DiffusionError::Checkpoint(format!(
                    "energy head: tensor `{name}` is {:?} {:?}, expected {shape:?} f32",
                    t.dims(),
                    t.dtype()
                )));
            }
            params.push((name.to_string(), Var::from_tensor(&t)?));
        }
        Ok(Self { cfg, params })
    }
}

impl EnergyModel for EnergyHead {
    /// −E_φ(x_0^(j), x_t): with the denoiser as proposal this is already the log importance
    /// weight (module docs); the proposal log-probabilities are not needed.
    fn neg_energy(
        &self,
        candidates: &[Vec<u32>],
        x_t: &[u32],
        _log_q: &[Vec<f64>],
    ) -> Result<Vec<f64>> {
        let k = candidates.len();
        let x0: Vec<u32> = candidates.concat();
        let xt: Vec<u32> = x_t.repeat(k);
        let e = self.energy(&x0, &xt, k)?.to_vec1::<f32>()?;
        Ok(e.into_iter().map(|x| -f64::from(x)).collect())
    }
}

/// x_t from clean rows at times `t` under `sched`, and negatives x_0^neg ~ p_θ(· | x_t) drawn
/// in f64 with one batched denoiser call.
pub fn nce_batch<D: Denoiser + ?Sized, R: Rng>(
    den: &D,
    sched: &NoiseSchedule,
    real: &[u32],
    batch: usize,
    t: &[f64],
    rng: &mut R,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let len = real.len() / batch.max(1);
    let mask = den.mask_id();
    let mut x_t = real.to_vec();
    for (r, &tr) in t.iter().enumerate() {
        let m = sched.mask_prob(tr);
        for tok in &mut x_t[r * len..(r + 1) * len] {
            if rng.random::<f64>() < m {
                *tok = mask;
            }
        }
    }
    let logits = den.logits(&x_t, batch, t)?;
    let lp = subs_log_probs(&logits, &x_t, mask)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let v = den.vocab_size();
    let mut neg = x_t.clone();
    for (i, tok) in neg.iter_mut().enumerate() {
        if *tok == mask {
            *tok = draw_token(&lp[i * v..(i + 1) * v], Draw::F64, rng)?;
        }
    }
    Ok((x_t, neg))
}

/// Trains an energy head by NCE (module docs) on `real` clean rows (each of the same length)
/// with `den` frozen; returns the head and the loss of every step.
pub fn train_energy_head<D: Denoiser + ?Sized>(
    den: &D,
    sched: &NoiseSchedule,
    real: &[Vec<u32>],
    head: EnergyHeadConfig,
    cfg: &EnergyTrainConfig,
) -> Result<(EnergyHead, Vec<f64>)> {
    train_energy_head_with(den, sched, real, head, cfg, |_, _| {})
}

/// [`train_energy_head`], calling `on_step(step, loss)` after every optimiser step (1-based),
/// e.g. for a progress bar.
pub fn train_energy_head_with<D: Denoiser + ?Sized>(
    den: &D,
    sched: &NoiseSchedule,
    real: &[Vec<u32>],
    head: EnergyHeadConfig,
    cfg: &EnergyTrainConfig,
    mut on_step: impl FnMut(usize, f64),
) -> Result<(EnergyHead, Vec<f64>)> {
    let len = real.first().map_or(0, Vec::len);
    if real.is_empty() || len == 0 || real.iter().any(|r| r.len() != len) {
        return Err(DiffusionError::Input(
            "energy head: need real rows of one non-zero length".into(),
        ));
    }
    let ok = cfg.steps > 0 && cfg.batch > 0 && cfg.lr > 0.0 && (0.0..1.0).contains(&cfg.t_eps);
    if !ok {
        return Err(DiffusionError::Config(format!(
            "energy head training: need steps, batch ≥ 1, lr > 0, t_eps in [0, 1); got {cfg:?}"
        )));
    }
    if head.vocab != den.vocab_size() {
        return Err(DiffusionError::Mismatch(format!(
            "energy head vocabulary {} differs from the denoiser's {}",
            head.vocab,
            den.vocab_size()
        )));
    }
    let model = EnergyHead::init(head, cfg.seed)?;
    let mut opt = AdamW::new(&model.params, 0.0, |_| false)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5EED);
    let mut losses = Vec::with_capacity(cfg.steps);
    for _ in 0..cfg.steps {
        let mut x0 = Vec::with_capacity(cfg.batch * len);
        for _ in 0..cfg.batch {
            x0.extend_from_slice(&real[rng.random_range(0..real.len())]);
        }
        let t: Vec<f64> = (0..cfg.batch)
            .map(|_| cfg.t_eps + (1.0 - cfg.t_eps) * rng.random::<f64>())
            .collect();
        let (x_t, neg) = nce_batch(den, sched, &x0, cfg.batch, &t, &mut rng)?;
        let e_pos = model.energy(&x0, &x_t, cfg.batch)?;
        let e_neg = model.energy(&neg, &x_t, cfg.batch)?;
        let loss = (softplus(&e_pos)?.mean_all()? + softplus(&e_neg.neg()?)?.mean_all()?)?;
        let value = f64::from(loss.to_scalar::<f32>()?);
        losses.push(value);
        let grads = loss.backward()?;
        opt.step(&model.params, &grads, cfg.lr)?;
        on_step(losses.len(), value);
    }
    Ok((model, losses))
}

/// How well a head separates held-out real rows from the denoiser's samples.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct NceEval {
    /// Mean NCE loss softplus(E_pos) + softplus(−E_neg) over the rows (2 ln 2 ≈ 1.386 for a
    /// head that cannot tell them apart).
    pub loss: f64,
    /// Accuracy of the classifier "real iff E_φ < 0" (P(real | x_0, x_t) = σ(−E_φ)) over the
    /// real rows and as many negatives.
    pub accuracy: f64,
    /// Real rows scored (and as many negatives).
    pub rows: usize,
}

/// Scores `head` on held-out clean `rows` (one length): each gets t ~ U[t_eps, 1), x_t ~ q and
/// a negative x_0^neg ~ p_θ(· | x_t) from the frozen `den` ([`nce_batch`]), `batch` rows per
/// denoiser call; returns the NCE loss and the real-vs-generated accuracy (same `seed`, same
/// result).
pub fn nce_eval<D: Denoiser + ?Sized>(
    head: &EnergyHead,
    den: &D,
    sched: &NoiseSchedule,
    rows: &[Vec<u32>],
    batch: usize,
    t_eps: f64,
    seed: u64,
) -> Result<NceEval> {
    let len = rows.first().map_or(0, Vec::len);
    if rows.is_empty() || len == 0 || rows.iter().any(|r| r.len() != len) || batch == 0 {
        return Err(DiffusionError::Input(
            "energy head eval: need held-out rows of one non-zero length and batch ≥ 1".into(),
        ));
    }
    if head.config().vocab != den.vocab_size() {
        return Err(DiffusionError::Mismatch(format!(
            "energy head vocabulary {} differs from the denoiser's {}",
            head.config().vocab,
            den.vocab_size()
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut loss, mut correct) = (0.0, 0usize);
    for chunk in rows.chunks(batch) {
        let b = chunk.len();
        let x0: Vec<u32> = chunk.concat();
        let t: Vec<f64> = (0..b)
            .map(|_| t_eps + (1.0 - t_eps) * rng.random::<f64>())
            .collect();
        let (x_t, neg) = nce_batch(den, sched, &x0, b, &t, &mut rng)?;
        let e_pos = head.energy(&x0, &x_t, b)?.to_vec1::<f32>()?;
        let e_neg = head.energy(&neg, &x_t, b)?.to_vec1::<f32>()?;
        for (&p, &n) in e_pos.iter().zip(&e_neg) {
            let (p, n) = (f64::from(p), f64::from(n));
            loss += softplus_f64(p) + softplus_f64(-n);
            correct += usize::from(p < 0.0) + usize::from(n > 0.0);
        }
    }
    let n = rows.len();
    Ok(NceEval {
        loss: loss / n as f64,
        accuracy: correct as f64 / (2 * n) as f64,
        rows: n,
    })
}

/// softplus in f64, stably.
fn softplus_f64(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::ToyDenoiser;

    const LOGLIN: NoiseSchedule = NoiseSchedule::LogLinear { eps: 1e-3 };

    #[test]
    fn nce_eval_separates_after_training_and_reports_progress() {
        // Real rows (k, k, k, k); the toy denoiser's samples rarely are constant.
        let den = ToyDenoiser::new(5, 4, 1.0).unwrap();
        let real: Vec<Vec<u32>> = (0..4).map(|k| vec![k; 4]).collect();
        let head_cfg = EnergyHeadConfig {
            vocab: 5,
            d_embed: 8,
            d_hidden: 16,
        };
        let cfg = EnergyTrainConfig {
            steps: 120,
            batch: 16,
            lr: 1e-2,
            ..EnergyTrainConfig::default()
        };
        let mut seen = Vec::new();
        let (head, losses) =
            train_energy_head_with(&den, &LOGLIN, &real, head_cfg, &cfg, |i, l| {
                seen.push((i, l))
            })
            .unwrap();
        assert_eq!(seen.len(), 120);
        assert!(seen
            .iter()
            .enumerate()
            .all(|(i, &(s, l))| s == i + 1 && l == losses[i]));
        let held: Vec<Vec<u32>> = (0..16).flat_map(|_| real.iter().cloned()).collect();
        let untrained = EnergyHead::init(head_cfg, 0).unwrap();
        let e0 = nce_eval(&untrained, &den, &LOGLIN, &held, 16, 1e-3, 9).unwrap();
        let e1 = nce_eval(&head, &den, &LOGLIN, &held, 16, 1e-3, 9).unwrap();
        assert_eq!(e1.rows, 64);
        assert!(
            e1.accuracy > 0.75 && e1.accuracy > e0.accuracy && e1.loss < e0.loss,
            "untrained {e0:?}, trained {e1:?}"
        );
        // The same seed gives the same numbers; the loss is NCE's, ≤ 2 ln 2 when it separates.
        assert_eq!(
            nce_eval(&head, &den, &LOGLIN, &held, 7, 1e-3, 9)
                .unwrap()
                .rows,
            64
        );
        assert_eq!(
            nce_eval(&head, &den, &LOGLIN, &held, 16, 1e-3, 9).unwrap(),
            e1
        );
        assert!(e1.loss < 2.0 * 2f64.ln());
        // A head of another vocabulary is refused.
        let other = ToyDenoiser::new(7, 4, 1.0).unwrap();
        let err = nce_eval(&head, &other, &LOGLIN, &held, 16, 1e-3, 9).unwrap_err();
        assert!(err.to_string().contains("vocabulary 5"), "{err}");
    }
}
