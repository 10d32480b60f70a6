//! `prepare_audio`: a folder of 16 kHz mono WAV files → fixed-length clips of 8-bit mu-law codes.
//!
//! **Files.** Every `*.wav` (any letter case) below the folder, recursively. If the folder has
//! `train/`, `val/` or `test/` subfolders, those define the splits (each searched recursively) and
//! WAV files elsewhere are ignored; otherwise the split is decided by file name (below).
//!
//! **Format.** Only 16,000 Hz mono is accepted — integer PCM of 8–32 bits (sample `s` of `b` bits
//! read as `s / 2^(b−1)`) or 32-bit float (clipped to `[-1, 1]`). Anything else is an error naming
//! the file and what it holds; nothing is resampled or downmixed. Every header is checked before
//! anything is written.
//!
//! **Codes.** Samples become 8-bit mu-law codes with [`seqlab_tokenizer::MuLaw`] (μ = 255).
//!
//! **Clips.** A file of `n` samples gives clips of `clip_samples` codes starting at
//! `0, hop, 2·hop, …` while the clip fits. What is left from the next start position to the end
//! becomes one more clip, padded with the code of silence, when it holds at least half a clip and
//! some samples no earlier clip covers; a file shorter than one clip gives a single padded clip;
//! an empty file gives none.
//!
//! **Split without subfolders.** Files are ordered by the FNV-1a hash of their path relative to
//! the folder; the first `round(n · val_fraction)` go to val, the next `round(n · test_fraction)`
//! to test, the rest to train (with three or more files, each non-zero fraction gets at least one
//! file). Deterministic: it depends only on the file names.

use crate::error::{DataError, Result};
use crate::meta::{
    created_by, AudioMeta, AudioSource, DataKind, Dtype, Meta, Split, SplitMeta, Splits,
    TokenizerMeta, FORMAT_VERSION,
};
use crate::shards::{clear_previous, ShardWriter};
use crate::text::{has_extension, walk};
use seqlab_tokenizer::{MuLaw, SpecialIds};
use std::path::{Path, PathBuf};

/// The only sample rate accepted, in Hz.
pub const SAMPLE_RATE: u32 = 16_000;

/// Options of [`prepare_audio`].
#[derive(Debug, Clone)]
pub struct AudioOptions {
    /// Samples per clip. Default 16,000 (one second).
    pub clip_samples: usize,
    /// Distance between clip starts within a long file; `None` means `clip_samples`
    /// (non-overlapping clips).
    pub hop_samples: Option<usize>,
    /// Fraction of files for the val split when the folder has no split subfolders. Default 0.1.
    pub val_fraction: f64,
    /// Fraction of files for the test split when the folder has no split subfolders. Default 0.1.
    pub test_fraction: f64,
    /// Maximum clips per shard file. Default 4,096 (64 MiB of one-second clips).
    pub shard_clips: usize,
    /// Draw a progress bar on stderr (only when stderr is a terminal). Default false.
    pub progress: bool,
    /// Most bytes of clips per byte of input, checked before anything is written: the input
    /// is the larger of the WAV files' size and the clips a hop of one clip would give (so
    /// padding short files to a clip is never refused). A hop much shorter than the clip puts
    /// every sample in clip/hop clips: a hop of 2 samples turns 640 KB of WAVs into 1.2 GB.
    /// Default [`DEFAULT_MAX_GROWTH`].
    pub max_growth: f64,
}

/// Default of [`AudioOptions::max_growth`]: clips may take 8 times their input (a hop of an
/// eighth of a clip).
pub const DEFAULT_MAX_GROWTH: f64 = 8.0;

impl Default for AudioOptions {
    fn default() -> Self {
        AudioOptions {
            clip_samples: 16_000,
            hop_samples: None,
            val_fraction: 0.1,
            test_fraction: 0.1,
            shard_clips: 4096,
            progress: false,
            max_growth: DEFAULT_MAX_GROWTH,
        }
    }
}

