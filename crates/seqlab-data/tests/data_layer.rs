//! Round trips and failure modes of the data layer: prepare → open → read → sample.
//!
//! Text tests use small tokenizer doubles (the real HF tokenizers are exercised end to end in the
//! CLI tests): one with a vocabulary above 65,536 to force `u32` shards, one that always fails.

use seqlab_data::{
    prepare_audio, prepare_text, AudioOptions, BatchSampler, DataError, DataKind, Dtype,
    SamplerState, SequentialBatches, Split, TextOptions, TokenDataset,
};
use seqlab_tokenizer::{MuLaw, SpecialIds, Tokenizer, TokenizerError};
use std::path::{Path, PathBuf};

/// Byte-level test tokenizer: byte `b` → id `base + b`; EOS is id 0.
#[derive(Debug)]
struct ByteDouble {
    base: u32,
    vocab: usize,
}

impl Tokenizer for ByteDouble {
    fn encode(&self, text: &str) -> seqlab_tokenizer::Result<Vec<u32>> {
        Ok(text.bytes().map(|b| self.base + u32::from(b)).collect())
    }
    fn decode(&self, ids: &[u32]) -> seqlab_tokenizer::Result<String> {
        let bytes: Vec<u8> = ids
            .iter()
            .filter(|&&id| id >= self.base)
            .map(|&id| (id - self.base) as u8)
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn special_ids(&self) -> SpecialIds {
        SpecialIds {
            eos: Some(0),
            ..SpecialIds::default()
        }
    }
    fn kind(&self) -> &'static str {
        "test-bytes"
    }
    fn save(&self, path: &Path) -> seqlab_tokenizer::Result<()> {
        std::fs::write(path, format!("{{\"base\": {}}}", self.base))
            .map_err(|e| TokenizerError::InvalidOptions(e.to_string()))
    }
}

/// A tokenizer whose encode always fails.
#[derive(Debug)]
struct Failing;

impl Tokenizer for Failing {
    fn encode(&self, _: &str) -> seqlab_tokenizer::Result<Vec<u32>> {
        Err(TokenizerError::InvalidOptions("double refuses".into()))
    }
    fn decode(&self, _: &[u32]) -> seqlab_tokenizer::Result<String> {
        Ok(String::new())
    }
    fn vocab_size(&self) -> usize {
        10
    }
    fn special_ids(&self) -> SpecialIds {
        SpecialIds::default()
    }
    fn kind(&self) -> &'static str {
        "failing"
    }
    fn save(&self, _: &Path) -> seqlab_tokenizer::Result<()> {
        Ok(())
    }
}

fn small() -> ByteDouble {
    ByteDouble {
        base: 10,
        vocab: 300,
    }
}

