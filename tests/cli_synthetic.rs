//! End-to-end `seqlab synthetic train|eval`: a tiny run writes its JSON report and model, the
//! saved model re-evaluates to the same accuracy, and bad inputs are one-line errors.

use crate::common;

use common::{fails, ok, s, stdout};

#[test]
fn train_eval_json_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let json = t.join("report.json");
    let model = t.join("model");
    let out = ok(&[
        "synthetic",
        "train",
        "--task",
        "selective-copy",
        "--backbone",
        "mamba",
        "--seq-len",
        "10",
        "--n-tokens",
        "2",
        "--vocab",
        "6",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--d-state",
        "4",
        "--steps",
        "5",
        "--batch",
        "4",
        "--eval-examples",
        "16",
        "--eval-every",
        "2",
        "--seed",
        "7",
        "--json",
        s(&json),
        "--save",
        s(&model),
        "--quiet",
    ]);
    let text = stdout(&out);
    assert!(text.contains("selective-copy mamba: accuracy"), "{text}");
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rep["task"], "selective-copy");
    assert_eq!(rep["backbone"], "mamba");
    assert_eq!(rep["eval_tokens"], 32);
    assert_eq!(rep["chance"], 0.25);
    assert_eq!(rep["curve"].as_array().unwrap().len(), 3); // steps 2, 4 and the end
    let acc = rep["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));

    let ej = t.join("eval.json");
    let out = ok(&[
        "synthetic",
        "eval",
        "--model",
        s(&model),
        "--examples",
        "16",
        "--json",
        s(&ej),
    ]);
    assert!(stdout(&out).contains("accuracy"));
    let ev: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ej).unwrap()).unwrap();
    assert_eq!(ev["accuracy"].as_f64().unwrap(), acc);

    for backbone in ["s4d", "transformer"] {
        let out = ok(&[
            "synthetic",
            "train",
            "--task",
            "induction",
            "--backbone",
            backbone,
            "--seq-len",
            "8",
            "--vocab",
            "5",
            "--d-model",
            "16",
            "--layers",
            "1",
            "--d-state",
            "4",
            "--heads",
            "2",
            "--steps",
            "2",
            "--batch",
            "2",
            "--eval-examples",
            "4",
            "--quiet",
        ]);
        assert!(stdout(&out).contains(&format!("induction {backbone}: accuracy")));
    }

    let base = ["synthetic", "train", "--backbone", "mamba", "--quiet"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra.iter()).copied().collect()
    };
    fails(
        &with(&[
            "--task",
            "selective-copy",
            "--seq-len",
            "4",
            "--n-tokens",
            "8",
        ]),
        &["n_tokens"],
    );
    fails(
        &with(&["--task", "induction", "--vocab", "2"]),
        &["vocabulary"],
    );
    fails(
        &with(&["--task", "induction", "--steps", "0"]),
        &["--steps"],
    );
    fails(
        &["synthetic", "eval", "--model", s(&t.join("missing"))],
        &["synthetic_task.json"],
    );
}