/// One WAV file found in the folder.
#[derive(Debug, Clone)]
struct WavFile {
    path: PathBuf,
    /// Relative to the folder, `/`-separated.
    rel: String,
    split: Split,
}

/// 64-bit FNV-1a of `bytes`: a fixed, portable hash for the name-based split.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `path` relative to `root`, with `/` separators.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Find the WAV files of `dir` and assign each a split (see the module docs).
fn find_wavs(dir: &Path, options: &AudioOptions) -> Result<(Vec<WavFile>, String)> {
    let is_wav = |p: &Path| has_extension(p, "wav");
    let split_dirs: Vec<(Split, PathBuf)> = Split::ALL
        .iter()
        .map(|&s| (s, dir.join(s.name())))
        .filter(|(_, p)| p.is_dir())
        .collect();
    let mut files = Vec::new();
    if !split_dirs.is_empty() {
        for (split, sub) in &split_dirs {
            let mut found = Vec::new();
            walk(sub, &mut found, &is_wav)?;
            found.sort();
            files.extend(found.into_iter().map(|path| WavFile {
                rel: relative(dir, &path),
                path,
                split: *split,
            }));
        }
        let names: Vec<&str> = split_dirs.iter().map(|(s, _)| s.name()).collect();
        let rule = format!("by subfolder ({}/)", names.join("/, "));
        return Ok((files, rule));
    }
    let mut found = Vec::new();
    walk(dir, &mut found, &is_wav)?;
    let mut hashed: Vec<(u64, String, PathBuf)> = found
        .into_iter()
        .map(|p| {
            let rel = relative(dir, &p);
            (fnv1a(rel.as_bytes()), rel, p)
        })
        .collect();
    hashed.sort();
    let n = hashed.len();
    let count = |f: f64| {
        let c = (n as f64 * f).round() as usize;
        if n >= 3 && f > 0.0 {
            c.max(1)
        } else {
            c
        }
    };
    let n_val = count(options.val_fraction).min(n.saturating_sub(1));
    let n_test = count(options.test_fraction).min(n.saturating_sub(1 + n_val));
    for (i, (_, rel, path)) in hashed.into_iter().enumerate() {
        let split = if i < n_val {
            Split::Val
        } else if i < n_val + n_test {
            Split::Test
        } else {
            Split::Train
        };
        files.push(WavFile { path, rel, split });
    }
    files.sort_by(|a, b| (a.split, &a.rel).cmp(&(b.split, &b.rel)));
    let rule = format!(
        "by file name: files ordered by the FNV-1a hash of their relative path; the first \
         round(n * {}) go to val, the next round(n * {}) to test, the rest to train",
        options.val_fraction, options.test_fraction
    );
    Ok((files, rule))
}

/// A hound error on `path` as [`DataError::Wav`].
fn wav_error(path: &Path, e: hound::Error) -> DataError {
    match e {
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::NotFound => {
            DataError::MissingFile {
                path: path.to_path_buf(),
            }
        }
        other => DataError::Wav {
            path: path.to_path_buf(),
            msg: other.to_string(),
        },
    }
}

/// `"int16"`, `"float32"`, ...
fn format_name(spec: &hound::WavSpec) -> String {
    match spec.sample_format {
        hound::SampleFormat::Int => format!("int{}", spec.bits_per_sample),
        hound::SampleFormat::Float => format!("float{}", spec.bits_per_sample),
    }
}

/// Open `path` and check it is 16 kHz mono in a sample format we read.
fn open_checked(path: &Path) -> Result<hound::WavReader<std::io::BufReader<std::fs::File>>> {
    let reader = hound::WavReader::open(path).map_err(|e| wav_error(path, e))?;
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE || spec.channels != 1 {
        return Err(DataError::WavFormat {
            path: path.to_path_buf(),
            expected: format!("{SAMPLE_RATE} Hz mono"),
            found: format!(
                "{} Hz, {} channel{}",
                spec.sample_rate,
                spec.channels,
                if spec.channels == 1 { "" } else { "s" }
            ),
        });
    }
    let supported = match spec.sample_format {
        hound::SampleFormat::Int => (8..=32).contains(&spec.bits_per_sample),
        hound::SampleFormat::Float => spec.bits_per_sample == 32,
    };
    if !supported {
        return Err(DataError::WavFormat {
            path: path.to_path_buf(),
            expected: "integer PCM (8-32 bit) or 32-bit float samples".into(),
            found: format_name(&spec),
        });
    }
    Ok(reader)
}