fn big() -> ByteDouble {
    // Ids 65_600..65_856: do not fit in u16.
    ByteDouble {
        base: 65_600,
        vocab: 70_000,
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn opts(val_fraction: f64, shard_tokens: usize) -> TextOptions {
    TextOptions {
        val_fraction,
        shard_tokens,
        eos_between_docs: true,
        progress: false,
    }
}

/// The expected (train, val) streams for `texts` under the documented split rule.
fn expected_streams(tok: &ByteDouble, texts: &[&str], f: f64) -> (Vec<u32>, Vec<u32>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for t in texts {
        let mut ids = tok.encode(t).unwrap();
        ids.push(0);
        let n = ids.len();
        let n_val = (((n as f64) * f - 1e-9).ceil() as usize).min(n - 1);
        train.extend_from_slice(&ids[..n - n_val]);
        val.extend_from_slice(&ids[n - n_val..]);
    }
    (train, val)
}

fn round_trip(tok: &ByteDouble, dtype: Dtype) {
    let tmp = tempfile::tempdir().unwrap();
    let texts = [
        "To be, or not to be, that is the question.",
        "Whether 'tis nobler in the mind to suffer",
    ];
    let files = vec![
        write(tmp.path(), "a.txt", texts[0].as_bytes()),
        write(tmp.path(), "b.txt", texts[1].as_bytes()),
    ];
    let out = tmp.path().join("ds");
    // 7 tokens per shard: many shards, reads cross boundaries.
    let meta = prepare_text(tok, Path::new("tok.json"), &files, &out, &opts(0.1, 7)).unwrap();
    assert_eq!(meta.dtype, dtype);
    assert_eq!(meta.kind, DataKind::Text);
    assert!(meta.splits.train.shards.len() > 3);
    for shard in &meta.splits.train.shards {
        let len = std::fs::metadata(out.join(&shard.file)).unwrap().len();
        assert_eq!(len, shard.tokens * dtype.width() as u64, "{}", shard.file);
    }
    assert!(out.join("tokenizer.json").is_file());

    let ds = TokenDataset::open(&out).unwrap();
    let (train, val) = expected_streams(tok, &texts, 0.1);
    let tv = ds.split(Split::Train).unwrap();
    let vv = ds.split(Split::Val).unwrap();
    assert_eq!(tv.dtype(), dtype);
    assert_eq!(tv.get(0..tv.len()).unwrap(), train);
    assert_eq!(vv.get(0..vv.len()).unwrap(), val);
    // Every sub-range, including ones spanning shard boundaries.
    for s in 0..train.len() {
        for e in s..=train.len().min(s + 16) {
            assert_eq!(tv.get(s..e).unwrap(), &train[s..e]);
        }
    }
    assert!(matches!(
        tv.get(0..train.len() + 1),
        Err(DataError::OutOfRange { .. })
    ));
    assert!(matches!(
        ds.split(Split::Test),
        Err(DataError::NoSuchSplit { .. })
    ));
    // Both documents start where the first one's train part ends.
    let n = texts[0].len() + 1;
    let n0 = n - (n as f64 * 0.1).ceil() as usize;
    assert_eq!(tv.doc_starts(), &[0, n0 as u64]);
    assert_eq!(vv.doc_starts().len(), 2);
}

#[test]
fn text_round_trip_u16() {
    round_trip(&small(), Dtype::U16);
}

#[test]
fn text_round_trip_u32_for_vocab_over_65536() {
    round_trip(&big(), Dtype::U32);
}

#[test]
fn split_counts_follow_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write(tmp.path(), "a.txt", &[b'x'; 99]); // 99 + EOS = 100 tokens → 5 val
    let b = write(tmp.path(), "b.txt", &[b'y'; 20]); // 21 tokens → ceil(1.05) = 2 val
    let c = write(tmp.path(), "c.txt", b"z"); // 2 tokens → 1 val
    let out = tmp.path().join("ds");
    let meta = prepare_text(
        &small(),
        Path::new("t"),
        &[a, b, c],
        &out,
        &opts(0.05, 1000),
    )
    .unwrap();
    let text = meta.text.as_ref().unwrap();
    let per_file: Vec<(u64, u64)> = text
        .sources
        .iter()
        .map(|s| (s.train_tokens, s.val_tokens))
        .collect();
    assert_eq!(per_file, [(95, 5), (19, 2), (1, 1)]);
    assert_eq!(meta.splits.train.tokens, 115);
    assert_eq!(meta.splits.val.tokens, 8);
    assert_eq!(meta.splits.train.docs, 3);
    let ds = TokenDataset::open(&out).unwrap();
    assert_eq!(ds.split(Split::Train).unwrap().doc_starts(), &[0, 95, 114]);
    assert_eq!(ds.split(Split::Val).unwrap().doc_starts(), &[0, 5, 7]);
    // The val split is each file's end: file a's last 5 tokens are 4 x's and EOS.
    let val = ds.split(Split::Val).unwrap().get(0..5).unwrap();
    assert_eq!(val, [10 + 120, 130, 130, 130, 0]);
    // val_fraction 0: everything is train.
    let meta0 = prepare_text(
        &small(),
        Path::new("t"),
        &[tmp.path().join("a.txt")],
        &tmp.path().join("ds0"),
        &opts(0.0, 1000),
    )
    .unwrap();
    assert_eq!(
        (meta0.splits.train.tokens, meta0.splits.val.tokens),
        (100, 0)
    );
    let ds0 = TokenDataset::open(&tmp.path().join("ds0")).unwrap();
    assert!(ds0.split(Split::Val).unwrap().is_empty());
    assert!(ds0.split(Split::Val).unwrap().doc_starts().is_empty());
}

#[test]
fn meta_json_records_what_the_issue_asks_for() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write(tmp.path(), "a.txt", b"hello world");
    let out = tmp.path().join("ds");
    prepare_text(&small(), Path::new("t.json"), &[a], &out, &opts(0.5, 4)).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["kind"], "text");
    assert_eq!(v["dtype"], "u16");
    assert_eq!(v["vocab_size"], 300);
    assert_eq!(v["tokenizer"]["kind"], "test-bytes");
    assert_eq!(v["tokenizer"]["file"], "tokenizer.json");
    assert_eq!(v["splits"]["train"]["tokens"], 6);
    assert_eq!(v["splits"]["val"]["tokens"], 6);
    assert_eq!(v["splits"]["train"]["shards"][1]["file"], "train_001.bin");
    assert_eq!(v["text"]["sources"][0]["bytes"], 11);
    assert_eq!(v["text"]["val_fraction"], 0.5);
    assert!(v["created_by"].as_str().unwrap().starts_with("seqlab"));
}

