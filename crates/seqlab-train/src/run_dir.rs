//! Who may write a run directory, and with which configuration (docs/training.md#run-directories):
//!
//! - [`claim_run_dir`]: takes the directory's [`RunLock`] for the life of the run; a fresh run
//!   (no `--resume`) into a directory that already holds a run (a checkpoint or
//!   `metrics.jsonl`) is refused unless `overwrite` is set, and then the old run's files are
//!   removed first, so a crash of the new run can never leave its metrics beside the old
//!   checkpoint;
//! - [`config_changes`]: on resume the checkpoint's config is the truth; the config given now
//!   may differ only in the keys the trainer lists as changeable (the schedule's length and the
//!   eval / log / checkpoint cadence), and every other difference is
//!   [`TrainError::ConfigChanged`] naming the key and both values;
//! - [`record_config_changes`]: the accepted changes are appended to
//!   `RUN_DIR/config_changes.jsonl`, one [`ConfigChange`] per line.

use crate::checkpoint::{
    checkpoint_to_resume, find_checkpoint, read_trainer_state, TrainerState, CHECKPOINT_DIR,
    STATE_FILE,
};
use crate::config::ConfigChange;
use crate::error::{Result, TrainError};
use crate::metrics::METRICS_FILE;
use crate::run_lock::RunLock;
use crate::step_loop::TrainOptions;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// The history of a run's accepted config changes, one JSON object a line.
pub const CONFIG_CHANGES_FILE: &str = "config_changes.jsonl";

/// The files a run writes into its directory besides the lock (removed by `--overwrite`).
const RUN_FILES: [&str; 7] = [
    CHECKPOINT_DIR,
    "checkpoint.old",
    "checkpoint.tmp",
    METRICS_FILE,
    "loss.png",
    CONFIG_CHANGES_FILE,
    "train_config.json",
];

/// Takes `opts.run_dir`'s lock (the directory must exist) and, for a fresh run, makes sure the
/// directory holds no other run: [`TrainError::RunExists`] unless `opts.overwrite`, in which
/// case the old run's files are removed. The returned lock must live as long as the run.
pub fn claim_run_dir(opts: &TrainOptions) -> Result<RunLock> {
    let run = &opts.run_dir;
    let lock = RunLock::acquire(run)?;
    if opts.resume {
        return Ok(lock);
    }
    let mut found = Vec::new();
    if let Some(dir) = find_checkpoint(run) {
        let step = std::fs::read(dir.join(STATE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("step").and_then(Value::as_u64));
        found.push(match step {
            Some(s) => format!("a checkpoint at step {s}"),
            None => "a checkpoint".to_string(),
        });
    } else if run.join("checkpoint.tmp").exists() {
        found.push("a partly written checkpoint".to_string());
    }
    if run.join(METRICS_FILE).exists() {
        found.push(METRICS_FILE.to_string());
    }
    if found.is_empty() {
        return Ok(lock);
    }
    if !opts.overwrite {
        return Err(TrainError::RunExists {
            run: run.clone(),
            what: found.join(" and "),
        });
    }
    for name in RUN_FILES {
        let p = run.join(name);
        let gone = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else if p.exists() {
            std::fs::remove_file(&p)
        } else {
            Ok(())
        };
        gone.map_err(|e| TrainError::file("remove", &p, e))?;
    }
    Ok(lock)
}

/// The trainer state of the run in `run_dir` ([`read_trainer_state`]: manifest verified,
/// plausibility checked), read while holding the run's lock, so that a run writing a new
/// checkpoint at that moment is reported as the holder instead of being read half-way.
/// [`TrainError::NoCheckpoint`] when there is no checkpoint.
pub fn read_run_state<C: DeserializeOwned>(run_dir: &Path) -> Result<TrainerState<C>> {
    checkpoint_to_resume(run_dir)?;
    let _lock = RunLock::acquire(run_dir)?;
    read_trainer_state(&checkpoint_to_resume(run_dir)?)
}

/// The differences between the checkpoint's config `stored` and the config `requested` now
/// (both JSON objects of the same trainer's config type), key by key in sorted order: the
/// changes of keys in `changeable`, or [`TrainError::ConfigChanged`] for the first other key
/// that differs. `step` is the checkpoint's step, recorded with each change.
pub fn config_changes(
    stored: &Value,
    requested: &Value,
    changeable: &[&str],
    step: u64,
) -> Result<Vec<ConfigChange>> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        stored.as_object().unwrap_or(&empty),
        requested.as_object().unwrap_or(&empty),
    );
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut changes = Vec::new();
    for key in keys {
        let (from, to) = (
            a.get(key.as_str()).unwrap_or(&Value::Null),
            b.get(key.as_str()).unwrap_or(&Value::Null),
        );
        if from == to {
            continue;
        }
        if !changeable.contains(&key.as_str()) {
            return Err(TrainError::ConfigChanged {
                key: key.clone(),
                stored: from.to_string(),
                requested: to.to_string(),
                allowed: changeable.join(", "),
            });
        }
        changes.push(ConfigChange {
            step,
            key: key.clone(),
            from: from.clone(),
            to: to.clone(),
        });
    }
    Ok(changes)
}

