//! One process at a time per run directory (docs/training.md#run-directories): [`RunLock`] is
//! an exclusive advisory lock on `RUN_DIR/run.lock`, held for the life of a run. It is the
//! operating system's file lock (`flock(2)` on Unix, `LockFileEx` on Windows, through
//! `std::fs::File::try_lock`), so the kernel releases it when the process exits or is killed,
//! and a crashed run never leaves a stale lock behind. The holder writes its pid, host and start
//! time into the file, and a second process that finds the lock taken reports them.
//!
//! The file itself stays after the run (deleting it would race with a process that has just
//! opened it); what it says is only meaningful while the lock is held.

use crate::error::{Result, TrainError};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Lock file name in the run directory.
pub const LOCK_FILE: &str = "run.lock";

/// An exclusive lock on a run directory, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    /// The open, locked file: closing it releases the lock.
    _file: File,
    /// `RUN_DIR/run.lock`.
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `run_dir` (which must exist) without waiting, and records this
    /// process as its holder; [`TrainError::RunLocked`] naming the holder when another process
    /// has it.
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(LOCK_FILE);
        // Never truncate on open: the file holds the current holder's description.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::file("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "another process (it has not written its name yet)".to_string(),
                    t => t.to_string(),
                };
                return Err(TrainError::RunLocked {
                    run: run_dir.to_path_buf(),
                    lock: path,
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(TrainError::file("lock", &path, e)),
        }
        let holder = holder_description();
        file.set_len(0)
            .and_then(|()| file.write_all(format!("{holder}\n").as_bytes()))
            .and_then(|()| file.sync_data())
            .map_err(|e| TrainError::file("write", &path, e))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `pid 1234 on host NAME since 2026-12-06 06:40:12 UTC (seqlab train)`: who holds a lock.
fn holder_description() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unknown host".into());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // `args_os`: an argument that is not UTF-8 must not panic here.
    let command: Vec<String> = std::env::args_os()
        .take(2)
        .enumerate()
        .map(|(i, a)| {
            let p = Path::new(&a);
            match (i, p.file_name()) {
                (0, Some(name)) => name.to_string_lossy().into_owned(),
                _ => a.to_string_lossy().into_owned(),
            }
        })
        .collect();
    format!(
        "pid {} on host {host} since {} ({})",
        std::process::id(),
        utc_timestamp(secs),
        command.join(" ")
    )
}

/// `YYYY-MM-DD HH:MM:SS UTC` of Unix time `secs` (the proleptic Gregorian calendar; days to
/// a civil date by Hinnant's algorithm, "chrono-Compatible Low-Level Date Algorithms").
fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(first.path()).unwrap();
        assert!(
            text.starts_with(&format!("pid {} on host ", std::process::id())),
            "{text}"
        );
        let e = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is in use by pid"), "{e}");
        assert!(e.contains(&std::process::id().to_string()), "{e}");
        // The refused attempt did not clobber the holder's description.
        assert_eq!(std::fs::read_to_string(first.path()).unwrap(), text);
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn timestamps_are_civil_utc() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_timestamp(1_796_545_212), "2026-12-06 08:20:12 UTC");
    }
}