fn text_dataset(tmp: &Path, n: usize) -> PathBuf {
    let text: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let a = write(tmp, "a.txt", text.as_bytes());
    let out = tmp.join("ds");
    prepare_text(&small(), Path::new("t"), &[a], &out, &opts(0.2, 64)).unwrap();
    out
}

#[test]
fn sampler_is_seeded_and_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = TokenDataset::open(&text_dataset(tmp.path(), 1000)).unwrap();
    let train = ds.split(Split::Train).unwrap();
    let draw = |seed: u64| -> Vec<_> {
        BatchSampler::new(train.clone(), 4, 16, seed)
            .unwrap()
            .take(5)
            .collect()
    };
    let a = draw(1);
    assert_eq!(a, draw(1), "same seed, same batches");
    assert_ne!(a, draw(2), "different seed, different batches");
    assert_ne!(a[0], a[1], "consecutive batches differ");
    for batch in &a {
        assert_eq!((batch.batch_size, batch.seq_len), (4, 16));
        assert_eq!(batch.inputs.len(), 64);
        for r in 0..4 {
            let s = batch.starts[r];
            let window = train.get(s..s + 17).unwrap();
            assert_eq!(batch.input_row(r), &window[..16]);
            assert_eq!(
                batch.target_row(r),
                &window[1..],
                "targets = inputs shifted by one"
            );
        }
    }
    // Resume at step 3: identical continuation.
    let mut s = BatchSampler::new(train.clone(), 4, 16, 1).unwrap();
    s.next_batch();
    s.next_batch();
    s.next_batch();
    let state = s.state();
    assert_eq!(state, SamplerState { seed: 1, step: 3 });
    let json = serde_json::to_string(&state).unwrap();
    let back: SamplerState = serde_json::from_str(&json).unwrap();
    let mut resumed = BatchSampler::from_state(train.clone(), 4, 16, back).unwrap();
    assert_eq!(resumed.next_batch(), a[3]);
    assert_eq!(resumed.next_batch(), a[4]);
    // Windows cover the whole split over many draws (start 0 and the last start both occur).
    let sampler = BatchSampler::new(train.clone(), 64, 16, 9).unwrap();
    let starts: std::collections::HashSet<usize> =
        (0..200).flat_map(|t| sampler.batch_at(t).starts).collect();
    let last = train.len() - 17;
    assert!(starts.contains(&0) && starts.contains(&last));
    assert!(starts.iter().all(|&s| s <= last));
}