/// All samples of a checked WAV as f32 in `[-1, 1]`.
fn read_samples(
    path: &Path,
    mut reader: hound::WavReader<std::io::BufReader<std::fs::File>>,
) -> Result<Vec<f32>> {
    let spec = reader.spec();
    let samples: std::result::Result<Vec<f32>, hound::Error> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f64;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| (f64::from(s) * scale) as f32))
                .collect()
        }
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .map(|s| s.map(|s| s.clamp(-1.0, 1.0)))
            .collect(),
    };
    samples.map_err(|e| wav_error(path, e))
}

/// How many clips [`cut_clips`] cuts from a file of `n` samples, without reading it.
fn clip_count(n: u64, clip: u64, hop: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let full = if n >= clip { (n - clip) / hop + 1 } else { 0 };
    let start = full * hop;
    let last_end = if full > 0 { (full - 1) * hop + clip } else { 0 };
    let tail = n.saturating_sub(start);
    full + u64::from(full == 0 || (n > last_end && tail * 2 >= clip))
}

/// Refuses clips of `clip_bytes` when they exceed `max_growth` times `input_bytes`, with the
/// estimated size in the message.
fn check_growth(
    input_bytes: u64,
    clip_bytes: u64,
    clip: usize,
    hop: usize,
    max_growth: f64,
) -> Result<()> {
    let growth = clip_bytes as f64 / input_bytes.max(1) as f64;
    if growth > max_growth {
        return Err(DataError::InvalidOption(format!(
            "the clips would take about {}, {growth:.0} times their {} of input (a hop of {hop} \
             samples puts each sample in up to {} clips of {clip}); the limit is {max_growth} \
             times: use a longer hop or raise the limit (--max-growth)",
            megabytes(clip_bytes),
            megabytes(input_bytes),
            clip.div_ceil(hop),
        )));
    }
    Ok(())
}

/// `bytes` in megabytes (10⁶) for messages: `1234.5 MB`.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Cut `codes` (one file) into clips per the module docs; returns the clips concatenated.
fn cut_clips(codes: &[u8], clip: usize, hop: usize, silence: u8) -> Vec<u8> {
    let n = codes.len();
    let mut out = Vec::new();
    if n == 0 {
        return out;
    }
    let mut start = 0;
    let mut full = 0;
    while start + clip <= n {
        out.extend_from_slice(&codes[start..start + clip]);
        start += hop;
        full += 1;
    }
    // The tail: samples from the next clip position to the end, if some are in no clip yet.
    let last_end = if full > 0 { (full - 1) * hop + clip } else { 0 };
    let tail = n.saturating_sub(start);
    if full == 0 || (n > last_end && tail * 2 >= clip) {
        let end = n.min(start + clip);
        out.extend_from_slice(&codes[start..end]);
        out.resize(out.len() + (clip - (end - start)), silence);
    }
    out
}

