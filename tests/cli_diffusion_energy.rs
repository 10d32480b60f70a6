//! End-to-end `seqlab diffusion energy-head` (EDLM's NCE energy head, trained against the frozen
//! bundled `models/mdlm-little` on Hamlet tokenized with its tokenizer), then EDLM with the head
//! as energy in `seqlab diffusion sample` and `eval`, and one-line errors: both / neither energy,
//! a missing head, a head trained against another denoiser's vocabulary.

use crate::common;

use common::{fails, ok, s, stdout};
use std::path::{Path, PathBuf};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn diffusion_energy_head_train_sample_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let hamlet = repo("datasets/sample/hamlet.txt");
    let mdlm = repo("models/mdlm-little");
    let data = t.join("data");
    ok(&[
        "prepare",
        "text",
        "-t",
        s(&mdlm.join("tokenizer.json")),
        s(&hamlet),
        "-o",
        s(&data),
        "--val-fraction",
        "0.1",
    ]);
    let head = t.join("head");
    let out = stdout(&ok(&[
        "diffusion",
        "energy-head",
        "--model",
        s(&mdlm),
        "--data",
        s(&data),
        "-o",
        s(&head),
        "--steps",
        "40",
        "--batch",
        "8",
        "--window",
        "48",
        "--eval-windows",
        "16",
        "--lr",
        "1e-2",
        "--seed",
        "1",
        "--quiet",
    ]));
    assert!(
        out.contains("NCE loss") && out.contains("accuracy"),
        "{out}"
    );
    for f in [
        "energy_head.json",
        "energy_head.safetensors",
        "metrics.json",
    ] {
        assert!(head.join(f).is_file(), "{f} missing");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(head.join("metrics.json")).unwrap()).unwrap();
    let losses: Vec<f64> = m["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 40);
    assert!(losses.iter().all(|l| l.is_finite() && *l >= 0.0), "{m}");
    // One step's loss is noisy (8 rows): compare the means of the first and last 4 steps.
    let first = losses[..4].iter().sum::<f64>() / 4.0;
    let last = m["final_loss"].as_f64().unwrap();
    let mean_last4 = losses[36..].iter().sum::<f64>() / 4.0;
    assert!((last - mean_last4).abs() < 1e-9, "{m}");
    assert!(last < first, "NCE loss {first} -> {last}: {losses:?}");
    let acc = m["heldout"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{m}");
    assert_eq!(m["heldout"]["rows"], 16);
    assert_eq!(m["head"]["vocab"], 2049);
    eprintln!(
        "NCE loss {first:.4} -> {last:.4}, held-out accuracy {acc:.3}, loss {}",
        m["heldout"]["loss"]
    );

    // EDLM with the head as energy: text, no [MASK] left.
    let mdlm_s = s(&mdlm);
    let edlm = |extra: &[&str]| -> Vec<String> {
        let a = vec![
            "diffusion",
            "sample",
            "--model",
            mdlm_s,
            "--sampler",
            "edlm",
            "-n",
            "2",
            "--length",
            "24",
            "--steps",
            "16",
            "--k",
            "2",
            "--seed",
            "4",
        ];
        let mut a: Vec<String> = a.into_iter().map(String::from).collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&ok(&edlm(&["--energy-head", s(&head), "--json"])))).unwrap();
    assert_eq!(v["sampler"], "edlm");
    assert_eq!(v["energy"], "nce");
    let rows = v["samples"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let toks = r["tokens"].as_array().unwrap();
        assert_eq!(toks.len(), 24, "{v}");
        assert!(toks.iter().all(|x| x.as_u64().unwrap() < 2048), "{v}");
        assert!(!r["text"].as_str().unwrap().trim().is_empty(), "{v}");
    }
    let text = stdout(&ok(&edlm(&["--energy-head", s(&head)])));
    assert!(text.trim().len() > 10, "{text:?}");

    // eval: an edlm-nce row next to the AR-energy edlm row, both scored by the AR model.
    let little_ar = repo("models/transformer-little");
    let e: serde_json::Value = serde_json::from_str(&stdout(&ok(&[
        "diffusion",
        "eval",
        "--model",
        s(&mdlm),
        "--ar-model",
        s(&little_ar),
        "--energy-head",
        s(&head),
        "-n",
        "2",
        "--length",
        "16",
        "--samplers",
        "edlm",
        "--k",
        "2",
        "--edlm-steps",
        "8",
        "--json",
    ])))
    .unwrap();
    let names: Vec<&str> = e["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sampler"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["edlm", "edlm-nce"], "{e}");
    for r in e["rows"].as_array().unwrap() {
        let g = r["gen_ppl"].as_f64().unwrap();
        assert!(g.is_finite() && g > 1.0, "{e}");
        assert_eq!(r["k"], 2);
    }

    // Errors, one line each.
    let both = edlm(&["--energy-head", s(&head), "--ar-model", s(&little_ar)]);
    fails(&both, &["exactly one", "--ar-model", "--energy-head"]);
    fails(&edlm(&[]), &["exactly one", "--ar-model", "--energy-head"]);
    let missing = t.join("nohead");
    fails(
        &edlm(&["--energy-head", s(&missing)]),
        &["nohead", "energy_head.json"],
    );
    fails(
        &[
            "diffusion",
            "eval",
            "--model",
            s(&mdlm),
            "--ar-model",
            s(&little_ar),
            "--energy-head",
            s(&head),
            "--samplers",
            "fhs",
        ],
        &["--energy-head", "edlm"],
    );
    // A denoiser of another vocabulary (a 2-step char model) refuses the head, and the head
    // trainer refuses data of another tokenizer.
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
    let cdata = t.join("cdata");
    ok(&[
        "prepare",
        "text",
        "-t",
        s(&tok),
        s(&hamlet),
        "-o",
        s(&cdata),
    ]);
    let cfg = t.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"d_model": 16, "n_layer": 1, "n_head": 2, "batch_size": 2, "seq_len": 32,
            "max_steps": 2, "warmup_steps": 1, "eval_every": 2, "eval_batches": 1,
            "checkpoint_every": 2, "seed": 1}"#,
    )
    .unwrap();
    let dm = t.join("char-mdlm");
    ok(&[
        "diffusion",
        "train",
        "--config",
        s(&cfg),
        "--data",
        s(&cdata),
        "-o",
        s(&dm),
        "--quiet",
    ]);
    fails(
        &[
            "diffusion",
            "sample",
            "--model",
            s(&dm),
            "--sampler",
            "edlm",
            "--energy-head",
            s(&head),
        ],
        &["vocabulary of 2049", "another model"],
    );
    fails(
        &[
            "diffusion",
            "energy-head",
            "--model",
            s(&dm),
            "--data",
            s(&data),
            "-o",
            s(&t.join("h2")),
            "--steps",
            "1",
        ],
        &["mask id", "another tokenizer"],
    );
}
