//! `metrics.jsonl`: one JSON object per line ([`MetricRow`]), appended as the run goes. A
//! resumed run first rewrites the file with the rows up to its checkpoint ([`read_metrics`]),
//! so the file never holds a step twice.

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

/// Rows of an existing metrics file with `step ≤ upto` (the rest were written after the
/// checkpoint being resumed). A missing file has no rows; unparsable lines are skipped.
pub fn read_metrics(path: &Path, upto: u64) -> Result<Vec<MetricRow>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<MetricRow>(l).ok())
        .filter(|r| r.step <= upto)
        .collect())
}

/// An open `metrics.jsonl` that rows are appended to.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Writes `run/metrics.jsonl` atomically with the rows `earlier` (none on a fresh run)
    /// and opens it for appending.
    pub fn create(run: &Path, earlier: &[MetricRow]) -> Result<Self> {
        let path = run.join(METRICS_FILE);
        let mut text = String::new();
        for row in earlier {
            text.push_str(&serde_json::to_string(row).expect("row serialises"));
            text.push('\n');
        }
        seqlab_io::write_atomic(&path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::file("open", &path, e))?;
        Ok(Self { path, file })
    }

    /// Appends `row` as one line.
    pub fn append(&mut self, row: &MetricRow) -> Result<()> {
        writeln!(
            self.file,
            "{}",
            serde_json::to_string(row).expect("row serialises")
        )
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
        let mut log = MetricsLog::create(dir.path(), &[row(1, None)]).unwrap();
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
        MetricsLog::create(dir.path(), &[row(1, None)]).unwrap();
        assert_eq!(read_metrics(&path, 10).unwrap(), vec![row(1, None)]);
        assert!(read_metrics(&dir.path().join("absent"), 10)
            .unwrap()
            .is_empty());
    }
}
