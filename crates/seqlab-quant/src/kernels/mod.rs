//! Dot products of one weight row with a group of quantized activation rows, one module per
//! dispatch level ([`crate::Level`]). Each kernel reads a weight block once and multiplies it
//! into every row of the group; the arithmetic of one (weight row, activation row) pair is the
//! same whatever the group size, so results do not depend on how rows are grouped.

pub(crate) mod scalar;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
