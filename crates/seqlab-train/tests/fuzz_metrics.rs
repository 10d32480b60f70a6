//! Fuzzing the `metrics.jsonl` reader (`seqlab_train::metrics::read_metrics`, what `--resume`
//! reads): seeds are the first rows of the bundled models' metrics files; the mutations change
//! single rows' values (wrong types, absurd numbers, removed keys), repeat rows, nest deeply, cut
//! the file at every row boundary and damage bytes (invalid UTF-8 included). Each input reads or
//! is one clean error; never a panic, never an allocation out of proportion to the file.
//! More cases: `SEQLAB_FUZZ_CASES=50000 cargo test -p seqlab-train --test train fuzz_metrics::`.

use seqlab_fuzz::{fuzz, JsonPart, Seed, Target};
use std::path::Path;

#[global_allocator]
static ALLOC: seqlab_fuzz::MeteredAlloc = seqlab_fuzz::MeteredAlloc;

/// The rows of a JSON-lines file as one JSON array (the form the JSON mutations work on) and
/// back: an array becomes one row per line, anything else is written as it is.
fn rows_to_lines(_orig: &[u8], json: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(serde_json::Value::Array(rows)) => rows
            .iter()
            .flat_map(|r| {
                let mut line = serde_json::to_vec(r).expect("a JSON value serialises");
                line.push(b'\n');
                line
            })
            .collect(),
        _ => json.to_vec(),
    }
}

/// The first `n` rows of a metrics file as a seed: row ends are boundaries, the rows a JSON part.
fn metrics_seed(path: &Path, n: usize) -> Seed {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().take(n).collect();
    let mut bytes = Vec::new();
    let mut boundaries = Vec::new();
    for l in &lines {
        bytes.extend_from_slice(l.as_bytes());
        boundaries.push(bytes.len());
        bytes.push(b'\n');
    }
    let rows = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Seed::bytes(path.display().to_string(), bytes)
        .with_boundaries(boundaries)
        .with_json_part(JsonPart {
            value: serde_json::Value::Array(rows),
            rebuild: rows_to_lines,
        })
}

#[test]
fn fuzz_metrics_rows() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let seeds = vec![
        // Rows 1..=30, and rows up to the first with a validation loss (step 100).
        metrics_seed(&models.join("mamba-little/metrics.jsonl"), 30),
        metrics_seed(&models.join("transformer-little/metrics.jsonl"), 101),
        metrics_seed(&models.join("smollm2-drafter/metrics.jsonl"), 20),
    ];
    let mut target = Target::new("metrics", seeds, 400);
    target.cut_stride = 211;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.jsonl");
    let report = fuzz(&target, |input| {
        std::fs::write(&path, input.bytes).unwrap();
        seqlab_train::metrics::read_metrics(&path, u64::MAX)?;
        seqlab_train::metrics::read_metrics(&path, 20).map(|_| ())
    });
    assert!(report.accepted >= 3, "{report:?}");
}
