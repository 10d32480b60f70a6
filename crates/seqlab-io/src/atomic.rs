//! Atomic file writes: write a temporary `.<name>.<pid>.<n>.tmp` beside the target (same
//! directory, so the same file system), flush and `fsync` it, then rename it over the target.
//! Readers see the old file or the complete new one, never a partial write; a crash leaves at
//! most a stray `*.tmp` file, never a damaged target.
//!
//! Why not `tempfile::NamedTempFile::persist` (checked against tempfile 3.27): it creates the
//! temporary file with mode `0600` whatever the umask, so every committed checkpoint, tokenizer
//! or metrics file would become private to its owner (the files written here get the usual
//! `0666 & !umask`); restoring that takes a Unix-only `Builder::permissions`. `persist` is a
//! plain rename — the file and directory `fsync`s below would stay ours — and its creation
//! errors carry tempfile's own "at path <temporary name>" context inside ours. What it would
//! replace is the rename and the removal on drop, a dozen lines, so the module keeps its own.

use crate::{Action, IoError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Buffer size of [`AtomicFile::create`]: large writes go straight to the file.
const BUFFER: usize = 1 << 20;

/// The directory holding `path`: its parent, or `.` for a bare file name.
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary name for `target` in its directory: `.<file name>.<pid>.<n>.tmp`, unique among
/// the writers of this process and of every other live process.
fn temp_path(target: &Path) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        )
    })?;
    Ok(parent_dir(target).join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )))
}

/// A file being written under a temporary name beside `target`; [`AtomicFile::commit`] puts it
/// in place. Dropping it without a successful commit (an error, a panic, an early return) removes
/// the temporary file and leaves `target` as it was.
///
/// Every error is an [`IoError`] naming the target: [`Action::Create`] (the temporary file
/// cannot be created, e.g. a missing or read-only directory), [`Action::Write`] (writing,
/// flushing or syncing it) or [`Action::Rename`] (the final rename).
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    /// `Some` until the file is closed by [`AtomicFile::commit`] or dropped.
    writer: Option<BufWriter<File>>,
    /// The rename succeeded: there is no temporary file left to remove.
    committed: bool,
}

impl AtomicFile {
    /// Create the temporary file for `target` (whose directory must exist).
    pub fn create(target: impl AsRef<Path>) -> Result<Self, IoError> {
        Self::with_buffer(target.as_ref(), BUFFER)
    }