#[test]
fn sampler_rejects_short_splits_and_empty_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = TokenDataset::open(&text_dataset(tmp.path(), 40)).unwrap();
    let val = ds.split(Split::Val).unwrap(); // 41 tokens * 0.2 → 9 val tokens
    assert_eq!(val.len(), 9);
    assert!(BatchSampler::new(val.clone(), 2, 8, 0).is_ok());
    let err = BatchSampler::new(val.clone(), 2, 9, 0).unwrap_err();
    assert!(
        matches!(err, DataError::SplitTooShort { len: 9, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("val split"), "{err}");
    assert!(BatchSampler::new(val.clone(), 0, 4, 0).is_err());
    assert!(BatchSampler::new(val.clone(), 2, 0, 0).is_err());
    assert!(SequentialBatches::new(val, 2, 9).is_err());
}

#[test]
fn sequential_batches_cover_the_split_once() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = TokenDataset::open(&text_dataset(tmp.path(), 1000)).unwrap();
    let val = ds.split(Split::Val).unwrap();
    let all = val.get(0..val.len()).unwrap();
    let seq = SequentialBatches::new(val.clone(), 3, 10).unwrap();
    assert_eq!(seq.num_windows(), (val.len() - 1) / 10);
    let batches: Vec<_> = seq.collect();
    let mut targets = Vec::new();
    for b in &batches {
        targets.extend_from_slice(&b.targets);
    }
    let n = targets.len();
    assert_eq!(targets, all[1..n + 1], "every target once, in order");
    let last = batches.last().unwrap();
    assert!(last.batch_size <= 3 && last.inputs.len() == last.batch_size * 10);
}

#[test]
fn damaged_datasets_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = text_dataset(tmp.path(), 300);
    // Truncated shard.
    let shard = out.join("train_001.bin");
    let len = std::fs::metadata(&shard).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap();
    f.set_len(len - 2).unwrap();
    drop(f);
    let err = TokenDataset::open(&out).unwrap_err();
    assert!(matches!(err, DataError::ShardSize { .. }), "{err}");
    assert!(err.to_string().contains("train_001.bin"), "{err}");
    // Missing shard.
    std::fs::remove_file(&shard).unwrap();
    let err = TokenDataset::open(&out).unwrap_err();
    assert!(err.to_string().contains("train_001.bin"), "{err}");

    // Missing, corrupt, future-version meta.json.
    let out = text_dataset(&tmp.path().join("x").tap_mkdir(), 100);
    let meta = std::fs::read_to_string(out.join("meta.json")).unwrap();
    std::fs::write(out.join("meta.json"), &meta[..meta.len() / 2]).unwrap();
    let err = TokenDataset::open(&out).unwrap_err();
    assert!(matches!(err, DataError::BadMeta { .. }), "{err}");
    std::fs::write(
        out.join("meta.json"),
        meta.replace("\"format_version\": 1", "\"format_version\": 99"),
    )
    .unwrap();
    let err = TokenDataset::open(&out).unwrap_err();
    assert!(
        matches!(err, DataError::VersionMismatch { found: 99, .. }),
        "{err}"
    );
    std::fs::remove_file(out.join("meta.json")).unwrap();
    let err = TokenDataset::open(&out).unwrap_err();
    assert!(matches!(err, DataError::MissingMeta { .. }), "{err}");
    assert!(err.to_string().contains("meta.json"), "{err}");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn bad_text_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write(tmp.path(), "good.txt", b"some text");
    let out = tmp.path().join("ds");
    let run = |files: &[PathBuf], out: &Path| {
        prepare_text(&small(), Path::new("t"), files, out, &opts(0.05, 100)).unwrap_err()
    };

    let missing = tmp.path().join("missing.txt");
    let err = run(&[good.clone(), missing], &out);
    assert!(matches!(err, DataError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("missing.txt"));

    let empty = write(tmp.path(), "empty.txt", b"");
    let err = run(std::slice::from_ref(&empty), &out);
    assert!(matches!(err, DataError::EmptyCorpus { .. }), "{err}");
    assert!(err.to_string().contains("empty.txt"), "{err}");

    let bad = write(tmp.path(), "latin1.txt", b"caf\xe9 au lait");
    let err = run(&[good.clone(), bad], &out);
    assert!(matches!(err, DataError::NotUtf8 { offset: 3, .. }), "{err}");
    assert!(err.to_string().contains("latin1.txt") && err.to_string().contains("offset 3"));

    let one = write(tmp.path(), "one.txt", b"");
    let tiny = write(tmp.path(), "tiny.txt", b"");
    let err = prepare_text(
        &ByteDouble {
            base: 10,
            vocab: 300,
        },
        Path::new("t"),
        &[one, tiny],
        &out,
        &opts(0.05, 100),
    )
    .unwrap_err();
    assert!(matches!(err, DataError::EmptyCorpus { .. }), "{err}");

    // One token (with EOS off) cannot give both splits a token.
    let single = write(tmp.path(), "single.txt", b"x");
    let mut o = opts(0.05, 100);
    o.eos_between_docs = false;
    let err = prepare_text(&small(), Path::new("t"), &[single], &out, &o).unwrap_err();
    assert!(matches!(err, DataError::CorpusTooSmall { .. }), "{err}");

    // Output under a regular file cannot be created (also as root).
    let err = run(std::slice::from_ref(&good), &good.join("sub"));
    assert!(matches!(err, DataError::Io { .. }), "{err}");
    assert!(err.to_string().contains("good.txt/sub"), "{err}");

    let err = prepare_text(
        &Failing,
        Path::new("t"),
        std::slice::from_ref(&good),
        &out,
        &opts(0.05, 100),
    )
    .unwrap_err();
    assert!(matches!(err, DataError::Tokenizer { .. }), "{err}");
    assert!(err.to_string().contains("good.txt"), "{err}");

    let err = prepare_text(&small(), Path::new("t"), &[good], &out, &opts(1.0, 100)).unwrap_err();
    assert!(matches!(err, DataError::InvalidOption(_)), "{err}");
    // Nothing valid was left behind by the failures.
    assert!(!out.join("meta.json").exists());
}

