//! End to end with `--device cuda`, through the `seqlab` binary (build with `--features cuda`):
//! - `info --device cuda` opens the GPU, names it, and compiles and loads every kernel on it; a GPU
//!   that is not there is a one-line error;
//! - greedy `generate` with the bundled Mamba and Transformer: the same ids on the GPU as on
//!   the CPU;
//! - `train` of a Mamba, a Transformer and an S4D LM for a few steps on the GPU and on the CPU:
//!   the same losses, and the GPU's checkpoint holds the same weights and generates on the CPU;
//! - `audio train` of a SaShiMi on the GPU against the CPU;
//! - an S4 checkpoint asked to generate on the GPU: one-line error, it runs on the CPU only.
//!
//! Without a GPU each test prints why it is skipped, or fails when `SEQLAB_REQUIRE_GPU` is set
//! (`.ci/cuda-emulator-test` runs them on the CUDA emulator, `benches/cuda/device_check.sh` on a
//! GPU).
#![cfg(feature = "cuda")]

use crate::common;

use common::{assert_one_line_error, fails, ok, s, seqlab, seqlab_with_env, stderr, stdout};
use seqlab_tensor::candle_core::{safetensors, Device};
use std::path::Path;

/// Whether the binary can open `cuda:0`; otherwise prints why the test is skipped (a failure
/// instead when `SEQLAB_REQUIRE_GPU` is set).
fn gpu(test: &str) -> bool {
    let out = seqlab(&["info", "--device", "cuda"]);
    if out.status.success() {
        return true;
    }
    let why = stderr(&out);
    assert!(
        std::env::var_os("SEQLAB_REQUIRE_GPU").is_none(),
        "{test}: SEQLAB_REQUIRE_GPU is set but `seqlab info --device cuda` failed: {why}"
    );
    eprintln!("skipping {test}: no CUDA device ({})", why.trim());
    false
}

/// The ids of a `generate --json` run, which must report running on `device`.
fn generated_ids(args: &[&str], device: &str) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(&stdout(&ok(args))).expect("JSON output");
    assert_eq!(v["device"], device, "{v}");
    v["generated_ids"]
        .as_array()
        .expect("generated_ids")
        .iter()
        .map(|x| x.as_u64().expect("an id"))
        .collect()
}

/// The device a `--device` argument opens, as the CLI reports it (`cuda` is `cuda:0`).
fn opened(device: &str) -> &str {
    if device == "cuda" {
        "cuda:0"
    } else {
        device
    }
}

/// `train`'s summary line says it trained `steps` steps on the device.
fn assert_trained_on(out: &std::process::Output, steps: u64, device: &str) {
    let err = stderr(out);
    let want = format!("trained {steps} steps on {}", opened(device));
    assert!(err.contains(&want), "{want:?} not in {err:?}");
}

/// `|a − b| / |b|`.
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

/// `(step, train_loss, val_loss)` of each line of a run's `metrics.jsonl` (NaN where absent).
fn losses(run: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            (
                v["step"].as_u64().expect("step"),
                f("train_loss"),
                f("val_loss"),
            )
        })
        .collect()
}

