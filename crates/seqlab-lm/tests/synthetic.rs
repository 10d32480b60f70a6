//! Synthetic tasks (Mamba paper §4.1.1): generator answers, the answer-only loss and accuracy,
//! learning above chance, every backbone, save / load.

use seqlab_data::{SyntheticSpec, SyntheticTask};
use seqlab_lm::s4lm::SsmName;
use seqlab_lm::synthetic_train::{
    answer_loss, correct_answers, evaluate_synthetic, load_synthetic, save_synthetic,
    train_synthetic, SyntheticRun,
};
use seqlab_lm::train::ModelKind;
use seqlab_lm::TrainConfig;
use seqlab_tensor::candle_core::{Device, Tensor};

fn copy_spec() -> SyntheticSpec {
    SyntheticSpec {
        task: SyntheticTask::SelectiveCopy,
        seq_len: 8,
        n_tokens: 2,
        vocab: 5,
    }
}

fn cfg(model: ModelKind, steps: u64) -> TrainConfig {
    TrainConfig {
        model,
        d_model: 16,
        n_layer: 1,
        d_state: 8,
        n_head: 2,
        batch_size: 16,
        lr: 1e-2,
        min_lr: 1e-3,
        warmup_steps: 5,
        max_steps: steps,
        weight_decay: 0.0,
        seed: 3,
        ..TrainConfig::default()
    }
}

#[test]
fn generator_answers_are_correct() {
    let s = SyntheticSpec {
        task: SyntheticTask::SelectiveCopy,
        seq_len: 40,
        n_tokens: 8,
        vocab: 16,
    };
    let b = s.batch(9, 100, 4).unwrap();
    assert_eq!((b.batch_size, b.seq_len), (4, 48));
    for r in 0..4 {
        let row = &b.inputs[r * 48..(r + 1) * 48];
        let data: Vec<u32> = row[..40].iter().copied().filter(|&t| t != 14).collect();
        assert_eq!(data, b.targets[r * 8..(r + 1) * 8]);
        assert!(row[40..].iter().all(|&t| t == 15));
        let pos: Vec<u32> = (40..48).map(|p| (r * 48 + p) as u32).collect();
        assert_eq!(pos, b.positions[r * 8..(r + 1) * 8]);
    }
    // The same example whatever the batch it falls in.
    let one = s.batch(9, 102, 1).unwrap();
    assert_eq!(one.inputs, b.inputs[2 * 48..3 * 48]);
    assert!((s.chance_accuracy() - 1.0 / 14.0).abs() < 1e-15);

    let ind = SyntheticSpec {
        task: SyntheticTask::Induction,
        seq_len: 30,
        n_tokens: 0,
        vocab: 8,
    };
    for i in 0..20 {
        let ex = ind.example(2, i).unwrap();
        let first = ex.tokens.iter().position(|&t| t == 7).unwrap();
        assert!(first < 28);
        assert_eq!(ex.tokens[29], 7);
        assert_eq!(ex.answers, vec![ex.tokens[first + 1]]);
    }
}

#[test]
fn loss_and_accuracy_use_only_the_answer_positions() {
    let s = SyntheticSpec {
        task: SyntheticTask::SelectiveCopy,
        seq_len: 12,
        n_tokens: 3,
        vocab: 6,
    };
    let b = s.batch(0, 0, 2).unwrap();
    let len = s.total_len();
    // Logits: 0 everywhere, except a 5.0 on the right answer at the first answer of each row
    // and on a wrong one at the others; noise positions get huge (ignored) values.
    let mut v = vec![0f32; 2 * len * 6];
    for p in 0..2 * len {
        v[p * 6] = 100.0;
    }
    for (k, (&p, &y)) in b.positions.iter().zip(&b.targets).enumerate() {
        let row = &mut v[p as usize * 6..(p as usize + 1) * 6];
        row[0] = 0.0;
        let pick = if k % 3 == 0 { y } else { (y + 1) % 4 };
        row[pick as usize] = 5.0;
    }
    let logits = Tensor::from_vec(v, (2, len, 6), &Device::Cpu).unwrap();
    assert_eq!(correct_answers(&logits, &b).unwrap(), 2);
    let loss = answer_loss(&logits, &b)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    // Right: −log(e⁵/(e⁵+5)); wrong: −log(1/(e⁵+5)).
    let lse = (5f64.exp() + 5.0).ln();
    let expect = (2.0 * (lse - 5.0) + 4.0 * lse) / 6.0;
    assert!((loss - expect).abs() < 1e-5, "{loss} vs {expect}");
}

#[test]
fn mamba_learns_selective_copy_above_chance() {
    let run = SyntheticRun {
        spec: copy_spec(),
        model: cfg(ModelKind::Mamba, 300),
        eval_examples: 128,
        eval_every: 0,
    };
    let mut losses = Vec::new();
    let (model, rep) = train_synthetic(&run, |_, l, _| losses.push(l)).unwrap();
    assert_eq!(losses.len(), 300);
    let chance = run.spec.chance_accuracy();
    assert_eq!(rep.eval_tokens, 128 * 2);
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let last: f64 = losses[290..].iter().sum::<f64>() / 10.0;
    eprintln!("acc {} chance {chance} loss {first} → {last}", rep.accuracy);
    assert!(last < first - 0.2, "loss {first} → {last}");
    assert!(rep.accuracy > 0.9, "{} vs chance {chance}", rep.accuracy);
    // Deterministic: the same accuracy when re-measured.
    let (again, _) = evaluate_synthetic(&model, &run.spec, 3, 128, 32).unwrap();
    assert_eq!(again, rep.accuracy);

    let dir = tempfile::tempdir().unwrap();
    save_synthetic(dir.path(), &model, &run.spec, 3).unwrap();
    let (loaded, task) = load_synthetic(dir.path()).unwrap();
    assert_eq!(task.spec().unwrap(), run.spec);
    let (acc, _) = evaluate_synthetic(&loaded, &run.spec, 3, 128, 32).unwrap();
    assert_eq!(acc, rep.accuracy);
    assert!(load_synthetic(&dir.path().join("nope")).is_err());
}

#[test]
fn every_backbone_trains_on_induction() {
    let spec = SyntheticSpec {
        task: SyntheticTask::Induction,
        seq_len: 10,
        n_tokens: 0,
        vocab: 5,
    };
    for (kind, ssm) in [
        (ModelKind::S4, SsmName::S4d),
        (ModelKind::S4, SsmName::S4legs),
        (ModelKind::Transformer, SsmName::S4d),
    ] {
        let run = SyntheticRun {
            spec,
            model: TrainConfig {
                ssm,
                ..cfg(kind, 4)
            },
            eval_examples: 20,
            eval_every: 2,
        };
        let (_, rep) = train_synthetic(&run, |_, _, _| {}).unwrap();
        assert_eq!(rep.curve.len(), 2);
        assert_eq!(rep.eval_tokens, 20);
        assert!(rep.final_train_loss.is_finite() && rep.params > 0);
        assert!(rep.backbone == "s4d" || rep.backbone == "s4legs" || rep.backbone == "transformer");
    }
    let bad = SyntheticRun {
        spec,
        model: cfg(ModelKind::Sashimi, 2),
        eval_examples: 4,
        eval_every: 0,
    };
    assert!(train_synthetic(&bad, |_, _, _| {}).is_err());
}
