//! End-to-end `seqlab diffusion sample` and `seqlab diffusion eval` on tiny models trained here
//! (a char tokenizer on the bundled Hamlet, a 2-step masked-diffusion Transformer and a 2-step
//! AR Transformer): the ancestral sampler with and without the cache, first-hitting, EDLM,
//! infilling (fixed text kept), semi-AR lengths beyond the window, the eval table / JSON /
//! PNG, and one-line errors.

use crate::common;

use common::{fails, ok, s, stdout};

fn json(args: &[&str]) -> serde_json::Value {
    let out = stdout(&ok(args));
    assert_eq!(out.lines().count(), 1, "{out}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn diffusion_sample_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    let cfg = t.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"d_model": 16, "n_layer": 1, "n_head": 2, "d_state": 4, "batch_size": 2,
            "seq_len": 32, "max_steps": 2, "warmup_steps": 1, "eval_every": 2,
            "eval_batches": 1, "checkpoint_every": 2, "seed": 1}"#,
    )
    .unwrap();
    let dm = t.join("mdlm");
    ok(&[
        "diffusion",
        "train",
        "--backbone",
        "transformer",
        "--config",
        s(&cfg),
        "--data",
        s(&data),
        "-o",
        s(&dm),
    ]);
    let ar = t.join("ar");
    ok(&[
        "train",
        "--model",
        "transformer",
        "--config",
        s(&cfg),
        "--data",
        s(&data),
        "-o",
        s(&ar),
    ]);
    let ar_ckpt = ar.join("checkpoint");
    let mask = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(dm.join("checkpoint/config.json")).unwrap(),
    )
    .unwrap()["mask_id"]
        .as_u64()
        .unwrap();

    let sample = |extra: &[&str]| {
        let mut a = vec![
            "diffusion",
            "sample",
            "--model",
            s(&dm),
            "-n",
            "2",
            "--json",
        ];
        a.extend_from_slice(extra);
        json(&a)
    };
    let check_rows = |v: &serde_json::Value, len: usize| {
        let rows = v["samples"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        for r in rows {
            let toks = r["tokens"].as_array().unwrap();
            assert_eq!(toks.len(), len, "{v}");
            assert!(
                toks.iter().all(|x| x.as_u64().unwrap() < mask),
                "a [MASK] is left: {v}"
            );
            assert!(!r["text"].as_str().unwrap().is_empty(), "{v}");
        }
    };
    // Ancestral, cached and not: the same samples (time-agnostic denoiser), fewer calls.
    let a = sample(&["--length", "24", "--steps", "16", "--seed", "3"]);
    let b = sample(&[
        "--length",
        "24",
        "--steps",
        "16",
        "--seed",
        "3",
        "--no-cache",
    ]);
    check_rows(&a, 24);
    assert_eq!(a["samples"], b["samples"]);
    let (ca, cb) = (
        a["calls_per_sample"].as_f64().unwrap(),
        b["calls_per_sample"].as_f64().unwrap(),
    );
    assert!(ca <= cb && (8.0..=16.0).contains(&cb), "{ca} {cb}");
    // First-hitting: one call per generated token.
    let f = sample(&["--sampler", "fhs", "--length", "20"]);
    check_rows(&f, 20);
    assert_eq!(f["calls_per_sample"].as_f64(), Some(20.0));
    // Reference f32 draws still produce full rows.
    check_rows(
        &sample(&["--length", "12", "--draw", "f32-gumbel", "--steps", "8"]),
        12,
    );
    // EDLM with the AR model as energy.
    let e = sample(&[
        "--sampler",
        "edlm",
        "--ar-model",
        s(&ar_ckpt),
        "--length",
        "16",
        "--steps",
        "20",
        "--k",
        "3",
    ]);
    check_rows(&e, 16);
    // Infilling: the fixed text stays where it was.
    let i = sample(&["--infill", "To be{6}not to be", "--sampler", "fhs"]);
    check_rows(&i, 5 + 6 + 9);
    for r in i["samples"].as_array().unwrap() {
        let text = r["text"].as_str().unwrap();
        assert!(
            text.starts_with("To be") && text.ends_with("not to be"),
            "{text}"
        );
    }
    let i = sample(&["--infill", "HAMLET.", "--length", "20"]);
    check_rows(&i, 20);
    assert!(i["samples"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("HAMLET."));
    // Longer than the 32-token window: semi-autoregressive blocks.
    check_rows(
        &sample(&["--length", "70", "--steps", "8", "--stride", "16"]),
        70,
    );
    // ... with an infill template in the first window: its fixed tokens stay.
    let runs: Vec<serde_json::Value> = ["1", "2"]
        .iter()
        .map(|seed| {
            sample(&[
                "--infill",
                "To{3}be",
                "--length",
                "70",
                "--sampler",
                "fhs",
                "--seed",
                seed,
            ])
        })
        .collect();
    let fixed = |v: &serde_json::Value, r: usize| -> Vec<u64> {
        let t = v["samples"][r]["tokens"].as_array().unwrap();
        [0, 1, 5, 6]
            .iter()
            .map(|&i| t[i].as_u64().unwrap())
            .collect()
    };
    for v in &runs {
        check_rows(v, 70);
        assert!(v["samples"][0]["text"].as_str().unwrap().starts_with("To"));
        assert_eq!(fixed(v, 0), fixed(&runs[0], 1));
    }
    // Plain text output.
    let o = ok(&[
        "diffusion",
        "sample",
        "--model",
        s(&dm),
        "--length",
        "10",
        "--steps",
        "4",
    ]);
    assert!(!stdout(&o).trim().is_empty());

    // eval: table, JSON, results.json and the plot.
    let out = t.join("eval");
    let v = json(&[
        "diffusion",
        "eval",
        "--model",
        s(&dm),
        "--ar-model",
        s(&ar_ckpt),
        "-n",
        "2",
        "--length",
        "16",
        "--steps",
        "4,8",
        "--samplers",
        "ancestral,fhs,edlm",
        "--k",
        "2",
        "--edlm-steps",
        "8",
        "--f32-at",
        "8",
        "-o",
        s(&out),
        "--json",
    ]);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2 + 1 + 1 + 1);
    for r in rows {
        let ppl = r["gen_ppl"].as_f64().unwrap();
        assert!(ppl.is_finite() && ppl > 1.0, "{r}");
        assert!(r["entropy"].as_f64().unwrap() > 0.0);
        assert!(r["calls_per_sample"].as_f64().unwrap() >= 1.0);
    }
    assert_eq!(rows[2]["sampler"], "fhs");
    assert_eq!(rows[2]["calls_per_sample"].as_f64(), Some(16.0));
    assert_eq!(rows[4]["draw"], "f32-gumbel");
    assert!(out.join("results.json").is_file());
    let png = std::fs::read(out.join("gen_ppl.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let o = ok(&[
        "diffusion",
        "eval",
        "--model",
        s(&dm),
        "--ar-model",
        s(&ar_ckpt),
        "-n",
        "1",
        "--length",
        "8",
        "--steps",
        "4",
        "--samplers",
        "fhs",
    ]);
    assert!(stdout(&o).contains("| fhs |"), "{}", stdout(&o));

    // One-line errors.
    fails(
        &["diffusion", "sample", "--model", s(&t.join("none"))],
        &["none"],
    );
    fails(
        &[
            "diffusion",
            "sample",
            "--model",
            s(&dm),
            "--sampler",
            "edlm",
        ],
        &["--ar-model"],
    );
    fails(
        &[
            "diffusion",
            "sample",
            "--model",
            s(&dm),
            "--infill",
            "ab{x}",
        ],
        &["{x}"],
    );
    fails(
        &["diffusion", "sample", "--model", s(&dm), "--steps", "0"],
        &["steps"],
    );
    fails(
        &[
            "diffusion",
            "eval",
            "--model",
            s(&dm),
            "--ar-model",
            s(&ar_ckpt),
            "--samplers",
            "magic",
        ],
        &["magic"],
    );
}