    fn with_buffer(target: &Path, capacity: usize) -> Result<Self, IoError> {
        let create_err = |e| IoError::new(Action::Create, target, e);
        let temp = temp_path(target).map_err(create_err)?;
        let file = File::create(&temp).map_err(create_err)?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            temp,
            writer: Some(BufWriter::with_capacity(capacity, file)),
            committed: false,
        })
    }

    /// The path the file will have once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Append `bytes` (buffered).
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), IoError> {
        let writer = self
            .writer
            .as_mut()
            .expect("AtomicFile is open until commit");
        writer
            .write_all(bytes)
            .map_err(|e| IoError::new(Action::Write, &self.target, e))
    }

    /// Flush, `fsync` and rename the temporary file over the target, then `fsync` the directory
    /// (best effort) so the rename itself survives a crash. On error the temporary file is
    /// removed and the target is left as it was.
    pub fn commit(mut self) -> Result<(), IoError> {
        let target = &self.target;
        let writer = self
            .writer
            .as_mut()
            .expect("AtomicFile is open until commit");
        let write_err = |e| IoError::new(Action::Write, target, e);
        writer.flush().map_err(write_err)?;
        writer.get_ref().sync_all().map_err(write_err)?;
        self.close();
        std::fs::rename(&self.temp, &self.target)
            .map_err(|e| IoError::new(Action::Rename, &self.target, e))?;
        self.committed = true;
        // Not every platform can open or fsync a directory; the data itself is already synced.
        if let Ok(dir) = File::open(parent_dir(&self.target)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Close the file without flushing what is still buffered.
    fn close(&mut self) {
        if let Some(writer) = self.writer.take() {
            let (file, _unwritten) = writer.into_parts();
            drop(file);
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            self.close();
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Write `bytes` to `target` atomically (see [`AtomicFile`]).
pub fn write_atomic(target: impl AsRef<Path>, bytes: &[u8]) -> Result<(), IoError> {
    // Unbuffered: the bytes go to the file in one call.
    let mut file = AtomicFile::with_buffer(target.as_ref(), 0)?;
    file.write_all(bytes)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dir` holds exactly the files `want`: no temporary file is left.
    #[track_caller]
    fn assert_holds(dir: &Path, want: &[&str]) {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            names.push(entry.unwrap().file_name().into_string().unwrap());
        }
        names.sort();
        assert_eq!(names, want, "in {}", dir.display());
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_holds(dir.path(), &["a.json"]);
        write_atomic(&p, b"").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"");
    }

    #[test]
    fn streamed_file_appears_only_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shard.bin");
        std::fs::write(&p, b"old").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        assert_eq!(f.target(), p);
        // Chunks below and above the buffer size, in order.
        let big = vec![7u8; BUFFER + 3];
        f.write_all(b"ab").unwrap();
        f.write_all(&big).unwrap();
        f.write_all(b"cd").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let temp = f.temp.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            temp.starts_with(".shard.bin.") && temp.ends_with(".tmp"),
            "{temp}"
        );
        assert_holds(dir.path(), &[&temp, "shard.bin"]);
        f.commit().unwrap();
        let mut want = b"ab".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"cd");
        assert_eq!(std::fs::read(&p).unwrap(), want);
        assert_holds(dir.path(), &["shard.bin"]);
    }

    #[test]
    fn dropped_uncommitted_file_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("meta.json");
        std::fs::write(&old, b"keep").unwrap();
        let mut f = AtomicFile::create(&old).unwrap();
        f.write_all(b"half of it").unwrap();
        drop(f);
        assert_holds(dir.path(), &["meta.json"]);
        assert_eq!(std::fs::read(&old).unwrap(), b"keep");

        // A target that did not exist is not created.
        let new = dir.path().join("new.bin");
        let mut f = AtomicFile::create(&new).unwrap();
        f.write_all(&vec![1u8; BUFFER * 2]).unwrap();
        drop(f);
        assert_holds(dir.path(), &["meta.json"]);
    }

    #[test]
    fn failed_rename_leaves_old_target_untouched_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the data is written, the final rename fails.
        let target = dir.path().join("model.safetensors");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep.txt"), b"x").unwrap();
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"new bytes").unwrap();
        let err = f.commit().unwrap_err();
        assert_eq!(err.action(), Action::Rename);
        assert_eq!(err.path(), target);
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot rename into place ") && msg.contains("model.safetensors"),
            "{msg}"
        );
        assert_holds(dir.path(), &["model.safetensors"]);
        assert_holds(&target, &["keep.txt"]);
        assert_eq!(std::fs::read(target.join("keep.txt")).unwrap(), b"x");

        let err = write_atomic(&target, b"again").unwrap_err();
        assert_eq!(err.action(), Action::Rename);
        assert_holds(dir.path(), &["model.safetensors"]);
    }

    #[test]
    fn write_under_a_regular_file_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let target = file.join("tok.json");
        let err = write_atomic(&target, b"{}").unwrap_err();
        assert_eq!(err.action(), Action::Create);
        assert_eq!(err.path(), target);
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot create ") && msg.ends_with(&format!(": {}", err.io_error())),
            "{msg}"
        );
        assert!(msg.contains("plain/tok.json"), "{msg}");

        // A missing directory is "not found"; a path without a file name is refused.
        let err = AtomicFile::create(dir.path().join("no/such/dir/m.bin")).unwrap_err();
        assert!(
            err.is_not_found() && err.action() == Action::Create,
            "{err}"
        );
        let err = write_atomic("/", b"x").unwrap_err();
        assert_eq!(err.io_error().kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("the path has no file name"),
            "{err}"
        );
    }

    #[test]
    fn concurrent_writers_of_one_target_do_not_share_a_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok.json");
        let mut a = AtomicFile::create(&p).unwrap();
        let mut b = AtomicFile::create(&p).unwrap();
        a.write_all(b"from a").unwrap();
        b.write_all(b"from b").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"from a");
        b.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"from b");
        assert_holds(dir.path(), &["tok.json"]);
    }

    #[test]
    fn bare_file_names_live_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("a.json")), Path::new("."));
        assert_eq!(parent_dir(Path::new("d/a.json")), Path::new("d"));
        assert_eq!(parent_dir(Path::new("/a.json")), Path::new("/"));
        let t = temp_path(Path::new("a.json")).unwrap();
        assert_eq!(t.parent(), Some(Path::new(".")));
    }
}