/// Read every WAV below `wav_dir` (see the module docs for file order, format, clips and the
/// split) and write an audio dataset into `out_dir`: `u8` shards `train_000.bin`, `val_000.bin`,
/// `test_000.bin`, ... of whole clips, then `meta.json` (kind `audio`).
///
/// Errors name the file: no WAV files, a WAV that cannot be decoded, a wrong sample rate or
/// channel count, an output directory that cannot be written.
pub fn prepare_audio(wav_dir: &Path, out_dir: &Path, options: &AudioOptions) -> Result<Meta> {
    let clip = options.clip_samples;
    let hop = options.hop_samples.unwrap_or(clip);
    if clip == 0 || hop == 0 || options.shard_clips == 0 {
        return Err(DataError::InvalidOption(
            "clip length, hop and clips per shard must be at least 1".into(),
        ));
    }
    let fractions_ok = [options.val_fraction, options.test_fraction]
        .iter()
        .all(|f| f.is_finite() && (0.0..1.0).contains(f))
        && options.val_fraction + options.test_fraction < 1.0;
    if !fractions_ok {
        return Err(DataError::InvalidOption(format!(
            "val and test fractions must be in [0, 1) with a sum below 1, got {} and {}",
            options.val_fraction, options.test_fraction
        )));
    }
    match std::fs::metadata(wav_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(DataError::InvalidOption(format!(
                "{} is not a directory of WAV files",
                wav_dir.display()
            )))
        }
        Err(e) => return Err(DataError::missing_or_io(wav_dir, e)),
    }
    let (files, split_rule) = find_wavs(wav_dir, options)?;
    if files.is_empty() {
        return Err(DataError::NoInputFiles {
            path: wav_dir.to_path_buf(),
            what: "*.wav",
        });
    }
    // Check every header, and the size of the output, before writing anything.
    let (mut input_bytes, mut clip_bytes, mut plain_bytes) = (0u64, 0u64, 0u64);
    for file in &files {
        let samples = u64::from(open_checked(&file.path)?.duration());
        input_bytes += std::fs::metadata(&file.path).map_or(0, |m| m.len());
        clip_bytes += clip_count(samples, clip as u64, hop as u64) * clip as u64;
        plain_bytes += clip_count(samples, clip as u64, clip as u64) * clip as u64;
    }
    check_growth(
        input_bytes.max(plain_bytes),
        clip_bytes,
        clip,
        hop,
        options.max_growth,
    )?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| DataError::io("create output directory", out_dir, e))?;
    clear_previous(out_dir)?;

    let shard_tokens = (options.shard_clips as u64).saturating_mul(clip as u64);
    let mut writers: Vec<ShardWriter> = Split::ALL
        .iter()
        .map(|&s| ShardWriter::new(out_dir, s, Dtype::U8, shard_tokens))
        .collect();
    let result = write_audio(&files, wav_dir, out_dir, options, &split_rule, &mut writers);
    if result.is_err() {
        for w in &mut writers {
            w.remove_written();
        }
    }
    result
}

