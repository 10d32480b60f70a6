//! End-to-end tests of `seqlab prepare text|audio`: the bundled sample with the bundled GPT-2 and
//! GPT-NeoX tokenizers, WAV folders, and every bad input the issue lists (each must exit 1 with one
//! `error:` line on stderr that names the problem, and never panic).

use crate::common;

use common::{assert_one_line_error, stderr, stdout};
use seqlab::data::{BatchSampler, Dtype, Split, TokenDataset};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample() -> PathBuf {
    root().join("datasets/sample/hamlet.txt")
}

fn gpt2() -> PathBuf {
    root().join("datasets/tokenizers/gpt2/encoder.json")
}

fn neox() -> PathBuf {
    root().join("datasets/tokenizers/gpt-neox/tokenizer.json")
}

/// The shared runner, typed so one argument list can mix `&str` and paths.
fn seqlab(args: &[&dyn AsRef<OsStr>]) -> Output {
    common::seqlab(args)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn prepare_text_bundled_sample_with_gpt2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("hamlet");
    let o = seqlab(&[
        &"prepare",
        &"text",
        &"--tokenizer",
        &gpt2(),
        &sample(),
        &"-o",
        &out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for word in [
        "train",
        "val",
        "dtype u16",
        "tokens/s",
        "bytes of text per token",
    ] {
        assert!(
            text.contains(word),
            "{word:?} missing from summary:\n{text}"
        );
    }

    let meta = read_json(&out.join("meta.json"));
    assert_eq!(meta["dtype"], "u16");
    assert_eq!(meta["vocab_size"], 50257);
    assert_eq!(meta["tokenizer"]["special_ids"]["eos"], 50256);
    let train_tokens = meta["splits"]["train"]["tokens"].as_u64().unwrap();
    let val_tokens = meta["splits"]["val"]["tokens"].as_u64().unwrap();
    // Hamlet is ~174 kB: tens of thousands of GPT-2 tokens, 5 % of them (rounded up) in val.
    let total = train_tokens + val_tokens;
    assert!((40_000..70_000).contains(&total), "{total}");
    assert_eq!(val_tokens, (total as f64 * 0.05 - 1e-9).ceil() as u64);
    let shard = out.join("train_000.bin");
    assert_eq!(std::fs::metadata(&shard).unwrap().len(), 2 * train_tokens);

    // The shards decode back to the play with the tokenizer copy saved beside them.
    let ds = TokenDataset::open(&out).unwrap();
    assert_eq!(ds.meta().dtype, Dtype::U16);
    let tok = seqlab::tokenizer::load(&ds.tokenizer_path().unwrap()).unwrap();
    let train = ds.split(Split::Train).unwrap();
    let head = tok.decode(&train.get(0..30).unwrap()).unwrap();
    assert!(head.starts_with("HAMLET, PRINCE OF DENMARK"), "{head:?}");
    let val = ds.split(Split::Val).unwrap();
    let mut val_ids = val.get(0..val.len()).unwrap();
    assert_eq!(
        val_ids.pop(),
        Some(50256),
        "the document ends with <|endoftext|>"
    );
    let sample_text = std::fs::read_to_string(sample()).unwrap();
    let val_text = tok.decode(&val_ids).unwrap();
    assert!(
        sample_text.ends_with(&val_text),
        "val is the end of the play"
    );

    // Seeded batches come out of it.
    let a = BatchSampler::new(train.clone(), 2, 64, 5)
        .unwrap()
        .next_batch();
    let b = BatchSampler::new(train, 2, 64, 5).unwrap().next_batch();
    assert_eq!(a, b);

    // Re-preparing with the saved tokenizer copy gives the same shards.
    let again = tmp.path().join("again");
    let o = seqlab(&[
        &"prepare",
        &"text",
        &"-t",
        &out.join("tokenizer.json"),
        &sample(),
        &"-o",
        &again,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&shard).unwrap(),
        std::fs::read(again.join("train_000.bin")).unwrap()
    );
}

#[test]
fn prepare_text_with_neox_directories_and_the_embedded_default() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory of *.txt files: taken in sorted order, other files ignored.
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir_all(corpus.join("sub")).unwrap();
    std::fs::write(corpus.join("b.txt"), "Second document.\n").unwrap();
    std::fs::write(corpus.join("sub/c.txt"), "Third, in a subfolder.\n").unwrap();
    std::fs::write(corpus.join("a.txt"), "First document.\n").unwrap();
    std::fs::write(corpus.join("notes.md"), "not text input").unwrap();
    let out = tmp.path().join("neox");
    let o = seqlab(&[
        &"prepare",
        &"text",
        &"-t",
        &neox(),
        &corpus,
        &"-o",
        &out,
        &"--shard-tokens",
        &"5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meta = read_json(&out.join("meta.json"));
    assert_eq!(meta["vocab_size"], 50280);
    assert_eq!(meta["dtype"], "u16");
    let sources: Vec<String> = meta["text"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(sources, ["a.txt", "b.txt", "c.txt"]);
    assert!(meta["splits"]["train"]["shards"].as_array().unwrap().len() > 1);
    assert_eq!(meta["splits"]["train"]["docs"], 3);

    // No FILES: the sample compiled into the binary, identical to passing the file.
    let embedded = tmp.path().join("embedded");
    let o = seqlab(&[&"prepare", &"text", &"-t", &gpt2(), &"-o", &embedded]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("bundled sample"));
    let from_file = tmp.path().join("from_file");
    let o = seqlab(&[
        &"prepare",
        &"text",
        &"-t",
        &gpt2(),
        &sample(),
        &"-o",
        &from_file,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["train_000.bin", "val_000.bin", "train_docs.u64"] {
        assert_eq!(
            std::fs::read(embedded.join(f)).unwrap(),
            std::fs::read(from_file.join(f)).unwrap(),
            "{f}"
        );
    }
}

/// A 16-bit PCM WAV file (written by hand: the root package has no WAV dependency).
fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

fn tone(n: usize, freq: f64) -> Vec<i16> {
    (0..n)
        .map(|i| (12_000.0 * (std::f64::consts::TAU * freq * i as f64 / 16_000.0).sin()) as i16)
        .collect()
}

#[test]
fn prepare_audio_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let wavs = tmp.path().join("digits");
    for (split, n) in [("train", 4), ("val", 1), ("test", 1)] {
        for i in 0..n {
            let p = wavs.join(split).join(format!("d{i}.wav"));
            write_wav(
                &p,
                16_000,
                1,
                &tone(8_000 + 1_000 * i, 300.0 + 50.0 * i as f64),
            );
        }
    }
    let out = tmp.path().join("out");
    let o = seqlab(&[
        &"prepare",
        &"audio",
        &wavs,
        &"-o",
        &out,
        &"--clip-seconds",
        &"0.5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("dtype u8"), "{}", stdout(&o));
    let ds = TokenDataset::open(&out).unwrap();
    let audio = ds.meta().audio.as_ref().unwrap();
    assert_eq!(audio.clip_samples, 8_000);
    let train = ds.split(Split::Train).unwrap();
    // d0..d3 are 0.5, 0.5625, 0.625, 0.6875 s: one clip each (tails under half a clip).
    assert_eq!(train.num_clips(), Some(4));
    let mu = seqlab::tokenizer::MuLaw;
    let want: Vec<u32> = tone(8_000, 300.0)
        .iter()
        .map(|&s| u32::from(mu.encode_i16(s)))
        .collect();
    assert_eq!(train.clip(0).unwrap(), want);
    assert_eq!(ds.split(Split::Test).unwrap().num_clips(), Some(1));
}

#[test]
fn bad_inputs_exit_1_with_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = t.join("out");
    let gpt2 = gpt2();

    let missing = t.join("missing.txt");
    let o = seqlab(&[&"prepare", &"text", &"-t", &gpt2, &missing, &"-o", &out]);
    assert_one_line_error(&o, &["missing.txt", "no such file"]);

    let empty = t.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let o = seqlab(&[&"prepare", &"text", &"-t", &gpt2, &empty, &"-o", &out]);
    assert_one_line_error(&o, &["empty corpus", "empty.txt"]);

    let latin1 = t.join("latin1.txt");
    std::fs::write(&latin1, b"na\xefve caf\xe9").unwrap();
    let o = seqlab(&[&"prepare", &"text", &"-t", &gpt2, &latin1, &"-o", &out]);
    assert_one_line_error(&o, &["latin1.txt", "not valid UTF-8", "byte offset 2"]);

    // An output path below a regular file cannot be created, even by root.
    let blocker = t.join("blocker");
    std::fs::write(&blocker, "a file").unwrap();
    let o = seqlab(&[
        &"prepare",
        &"text",
        &"-t",
        &gpt2,
        &sample(),
        &"-o",
        &blocker.join("ds"),
    ]);
    assert_one_line_error(&o, &["cannot create output directory", "blocker/ds"]);

    let o = seqlab(&[
        &"prepare",
        &"text",
        &"-t",
        &t.join("no-tokenizer.json"),
        &sample(),
        &"-o",
        &out,
    ]);
    assert_one_line_error(&o, &["no-tokenizer.json"]);

    let cd = t.join("cd");
    write_wav(&cd.join("song.wav"), 44_100, 1, &tone(4_410, 440.0));
    let o = seqlab(&[&"prepare", &"audio", &cd, &"-o", &out]);
    assert_one_line_error(&o, &["song.wav", "44100 Hz", "16000 Hz mono"]);

    let stereo = t.join("stereo");
    write_wav(&stereo.join("both.wav"), 16_000, 2, &tone(3_200, 440.0));
    let o = seqlab(&[&"prepare", &"audio", &stereo, &"-o", &out]);
    assert_one_line_error(&o, &["both.wav", "2 channels"]);

    let no_wavs = t.join("no_wavs");
    std::fs::create_dir_all(&no_wavs).unwrap();
    let o = seqlab(&[&"prepare", &"audio", &no_wavs, &"-o", &out]);
    assert_one_line_error(&o, &["no_wavs", "no *.wav files"]);

    let corrupt = t.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("junk.wav"), b"definitely not RIFF").unwrap();
    let o = seqlab(&[&"prepare", &"audio", &corrupt, &"-o", &out]);
    assert_one_line_error(&o, &["junk.wav", "cannot read WAV"]);

    // None of the failures left a dataset behind.
    assert!(!out.join("meta.json").exists());
}
