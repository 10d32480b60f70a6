//! The one error type of this crate: a message naming what did not fit.

use std::fmt;

/// A misfit input (sizes, lengths, an unavailable dispatch level), with a message saying which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantError(String);

impl QuantError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuantError {}