#[test]
fn failed_reprepare_leaves_no_valid_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let out = text_dataset(tmp.path(), 300);
    assert!(TokenDataset::open(&out).is_ok());
    let good = write(tmp.path(), "g.txt", b"fine");
    let bad = write(tmp.path(), "bad.txt", b"\xff\xfe");
    let err = prepare_text(
        &small(),
        Path::new("t"),
        &[good.clone(), bad],
        &out,
        &opts(0.05, 2),
    )
    .unwrap_err();
    assert!(matches!(err, DataError::NotUtf8 { offset: 0, .. }));
    assert!(matches!(
        TokenDataset::open(&out),
        Err(DataError::MissingMeta { .. })
    ));
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Preparing again works.
    prepare_text(&small(), Path::new("t"), &[good], &out, &opts(0.05, 2)).unwrap();
    assert_eq!(
        TokenDataset::open(&out)
            .unwrap()
            .split(Split::Train)
            .unwrap()
            .len(),
        4
    );
}

// ---------------------------------------------------------------- audio

fn write_wav_i16(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn write_wav_f32(path: &Path, samples: &[f32]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// A deterministic test tone.
fn tone(n: usize, freq: f32, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 16_000.0).sin())
        .collect()
}

fn to_i16(x: &[f32]) -> Vec<i16> {
    x.iter().map(|&v| (v * 32767.0).round() as i16).collect()
}

