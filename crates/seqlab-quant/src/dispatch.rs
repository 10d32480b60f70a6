//! Run-time choice of the dot-product kernels (docs/quant.md#dispatch): the widest level this
//! CPU has, or any lower one on request (the tests run every available level against the scalar
//! one).

use crate::activations::ActRow;
use crate::error::QuantError;
use crate::format::QuantType;
use crate::kernels::scalar;

/// A kernel level, slowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Portable Rust: integer block dot products, f32 accumulation.
    Scalar,
    /// AVX2 + FMA + F16C: 32 bytes per block via `vpmaddubsw` / `vpmaddwd`.
    Avx2,
    /// AVX-512 (F, BW, VL, DQ) with VNNI: two blocks per 64-byte `vpdpbusd`.
    Avx512Vnni,
}

impl Level {
    /// Every level, slowest first.
    pub const ALL: [Level; 3] = [Level::Scalar, Level::Avx2, Level::Avx512Vnni];

    /// Whether this CPU runs the level.
    pub fn is_available(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512Vnni => {
                Level::Avx2.is_available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The levels this CPU runs, slowest first.
    pub fn available() -> Vec<Level> {
        Level::ALL
            .into_iter()
            .filter(|l| l.is_available())
            .collect()
    }

    /// The fastest available level (detected once).
    pub fn best() -> Level {
        static BEST: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            Level::ALL
                .into_iter()
                .rev()
                .find(|l| l.is_available())
                .unwrap_or(Level::Scalar)
        })
    }

    /// `Ok(self)` when available, else an error naming the level.
    pub fn check(self) -> Result<Level, QuantError> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(QuantError::new(format!(
                "the {self:?} kernels need CPU features this machine lacks"
            )))
        }
    }
}

/// The dot products of one weight row (`w`: its blocks of `ty`) with `N` activation rows, at
/// `level`. The caller has checked that `level` is available and that every length fits
/// (`w.len() = nb · block_bytes`, each row `nb` blocks).
#[inline]
pub(crate) fn dot_rows<const N: usize>(
    level: Level,
    ty: QuantType,
    w: &[u8],
    acts: &[ActRow<'_>; N],
) -> [f32; N] {
    match level {
        Level::Scalar => scalar::dot_rows(ty, w, acts),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` was checked available (AVX2, FMA, F16C present); lengths checked by
        // the caller.
        Level::Avx2 => unsafe { crate::kernels::avx2::dot_rows(ty, w, acts) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, with AVX-512 F/BW/VL/DQ/VNNI present.
        Level::Avx512Vnni => unsafe { crate::kernels::avx512::dot_rows(ty, w, acts) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => scalar::dot_rows(ty, w, acts),
    }
}
