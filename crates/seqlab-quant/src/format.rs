//! ggml's 32-element block formats, byte for byte as llama.cpp writes them into GGUF files
//! (docs/quant.md#formats). A row of `k` weights is `k / 32` consecutive blocks:
//!
//! ```text
//! Q8_0  34 bytes: d: f16, q[32]: i8                 w_j = d · q_j
//! Q4_0  18 bytes: d: f16, qs[16]: u8                w_j = d · (q_j − 8)
//! Q4_1  20 bytes: d: f16, m: f16, qs[16]: u8        w_j = d · q_j + m
//! ```
//!
//! In the 4-bit formats byte `qs[j]` holds element j in its low nibble and element j + 16 in
//! its high nibble. Quantization follows ggml's reference (`quantize_row_*_ref`), so our bytes
//! equal llama.cpp's and candle's for the same floats.

use crate::error::QuantError;
use half::f16;

/// Elements per block in every format here.
pub const BLOCK: usize = 32;

/// A supported weight format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// 8-bit, one f16 scale per block.
    Q8_0,
    /// 4-bit symmetric (offset 8), one f16 scale per block.
    Q4_0,
    /// 4-bit with an f16 scale and an f16 minimum per block.
    Q4_1,
}

impl QuantType {
    /// Every supported format.
    pub const ALL: [QuantType; 3] = [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4_1];

    /// Bytes per block of [`BLOCK`] elements.
    pub const fn block_bytes(self) -> usize {
        match self {
            QuantType::Q8_0 => 34,
            QuantType::Q4_0 => 18,
            QuantType::Q4_1 => 20,
        }
    }

    /// ggml's name of the format.
    pub const fn name(self) -> &'static str {
        match self {
            QuantType::Q8_0 => "Q8_0",
            QuantType::Q4_0 => "Q4_0",
            QuantType::Q4_1 => "Q4_1",
        }
    }

    /// Bytes of a row of `k` elements; an error unless `k` is a multiple of [`BLOCK`].
    pub fn row_bytes(self, k: usize) -> Result<usize, QuantError> {
        if !k.is_multiple_of(BLOCK) {
            return Err(QuantError::new(format!(
                "{}: a row of {k} elements is not a whole number of {BLOCK}-element blocks",
                self.name()
            )));
        }
        Ok(k / BLOCK * self.block_bytes())
    }
}

fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Quantizes one row `x` (length a multiple of 32) into ggml blocks of `ty`, appended to `out`.
pub fn quantize_row(ty: QuantType, x: &[f32], out: &mut Vec<u8>) -> Result<(), QuantError> {
    ty.row_bytes(x.len())?;
    for xs in x.chunks_exact(BLOCK) {
        match ty {
            QuantType::Q8_0 => {
                let amax = xs.iter().fold(0f32, |a, &v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(xs.iter().map(|&v| (v * id).round() as i8 as u8));
            }
            QuantType::Q4_0 => {
                // The element of largest magnitude maps to −8 exactly.
                let (mut amax, mut max) = (0f32, 0f32);
                for &v in xs {
                    if amax < v.abs() {
                        amax = v.abs();
                        max = v;
                    }
                }
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                for j in 0..BLOCK / 2 {
                    let q0 = ((xs[j] * id + 8.5) as u8).min(15);
                    let q1 = ((xs[j + BLOCK / 2] * id + 8.5) as u8).min(15);
                    out.push(q0 | (q1 << 4));
                }
            }
            QuantType::Q4_1 => {
                let min = xs.iter().fold(f32::INFINITY, |a, &v| a.min(v));
                let max = xs.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
                for j in 0..BLOCK / 2 {
                    let q0 = (((xs[j] - min) * id + 0.5) as u8).min(15);
                    let q1 = (((xs[j + BLOCK / 2] - min) * id + 0.5) as u8).min(15);
                    out.push(q0 | (q1 << 4));
                }
            }
        }
    }
    Ok(())
}

/// Dequantizes the blocks `bytes` of `ty` into f32 values appended to `out`.
pub fn dequantize_row(ty: QuantType, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), QuantError> {
    let bs = ty.block_bytes();
    if !bytes.len().is_multiple_of(bs) {
        return Err(QuantError::new(format!(
            "{}: {} bytes are not a whole number of {bs}-byte blocks",
            ty.name(),
            bytes.len()
        )));
    }
    for b in bytes.chunks_exact(bs) {
        let d = half_at(b, 0);
        match ty {
            QuantType::Q8_0 => out.extend(b[2..].iter().map(|&q| q as i8 as f32 * d)),
            QuantType::Q4_0 => {
                let qs = &b[2..];
                out.extend(qs.iter().map(|&q| ((q & 15) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
            QuantType::Q4_1 => {
                let (m, qs) = (half_at(b, 2), &b[4..]);
                out.extend(qs.iter().map(|&q| (q & 15) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
    }
    Ok(())
}

/// The f32 value of the little-endian f16 at `at` in a block (its scale or minimum).
#[inline]
pub(crate) fn block_half(b: &[u8], at: usize) -> f32 {
    half_at(b, at)
}