/// Appends `changes` to `run_dir/config_changes.jsonl` (rewritten atomically with the earlier
/// lines' bytes kept); nothing when there are none.
pub fn record_config_changes(run_dir: &Path, changes: &[ConfigChange]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let path = run_dir.join(CONFIG_CHANGES_FILE);
    let mut bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(TrainError::file("read", &path, e)),
    };
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    for c in changes {
        bytes.extend(serde_json::to_vec(c).expect("a change serialises"));
        bytes.push(b'\n');
    }
    seqlab_io::write_atomic(&path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changeable_keys_may_differ_and_the_error_names_both_values() {
        let stored = json!({"lr": 0.003, "max_steps": 6, "eval_every": 3, "model": "mamba"});
        let same = config_changes(&stored, &stored, &["max_steps"], 6).unwrap();
        assert!(same.is_empty());
        let longer = json!({"lr": 0.003, "max_steps": 8, "eval_every": 2, "model": "mamba"});
        let c = config_changes(&stored, &longer, &["max_steps", "eval_every"], 6).unwrap();
        assert_eq!(
            c.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "eval_every 3 -> 2 from step 6",
                "max_steps 6 -> 8 from step 6"
            ]
        );
        let hotter = json!({"lr": 0.01, "max_steps": 6, "eval_every": 3, "model": "mamba"});
        let e = config_changes(&stored, &hotter, &["max_steps"], 6)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`lr` cannot change on resume: the run has 0.003, the config says 0.01"),
            "{e}"
        );
        assert!(e.contains("only max_steps may change"), "{e}");
    }

    #[test]
    fn changes_are_appended_keeping_earlier_lines() {
        let dir = tempfile::tempdir().unwrap();
        let c = |step, to| ConfigChange {
            step,
            key: "max_steps".into(),
            from: json!(6),
            to: json!(to),
        };
        record_config_changes(dir.path(), &[]).unwrap();
        assert!(!dir.path().join(CONFIG_CHANGES_FILE).exists());
        record_config_changes(dir.path(), &[c(6, 8)]).unwrap();
        record_config_changes(dir.path(), &[c(8, 10)]).unwrap();
        let text = std::fs::read_to_string(dir.path().join(CONFIG_CHANGES_FILE)).unwrap();
        let rows: Vec<ConfigChange> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows, vec![c(6, 8), c(8, 10)]);
    }

    #[test]
    fn a_fresh_run_into_an_old_one_needs_overwrite_which_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let opts = |overwrite| TrainOptions {
            data: run.join("data"),
            run_dir: run.to_path_buf(),
            resume: false,
            overwrite,
            stop_at: None,
            progress: false,
        };
        drop(claim_run_dir(&opts(false)).unwrap());
        std::fs::create_dir(run.join(CHECKPOINT_DIR)).unwrap();
        std::fs::write(run.join(CHECKPOINT_DIR).join(STATE_FILE), r#"{"step": 4}"#).unwrap();
        std::fs::write(run.join(METRICS_FILE), "{}\n").unwrap();
        let e = claim_run_dir(&opts(false)).unwrap_err().to_string();
        assert!(
            e.contains("already holds a run (a checkpoint at step 4 and metrics.jsonl)"),
            "{e}"
        );
        assert!(e.contains("--overwrite"), "{e}");
        assert!(run.join(METRICS_FILE).exists());
        drop(claim_run_dir(&opts(true)).unwrap());
        assert!(!run.join(METRICS_FILE).exists());
        assert!(!run.join(CHECKPOINT_DIR).exists());
    }
}
