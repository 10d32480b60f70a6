//! Atomic file writes: write `.<name>.tmp` beside the target, then rename it into place, so a
//! reader never sees a half-written file under the final name.

use crate::error::{DataError, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written under a temporary name; [`AtomicFile::commit`] renames it to its final
/// name. Dropping it without committing removes the temporary file.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    writer: Option<BufWriter<File>>,
}

/// The temporary name used for `target`: `.<file name>.tmp` in the same directory.
fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp"))
}

impl AtomicFile {
    /// Create the temporary file for `target`.
    pub(crate) fn create(target: &Path) -> Result<Self> {
        let temp = temp_path(target);
        let file = File::create(&temp).map_err(|e| DataError::io("create", &temp, e))?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            temp,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Append `bytes`.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let writer = self.writer.as_mut().expect("AtomicFile used after commit");
        writer
            .write_all(bytes)
            .map_err(|e| DataError::io("write", &self.temp, e))
    }

    /// Flush, sync and rename the temporary file to its final name.
    pub(crate) fn commit(mut self) -> Result<()> {
        let writer = self.writer.take().expect("AtomicFile committed twice");
        let file = writer
            .into_inner()
            .map_err(|e| DataError::io("write", &self.temp, e.into_error()))?;
        file.sync_all()
            .map_err(|e| DataError::io("write", &self.temp, e))?;
        drop(file);
        std::fs::rename(&self.temp, &self.target)
            .map_err(|e| DataError::io("rename into place", &self.target, e))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Not committed: an error happened; leave no temporary file behind.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Write `bytes` to `target` atomically.
pub(crate) fn write_atomic(target: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(target)?;
    file.write_all(bytes)?;
    file.commit()
}
