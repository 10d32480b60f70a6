//! Reads whose errors name the file: [`open`], [`read_bytes`], [`read_text`].

use crate::{Action, IoError, ReadTextError};
use std::fs::File;
use std::path::Path;

/// Open `path` for reading. A missing file is an [`IoError`] with
/// [`is_not_found`](IoError::is_not_found) set and action [`Action::Open`].
pub fn open(path: impl AsRef<Path>) -> Result<File, IoError> {
    let path = path.as_ref();
    File::open(path).map_err(|e| IoError::new(Action::Open, path, e))
}

/// The bytes of `path`. A missing file is an [`IoError`] with
/// [`is_not_found`](IoError::is_not_found) set and action [`Action::Read`].
pub fn read_bytes(path: impl AsRef<Path>) -> Result<Vec<u8>, IoError> {
    let path = path.as_ref();
    std::fs::read(path).map_err(|e| IoError::new(Action::Read, path, e))
}

/// The text of `path`, taken as it is (a byte-order mark is kept). Bytes that are not UTF-8 are
/// [`ReadTextError::NotUtf8`] with the offset of the first one.
pub fn read_text(path: impl AsRef<Path>) -> Result<String, ReadTextError> {
    let path = path.as_ref();
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| ReadTextError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.txt");
        std::fs::write(&p, b"ok\xff\xfe").unwrap();
        let err = read_text(&p).unwrap_err();
        assert!(
            matches!(err, ReadTextError::NotUtf8 { offset: 2, .. }),
            "{err}"
        );
        assert_eq!(err.path(), p);
        let msg = err.to_string();
        assert!(msg.contains("bad.txt") && msg.contains("offset 2"), "{msg}");
    }

    #[test]
    fn text_is_returned_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        std::fs::write(&p, "\u{feff}héllo\r\n").unwrap();
        assert_eq!(read_text(&p).unwrap(), "\u{feff}héllo\r\n");
        assert_eq!(read_bytes(&p).unwrap(), "\u{feff}héllo\r\n".as_bytes());
    }

    #[test]
    fn missing_file_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing.json");
        let err = read_bytes(&p).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.action(), Action::Read);
        assert_eq!(err.path(), p);
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot read ") && msg.contains("missing.json"),
            "{msg}"
        );
        assert!(matches!(
            read_text(&p),
            Err(ReadTextError::Io(e)) if e.is_not_found()
        ));
        let err = open(&p).unwrap_err();
        assert!(err.is_not_found() && err.action() == Action::Open, "{err}");

        // Reading a directory fails, but not as "not found".
        let err = read_bytes(dir.path()).unwrap_err();
        assert!(!err.is_not_found(), "{err}");
    }
}
