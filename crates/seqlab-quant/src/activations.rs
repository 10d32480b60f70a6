//! Activations quantized per 32-element block, as llama.cpp does before an integer dot product
//! (ggml's `quantize_row_q8_1`): for each block, `d = max|x| / 127`, `q_j = round(x_j / d)` in
//! −127..=127, and `s = d · Σ q_j`. One format serves every weight type here: Q8_0 and Q4_0/Q4_1
//! weights use `d` and `q`; the offset of a 4-bit block (its minimum `m`, or `−8·d` for Q4_0)
//! multiplies `s`, since `Σ (d_w q_w + m)(d_a q_a) = d_w d_a Σ q_w q_a + m · s`
//! (docs/quant.md#activations). Unlike ggml, `d` and `s` stay f32 (ggml rounds them to f16).

use crate::error::QuantError;
use crate::format::BLOCK;

/// `n` rows of `k` activations, each quantized per block (module docs).
#[derive(Debug, Clone)]
pub struct QuantizedRows {
    n: usize,
    k: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
}

/// One quantized row: its 8-bit values, block scales and scaled block sums.
#[derive(Debug, Clone, Copy)]
pub struct ActRow<'a> {
    /// The k quantized values.
    pub qs: &'a [i8],
    /// Per block: the scale d.
    pub d: &'a [f32],
    /// Per block: d · Σ q.
    pub s: &'a [f32],
}

impl QuantizedRows {
    /// Quantizes `x` (`n` rows of `k`, row-major); `k` must be a multiple of 32.
    pub fn new(x: &[f32], n: usize, k: usize) -> Result<Self, QuantError> {
        if !k.is_multiple_of(BLOCK) {
            return Err(QuantError::new(format!(
                "activation rows of {k} values are not a whole number of {BLOCK}-value blocks"
            )));
        }
        if x.len() != n * k {
            return Err(QuantError::new(format!(
                "{} activations given for {n} rows of {k}",
                x.len()
            )));
        }
        let nb = n * k / BLOCK;
        let (mut qs, mut d, mut s) = (vec![0i8; n * k], vec![0f32; nb], vec![0f32; nb]);
        for (b, (xs, q)) in x
            .chunks_exact(BLOCK)
            .zip(qs.chunks_exact_mut(BLOCK))
            .enumerate()
        {
            let amax = xs.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for (qj, &xj) in q.iter_mut().zip(xs) {
                *qj = (xj * inv).round() as i8;
                sum += *qj as i32;
            }
            d[b] = scale;
            s[b] = scale * sum as f32;
        }
        Ok(Self { n, k, qs, d, s })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Row `i` (panics when `i ≥ rows()`).
    pub fn row(&self, i: usize) -> ActRow<'_> {
        let nb = self.k / BLOCK;
        ActRow {
            qs: &self.qs[i * self.k..(i + 1) * self.k],
            d: &self.d[i * nb..(i + 1) * nb],
            s: &self.s[i * nb..(i + 1) * nb],
        }
    }
}