#[test]
fn audio_round_trip_with_split_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let wavs = tmp.path().join("wavs");
    let clip = 400;
    let a = to_i16(&tone(clip, 440.0, 0.8)); // exactly one clip
    let b = to_i16(&tone(2 * clip + 300, 220.0, 0.3)); // two clips + a 300-sample tail → 3 clips
    let c = tone(150, 1000.0, 0.5); // short: one padded clip
    let d = to_i16(&tone(clip, 300.0, 0.1));
    write_wav_i16(&wavs.join("train/a.wav"), 16_000, 1, &a);
    write_wav_i16(&wavs.join("train/sub/b.wav"), 16_000, 1, &b);
    write_wav_f32(&wavs.join("val/c.wav"), &c);
    write_wav_i16(&wavs.join("test/d.WAV"), 16_000, 1, &d);
    std::fs::write(wavs.join("train/notes.txt"), "ignored").unwrap();
    let out = tmp.path().join("ds");
    let options = AudioOptions {
        clip_samples: clip,
        shard_clips: 2,
        ..AudioOptions::default()
    };
    let meta = prepare_audio(&wavs, &out, &options).unwrap();
    assert_eq!(meta.kind, DataKind::Audio);
    assert_eq!(meta.dtype, Dtype::U8);
    assert_eq!(meta.vocab_size, 256);
    let audio = meta.audio.as_ref().unwrap();
    assert_eq!(audio.sample_rate, 16_000);
    assert_eq!(audio.silence_code, 128);
    assert_eq!(meta.splits.train.docs, 4);
    assert_eq!(meta.splits.val.docs, 1);
    assert_eq!(meta.splits.test.as_ref().unwrap().docs, 1);
    let sources: Vec<(&str, Split, u64)> = audio
        .sources
        .iter()
        .map(|s| (s.path.as_str(), s.split, s.clips))
        .collect();
    assert_eq!(
        sources,
        [
            ("train/a.wav", Split::Train, 1),
            ("train/sub/b.wav", Split::Train, 3),
            ("val/c.wav", Split::Val, 1),
            ("test/d.WAV", Split::Test, 1),
        ]
    );

    let mu = MuLaw;
    let codes_i16 =
        |x: &[i16]| -> Vec<u32> { x.iter().map(|&s| u32::from(mu.encode_i16(s))).collect() };
    let ds = TokenDataset::open(&out).unwrap();
    let train = ds.split(Split::Train).unwrap();
    assert_eq!(train.num_clips(), Some(4));
    assert_eq!(train.clip(0).unwrap(), codes_i16(&a));
    let b_codes = codes_i16(&b);
    assert_eq!(train.clip(1).unwrap(), b_codes[..clip]);
    assert_eq!(train.clip(2).unwrap(), b_codes[clip..2 * clip]);
    let mut tail = b_codes[2 * clip..].to_vec();
    tail.resize(clip, 128);
    assert_eq!(train.clip(3).unwrap(), tail);
    let val = ds.split(Split::Val).unwrap();
    let mut c_codes: Vec<u32> = c.iter().map(|&x| u32::from(mu.encode(x))).collect();
    c_codes.resize(clip, 128);
    assert_eq!(val.clip(0).unwrap(), c_codes);
    assert_eq!(
        ds.split(Split::Test).unwrap().clip(0).unwrap(),
        codes_i16(&d)
    );

    // Clip batches: whole clips, next-sample targets; seeded.
    let sampler = BatchSampler::clips(train.clone(), 3, 5).unwrap();
    let batch = sampler.batch_at(0);
    assert_eq!((batch.batch_size, batch.seq_len), (3, clip - 1));
    for r in 0..3 {
        assert_eq!(batch.starts[r] % clip, 0);
        let whole = train.clip(batch.starts[r] / clip).unwrap();
        assert_eq!(batch.input_row(r), &whole[..clip - 1]);
        assert_eq!(batch.target_row(r), &whole[1..]);
    }
    assert_eq!(
        batch,
        BatchSampler::clips(train.clone(), 3, 5)
            .unwrap()
            .batch_at(0)
    );
    let eval: Vec<_> = SequentialBatches::clips(train.clone(), 3)
        .unwrap()
        .collect();
    assert_eq!(eval.len(), 2);
    assert_eq!(eval[1].batch_size, 1);

    // Clip prefixes: rows start at a clip's first sample and hold its first seq_len + 1 samples.
    let prefix = clip / 2;
    let sampler = BatchSampler::clip_prefixes(train.clone(), 4, prefix, 7).unwrap();
    for step in 0..3 {
        let batch = sampler.batch_at(step);
        assert_eq!((batch.batch_size, batch.seq_len), (4, prefix));
        for r in 0..4 {
            assert_eq!(batch.starts[r] % clip, 0);
            let whole = train.clip(batch.starts[r] / clip).unwrap();
            assert_eq!(batch.input_row(r), &whole[..prefix]);
            assert_eq!(batch.target_row(r), &whole[1..=prefix]);
        }
    }
    let eval: Vec<_> = SequentialBatches::clip_prefixes(train.clone(), 3, prefix)
        .unwrap()
        .collect();
    let starts: Vec<usize> = eval.iter().flat_map(|b| b.starts.clone()).collect();
    assert_eq!(starts, vec![0, clip, 2 * clip, 3 * clip]);
    assert_eq!(eval[0].target_row(1), &train.clip(1).unwrap()[1..=prefix]);
    // A prefix must leave room for the shifted target.
    let err = BatchSampler::clip_prefixes(train.clone(), 2, clip, 0).unwrap_err();
    assert!(err.to_string().contains("does not fit a clip"), "{err}");
    assert!(SequentialBatches::clip_prefixes(train, 2, clip).is_err());
}

