//! The crate's error type.

/// Everything the SSM kernels can refuse. Shape errors name the offending argument.
#[derive(Debug, thiserror::Error)]
pub enum SsmError {
    /// A buffer does not have the number of elements its documented shape requires.
    #[error("{name}: expected shape {shape} = {expected} elements, got {got}")]
    Shape {
        /// Argument name, as in the reference signature (`u`, `delta`, `B`, ...).
        name: &'static str,
        /// The shape the argument must have, written out (e.g. `(batch=2, dim=8, len=64)`).
        shape: String,
        /// Number of elements that shape implies.
        expected: usize,
        /// Number of elements given.
        got: usize,
    },
    /// An argument combination that cannot be honoured (zero sizes, groups not dividing dim, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// An error from candle while building or running a tensor op.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, SsmError>;

/// Checks that `buf` has `expected` elements; `shape` describes the shape in the error message.
pub(crate) fn check_len(
    name: &'static str,
    got: usize,
    expected: usize,
    shape: impl FnOnce() -> String,
) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(SsmError::Shape {
            name,
            shape: shape(),
            expected,
            got,
        })
    }
}
