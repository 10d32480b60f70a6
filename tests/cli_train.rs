//! End-to-end `seqlab train`: char tokenizer → prepare → train a few steps → files → generate
//! from the checkpoint → resume; and the one-line errors for bad inputs.

mod common;

use common::{fails, ok, s};
use std::path::Path;

#[test]
fn prepare_train_generate_resume_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let hamlet = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample/hamlet.txt");
    let tok = t.join("char.json");
    ok(&[
        "tokenizer",
        "train",
        "--kind",
        "char",
        s(&hamlet),
        "-o",
        s(&tok),
    ]);
    let data = t.join("data");
    ok(&["prepare", "text", "-t", s(&tok), s(&hamlet), "-o", s(&data)]);
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
    fails(
        &["train", "--model", "gpt", "--data", s(&data), "-o", s(&run)],
        &["only `mamba`"],
    );
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
