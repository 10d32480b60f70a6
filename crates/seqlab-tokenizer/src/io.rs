//! File helpers: reads that name the file in their errors, UTF-8 checks with the offending
//! offset, and atomic writes (a temporary file in the target folder, then a rename).

use crate::{Result, TokenizerError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The bytes of `path`.
pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| TokenizerError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// The text of `path`; bytes that are not UTF-8 are an error naming the file and the offset.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| TokenizerError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Write `bytes` to `path` atomically: readers see the old file or the new one, never half of
/// one. The temporary file lives beside the target (same file system) and is removed on failure.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let write_err = |error| TokenizerError::Write {
        path: path.to_path_buf(),
        error,
    };
    let name = path.file_name().ok_or_else(|| {
        write_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|error| {
        let _ = std::fs::remove_file(&tmp);
        write_err(error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_under_a_regular_file_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let target = file.join("tok.json");
        let err = atomic_write(&target, b"{}").unwrap_err().to_string();
        assert!(
            err.starts_with("cannot write ") && err.contains("tok.json"),
            "{err}"
        );
    }

    #[test]
    fn non_utf8_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.txt");
        std::fs::write(&p, b"ok\xff\xfe").unwrap();
        let err = read_text(&p).unwrap_err().to_string();
        assert!(err.contains("bad.txt") && err.contains("offset 2"), "{err}");
    }
}
