//! Misuse that must end in one clear message (issue 26, findings 4–6): sizes in a config or a
//! flag that would allocate until the machine dies, panics, broken pipes, models and tokenizers
//! that do not belong together, datasets that cannot be trained on, and stray temporary files.
//! Every case is cheap: the refusal comes before any large allocation.

use crate::common::{
    assert_no_panic, char_hamlet, fails, ok, repo, s, seqlab, seqlab_command, stderr,
};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A model directory `dir/name` holding `config` as config.json and a 16-byte
/// model.safetensors (far too small for any of these configs).
fn model_dir(dir: &Path, name: &str, config: &serde_json::Value) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.json"), config.to_string()).unwrap();
    std::fs::write(d.join("model.safetensors"), [0u8; 16]).unwrap();
    d
}

/// `generate` with `model`: must fail with one line naming every item of `names`.
fn generate_fails(model: &Path, names: &[&str]) {
    fails(
        &[
            "generate",
            "--model",
            s(model),
            "--prompt-ids",
            "1",
            "--max-new-tokens",
            "1",
        ],
        names,
    );
}

/// Runs `seqlab args`, which must be refused by the argument parser (status 2) with a message
/// naming every item of `names`, before anything is loaded.
fn usage_error(args: &[&str], names: &[&str]) {
    let out = seqlab(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    for name in names {
        assert!(err.contains(name), "{name:?} not in {err:?}");
    }
}

#[test]
fn absurd_sizes_in_model_configs_are_refused_before_allocating() {
    let t = tempfile::tempdir().unwrap();
    let billion = 1_000_000_000u64;
    // Mamba, both layouts.
    let hf = model_dir(
        t.path(),
        "mamba-hf",
        &serde_json::json!({"model_type": "mamba", "hidden_size": 16, "vocab_size": 32,
                             "num_hidden_layers": billion}),
    );
    generate_fails(&hf, &["num_hidden_layers", "1000000000", "not a plausible"]);
    let orig = model_dir(
        t.path(),
        "mamba-orig",
        &serde_json::json!({"d_model": 16, "n_layer": 2, "vocab_size": 32,
                             "ssm_cfg": {"d_state": billion}}),
    );
    generate_fails(&orig, &["ssm_cfg.d_state", "not a plausible state size"]);
    // Llama.
    let llama = model_dir(
        t.path(),
        "llama",
        &serde_json::json!({"model_type": "llama", "hidden_size": 16, "vocab_size": 32,
                             "num_hidden_layers": billion, "num_attention_heads": 2,
                             "intermediate_size": 32}),
    );
    generate_fails(&llama, &["num_hidden_layers", "1000000000"]);
    // S4 and SaShiMi.
    let s4 = model_dir(
        t.path(),
        "s4",
        &serde_json::json!({"model_type": "seqlab_s4", "vocab_size": 32, "d_model": 16,
                             "n_layer": billion, "d_state": 8, "ssm": "s4d", "l_max": 64}),
    );
    generate_fails(&s4, &["n_layer", "1000000000"]);
    let sashimi = model_dir(
        t.path(),
        "sashimi",
        &serde_json::json!({"model_type": "seqlab_sashimi", "vocab_size": 256, "d_model": 16,
                             "n_layer": billion, "d_state": 8, "ssm": "s4d", "pool": [4, 4],
                             "expand": 2, "ff_expand": 2, "l_max": 64}),
    );
    generate_fails(&sashimi, &["n_layer", "1000000000"]);
    // Plausible sizes whose parameters (≥ 4·10¹²) a 16-byte file cannot hold: refused before
    // the S4 LM initialises them.
    let big_s4 = model_dir(
        t.path(),
        "s4-big",
        &serde_json::json!({"model_type": "seqlab_s4", "vocab_size": 256, "d_model": 65536,
                             "n_layer": 1024, "d_state": 8, "ssm": "s4d", "l_max": 64}),
    );
    generate_fails(
        &big_s4,
        &["implies at least", "parameters", "holds only 16 B"],
    );
    // A masked diffusion model (MDLM).
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("models/mdlm-little/config.json")).unwrap(),
    )
    .unwrap();
    cfg["config"]["n_layer"] = serde_json::json!(billion);
    let mdlm = model_dir(t.path(), "mdlm", &cfg);
    // Its real weights: the old loader read them, then looked for a billion layers in them.
    std::fs::copy(
        repo().join("models/mdlm-little/model.safetensors"),
        mdlm.join("model.safetensors"),
    )
    .unwrap();
    fails(
        &["diffusion", "sample", "--model", s(&mdlm), "--length", "4"],
        &["n_layer", "1000000000"],
    );
}

