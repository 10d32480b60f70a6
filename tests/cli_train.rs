//! End-to-end `seqlab train`: char tokenizer → prepare → train a few steps → files → generate
//! from the checkpoint → resume; and the one-line errors for bad inputs. The same for the
//! Transformer (`--model transformer`).

use crate::common;

use common::{fails, ok, s};
use std::path::Path;

#[test]
fn prepare_train_generate_resume_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let hamlet = common::hamlet();
    let (_, data) = common::char_hamlet(t, "data");
    let cfg = t.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"d_model": 16, "n_layer": 1, "d_state": 4, "batch_size": 2, "seq_len": 32,
            "max_steps": 6, "warmup_steps": 2, "eval_every": 3, "eval_batches": 2,
            "checkpoint_every": 3, "seed": 1}"#,
    )
    .unwrap();
    let run = t.join("run");
    let args = [
        "train",
        "--model",
        "mamba",
        "--config",
        s(&cfg),
        "--data",
        s(&data),
        "-o",
        s(&run),
    ];
    ok(&args);
    for f in [
        "metrics.jsonl",
        "loss.png",
        "checkpoint/model.safetensors",
        "checkpoint/config.json",
        "checkpoint/tokenizer.json",
        "checkpoint/trainer_state.json",
        "checkpoint/optimizer.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 6);
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    for k in [
        "step",
        "lr",
        "train_loss",
        "grad_norm",
        "tokens_per_s",
        "val_loss",
    ] {
        assert!(last.get(k).is_some(), "metrics line lacks {k}: {last}");
    }
    let ck = run.join("checkpoint");
    let o = ok(&[
        "generate",
        "--model",
        s(&ck),
        "--prompt",
        "To be",
        "--max-new-tokens",
        "10",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["generated_ids"].as_array().unwrap().len(), 10);
    assert!(v["text"].is_string());

    // Across processes: stop after 3 steps, resume, and the losses of steps 4..6 are identical.
    let run_b = t.join("run_b");
    let args_b = [
        "train",
        "--config",
        s(&cfg),
        "--data",
        s(&data),
        "-o",
        s(&run_b),
    ];
    let mut stop = args_b.to_vec();
    stop.extend(["--stop-after", "3"]);
    ok(&stop);
    let mut resume = args_b.to_vec();
    resume.push("--resume");
    ok(&resume);
    let losses = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} {} {} {}",
                    v["step"], v["train_loss"], v["grad_norm"], v["val_loss"]
                )
            })
            .collect()
    };
    assert_eq!(losses(&run_b), losses(&run), "resumed run differs");

    // Resume to a longer schedule.
    let mut more = args.to_vec();
    more.extend(["--resume", "--max-steps", "8"]);
    ok(&more);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 8);

    // Errors: one line, exit 1.
    let missing = t.join("nope");
    fails(
        &[
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&missing),
            "-o",
            s(&run),
        ],
        &["does not exist"],
    );
    let bad = t.join("bad.json");
    std::fs::write(&bad, r#"{"d_model": 16, "layers": 2}"#).unwrap();
    fails(
        &[
            "train",
            "--config",
            s(&bad),
            "--data",
            s(&data),
            "-o",
            s(&run),
        ],
        &["layers"],
    );
    fails(
        &[
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&data),
            "-o",
            s(&t.join("fresh")),
            "--resume",
        ],
        &["no checkpoint"],
    );
    // A bad --model is clap's usage error (exit 2) listing the families.
    let o = common::seqlab(&["train", "--model", "gpt", "--data", s(&data), "-o", s(&run)]);
    assert_eq!(o.status.code(), Some(2));
    let e = common::stderr(&o);
    assert!(e.contains("gpt") && e.contains("transformer"), "{e}");
    // A checkpoint trained on another vocabulary.
    let tok2 = t.join("byte.json");
    ok(&[
        "tokenizer",
        "train",
        "--kind",
        "byte",
        s(&hamlet),
        "-o",
        s(&tok2),
    ]);
    let data2 = t.join("data2");
    ok(&[
        "prepare",
        "text",
        "-t",
        s(&tok2),
        s(&hamlet),
        "-o",
        s(&data2),
    ]);
    fails(
        &[
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&data2),
            "-o",
            s(&run),
            "--resume",
        ],
        &["vocabulary"],
    );
    // An unwritable run directory (a file where the directory should be).
    let file = t.join("afile");
    std::fs::write(&file, "x").unwrap();
    fails(
        &[
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&data),
            "-o",
            s(&file.join("run")),
        ],
        &["run directory"],
    );
}

/// Per metrics line: step, train loss, grad norm, val loss (exact decimal strings).
fn metric_lines(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {} {} {}",
                v["step"], v["train_loss"], v["grad_norm"], v["val_loss"]
            )
        })
        .collect()
}

#[test]
fn transformer_trains_and_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    let cfg = t.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"d_model": 16, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "batch_size": 2,
            "seq_len": 32, "max_steps": 6, "warmup_steps": 2, "eval_every": 3,
            "eval_batches": 2, "checkpoint_every": 3, "seed": 1, "lr": 0.01}"#,
    )
    .unwrap();
    let run = t.join("run");
    let base = |run: &Path| -> Vec<String> {
        [
            "train",
            "--model",
            "transformer",
            "--config",
            s(&cfg),
            "--data",
            s(&data),
            "-o",
            s(run),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    ok(&base(&run));
    for f in [
        "metrics.jsonl",
        "loss.png",
        "checkpoint/model.safetensors",
        "checkpoint/config.json",
        "checkpoint/tokenizer.json",
        "checkpoint/trainer_state.json",
        "checkpoint/optimizer.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let conf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/config.json")).unwrap())
            .unwrap();
    assert_eq!(conf["model_type"], "llama");
    assert_eq!(conf["num_attention_heads"], 4);
    assert_eq!(conf["num_key_value_heads"], 2);
    assert_eq!(conf["intermediate_size"], 48); // 8·16/3 rounded up to a multiple of 8
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("checkpoint/trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["config"]["model"], "transformer");
    let full = metric_lines(&run);
    assert_eq!(full.len(), 6);
    let loss = |l: &str| -> f64 { l.split(' ').nth(1).unwrap().parse().unwrap() };
    assert!(loss(&full[5]) < loss(&full[0]), "no learning: {full:?}");

    // Stop after 3 steps in one process, resume in another: identical numbers.
    let run_b = t.join("run_b");
    let mut stop = base(&run_b);
    stop.extend(["--stop-after".into(), "3".into()]);
    ok(&stop);
    assert_eq!(metric_lines(&run_b).len(), 3);
    let mut resume = base(&run_b);
    resume.push("--resume".into());
    ok(&resume);
    assert_eq!(
        metric_lines(&run_b),
        full,
        "resumed transformer run differs"
    );

    // Resuming a transformer checkpoint as a Mamba is a one-line error.
    let mut wrong = base(&run_b);
    wrong[2] = "mamba".into();
    wrong.extend(["--resume".into(), "--max-steps".into(), "8".into()]);
    fails(&wrong, &["transformer", "mamba"]);
}
