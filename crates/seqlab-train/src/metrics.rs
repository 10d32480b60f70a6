//! `metrics.jsonl`: one JSON object per line ([`MetricRow`]), appended as the run goes. The file
//! is append-only: a resumed run keeps the rows up to its checkpoint's step byte for byte
//! ([`MetricsHistory`]) and drops only the rows written after it, so the file never holds a
//! step twice and earlier numbers are never re-serialised. Every line must be a row: a line
//! that is not UTF-8 or not a row's JSON, or steps out of order, is an error naming the file and
//! the line ([`crate::TrainError::BadMetrics`]), never a shorter history.

use crate::error::{Result, TrainError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Metrics file name in the run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricRow {
    /// Optimizer steps completed.
    pub step: u64,
    /// Learning rate of that step.
    pub lr: f64,
    /// Mean train loss (nats/token) of that step's batch.
    pub train_loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Training throughput of the step.
    pub tokens_per_s: f64,
    /// Validation loss, when computed at this step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
}

impl MetricRow {
    /// The row as one line of the file, newline included.
    fn line(&self) -> String {
        let mut text = serde_json::to_string(self).expect("row serialises");
        text.push('\n');
        text
    }
}

/// The rows of an existing `metrics.jsonl` that a run resumed at a step keeps, with the exact
/// bytes they had in the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsHistory {
    /// The kept rows, in order.
    pub rows: Vec<MetricRow>,
    /// Their lines, byte for byte.
    bytes: Vec<u8>,
}

impl MetricsHistory {
    /// Reads `path` strictly (every line a row, steps increasing) and keeps the rows with
    /// `step ≤ upto`. A missing file has no rows.
    pub fn read(path: &Path, upto: u64) -> Result<Self> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(TrainError::file("read", path, e)),
        };
        let bad = |line: usize, reason: String| TrainError::BadMetrics {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut rows = Vec::new();
        let mut keep = 0usize;
        let mut last_step: Option<u64> = None;
        let mut offset = 0usize;
        let mut number = 0usize;
        while offset < bytes.len() {
            number += 1;
            let end = bytes[offset..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |i| offset + i + 1);
            let raw = &bytes[offset..end];
            let body = raw.strip_suffix(b"\n").unwrap_or(raw);
            let text = std::str::from_utf8(body).map_err(|e| {
                bad(
                    number,
                    format!("not UTF-8 (byte {} of the line)", e.valid_up_to() + 1),
                )
            })?;
            let row: MetricRow = serde_json::from_str(text)
                .map_err(|e| bad(number, format!("not a metrics row: {e}")))?;
            if let Some(prev) = last_step.filter(|&p| row.step <= p) {
                return Err(bad(
                    number,
                    format!("step {} follows step {prev} (rows must increase)", row.step),
                ));
            }
            last_step = Some(row.step);
            if row.step <= upto {
                rows.push(row);
                keep = end;
            }
            offset = end;
        }
        let mut kept = bytes[..keep].to_vec();
        if !kept.is_empty() && !kept.ends_with(b"\n") {
            kept.push(b'\n');
        }
        Ok(Self { rows, bytes: kept })
    }
}

/// Rows of an existing metrics file with `step ≤ upto` (the rest were written after the
/// checkpoint being resumed), read as [`MetricsHistory::read`] does. A missing file has no rows.
pub fn read_metrics(path: &Path, upto: u64) -> Result<Vec<MetricRow>> {
    Ok(MetricsHistory::read(path, upto)?.rows)
}

/// An open `metrics.jsonl` that rows are appended to.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Writes `run/metrics.jsonl` atomically with the kept lines of `earlier` (byte for byte;
    /// nothing on a fresh run) and opens it for appending.
    pub fn create(run: &Path, earlier: &MetricsHistory) -> Result<Self> {
        let path = run.join(METRICS_FILE);
        seqlab_io::write_atomic(&path, &earlier.bytes)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::file("open", &path, e))?;
        Ok(Self { path, file })
    }

    /// Appends `row` as one line, in one write (a killed process leaves whole lines).
    pub fn append(&mut self, row: &MetricRow) -> Result<()> {
        self.file
            .write_all(row.line().as_bytes())
            .map_err(|e| TrainError::file("write", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, val_loss: Option<f64>) -> MetricRow {
        MetricRow {
            step,
            lr: 1e-3,
            train_loss: 2.5,
            grad_norm: 0.5,
            tokens_per_s: 100.0,
            val_loss,
        }
    }

    #[test]
    fn rows_round_trip_and_resume_keeps_only_earlier_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::create(dir.path(), &MetricsHistory::default()).unwrap();
        log.append(&row(1, None)).unwrap();
        log.append(&row(2, Some(2.0))).unwrap();
        log.append(&row(3, None)).unwrap();
        drop(log);
        let path = dir.path().join(METRICS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(!text.lines().next().unwrap().contains("val_loss"));
        assert_eq!(
            read_metrics(&path, 2).unwrap(),
            vec![row(1, None), row(2, Some(2.0))]
        );
        // A resumed run rewrites the file with the kept rows only.
        let kept = MetricsHistory::read(&path, 1).unwrap();
        MetricsLog::create(dir.path(), &kept).unwrap();
        assert_eq!(read_metrics(&path, 10).unwrap(), vec![row(1, None)]);
        assert!(read_metrics(&dir.path().join("absent"), 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn kept_rows_keep_their_bytes_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        // Float text another writer chose (not serde_json's shortest form) survives a resume.
        let first = "{\"step\":1,\"lr\":1.0e-3,\"train_loss\":2.50000,\"grad_norm\":0.5,\"tokens_per_s\":100.0}\n";
        let second = "{\"step\":2,\"lr\":0.001,\"train_loss\":2.4,\"grad_norm\":0.5,\"tokens_per_s\":100.0}\n";
        std::fs::write(&path, format!("{first}{second}")).unwrap();
        let kept = MetricsHistory::read(&path, 1).unwrap();
        assert_eq!(kept.rows.len(), 1);
        MetricsLog::create(dir.path(), &kept).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);

        for (text, line, what) in [
            (
                format!("{first}\u{fffd}").into_bytes(),
                2,
                "not a metrics row",
            ),
            ([first.as_bytes(), b"\xff\n"].concat(), 2, "not UTF-8"),
            (
                format!("{first}\n{second}").into_bytes(),
                2,
                "not a metrics row",
            ),
            (
                format!("{second}{first}").into_bytes(),
                2,
                "step 1 follows step 2",
            ),
            (
                format!("{}{first}", first.replace("\"step\"", "\"stpe\"")).into_bytes(),
                1,
                "missing field `step`",
            ),
        ] {
            std::fs::write(&path, &text).unwrap();
            let e = MetricsHistory::read(&path, 10).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{} line {line}: ", path.display())) && e.contains(what),
                "{e}"
            );
        }
        // A last line without its newline is still a row.
        std::fs::write(&path, format!("{first}{}", second.trim_end())).unwrap();
        assert_eq!(MetricsHistory::read(&path, 10).unwrap().rows.len(), 2);
    }
}
