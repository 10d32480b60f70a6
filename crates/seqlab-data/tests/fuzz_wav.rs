//! Fuzzing the WAV reader of `seqlab_data::prepare_audio`: seeds are small WAVs written here in
//! every sample format it reads (8/16/24/32-bit integer, 32-bit float) and two it refuses
//! (stereo, 44.1 kHz). The mutations know the RIFF layout: chunk sizes and every `fmt ` field
//! (format tag, channels, rate, block align, bits) get huge, zero and off-by-one values, and the
//! file is cut at each chunk and field boundary. Each input prepares or is one clean error;
//! never a panic, never an allocation the file cannot back.
//! More cases: `SEQLAB_FUZZ_CASES=20000 cargo test -p seqlab-data --test data fuzz_wav::`.

use seqlab_data::{prepare_audio, AudioOptions};
use seqlab_fuzz::{fuzz, Field, Seed, Target};
use std::path::Path;

#[global_allocator]
static ALLOC: seqlab_fuzz::MeteredAlloc = seqlab_fuzz::MeteredAlloc;

/// Writes a short tone with `spec` to `path`.
fn write_wav(path: &Path, spec: hound::WavSpec, frames: usize) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..frames * spec.channels as usize {
        let x = (i as f64 * 0.05).sin() * 0.8;
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, _) => w.write_sample(x as f32).unwrap(),
            (_, 8) => w.write_sample((x * 127.0) as i8).unwrap(),
            (_, 16) => w.write_sample((x * 32767.0) as i16).unwrap(),
            (_, bits) => w
                .write_sample((x * ((1i64 << (bits - 1)) - 1) as f64) as i32)
                .unwrap(),
        }
    }
    w.finalize().unwrap();
}

/// A WAV seed: every RIFF chunk size and every `fmt ` field is a field; chunk and field ends
/// are boundaries.
fn wav_seed(path: &Path) -> Seed {
    let seed = Seed::file(path);
    let b = &seed.bytes;
    let mut fields = vec![Field {
        offset: 4,
        width: 4,
    }];
    let mut boundaries = vec![4, 8, 12];
    let mut at = 12;
    while at + 8 <= b.len() {
        let size = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        fields.push(Field {
            offset: at + 4,
            width: 4,
        });
        if &b[at..at + 4] == b"fmt " {
            for (off, width) in [(0, 2), (2, 2), (4, 4), (8, 4), (12, 2), (14, 2), (16, 2)] {
                if off + width <= size {
                    fields.push(Field {
                        offset: at + 8 + off,
                        width,
                    });
                    boundaries.push(at + 8 + off + width);
                }
            }
        }
        at += 8 + size + size % 2;
        boundaries.extend([at - size - size % 2, at]);
    }
    seed.with_fields(fields).with_boundaries(boundaries)
}

#[test]
fn fuzz_wav_reader() {
    let dir = tempfile::tempdir().unwrap();
    let int = hound::SampleFormat::Int;
    let mut seeds = Vec::new();
    for (i, (channels, rate, bits, format)) in [
        (1, 16_000, 16, int),
        (1, 16_000, 8, int),
        (1, 16_000, 24, int),
        (1, 16_000, 32, int),
        (1, 16_000, 32, hound::SampleFormat::Float),
        (2, 16_000, 16, int),
        (1, 44_100, 16, int),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("seed{i}.wav"));
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        };
        write_wav(&path, spec, 400);
        seeds.push(wav_seed(&path));
    }
    let mut target = Target::new("wav", seeds, 500);
    target.cut_stride = 97;
    let wavs = dir.path().join("wavs");
    std::fs::create_dir(&wavs).unwrap();
    let out = dir.path().join("out");
    let options = AudioOptions {
        clip_samples: 100,
        val_fraction: 0.0,
        test_fraction: 0.0,
        ..AudioOptions::default()
    };
    let report = fuzz(&target, |input| {
        std::fs::write(wavs.join("input.wav"), input.bytes).unwrap();
        prepare_audio(&wavs, &out, &options).map(|_| ())
    });
    assert!(report.refused > 0 && report.accepted >= 5, "{report:?}");
}