/// The body of [`prepare_audio`] after the checks; on error the caller removes what was written.
fn write_audio(
    files: &[WavFile],
    wav_dir: &Path,
    out_dir: &Path,
    options: &AudioOptions,
    split_rule: &str,
    writers: &mut [ShardWriter],
) -> Result<Meta> {
    let clip = options.clip_samples;
    let hop = options.hop_samples.unwrap_or(clip);
    let mu = MuLaw;
    let silence = mu.encode(0.0);
    // Fail on an unwritable directory before decoding.
    seqlab_io::AtomicFile::create(out_dir.join(crate::meta::META_FILE))?;

    let bar = crate::progress::progress_bar(
        options.progress,
        files.len() as u64,
        "{spinner} encoding [{bar:30}] {pos}/{len} WAV files ({per_sec}, eta {eta})",
    );
    let mut sources = Vec::with_capacity(files.len());
    let mut ids = Vec::new();
    for file in files {
        let reader = open_checked(&file.path)?;
        let format = format_name(&reader.spec());
        let samples = read_samples(&file.path, reader)?;
        let codes: Vec<u8> = samples.iter().map(|&x| mu.encode(x)).collect();
        let clips = cut_clips(&codes, clip, hop, silence);
        let writer = &mut writers[file.split.index()];
        let first_clip = writer.len() / clip as u64;
        ids.clear();
        ids.extend(clips.iter().map(|&c| u32::from(c)));
        writer.push(&ids)?;
        sources.push(AudioSource {
            path: file.rel.clone(),
            split: file.split,
            samples: samples.len() as u64,
            clips: (clips.len() / clip) as u64,
            first_clip,
            format,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();

    let mut metas: Vec<SplitMeta> = Vec::with_capacity(3);
    for w in writers.iter_mut() {
        let mut m = w.finish(false)?;
        m.docs = m.tokens / clip as u64;
        metas.push(m);
    }
    if metas[Split::Train.index()].tokens == 0 {
        return Err(DataError::NoInputFiles {
            path: wav_dir.to_path_buf(),
            what: "non-empty training *.wav",
        });
    }
    let test = metas.pop().expect("three splits");
    let val = metas.pop().expect("three splits");
    let train = metas.pop().expect("three splits");
    let meta = Meta {
        format_version: FORMAT_VERSION,
        kind: DataKind::Audio,
        created_by: created_by(),
        dtype: Dtype::U8,
        vocab_size: MuLaw::LEVELS,
        tokenizer: TokenizerMeta {
            file: None,
            kind: "mu-law".into(),
            vocab_size: MuLaw::LEVELS,
            special_ids: SpecialIds::default(),
            source: None,
        },
        splits: Splits {
            train,
            val,
            test: Some(test),
        },
        text: None,
        audio: Some(AudioMeta {
            sample_rate: SAMPLE_RATE,
            clip_samples: clip as u64,
            hop_samples: hop as u64,
            mu: MuLaw::MU as u32,
            silence_code: silence,
            split_rule: split_rule.into(),
            clip_rule: format!(
                "clips of {clip} samples every {hop} samples while they fit; the rest from the \
                 next start (if at least half a clip and not all covered yet), or a file shorter \
                 than one clip, becomes one clip padded with code {silence}"
            ),
            sources,
        }),
    };
    meta.write(out_dir)?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cutting_rule() {
        let codes: Vec<u8> = (1..=10).collect();
        // Exactly one clip.
        assert_eq!(cut_clips(&codes, 10, 10, 0), codes);
        // Short file: padded.
        assert_eq!(cut_clips(&codes[..3], 5, 5, 9), [1, 2, 3, 9, 9]);
        // Long file: two full clips, tail of 2 < 4/2? no: 2 >= 2 -> padded third clip.
        assert_eq!(
            cut_clips(&codes, 4, 4, 0),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0]
        );
        // Tail of 1 < 4/2: dropped.
        assert_eq!(cut_clips(&codes[..9], 4, 4, 0), [1, 2, 3, 4, 5, 6, 7, 8]);
        // Overlapping hop: the tail 5, 6 is already in the second clip.
        assert_eq!(cut_clips(&codes[..6], 4, 2, 0), [1, 2, 3, 4, 3, 4, 5, 6]);
        // ... but 7 is not, and the tail from the next position (5, 6, 7) is >= half a clip.
        assert_eq!(
            cut_clips(&codes[..7], 4, 2, 0),
            [1, 2, 3, 4, 3, 4, 5, 6, 5, 6, 7, 0]
        );
        assert!(cut_clips(&[], 4, 4, 0).is_empty());
    }

    #[test]
    fn clip_count_matches_the_cutting_rule() {
        let codes: Vec<u8> = (0..40).collect();
        for n in 0..40 {
            for clip in 1..12 {
                for hop in 1..=clip + 2 {
                    let cut = cut_clips(&codes[..n], clip, hop, 0).len() / clip;
                    assert_eq!(
                        clip_count(n as u64, clip as u64, hop as u64),
                        cut as u64,
                        "n {n} clip {clip} hop {hop}"
                    );
                }
            }
        }
    }

    #[test]
    fn output_far_beyond_the_input_is_refused_with_its_size() {
        assert!(check_growth(1_000_000, 8_000_000, 16_000, 2_000, 8.0).is_ok());
        let e = check_growth(640_000, 1_280_000_000, 16_000, 2, 8.0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("about 1280.0 MB, 2000 times their 0.6 MB"),
            "{e}"
        );
        assert!(e.contains("8000 clips"), "{e}");
    }

    #[test]
    fn fnv_is_the_reference_hash() {
        // FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