/// The GPU run's losses equal the CPU run's to `tol` relative, step by step, and its
/// checkpoint's tensors equal the CPU checkpoint's to `tol` of each tensor's largest value.
fn assert_same_run(cuda: &Path, cpu: &Path, tol: f64) {
    let (a, b) = (losses(cuda), losses(cpu));
    assert!(!b.is_empty(), "no metrics in {}", cpu.display());
    assert_eq!(a.len(), b.len(), "metrics lines: cuda {a:?}, cpu {b:?}");
    for ((sa, ta, va), (sb, tb, vb)) in a.iter().zip(&b) {
        assert_eq!(sa, sb);
        assert!(
            rel(*ta, *tb) < tol,
            "step {sa}: train_loss cuda {ta}, cpu {tb}"
        );
        assert_eq!(va.is_nan(), vb.is_nan(), "step {sa}: val_loss {va} vs {vb}");
        if !vb.is_nan() {
            assert!(
                rel(*va, *vb) < tol,
                "step {sa}: val_loss cuda {va}, cpu {vb}"
            );
        }
    }
    let weights = |run: &Path| {
        safetensors::load(run.join("checkpoint/model.safetensors"), &Device::Cpu)
            .expect("checkpoint weights")
    };
    let (wa, wb) = (weights(cuda), weights(cpu));
    assert_eq!(wa.len(), wb.len());
    for (name, tb) in &wb {
        let ta = &wa[name];
        let (x, y) = (
            ta.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            tb.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(x.len(), y.len(), "{name}");
        let scale = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        let err = x
            .iter()
            .zip(&y)
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(
            f64::from(err / scale) < tol,
            "{name}: max |cuda − cpu| = {err} against max |cpu| = {scale}"
        );
    }
}

#[test]
fn info_checks_the_gpu_and_its_kernels() {
    if !gpu("info_checks_the_gpu_and_its_kernels") {
        return;
    }
    let out = stdout(&ok(&["info", "--device", "cuda"]));
    assert!(out.contains("CUDA support: compiled in"), "{out}");
    assert!(out.contains("device cuda:0: ok (CUDA GPU 0)"), "{out}");
    // What the GPU is, and every kernel file compiled and loaded on it.
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"))
            .to_string()
    };
    assert!(line("gpu: ").contains(", compute capability "), "{out}");
    assert!(line("gpu: ").ends_with(" GiB"), "{out}");
    assert!(line("cuda: driver ").contains(", NVRTC "), "{out}");
    assert!(
        line("kernels: 7 files compile and load for sm_").ends_with(" s)"),
        "{out}"
    );
    fails(&["info", "--device", "cuda:97"], &["cuda:97"]);
    // A driver older than NVRTC refuses its PTX: one line that names both versions. Only the
    // emulator can be told to be such a driver (kernels/emulator/driver.cpp).
    if line("gpu: ").contains("CPU emulator") {
        let old_driver = [("SEQLAB_EMU_MAX_PTX_ISA", "1.0")];
        assert_one_line_error(
            &seqlab_with_env(&["info", "--device", "cuda"], &old_driver),
            &[
                "kernels/selective_scan_fwd.cu does not load",
                "writes PTX newer than this driver (CUDA 13.0) loads",
            ],
        );
    }
}

#[test]
fn greedy_generation_matches_the_cpu() {
    if !gpu("greedy_generation_matches_the_cpu") {
        return;
    }
    for (model, tokens) in [("mamba-big", "24"), ("transformer-big", "16")] {
        let path = common::repo().join("models").join(model);
        let ids = |device| {
            generated_ids(
                &[
                    "generate",
                    "--model",
                    s(&path),
                    "--prompt",
                    "HAMLET. To be, or not to be",
                    "--max-new-tokens",
                    tokens,
                    "--greedy",
                    "--json",
                    "--device",
                    device,
                ],
                opened(device),
            )
        };
        let (cuda, cpu) = (ids("cuda"), ids("cpu"));
        assert_eq!(cpu.len(), tokens.parse::<usize>().unwrap());
        assert_eq!(
            cuda, cpu,
            "{model}: greedy ids differ between the GPU and the CPU"
        );
    }
}

