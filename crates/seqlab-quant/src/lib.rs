//! Quantized matrix kernels for GGUF weights on the CPU (docs/quant.md).
//!
//! - [`format`]: ggml's block layouts Q8_0, Q4_0, Q4_1 (quantize / dequantize a row).
//! - [`activations`]: f32 rows quantized per 32-block to 8 bits with their scaled sums.
//! - [`Level`]: run-time dispatch between AVX-512 VNNI, AVX2 and scalar kernels.
//! - [`QMatrix`]: the small-batch GEMM `X · Wᵀ` reading each weight block once per group of
//!   up to [`GROUP`] activation rows, threads split over output rows.
//! - [`matmul_f32`]: the row-exact f32 product for a file's unquantized matrices.

pub mod activations;
pub mod dense;
pub mod dispatch;
pub mod error;
pub mod format;
pub mod gemm;
mod kernels;

pub use activations::{ActRow, QuantizedRows};
pub use dense::matmul_f32;
pub use dispatch::Level;
pub use error::QuantError;
pub use format::{dequantize_row, quantize_row, QuantType, BLOCK};
pub use gemm::{dot, QMatrix, GROUP};
