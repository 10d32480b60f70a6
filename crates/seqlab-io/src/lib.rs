//! Atomic file writes and careful reads shared by every seqlab crate.
//!
//! - [`AtomicFile`] streams bytes into a temporary file beside the target and
//!   [`AtomicFile::commit`]s it (flush, `fsync`, rename into place, `fsync` of the directory), so a
//!   reader sees either the old file or the complete new one, never half of one; dropped without
//!   a commit, it removes its temporary file. [`write_atomic`] does the same for a byte slice.
//! - [`open`], [`read_bytes`] and [`read_text`] read a file and say which file failed and how;
//!   [`IoError::is_not_found`] tells a missing file from other failures, and text that is not
//!   UTF-8 is [`ReadTextError::NotUtf8`] with the offset of the first bad byte.
//!
//! Errors are small values carrying the path, the [`Action`] and the operating system's error,
//! with one-line messages such as `cannot create /x/y: Permission denied (os error 13)`; each
//! crate maps them into its own error enum.

mod atomic;
mod error;
mod read;

pub use atomic::{parent_dir, write_atomic, AtomicFile};
pub use error::{Action, IoError, ReadTextError};
pub use read::{open, read_bytes, read_text};
