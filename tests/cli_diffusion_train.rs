//! End-to-end `seqlab diffusion train` and `seqlab diffusion nelbo`: char tokenizer → prepare →
//! train a tiny masked-diffusion Transformer (the NELBO falls) → the NELBO bound is finite and
//! below ln V → stop + --resume gives the same losses bit for bit → the bidirectional Mamba
//! trains too → one-line errors for bad inputs.

use crate::common;

use common::{fails, ok, s, stdout};
use std::path::Path;

fn losses(run: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["train_loss"].as_f64().unwrap().to_bits(),
            )
        })
        .collect()
}

#[test]
fn diffusion_train_nelbo_resume_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("meta.json")).unwrap()).unwrap();
    let vocab = meta["vocab_size"].as_u64().unwrap() as f64;
    let cfg = t.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"d_model": 32, "n_layer": 1, "n_head": 2, "d_state": 4, "batch_size": 4,
            "seq_len": 32, "lr": 0.01, "min_lr": 0.001, "max_steps": 16, "warmup_steps": 2,
            "eval_every": 8, "eval_batches": 2, "checkpoint_every": 8, "seed": 1}"#,
    )
    .unwrap();
    let run = t.join("run");
    let train = |run: &Path, extra: &[&str]| {
        let mut a = vec![
            "diffusion",
            "train",
            "--backbone",
            "transformer",
            "--config",
            s(&cfg),
            "--data",
            s(&data),
            "-o",
            s(run),
        ];
        a.extend_from_slice(extra);
        ok(&a)
    };
    train(&run, &[]);
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
    let l = losses(&run);
    assert_eq!(l.len(), 16);
    let mean =
        |r: &[(u64, u64)]| r.iter().map(|x| f64::from_bits(x.1)).sum::<f64>() / r.len() as f64;
    let (first, last) = (mean(&l[..4]), mean(&l[12..]));
    assert!(last < first, "the NELBO did not fall: {first} -> {last}");

    let o = ok(&[
        "diffusion",
        "nelbo",
        "--model",
        s(&run),
        "--data",
        s(&data),
        "--t-points",
        "2",
        "--max-batches",
        "2",
        "--batch-size",
        "4",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let nelbo = v["nelbo"].as_f64().unwrap();
    assert!(nelbo.is_finite() && nelbo < vocab.ln(), "{v}");
    assert!((v["ppl_bound"].as_f64().unwrap() - nelbo.exp()).abs() < 1e-6 * nelbo.exp());
    assert_eq!(v["windows"].as_u64(), Some(8));
    let o = ok(&[
        "diffusion",
        "nelbo",
        "--model",
        s(&run.join("checkpoint")),
        "--data",
        s(&data),
        "--t-points",
        "1",
        "--max-batches",
        "1",
    ]);
    assert!(stdout(&o).contains("perplexity bound"), "{}", stdout(&o));

    // Stop after 5 steps, then resume: the same losses bit for bit.
    let part = t.join("part");
    train(&part, &["--stop-after", "5"]);
    assert_eq!(losses(&part).len(), 5);
    train(&part, &["--resume"]);
    assert_eq!(losses(&part), l, "resume is not bit-exact");

    // The bidirectional Mamba (concat merge) trains through the same command.
    let mcfg = t.join("mamba.json");
    std::fs::write(
        &mcfg,
        r#"{"d_model": 16, "n_layer": 1, "d_state": 4, "batch_size": 2, "seq_len": 16,
            "max_steps": 3, "eval_batches": 1, "bidir": "concat", "seed": 2}"#,
    )
    .unwrap();
    let mrun = t.join("mamba");
    ok(&[
        "diffusion",
        "train",
        "--backbone",
        "mamba",
        "--config",
        s(&mcfg),
        "--data",
        s(&data),
        "-o",
        s(&mrun),
        "--schedule",
        "cosine",
    ]);
    let c: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(mrun.join("checkpoint/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(c["backbone"], "mamba");
    assert_eq!(c["config"]["schedule"]["kind"], "cosine");
    assert_eq!(c["mask_id"].as_f64(), Some(vocab));

    // One-line errors.
    fails(
        &[
            "diffusion",
            "train",
            "--data",
            s(&t.join("nodata")),
            "-o",
            s(&t.join("r2")),
        ],
        &["nodata"],
    );
    let bad = t.join("bad.json");
    std::fs::write(&bad, r#"{"d_modle": 8}"#).unwrap();
    fails(
        &[
            "diffusion",
            "train",
            "--config",
            s(&bad),
            "--data",
            s(&data),
            "-o",
            s(&t.join("r3")),
        ],
        &["d_modle"],
    );
    fails(
        &[
            "diffusion",
            "train",
            "--data",
            s(&data),
            "-o",
            s(&t.join("r4")),
            "--resume",
        ],
        &["no checkpoint"],
    );
    fails(
        &[
            "diffusion",
            "nelbo",
            "--model",
            s(&t.join("nomodel")),
            "--data",
            s(&data),
        ],
        &["nomodel"],
    );
}