#[test]
fn absurd_training_sizes_are_refused_with_the_memory_they_would_need() {
    let t = tempfile::tempdir().unwrap();
    let (_, data) = char_hamlet(t.path(), "data");
    let train = |name: &str, cfg: serde_json::Value| {
        let path = t.path().join(format!("{name}.json"));
        std::fs::write(&path, cfg.to_string()).unwrap();
        let run = t.path().join(name);
        let args = [
            "train",
            "--data",
            s(&data),
            "-o",
            s(&run),
            "--config",
            s(&path),
            "--quiet",
        ];
        (args.map(str::to_owned), run)
    };
    for (key, value) in [
        ("n_layer", 1_000_000_000u64),
        ("d_model", 1_000_000_000),
        ("d_state", 1_000_000_000),
        ("batch_size", 1_000_000_000),
        ("seq_len", 1_000_000_000_000),
    ] {
        let (args, _) = train(key, serde_json::json!({ key: value }));
        fails(&args, &[key, &value.to_string(), "not a plausible"]);
    }
    // Every size plausible, the whole far beyond any machine: the estimate says so.
    let (args, run) = train(
        "huge",
        serde_json::json!({"d_model": 131072, "n_layer": 4096, "max_steps": 1}),
    );
    fails(&args, &["would need about", "PiB", "of memory"]);
    assert!(!run.join("checkpoint").exists());
}

#[test]
fn numeric_flags_are_bounded_at_parse_time() {
    let mamba = repo().join("models/mamba-little");
    let mdlm = repo().join("models/mdlm-little");
    let sashimi = repo().join("models/sashimi-digits");
    let t = tempfile::tempdir().unwrap();
    let prompts = t.path().join("prompts.txt");
    std::fs::write(&prompts, "ids: 1,2\n").unwrap();
    for n in ["18446744073709551615", "4294967296"] {
        usage_error(
            &[
                "generate",
                "--model",
                s(&mamba),
                "--prompt-ids",
                "1",
                "--max-new-tokens",
                n,
            ],
            &["--max-new-tokens", "0..=1048576"],
        );
        usage_error(
            &[
                "speculate",
                "--big",
                s(&mamba),
                "--little",
                s(&mamba),
                "--prompts",
                s(&prompts),
                "--max-new-tokens",
                n,
            ],
            &["--max-new-tokens", "0..=1048576"],
        );
    }
    usage_error(
        &[
            "audio",
            "generate",
            "--model",
            s(&sashimi),
            "--seconds",
            "1e15",
            "-o",
            s(&t.path().join("wav")),
        ],
        &["--seconds", "(0, 3600]"],
    );
    usage_error(
        &[
            "diffusion",
            "sample",
            "--model",
            s(&mdlm),
            "-n",
            "1000000000",
        ],
        &["--num-samples", "0..=100000"],
    );
    usage_error(
        &["diffusion", "sample", "--model", s(&mdlm), "--steps", "1e9"],
        &["--steps"],
    );
    // Infill gaps: too many tokens for a sample, and more than a number holds.
    for gap in [
        "1000000000",
        "18446744073709551615",
        "99999999999999999999999",
    ] {
        fails(
            &[
                "diffusion",
                "sample",
                "--model",
                s(&mdlm),
                "--infill",
                &format!("a{{{gap}}}b"),
            ],
            &["infill template", "more than the 1048576"],
        );
    }
}

#[test]
fn broken_pipes_end_quietly() {
    let t = tempfile::tempdir().unwrap();
    let tok = repo().join("models/mamba-little/tokenizer.json");
    let hamlet = repo().join("datasets/sample/hamlet.txt");
    let text = std::fs::read_to_string(&hamlet).unwrap();
    let big = t.path().join("big.txt");
    std::fs::write(&big, text.repeat(2)).unwrap();
    for args in [
        vec![
            "tokenizer",
            "encode",
            "--tokenizer",
            s(&tok),
            "--file",
            s(&big),
        ],
        vec!["tokenizer", "info", s(&tok)],
        vec!["tokenizer", "info", s(&tok), "--json"],
    ] {
        // The reader is gone before the first write, as after `| head -c1`.
        let mut child = seqlab_command()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_no_panic(&out, &args.join(" "));
        let err = stderr(&out);
        assert!(err.is_empty(), "{args:?}: {err}");
        // Success, or ended by SIGPIPE (141 in a shell).
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert!(
                out.status.success() || out.status.signal() == Some(13),
                "{args:?}: {:?}",
                out.status
            );
        }
    }
}

/// A copy of the bundled Mamba model whose tokenizer has two ids swapped ("ow" and "om"):
/// the same size, the same text for most ids, the same encoding of most text — another
/// vocabulary all the same.
fn model_with_other_tokenizer(dir: &Path) -> PathBuf {
    let src = repo().join("models/mamba-little");
    let dst = dir.join("mamba-other-tok");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer.json")).unwrap())
            .unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let (a, b) = (vocab["ow"].clone(), vocab["om"].clone());
    vocab.insert("ow".into(), b);
    vocab.insert("om".into(), a);
    std::fs::write(dst.join("tokenizer.json"), tok.to_string()).unwrap();
    dst
}

