//! [`IoError`] (an I/O failure: what was being done to which file, and why) and
//! [`ReadTextError`] (an I/O failure, or text that is not UTF-8).

use std::fmt;
use std::path::{Path, PathBuf};

/// What was being done when an I/O operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Opening a file for reading.
    Open,
    /// Reading a file.
    Read,
    /// Creating the temporary file of an atomic write.
    Create,
    /// Writing, flushing or syncing the temporary file of an atomic write.
    Write,
    /// Renaming the temporary file over the target.
    Rename,
}

impl Action {
    /// The verb used in messages: `"open"`, `"read"`, `"create"`, `"write"`,
    /// `"rename into place"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Open => "open",
            Action::Read => "read",
            Action::Create => "create",
            Action::Write => "write",
            Action::Rename => "rename into place",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An I/O operation on `path` failed. For atomic writes `path` is always the target (the name the
/// caller asked for), never the temporary file.
///
/// Displays as `cannot <action> <path>: <OS error>`. The OS error is part of the message and not
/// a separate [`std::error::Error::source`], so chains such as `anyhow`'s `{:#}` print it once.
#[derive(Debug)]
pub struct IoError {
    action: Action,
    path: PathBuf,
    error: std::io::Error,
}

impl IoError {
    /// The failure of `action` on `path` with the operating system's `error`.
    pub fn new(action: Action, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        IoError {
            action,
            path: path.into(),
            error,
        }
    }

    /// What was being done.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The file involved (for atomic writes: the target).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operating system's error.
    pub fn io_error(&self) -> &std::io::Error {
        &self.error
    }

    /// The file does not exist (or a directory on its path does not).
    pub fn is_not_found(&self) -> bool {
        self.error.kind() == std::io::ErrorKind::NotFound
    }

    /// The action, the path and the operating system's error, to build another error type.
    pub fn into_parts(self) -> (Action, PathBuf, std::io::Error) {
        (self.action, self.path, self.error)
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.action,
            self.path.display(),
            self.error
        )
    }
}

impl std::error::Error for IoError {}

/// Why [`crate::read_text`] failed.
#[derive(Debug)]
pub enum ReadTextError {
    /// The file could not be read.
    Io(IoError),
    /// The file holds bytes that are not UTF-8.
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Offset of the first byte that is not part of a valid UTF-8 sequence.
        offset: usize,
    },
}

impl ReadTextError {
    /// The file involved.
    pub fn path(&self) -> &Path {
        match self {
            ReadTextError::Io(e) => e.path(),
            ReadTextError::NotUtf8 { path, .. } => path,
        }
    }
}

impl fmt::Display for ReadTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadTextError::Io(e) => e.fmt(f),
            ReadTextError::NotUtf8 { path, offset } => write!(
                f,
                "{}: not valid UTF-8 at byte offset {offset}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ReadTextError {}

impl From<IoError> for ReadTextError {
    fn from(e: IoError) -> Self {
        ReadTextError::Io(e)
    }
}
