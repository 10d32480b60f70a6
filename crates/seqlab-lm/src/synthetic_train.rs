//! Training any backbone on the synthetic long-range tasks of the Mamba paper (§4.1.1: selective
//! copying, induction heads; generators in [`seqlab_data::SyntheticSpec`]) and measuring its
//! token accuracy on the answer positions only.
//!
//! The model is any [`TrainModel`] (Mamba, S4 / S4D LM, Transformer) built from a
//! [`TrainConfig`] whose `seq_len` is the task's total length; the optimiser is the training
//! loop's [`AdamW`] with its warmup + cosine schedule ([`lr_at`]) and global-norm clipping
//! ([`clip_grad_norm`]). The loss is the cross-entropy of the answer positions only,
//!
//! ```text
//! L = −(1/|A|) Σ_{(b,t) ∈ A} log softmax(logits[b, t])[y_{b,t}]
//! ```
//!
//! where A is the set of scored positions (the copy markers, or the final induction trigger);
//! the noise positions carry no loss. Step `t` trains on examples `t·B .. (t+1)·B` of the
//! stream seeded `seed`; evaluation uses a disjoint stream (seed `seed ^ EVAL_STREAM`), so
//! accuracy is measured on examples never trained on. Accuracy = fraction of answer positions
//! whose arg-max logit equals the answer (ties go to the lower id).

use crate::error::{LmError, Result};
use crate::mamba::train_model::cross_entropy;
use crate::train::{clip_grad_norm, lr_at, AdamW, ModelKind, TrainConfig, TrainModel};
use candle_core::{DType, Device, Tensor};
use seqlab_data::{SyntheticBatch, SyntheticSpec};
use seqlab_io::{Action, IoError};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Mixed into the seed for the evaluation stream (disjoint from the training examples).
pub const EVAL_STREAM: u64 = 0x5eed_e7a1_0000_0001;

/// Name of the task description written beside a saved model.
pub const TASK_FILE: &str = "synthetic_task.json";

/// A synthetic-task run: the task, the model and optimiser settings (in `model`: family,
/// sizes, `batch_size`, `lr`, `min_lr`, `warmup_steps`, `max_steps`, `weight_decay`,
/// `grad_clip`, `seed`), and how much to evaluate.
#[derive(Debug, Clone)]
pub struct SyntheticRun {
    /// The task.
    pub spec: SyntheticSpec,
    /// Model and optimiser; its `seq_len` is set to the task's total length.
    pub model: TrainConfig,
    /// Evaluation examples (a fresh stream).
    pub eval_examples: usize,
    /// Evaluate every this many steps (0 = only at the end).
    pub eval_every: u64,
}

/// One evaluation point of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticPoint {
    /// Optimizer steps done.
    pub step: u64,
    /// Answer-position loss (nats) of that step's batch.
    pub train_loss: f64,
    /// Token accuracy on the evaluation stream.
    pub accuracy: f64,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticReport {
    /// `selective-copy` | `induction`.
    pub task: String,
    /// Backbone (`mamba`, `s4d`, `s4legs`, `transformer`).
    pub backbone: String,
    /// Region length (selective copy) or total length (induction).
    pub seq_len: usize,
    /// Tokens to copy (selective copy; 1 for induction).
    pub n_tokens: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Model width.
    pub d_model: usize,
    /// Layers.
    pub n_layer: usize,
    /// Trainable parameters.
    pub params: usize,
    /// Optimizer steps.
    pub steps: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// Final answer-position accuracy on `eval_examples` fresh examples.
    pub accuracy: f64,
    /// Answer positions scored in the final evaluation.
    pub eval_tokens: usize,
    /// Accuracy of a uniform guess.
    pub chance: f64,
    /// Last training batch's answer loss (nats).
    pub final_train_loss: f64,
    /// Wall-clock seconds (training and evaluation).
    pub seconds: f64,
    /// Evaluation points.
    pub curve: Vec<SyntheticPoint>,
}

/// The backbone name of a model config (`s4d`/`s4legs` for the S4 LM).
pub fn backbone_name(cfg: &TrainConfig) -> String {
    match cfg.model {
        ModelKind::S4 => match cfg.ssm {
            crate::s4lm::SsmName::S4d => "s4d".into(),
            crate::s4lm::SsmName::S4legs => "s4legs".into(),
        },
        k => k.name().into(),
    }
}