#[test]
fn audio_split_by_name_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let wavs = tmp.path().join("wavs");
    for i in 0..20 {
        write_wav_i16(
            &wavs.join(format!("clip_{i:02}.wav")),
            16_000,
            1,
            &to_i16(&tone(100, 100.0 + i as f32, 0.5)),
        );
    }
    let options = AudioOptions {
        clip_samples: 100,
        ..AudioOptions::default()
    };
    let m1 = prepare_audio(&wavs, &tmp.path().join("o1"), &options).unwrap();
    let m2 = prepare_audio(&wavs, &tmp.path().join("o2"), &options).unwrap();
    assert_eq!(m1.audio, m2.audio);
    let count = |s: Split| m1.split(s).unwrap().docs;
    assert_eq!(
        (count(Split::Train), count(Split::Val), count(Split::Test)),
        (16, 2, 2)
    );
    let ds1 = TokenDataset::open(&tmp.path().join("o1")).unwrap();
    let ds2 = TokenDataset::open(&tmp.path().join("o2")).unwrap();
    for s in [Split::Train, Split::Val, Split::Test] {
        let (a, b) = (ds1.split(s).unwrap(), ds2.split(s).unwrap());
        assert_eq!(a.get(0..a.len()).unwrap(), b.get(0..b.len()).unwrap());
    }
}

#[test]
fn wrong_wav_formats_are_rejected_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    let options = AudioOptions::default();

    let cd = tmp.path().join("cd");
    write_wav_i16(&cd.join("ok.wav"), 16_000, 1, &[0; 100]);
    write_wav_i16(&cd.join("song.wav"), 44_100, 1, &[0; 100]);
    let err = prepare_audio(&cd, &out, &options).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::WavFormat { .. }), "{msg}");
    assert!(
        msg.contains("song.wav") && msg.contains("44100 Hz"),
        "{msg}"
    );

    let stereo = tmp.path().join("stereo");
    write_wav_i16(&stereo.join("st.wav"), 16_000, 2, &[0; 100]);
    let msg = prepare_audio(&stereo, &out, &options)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("st.wav") && msg.contains("2 channels"),
        "{msg}"
    );

    let corrupt = tmp.path().join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("junk.wav"), b"RIFF\x10\0\0\0not a wave file").unwrap();
    let err = prepare_audio(&corrupt, &out, &options).unwrap_err();
    assert!(matches!(err, DataError::Wav { .. }), "{err}");
    assert!(err.to_string().contains("junk.wav"));

    let none = tmp.path().join("none");
    std::fs::create_dir_all(&none).unwrap();
    let err = prepare_audio(&none, &out, &options).unwrap_err();
    assert!(matches!(err, DataError::NoInputFiles { .. }), "{err}");

    let err = prepare_audio(&tmp.path().join("nope"), &out, &options).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err}");
    assert!(!out.join("meta.json").exists());
}
