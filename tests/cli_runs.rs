//! Runs that survive misuse, through the `seqlab` binary (docs/training.md#run-directories,
//! #resume, #checkpoints, #metrics): a second run on a locked directory is refused naming the
//! holder, and `kill -9` releases the lock and leaves a run that resumes to the same numbers; a
//! fresh run does not replace an old one without `--overwrite`; a resume keeps the stored
//! config and accepts only the documented changes; `metrics.jsonl` keeps its bytes and a bad
//! line is an error naming it; a flipped bit or an implausible trainer state is refused; a
//! write that fails half-way through a checkpoint (the disk full) keeps the last one.
//!
//! Tiny Mamba models on the bundled Hamlet sample (char tokenizer), a few steps each.

use crate::common;

use common::{fails, ok, s, seqlab, stderr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A 1-layer Mamba config with `extra` keys (a JSON object body) appended.
fn tiny_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            r#"{{"d_model": 16, "n_layer": 1, "d_state": 4, "batch_size": 2, "seq_len": 32,
                "eval_batches": 1, "seed": 1, {extra}}}"#
        ),
    )
    .unwrap();
    path
}

/// `train --config CFG --data DATA -o RUN --quiet` followed by `more`.
fn train_args(cfg: Option<&Path>, data: &Path, run: &Path, more: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec!["train".into(), "--quiet".into()];
    if let Some(c) = cfg {
        a.extend(["--config".into(), s(c).into()]);
    }
    a.extend(["--data".into(), s(data).into(), "-o".into(), s(run).into()]);
    a.extend(more.iter().map(|x| x.to_string()));
    a
}

/// The bytes of `metrics.jsonl`.
fn metrics_bytes(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("metrics.jsonl")).unwrap()
}