/// Cross-entropy of `logits` (batch, len, V) at the flat positions of `batch` only.
pub fn answer_loss(logits: &Tensor, batch: &SyntheticBatch) -> Result<Tensor> {
    let v = logits.dim(candle_core::D::Minus1)?;
    let rows = logits.elem_count() / v;
    let flat = logits.reshape((rows, v))?;
    let idx = Tensor::from_slice(&batch.positions, batch.positions.len(), &Device::Cpu)?;
    let picked = flat.index_select(&idx, 0)?;
    cross_entropy(&picked, &batch.targets)
}

/// Number of answer positions of `batch` whose arg-max logit is the answer.
pub fn correct_answers(logits: &Tensor, batch: &SyntheticBatch) -> Result<usize> {
    let v = logits.dim(candle_core::D::Minus1)?;
    let flat = logits
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut correct = 0;
    for (&p, &y) in batch.positions.iter().zip(&batch.targets) {
        let row = &flat[p as usize * v..(p as usize + 1) * v];
        let mut best = 0;
        for (i, &x) in row.iter().enumerate() {
            if x > row[best] {
                best = i;
            }
        }
        correct += usize::from(best == y as usize);
    }
    Ok(correct)
}

/// Token accuracy of `model` on the first `examples` examples of the evaluation stream of
/// `seed`, in batches of `batch_size`; returns (accuracy, positions scored).
pub fn evaluate_synthetic(
    model: &TrainModel,
    spec: &SyntheticSpec,
    seed: u64,
    examples: usize,
    batch_size: usize,
) -> Result<(f64, usize)> {
    if examples == 0 || batch_size == 0 {
        return Err(LmError::Shape(
            "evaluation needs ≥ 1 example and a batch size ≥ 1".into(),
        ));
    }
    let (mut correct, mut total, mut done) = (0usize, 0usize, 0usize);
    while done < examples {
        let n = batch_size.min(examples - done);
        let batch = spec.batch(seed ^ EVAL_STREAM, done as u64, n)?;
        let logits = model.forward(&batch.inputs, n, None)?;
        correct += correct_answers(&logits, &batch)?;
        total += batch.targets.len();
        done += n;
    }
    Ok((correct as f64 / total as f64, total))
}

/// Trains a fresh model of `run.model` on `run.spec` for `run.model.max_steps` steps and
/// evaluates it; `on_step(step, loss, accuracy)` is called after every step (progress display),
/// with `Some(accuracy)` at the evaluation points.
pub fn train_synthetic(
    run: &SyntheticRun,
    mut on_step: impl FnMut(u64, f64, Option<f64>),
) -> Result<(TrainModel, SyntheticReport)> {
    run.spec.validate()?;
    let mut cfg = run.model.clone();
    cfg.seq_len = run.spec.total_len();
    if cfg.model == ModelKind::Sashimi {
        return Err(LmError::Unsupported(
            "SaShiMi is an audio model; use mamba, s4 or transformer for synthetic tasks".into(),
        ));
    }
    cfg.validate()
        .map_err(|e| LmError::InvalidConfig(format!("bad synthetic-task config: {e}")))?;
    cfg.check_fits(run.spec.vocab)
        .map_err(LmError::InvalidConfig)?;
    if run.eval_examples == 0 {
        return Err(LmError::InvalidConfig("eval_examples must be ≥ 1".into()));
    }
    let t0 = Instant::now();
    let model = TrainModel::init(&cfg, run.spec.vocab, DType::F32)?;
    let mut opt = AdamW::new(model.params(), cfg.weight_decay, model.decay_fn())?;
    let params = model
        .params()
        .iter()
        .map(|(_, v)| v.as_tensor().elem_count())
        .sum();
    let mut curve = Vec::new();
    let mut last_loss = f64::NAN;
    let eval = |m: &TrainModel| {
        evaluate_synthetic(m, &run.spec, cfg.seed, run.eval_examples, cfg.batch_size)
    };
    for step in 0..cfg.max_steps {
        let batch = run
            .spec
            .batch(cfg.seed, step * cfg.batch_size as u64, cfg.batch_size)?;
        let logits = model.forward(&batch.inputs, cfg.batch_size, None)?;
        let loss = answer_loss(&logits, &batch)?;
        let loss_v = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !loss_v.is_finite() {
            return Err(LmError::Diverged {
                step: step + 1,
                what: "loss",
                value: loss_v,
            });
        }
        let mut grads = loss.backward()?;
        let norm = clip_grad_norm(model.params(), &mut grads, cfg.grad_clip)?;
        if !norm.is_finite() {
            return Err(LmError::Diverged {
                step: step + 1,
                what: "gradient norm",
                value: norm,
            });
        }
        let lr = lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps);
        opt.step(model.params(), &grads, lr)?;
        last_loss = loss_v;
        let done = step + 1;
        let mut acc_now = None;
        if run.eval_every > 0 && done % run.eval_every == 0 && done < cfg.max_steps {
            let (acc, _) = eval(&model)?;
            curve.push(SyntheticPoint {
                step: done,
                train_loss: loss_v,
                accuracy: acc,
            });
            acc_now = Some(acc);
        }
        on_step(done, loss_v, acc_now);
    }
    let (accuracy, eval_tokens) = eval(&model)?;
    curve.push(SyntheticPoint {
        step: cfg.max_steps,
        train_loss: last_loss,
        accuracy,
    });
    let report = SyntheticReport {
        task: run.spec.task.name().into(),
        backbone: backbone_name(&cfg),
        seq_len: run.spec.seq_len,
        n_tokens: run.spec.answers_per_example(),
        vocab: run.spec.vocab,
        d_model: cfg.d_model,
        n_layer: cfg.n_layer,
        params,
        steps: cfg.max_steps,
        batch_size: cfg.batch_size,
        lr: cfg.lr,
        seed: cfg.seed,
        accuracy,
        eval_tokens,
        chance: run.spec.chance_accuracy(),
        final_train_loss: last_loss,
        seconds: t0.elapsed().as_secs_f64(),
        curve,
    };
    Ok((model, report))
}