#[test]
fn training_matches_the_cpu() {
    if !gpu("training_matches_the_cpu") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, data) = common::char_hamlet(t, "data");
    let common_cfg = r#""batch_size": 2, "seq_len": 32, "max_steps": 4, "warmup_steps": 1,
        "eval_every": 2, "eval_batches": 2, "log_every": 1, "seed": 3"#;
    for (name, model) in [
        (
            "mamba",
            r#""model": "mamba", "d_model": 16, "n_layer": 2, "d_state": 4"#,
        ),
        (
            "transformer",
            r#""model": "transformer", "d_model": 16, "n_layer": 2, "n_head": 2"#,
        ),
        (
            "s4d",
            r#""model": "s4", "ssm": "s4d", "d_model": 16, "n_layer": 2, "d_state": 8"#,
        ),
    ] {
        let cfg = t.join(format!("{name}.json"));
        std::fs::write(&cfg, format!("{{{model}, {common_cfg}}}")).unwrap();
        let run = |device: &str| {
            let dir = t.join(format!("{name}-{device}"));
            let out = ok(&[
                "train",
                "--config",
                s(&cfg),
                "--data",
                s(&data),
                "-o",
                s(&dir),
                "--quiet",
                "--device",
                device,
            ]);
            assert_trained_on(&out, 4, device);
            dir
        };
        let (cuda, cpu) = (run("cuda"), run("cpu"));
        assert_same_run(&cuda, &cpu, 1e-4);
        // The GPU's checkpoint is an ordinary checkpoint: it generates on the CPU.
        let ck = cuda.join("checkpoint");
        let generate = |device| {
            [
                "generate",
                "--model",
                s(&ck),
                "--prompt",
                "To be",
                "--max-new-tokens",
                "8",
                "--json",
                "--device",
                device,
            ]
        };
        assert_eq!(generated_ids(&generate("cpu"), "cpu").len(), 8, "{name}");
        if name == "s4d" {
            fails(&generate("cuda"), &["runs on the CPU only", "--device cpu"]);
        }
    }
}

/// A 16 kHz, 16-bit mono RIFF/WAVE file of a sum of two sines.
fn write_tone(path: &Path, n: usize, f0: f64, f1: f64) {
    let data_len = (n * 2) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    for (v, bytes) in [
        (16u32, 4),
        (1, 2),
        (1, 2),
        (16_000, 4),
        (32_000, 4),
        (2, 2),
        (16, 2),
    ] {
        b.extend_from_slice(&v.to_le_bytes()[..bytes]);
    }
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let t = i as f64 / 16_000.0;
        let tau = 2.0 * std::f64::consts::PI * t;
        let x = 0.3 * (tau * f0).sin() + 0.2 * (tau * f1).sin();
        b.extend_from_slice(&((x * 32767.0).round() as i16).to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn audio_training_matches_the_cpu() {
    if !gpu("audio_training_matches_the_cpu") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let wavs = t.join("wavs");
    for split in ["train", "val"] {
        std::fs::create_dir_all(wavs.join(split)).unwrap();
    }
    for i in 0..4 {
        let f = 220.0 + 70.0 * i as f64;
        write_tone(&wavs.join(format!("train/tone{i}.wav")), 3000, f, 2.5 * f);
    }
    write_tone(&wavs.join("val/tone.wav"), 3000, 330.0, 900.0);
    let data = t.join("data");
    ok(&["prepare", "audio", s(&wavs), "-o", s(&data)]);
    let cfg = t.join("sashimi.json");
    std::fs::write(
        &cfg,
        r#"{"ssm": "s4d", "d_model": 8, "n_layer": 2, "d_state": 8, "pool": [4],
            "batch_size": 2, "seq_len": 256, "max_steps": 3, "warmup_steps": 1,
            "eval_every": 3, "eval_batches": 1, "log_every": 1, "seed": 5}"#,
    )
    .unwrap();
    let run = |device: &str| {
        let dir = t.join(format!("sashimi-{device}"));
        let out = ok(&[
            "audio",
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&data),
            "-o",
            s(&dir),
            "--quiet",
            "--device",
            device,
        ]);
        assert_trained_on(&out, 3, device);
        dir
    };
    let (cuda, cpu) = (run("cuda"), run("cpu"));
    assert_same_run(&cuda, &cpu, 1e-4);
}
