//! The driver: runs one loader over the seeds, their cuts, the kept regression inputs and the
//! random mutations, each under `catch_unwind` with the allocation meter armed.

use crate::json::mutate_json;
use crate::meter;
use crate::mutate::{cut_points, mutate, Field};
use crate::rng::Rng;
use std::cell::RefCell;
use std::fmt::Display;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One seed file: its bytes, and what the mutations know about its structure.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Where the seed came from (a file name).
    pub name: String,
    /// The seed's bytes.
    pub bytes: Vec<u8>,
    /// Integer fields (length, count, offset) to overwrite with interesting values.
    pub fields: Vec<Field>,
    /// Structural boundaries (end of a header, start of a section) to cut the seed at.
    pub boundaries: Vec<usize>,
    /// The seed parsed as a JSON document, when it is one (enables the JSON mutations).
    pub json: Option<serde_json::Value>,
    /// For a binary seed holding a JSON part (a safetensors header): the byte range of that part
    /// and a function that rebuilds the file around a new JSON text.
    pub json_part: Option<JsonPart>,
}

/// A JSON document embedded in a binary seed.
#[derive(Debug, Clone)]
pub struct JsonPart {
    /// The embedded document.
    pub value: serde_json::Value,
    /// Rebuilds the whole file around new JSON bytes (fixing up any length prefix).
    pub rebuild: fn(&[u8], &[u8]) -> Vec<u8>,
}

impl Seed {
    /// A seed from raw bytes; a JSON document is recognised and parsed.
    pub fn bytes(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        let json = serde_json::from_slice(&bytes).ok();
        Self {
            name: name.into(),
            bytes,
            fields: Vec::new(),
            boundaries: Vec::new(),
            json,
            json_part: None,
        }
    }

    /// A seed read from `path` (panics when it cannot be read: seeds are repository files).
    pub fn file(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("seed {}: {e}", path.display()));
        Self::bytes(path.display().to_string(), bytes)
    }

    /// The seed with its integer fields named.
    pub fn with_fields(mut self, fields: Vec<Field>) -> Self {
        self.fields = fields;
        self
    }

    /// The seed with its structural boundaries named.
    pub fn with_boundaries(mut self, boundaries: Vec<usize>) -> Self {
        self.boundaries = boundaries;
        self
    }

    /// The seed with an embedded JSON document.
    pub fn with_json_part(mut self, part: JsonPart) -> Self {
        self.json_part = Some(part);
        self
    }
}

/// One loader to fuzz.
#[derive(Debug, Clone)]
pub struct Target {
    /// Short name: the crash file prefix and the regression directory `tests/fuzz/<name>/`.
    pub name: String,
    /// The seed corpus.
    pub seeds: Vec<Seed>,
    /// Random cases when `$SEQLAB_FUZZ_CASES` is not set.
    pub default_cases: usize,
    /// Every `cut_stride`-th byte is a cut point (besides the seed's boundaries).
    pub cut_stride: usize,
    /// The allocation limit per input, in bytes.
    pub max_alloc: usize,
}

impl Target {
    /// A target with the defaults: 64-byte cut stride, 256 MiB allocation limit.
    pub fn new(name: impl Into<String>, seeds: Vec<Seed>, default_cases: usize) -> Self {
        Self {
            name: name.into(),
            seeds,
            default_cases,
            cut_stride: 64,
            max_alloc: 256 << 20,
        }
    }
}

/// One input handed to the loader.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The bytes of the file to load.
    pub bytes: &'a [u8],
    /// The seed it was derived from.
    pub seed: usize,
}

/// What one fuzzing run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Seed files.
    pub seeds: usize,
    /// Bytes in the seed corpus.
    pub seed_bytes: usize,
    /// Inputs run: seeds, regression inputs, cuts and random mutations.
    pub inputs: usize,
    /// Of which random mutations.
    pub random: usize,
    /// Of which kept regression inputs.
    pub regressions: usize,
    /// Inputs the loader accepted.
    pub accepted: usize,
    /// Inputs the loader refused with an error.
    pub refused: usize,
    /// The largest peak of bytes held while loading one input.
    pub max_peak: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

thread_local! {
    /// The input being run (target name, bytes), for the meter's crash file.
    static CURRENT: RefCell<(String, Vec<u8>)> = const { RefCell::new((String::new(), Vec::new())) };
}

/// Where crash inputs are written: `$SEQLAB_FUZZ_CRASH_DIR`, else `<tmp>/seqlab-fuzz-crashes`.
pub fn crash_dir() -> PathBuf {
    std::env::var_os("SEQLAB_FUZZ_CRASH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("seqlab-fuzz-crashes"))
}

/// Writes `bytes` to the crash directory and returns the file's path.
fn write_crash(target: &str, bytes: &[u8]) -> PathBuf {
    let dir = crash_dir();
    let _ = std::fs::create_dir_all(&dir);
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{hash:016x}.bin"));
    let _ = std::fs::write(&path, bytes);
    path
}

/// The meter's hook before a refused allocation aborts the process.
fn on_refuse(size: usize) {
    CURRENT.with(|c| {
        let c = c.borrow();
        let path = write_crash(&c.0, &c.1);
        eprintln!(
            "fuzz {}: the loader asked for {size} bytes in one allocation (limit exceeded); \
             input written to {}",
            c.0,
            path.display()
        );
    });
}

fn env_usize(name: &str) -> Option<usize> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("${name} must be a whole number, got `{v}`")),
    )
}