#[test]
fn models_and_tokenizers_that_do_not_belong_together_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let other = model_with_other_tokenizer(t.path());
    let mdlm = repo().join("models/mdlm-little");
    let names = ["--ar-model", "mismatched tokenizers", "id 300"];
    fails(
        &[
            "diffusion",
            "sample",
            "--model",
            s(&mdlm),
            "--sampler",
            "edlm",
            "--ar-model",
            s(&other),
            "--length",
            "8",
            "--steps",
            "2",
        ],
        &names,
    );
    fails(
        &[
            "diffusion",
            "eval",
            "--model",
            s(&mdlm),
            "--ar-model",
            s(&other),
            "-n",
            "1",
            "--length",
            "8",
            "--steps",
            "2",
            "--samplers",
            "fhs",
        ],
        &names,
    );
    // speculate (which refused this before) now names the differing id too.
    let prompts = t.path().join("prompts.txt");
    std::fs::write(&prompts, "ids: 1,2\n").unwrap();
    let mamba = repo().join("models/mamba-little");
    fails(
        &[
            "speculate",
            "--big",
            s(&mamba),
            "--little",
            s(&other),
            "--prompts",
            s(&prompts),
        ],
        &["mismatched tokenizers", "id 300"],
    );

    // generate: --tokenizer other than the model's own, and a tokenizer with far fewer ids
    // than a model that has none of its own.
    let other_tok = other.join("tokenizer.json");
    fails(
        &[
            "generate",
            "--model",
            s(&mamba),
            "--tokenizer",
            s(&other_tok),
            "--prompt",
            "To be",
        ],
        &["mismatched tokenizers", "--tokenizer", "id 300"],
    );
    let bare = t.path().join("mamba-no-tok");
    std::fs::create_dir_all(&bare).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(mamba.join(f), bare.join(f)).unwrap();
    }
    let (char_tok, _) = char_hamlet(t.path(), "chars");
    fails(
        &[
            "generate",
            "--model",
            s(&bare),
            "--tokenizer",
            s(&char_tok),
            "--prompt",
            "To be",
        ],
        &[
            "mismatched vocabularies",
            "but the model 2048",
            "another vocabulary",
        ],
    );
    // The model's own tokenizer, given again, is fine.
    ok(&[
        "generate",
        "--model",
        s(&mamba),
        "--tokenizer",
        s(&mamba.join("tokenizer.json")),
        "--prompt",
        "To be",
        "--max-new-tokens",
        "2",
    ]);
}

/// A 16 kHz mono 16-bit WAV of `samples` samples (a quiet saw wave).
fn wav(path: &Path, samples: usize) {
    let data_len = (samples * 2) as u32;
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
    for i in 0..samples {
        b.extend_from_slice(&(((i % 200) as i16 - 100) * 20).to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn datasets_that_cannot_train_or_would_explode_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let tok = repo().join("models/mamba-little/tokenizer.json");
    let hamlet = repo().join("datasets/sample/hamlet.txt");
    let data = t.path().join("text");
    fails(
        &[
            "prepare",
            "text",
            "-t",
            s(&tok),
            s(&hamlet),
            "-o",
            s(&data),
            "--val-fraction",
            "0",
        ],
        &["--val-fraction", "(0, 1)", "val split"],
    );
    assert!(!data.join("meta.json").exists());

    // 2 s of WAV (64 KB): a hop of 2 samples would make 8,001 one-second clips (128 MB).
    let wavs = t.path().join("wavs");
    std::fs::create_dir_all(&wavs).unwrap();
    wav(&wavs.join("a.wav"), 32_000);
    let clips = t.path().join("clips");
    let hop = |h: &str| {
        [
            "prepare",
            "audio",
            s(&wavs),
            "-o",
            s(&clips),
            "--hop-seconds",
            h,
        ]
        .map(str::to_owned)
    };
    fails(
        &hop("0.0001"),
        &[
            "the clips would take about 128.0 MB",
            "0.1 MB of input",
            "--max-growth",
        ],
    );
    assert!(!clips.join("meta.json").exists());
    // Half-second hops (2× overlap) are fine.
    ok(&hop("0.5"));
    assert!(clips.join("meta.json").is_file());
}

#[test]
fn a_failed_clip_write_leaves_no_temporary_file() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    // sample_0.wav is a non-empty directory: the final rename of the clip fails.
    std::fs::create_dir_all(out.join("sample_0.wav")).unwrap();
    std::fs::write(out.join("sample_0.wav").join("keep"), b"x").unwrap();
    let sashimi = repo().join("models/sashimi-digits");
    fails(
        &[
            "audio",
            "generate",
            "--model",
            s(&sashimi),
            "-n",
            "1",
            "--seconds",
            "0.01",
            "-o",
            s(&out),
            "--quiet",
        ],
        &["sample_0.wav"],
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["sample_0.wav"], "a temporary file was left behind");
}