/// Per metrics line: step, train loss, grad norm, val loss (as the file spells them).
fn losses(run: &Path) -> Vec<String> {
    String::from_utf8(metrics_bytes(run))
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

/// The steps of the metrics rows.
fn steps(run: &Path) -> Vec<u64> {
    String::from_utf8(metrics_bytes(run))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// The parsed `trainer_state.json` of the run's complete checkpoint.
fn state(run: &Path) -> serde_json::Value {
    let dir = ["checkpoint", "checkpoint.old"]
        .iter()
        .map(|d| run.join(d))
        .find(|d| d.join("trainer_state.json").is_file())
        .expect("a checkpoint");
    serde_json::from_str(&std::fs::read_to_string(dir.join("trainer_state.json")).unwrap()).unwrap()
}

/// Polls `ready` every 20 ms for up to 60 s.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ready() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_locked_run_refuses_a_second_process_and_a_killed_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    let cfg = tiny_config(
        t,
        "long.json",
        r#""max_steps": 100000, "warmup_steps": 2, "eval_every": 0, "checkpoint_every": 2"#,
    );
    let run = t.join("run");
    let bin = std::env::var_os("SEQLAB_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_seqlab").into());
    let mut first = std::process::Command::new(bin)
        .args(train_args(Some(&cfg), &data, &run, &[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id().to_string();
    wait_for("the first run's lock and checkpoint", || {
        std::fs::read_to_string(run.join("run.lock")).is_ok_and(|l| l.contains(&pid))
            && run.join("checkpoint/trainer_state.json").is_file()
    });

    // A second run on the same directory, fresh or resumed, fails at once naming the holder.
    for more in [&[][..], &["--resume"][..]] {
        let e = fails(
            &train_args(Some(&cfg), &data, &run, more),
            &["in use by pid"],
        );
        assert!(e.contains(&format!("pid {pid} on host")), "{e}");
        assert!(e.contains("run.lock"), "{e}");
    }
    // kill -9: the kernel releases the lock; the checkpoint and whole metrics lines remain.
    first.kill().unwrap();
    first.wait().unwrap();
    let k = state(&run)["step"].as_u64().unwrap();
    let rows = steps(&run);
    assert!(
        k >= 2 && rows.len() as u64 >= k,
        "checkpoint {k}, rows {rows:?}"
    );
    assert_eq!(rows, (1..=rows.len() as u64).collect::<Vec<_>>());
    let kept: Vec<u8> = {
        let text = metrics_bytes(&run);
        let mut end = 0;
        for _ in 0..k {
            end += text[end..].iter().position(|&b| b == b'\n').unwrap() + 1;
        }
        text[..end].to_vec()
    };
    // Resume without --config: the stored config, rows after the checkpoint dropped, the
    // earlier rows' bytes kept, and the same numbers as an uninterrupted run.
    let until = (k + 2).to_string();
    ok(&train_args(
        None,
        &data,
        &run,
        &["--resume", "--stop-after", &until],
    ));
    assert_eq!(steps(&run), (1..=k + 2).collect::<Vec<_>>());
    assert!(metrics_bytes(&run).starts_with(&kept));
    let straight = t.join("straight");
    ok(&train_args(
        Some(&cfg),
        &data,
        &straight,
        &["--stop-after", &until],
    ));
    assert_eq!(losses(&run), losses(&straight), "the resumed run differs");
}

#[test]
fn a_fresh_run_into_an_old_one_needs_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    let cfg = tiny_config(
        t,
        "cfg.json",
        r#""max_steps": 3, "warmup_steps": 1, "eval_every": 0"#,
    );
    let run = t.join("run");
    ok(&train_args(Some(&cfg), &data, &run, &[]));
    let before = metrics_bytes(&run);
    let weights = std::fs::read(run.join("checkpoint/model.safetensors")).unwrap();
    fails(
        &train_args(Some(&cfg), &data, &run, &[]),
        &[
            "already holds a run (a checkpoint at step 3 and metrics.jsonl)",
            "--resume",
            "--overwrite",
        ],
    );
    assert_eq!(metrics_bytes(&run), before);
    assert_eq!(
        std::fs::read(run.join("checkpoint/model.safetensors")).unwrap(),
        weights
    );
    // --overwrite starts over: the same seed gives the same run again.
    let o = ok(&train_args(Some(&cfg), &data, &run, &["--overwrite"]));
    assert!(stderr(&o).contains("trained 3 steps"), "{}", stderr(&o));
    assert_eq!(steps(&run), vec![1, 2, 3]);
    // --resume and --overwrite contradict each other: a usage error.
    let o = seqlab(&train_args(
        Some(&cfg),
        &data,
        &run,
        &["--resume", "--overwrite"],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn a_resume_keeps_the_stored_config_and_accepts_only_the_documented_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    // The model's sizes are the defaults (as when the defaults went unnoticed), the
    // hyper-parameters are not.
    let cfg = t.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"batch_size": 2, "seq_len": 16, "max_steps": 6, "warmup_steps": 2, "lr": 0.01,
            "eval_every": 3, "eval_batches": 1, "checkpoint_every": 3}"#,
    )
    .unwrap();
    let run = t.join("run");
    ok(&train_args(Some(&cfg), &data, &run, &["--stop-after", "3"]));
    let stored = state(&run)["config"].clone();
    let train_config = std::fs::read(run.join("train_config.json")).unwrap();

    // Changes outside the documented set: an error naming the key and both values, and the
    // run untouched.
    for (key, value, shown) in [
        ("lr", "0.02", "the run has 0.01, the config says 0.02"),
        ("batch_size", "4", "the run has 2, the config says 4"),
        ("warmup_steps", "1", "the run has 2, the config says 1"),
    ] {
        let text = std::fs::read_to_string(&cfg).unwrap();
        let changed = t.join(format!("{key}.json"));
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v[key] = serde_json::from_str(value).unwrap();
        std::fs::write(&changed, v.to_string()).unwrap();
        let before = metrics_bytes(&run);
        fails(
            &train_args(Some(&changed), &data, &run, &["--resume"]),
            &[
                &format!("`{key}` cannot change on resume"),
                shown,
                "max_steps",
            ],
        );
        assert_eq!(metrics_bytes(&run), before);
        assert_eq!(
            std::fs::read(run.join("train_config.json")).unwrap(),
            train_config
        );
    }
    fails(
        &train_args(None, &data, &run, &["--resume", "--model", "transformer"]),
        &["holds a mamba model", "transformer"],
    );

    // No --config: the stored config, not the defaults (batch 8, seq_len 128, max_steps 500).
    let o = ok(&train_args(None, &data, &run, &["--resume"]));
    assert!(stderr(&o).contains("trained 6 steps"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("resume:"), "{}", stderr(&o));
    assert_eq!(steps(&run), (1..=6).collect::<Vec<_>>());
    assert_eq!(state(&run)["config"], stored);
    assert!(!run.join("config_changes.jsonl").exists());

    // The documented changes are printed once and recorded.
    let longer = t.join("longer.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["eval_every"] = 4.into();
    std::fs::write(&longer, v.to_string()).unwrap();
    let o = ok(&train_args(
        Some(&longer),
        &data,
        &run,
        &["--resume", "--max-steps", "8"],
    ));
    let err = stderr(&o);
    assert_eq!(
        err.matches("resume: max_steps changed from 6 to 8 at step 6")
            .count(),
        1,
        "{err}"
    );
    assert_eq!(
        err.matches("resume: eval_every changed from 3 to 4 at step 6")
            .count(),
        1,
        "{err}"
    );
    let history: Vec<serde_json::Value> = std::fs::read_to_string(run.join("config_changes.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        history,
        vec![
            serde_json::json!({"step": 6, "key": "eval_every", "from": 3, "to": 4}),
            serde_json::json!({"step": 6, "key": "max_steps", "from": 6, "to": 8}),
        ]
    );
    assert_eq!(steps(&run), (1..=8).collect::<Vec<_>>());
    assert_eq!(state(&run)["config"]["max_steps"], 8);
    // A schedule that ends before the checkpoint is refused.
    fails(
        &train_args(None, &data, &run, &["--resume", "--max-steps", "4"]),
        &["max_steps 4 is below the step the checkpoint reached (8)"],
    );
}

#[test]
fn metrics_keep_their_bytes_and_a_bad_line_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    let cfg = tiny_config(
        t,
        "cfg.json",
        r#""max_steps": 6, "warmup_steps": 1, "eval_every": 0, "checkpoint_every": 2"#,
    );
    let run = t.join("run");
    ok(&train_args(Some(&cfg), &data, &run, &["--stop-after", "4"]));
    // Rows another tool re-wrote (other spacing and float spelling) are kept as they are.
    let text = String::from_utf8(metrics_bytes(&run)).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let v: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    lines[1] = format!(
        "{{\"step\": 2, \"lr\": {:e}, \"train_loss\": {}, \"grad_norm\": {}, \"tokens_per_s\": 1.0}}",
        v["lr"].as_f64().unwrap(),
        v["train_loss"],
        v["grad_norm"]
    );
    let kept = format!("{}\n", lines.join("\n"));
    // One byte that is not UTF-8 appended: an error naming the file and the line, not an
    // empty history.
    let mut bad = kept.clone().into_bytes();
    bad.push(0xff);
    std::fs::write(run.join("metrics.jsonl"), &bad).unwrap();
    fails(
        &train_args(None, &data, &run, &["--resume"]),
        &["metrics.jsonl line 5", "not UTF-8"],
    );
    assert_eq!(metrics_bytes(&run), bad, "a failed resume changed the file");
    let mut garbled = kept.clone();
    garbled.push_str("{\"step\": 5, \"lr\": \n");
    std::fs::write(run.join("metrics.jsonl"), &garbled).unwrap();
    fails(
        &train_args(None, &data, &run, &["--resume"]),
        &["metrics.jsonl line 5", "not a metrics row"],
    );
    // Without the bad line the resume goes on, and the first 4 rows keep their bytes.
    std::fs::write(run.join("metrics.jsonl"), &kept).unwrap();
    ok(&train_args(None, &data, &run, &["--resume"]));
    let after = String::from_utf8(metrics_bytes(&run)).unwrap();
    assert!(after.starts_with(&kept), "{after}");
    assert_eq!(steps(&run), (1..=6).collect::<Vec<_>>());
}

#[test]
fn flipped_bits_and_implausible_trainer_states_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    let cfg = tiny_config(
        t,
        "cfg.json",
        r#""max_steps": 6, "warmup_steps": 1, "eval_every": 0, "checkpoint_every": 2"#,
    );
    let run = t.join("run");
    ok(&train_args(Some(&cfg), &data, &run, &["--stop-after", "4"]));
    let ck = run.join("checkpoint");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["step"], 4);
    let generate = |model: &Path| -> Vec<String> {
        [
            "generate",
            "--model",
            s(model),
            "--prompt",
            "To",
            "--max-new-tokens",
            "2",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    ok(&generate(&ck));

    // One flipped bit in the last tensor's data (weights) or in the moments.
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let path = ck.join(file);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        fails(
            &train_args(None, &data, &run, &["--resume"]),
            &[file, "is corrupt", "CRC-32"],
        );
        if file == "model.safetensors" {
            fails(&generate(&ck), &[file, "is corrupt"]);
        }
        std::fs::write(&path, &good).unwrap();
    }
    // A manifest written for another step.
    let text = std::fs::read_to_string(ck.join("manifest.json")).unwrap();
    std::fs::write(
        ck.join("manifest.json"),
        text.replace("\"step\": 4", "\"step\": 2"),
    )
    .unwrap();
    fails(
        &train_args(None, &data, &run, &["--resume"]),
        &["implausible trainer state", "written for step 2"],
    );

    // A checkpoint without a manifest (written before manifests existed) is read unverified,
    // but its state must still be plausible.
    std::fs::remove_file(ck.join("manifest.json")).unwrap();
    ok(&generate(&ck));
    let good = std::fs::read_to_string(ck.join("trainer_state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    for (key, value, named) in [
        ("step", "0", "step 0"),
        ("step", "999", "step 999 is beyond the config's max_steps 6"),
        (
            "adam_t",
            "9223372036854775808",
            "adam_t = 9223372036854775808",
        ),
    ] {
        let mut w = v.clone();
        w[key] = serde_json::from_str(value).unwrap();
        std::fs::write(ck.join("trainer_state.json"), w.to_string()).unwrap();
        fails(
            &train_args(None, &data, &run, &["--resume"]),
            &["implausible trainer state", named],
        );
    }
    std::fs::write(ck.join("trainer_state.json"), &good).unwrap();
    ok(&train_args(None, &data, &run, &["--resume"]));
    assert!(ck.join("manifest.json").is_file());
    assert_eq!(steps(&run), (1..=6).collect::<Vec<_>>());
}

/// A write that fails half-way (here: a file-size limit, which fails a write as a full disk
/// does, even for root) while a checkpoint is written: one error line, the previous checkpoint
/// intact, and a later resume reaches the numbers of an uninterrupted run.
#[cfg(unix)]
#[test]
fn a_checkpoint_write_that_fails_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    let cfg = tiny_config(
        t,
        "cfg.json",
        r#""max_steps": 4, "warmup_steps": 1, "eval_every": 0, "checkpoint_every": 2"#,
    );
    let run = t.join("run");
    ok(&train_args(Some(&cfg), &data, &run, &["--stop-after", "2"]));
    let weights = std::fs::read(run.join("checkpoint/model.safetensors")).unwrap();
    assert!(weights.len() > 4096, "the model file must exceed the limit");
    // bash's `ulimit -f` counts KiB; SIGXFSZ ignored so the write fails with EFBIG instead.
    let bin = std::env::var_os("SEQLAB_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_seqlab").into());
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 4; exec \"$0\" \"$@\"")
        .arg(&bin)
        .args(train_args(None, &data, &run, &["--resume"]))
        .output()
        .unwrap();
    let e = common::assert_one_line_error(&o, &["model.safetensors"]);
    assert!(e.contains("too large") || e.contains("space"), "{e}");
    assert_eq!(state(&run)["step"], 2);
    assert_eq!(
        std::fs::read(run.join("checkpoint/model.safetensors")).unwrap(),
        weights
    );
    ok(&train_args(None, &data, &run, &["--resume"]));
    let straight = t.join("straight");
    ok(&train_args(Some(&cfg), &data, &straight, &[]));
    // Step, train loss and gradient norm of every row (the stopped run also validated at its
    // stop, step 2).
    let trained = |run: &Path| -> Vec<String> {
        losses(run)
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(trained(&run), trained(&straight));
    assert!(!run.join("checkpoint.tmp").exists());
}

#[test]
fn train_help_states_the_run_directory_and_resume_rules() {
    let out = ok(&["train", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    for needle in [
        "run.lock names the holder",
        "refused unless --overwrite",
        "may change only max_steps",
        "checkpoint_every, eval_every and log_every",
        "config_changes.jsonl",
        "any other difference is an error naming the key and both values",
        "CRC-32",
    ] {
        assert!(
            help.contains(needle),
            "train --help lacks {needle:?}:\n{help}"
        );
    }
}