/// The regression inputs kept for `target` under `<repo>/tests/fuzz/<target>/`, sorted by name.
fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fuzz")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), b)
        })
        .collect()
}

/// Writes the failing input to a crash file and fails the test, naming the file.
fn failure(target: &str, bytes: &[u8], origin: &str, seed: &str, why: &str) -> ! {
    let path = write_crash(target, bytes);
    panic!(
        "fuzz {target}: {why} (input: {origin} of seed {seed}); input written to {}",
        path.display()
    )
}

/// Runs `load` on every input derived from `target`'s seeds. `load` returns `Ok` or an error
/// (a clean refusal); a panic, an error message that is empty or spans lines, or an allocation
/// above `target.max_alloc` fails the test, naming a file that holds the input.
pub fn fuzz<E: Display>(
    target: &Target,
    mut load: impl FnMut(Input<'_>) -> Result<(), E>,
) -> Report {
    assert!(
        meter::installed(),
        "fuzz {}: install seqlab_fuzz::MeteredAlloc as the test binary's global allocator",
        target.name
    );
    assert!(!target.seeds.is_empty(), "fuzz {}: no seeds", target.name);
    let start = Instant::now();
    let cases = env_usize("SEQLAB_FUZZ_CASES").unwrap_or(target.default_cases);
    let name_hash = target
        .name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let seed = env_usize("SEQLAB_FUZZ_SEED").unwrap_or(0) as u64;
    let mut rng = Rng::new(seed ^ name_hash);
    let mut report = Report {
        seeds: target.seeds.len(),
        seed_bytes: target.seeds.iter().map(|s| s.bytes.len()).sum(),
        ..Report::default()
    };

    let mut run_one = |bytes: &[u8], seed: usize, origin: &str, report: &mut Report| {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            c.0.clone_from(&target.name);
            c.1.clear();
            c.1.extend_from_slice(bytes);
        });
        meter::arm(target.max_alloc, on_refuse);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            load(Input { bytes, seed }).map_err(|e| e.to_string())
        }));
        let peak = meter::disarm();
        report.inputs += 1;
        report.max_peak = report.max_peak.max(peak);
        let fail =
            |why: String| failure(&target.name, bytes, origin, &target.seeds[seed].name, &why);
        match result {
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                fail(format!("the loader panicked: {msg}"))
            }
            Ok(Err(e)) if e.trim().is_empty() || e.contains('\n') => {
                fail(format!("the error is not one line: {e:?}"))
            }
            Ok(Err(_)) => report.refused += 1,
            Ok(Ok(())) => report.accepted += 1,
        }
        if peak > target.max_alloc {
            fail(format!(
                "loading held {peak} bytes at its peak, above the limit of {}",
                target.max_alloc
            ));
        }
    };

    for (origin, bytes) in regressions(&target.name) {
        run_one(&bytes, 0, &origin, &mut report);
        report.regressions += 1;
    }
    for (i, s) in target.seeds.iter().enumerate() {
        run_one(&s.bytes, i, "unchanged", &mut report);
        for cut in cut_points(s.bytes.len(), &s.boundaries, target.cut_stride) {
            run_one(&s.bytes[..cut], i, &format!("cut at {cut}"), &mut report);
        }
    }
    let all: Vec<&[u8]> = target.seeds.iter().map(|s| s.bytes.as_slice()).collect();
    for _ in 0..cases {
        let i = rng.below(target.seeds.len());
        let s = &target.seeds[i];
        let (bytes, what) = if let (Some(v), true) = (&s.json, rng.below(4) != 0) {
            mutate_json(&mut rng, v)
        } else if let (Some(part), true) = (&s.json_part, rng.below(4) != 0) {
            let (text, what) = mutate_json(&mut rng, &part.value);
            ((part.rebuild)(&s.bytes, &text), format!("header {what}"))
        } else {
            mutate(&mut rng, &s.bytes, &s.fields, &all)
        };
        run_one(&bytes, i, &what, &mut report);
        report.random += 1;
    }
    report.seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {}: {} inputs ({} seeds of {} bytes, {} regression inputs, {} random), \
         {} accepted, {} refused, peak {} bytes, {:.1} s",
        target.name,
        report.inputs,
        report.seeds,
        report.seed_bytes,
        report.regressions,
        report.random,
        report.accepted,
        report.refused,
        report.max_peak,
        report.seconds
    );
    report
}