/// The task and model family of a saved synthetic-task model ([`TASK_FILE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedTask {
    /// `selective-copy` | `induction`.
    pub task: String,
    /// Region length (selective copy) or total length (induction).
    pub seq_len: usize,
    /// Tokens to copy.
    pub n_tokens: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Model family.
    pub model: ModelKind,
    /// The run's seed (its evaluation stream).
    pub seed: u64,
}

impl SavedTask {
    /// The task spec.
    pub fn spec(&self) -> Result<SyntheticSpec> {
        let s = SyntheticSpec {
            task: seqlab_data::SyntheticTask::from_name(&self.task)?,
            seq_len: self.seq_len,
            n_tokens: self.n_tokens,
            vocab: self.vocab,
        };
        s.validate()?;
        Ok(s)
    }
}

/// Saves `model` (`config.json`, `model.safetensors`) and the task ([`TASK_FILE`]) into `dir`.
pub fn save_synthetic(
    dir: &Path,
    model: &TrainModel,
    spec: &SyntheticSpec,
    seed: u64,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| IoError::new(Action::Create, dir, e))?;
    model.save(dir)?;
    let t = SavedTask {
        task: spec.task.name().into(),
        seq_len: spec.seq_len,
        n_tokens: spec.n_tokens,
        vocab: spec.vocab,
        model: model.kind(),
        seed,
    };
    let text = serde_json::to_string_pretty(&t).expect("task serialises");
    Ok(seqlab_io::write_atomic(
        dir.join(TASK_FILE),
        text.as_bytes(),
    )?)
}

/// Loads a model saved by [`save_synthetic`] with its task.
pub fn load_synthetic(dir: &Path) -> Result<(TrainModel, SavedTask)> {
    let path = dir.join(TASK_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LmError::FileNotFound {
                what: TASK_FILE.into(),
                path: path.clone(),
            }
        } else {
            LmError::Read {
                path: path.clone(),
                source,
            }
        }
    })?;
    let task: SavedTask = serde_json::from_str(&text).map_err(|e| LmError::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    task.spec()?;
    let model = TrainModel::load(task.model, dir)?;
    if model.vocab_size() != task.vocab {
        return Err(LmError::Mismatch(format!(
            "{}: the model's vocabulary ({}) is not the task's ({})",
            dir.display(),
            model.vocab_size(),
            task.vocab
        )));
    }
    Ok((model, task))
}
