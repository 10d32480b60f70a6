//! End-to-end `seqlab audio`: synthesise a tiny audio set (sine chirps written as 16 kHz
//! 16-bit WAVs here, no espeak) → `prepare audio` → `audio train` a tiny SaShiMi for a few
//! steps → resume → `audio generate` 2 × 0.05 s (WAV headers and lengths, NLL lines,
//! spectrograms); and the one-line errors for bad inputs.

use crate::common;

use common::{fails, ok, s, stderr, stdout};
use std::path::Path;

/// A RIFF/WAVE file: 16 kHz, 16-bit PCM, mono.
fn write_wav(path: &Path, x: &[f64]) {
    let data_len = (x.len() * 2) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&16_000u32.to_le_bytes());
    b.extend_from_slice(&32_000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for v in x {
        b.extend_from_slice(&((v * 32767.0).round() as i16).to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

/// A linear chirp f0 → f1 Hz over `n` samples at amplitude `a`.
fn chirp(n: usize, f0: f64, f1: f64, a: f64) -> Vec<f64> {
    let sr = 16_000.0;
    let dur = n as f64 / sr;
    (0..n)
        .map(|i| {
            let t = i as f64 / sr;
            let phase = 2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * dur));
            a * phase.sin()
        })
        .collect()
}

#[test]
fn prepare_train_resume_generate_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let wavs = t.join("wavs");
    for split in ["train", "val"] {
        std::fs::create_dir_all(wavs.join(split)).unwrap();
    }
    for i in 0..6 {
        let x = chirp(4000, 200.0 + 50.0 * i as f64, 2000.0, 0.5);
        write_wav(&wavs.join(format!("train/chirp{i}.wav")), &x);
    }
    write_wav(
        &wavs.join("val/chirp.wav"),
        &chirp(4000, 300.0, 1500.0, 0.5),
    );
    let data = t.join("data");
    ok(&[
        "prepare",
        "audio",
        s(&wavs),
        "-o",
        s(&data),
        "--clip-seconds",
        "0.25",
    ]);

    let cfg = t.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"d_model": 8, "n_layer": 1, "d_state": 4, "batch_size": 2, "seq_len": 128,
            "max_steps": 6, "warmup_steps": 1, "eval_every": 3, "eval_batches": 2,
            "checkpoint_every": 3, "lr": 0.005}"#,
    )
    .unwrap();
    let run = t.join("run");
    let out = ok(&[
        "audio",
        "train",
        "--data",
        s(&data),
        "-o",
        s(&run),
        "--config",
        s(&cfg),
        "--stop-after",
        "3",
    ]);
    assert!(stderr(&out).contains("trained 3 steps"), "{}", stderr(&out));
    let out = ok(&[
        "audio",
        "train",
        "--data",
        s(&data),
        "-o",
        s(&run),
        "--config",
        s(&cfg),
        "--resume",
    ]);
    let err = stderr(&out);
    assert!(err.contains("trained 6 steps"), "{err}");
    assert!(err.contains("bits/byte"), "{err}");
    // The val NLL of a barely trained model is near (and below ~9) bits per byte.
    let val: f64 = err
        .split("val NLL ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no val NLL in {err}"));
    assert!(val > 0.5 && val < 9.0, "{val}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 6, "{metrics}");
    assert!(run.join("loss.png").is_file());
    let config = std::fs::read_to_string(run.join("checkpoint/config.json")).unwrap();
    assert!(config.contains("seqlab_sashimi"), "{config}");

    let gen = t.join("gen");
    let out = ok(&[
        "audio",
        "generate",
        "--model",
        s(&run),
        "-n",
        "2",
        "--seconds",
        "0.05",
        "-o",
        s(&gen),
        "--seed",
        "3",
        "--temperature",
        "0.9",
        "--spectrogram",
    ]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    for i in 0..2 {
        let line = text.lines().nth(i).unwrap();
        assert!(line.contains(&format!("sample_{i}.wav")), "{line}");
        let bpb: f64 = line
            .split("NLL ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(bpb > 0.0 && bpb < 16.0, "{line}");
        let b = std::fs::read(gen.join(format!("sample_{i}.wav"))).unwrap();
        assert_eq!(&b[..4], b"RIFF");
        assert_eq!(&b[8..16], b"WAVEfmt ");
        assert_eq!(u16::from_le_bytes([b[20], b[21]]), 1, "PCM");
        assert_eq!(u16::from_le_bytes([b[22], b[23]]), 1, "mono");
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 16_000);
        assert_eq!(u16::from_le_bytes([b[34], b[35]]), 16, "16-bit");
        assert_eq!(&b[36..40], b"data");
        assert_eq!(u32::from_le_bytes([b[40], b[41], b[42], b[43]]), 800 * 2);
        assert_eq!(b.len(), 44 + 1600);
        let png = std::fs::read(gen.join(format!("sample_{i}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    // Per-clip statistics (envelope CV, spectral flatness, silent frames) in stats.json.
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gen.join("stats.json")).unwrap()).unwrap();
    let clips = stats["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 2);
    for (i, c) in clips.iter().enumerate() {
        assert_eq!(c["file"], format!("sample_{i}.wav"));
        let sf = c["spectral_flatness"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&sf), "{c}");
        assert!(c["envelope_cv"].as_f64().unwrap() >= 0.0);
        assert_eq!(c["frames"], 2); // 0.05 s = two 20 ms frames
        assert!(
            ["silence", "noise", "steady", "structured"].contains(&c["verdict"].as_str().unwrap())
        );
    }
    assert!(text.contains("spectral flatness"), "{text}");
    // Same seed → same audio; the two clips differ (seed + i).
    let a0 = std::fs::read(gen.join("sample_0.wav")).unwrap();
    let a1 = std::fs::read(gen.join("sample_1.wav")).unwrap();
    assert_ne!(a0, a1);

    // Bad inputs: one `error:` line, exit 1.
    fails(
        &[
            "audio",
            "generate",
            "--model",
            s(&t.join("missing")),
            "-o",
            s(&gen),
        ],
        &["missing"],
    );
    fails(
        &[
            "audio",
            "generate",
            "--model",
            s(&run),
            "--seconds",
            "0",
            "-o",
            s(&gen),
        ],
        &["--seconds"],
    );
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
    let text_data = t.join("text");
    ok(&[
        "prepare",
        "text",
        "-t",
        s(&tok),
        s(&hamlet),
        "-o",
        s(&text_data),
    ]);
    fails(
        &[
            "audio",
            "train",
            "--data",
            s(&text_data),
            "-o",
            s(&t.join("r2")),
        ],
        &["text dataset", "prepare audio"],
    );
    fails(
        &[
            "audio",
            "train",
            "--data",
            s(&t.join("nodata")),
            "-o",
            s(&t.join("r3")),
        ],
        &["nodata"],
    );
    std::fs::write(&cfg, r#"{"seq_len": 100}"#).unwrap();
    fails(
        &[
            "audio",
            "train",
            "--data",
            s(&data),
            "-o",
            s(&t.join("r4")),
            "--config",
            s(&cfg),
        ],
        &["seq_len"],
    );
}
