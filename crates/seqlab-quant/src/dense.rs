//! Row-exact f32 products for the unquantized matrices of a GGUF file (F32, and F16/BF16
//! widened to f32 at load): `Y = X · Wᵀ`, each output element one fixed-order dot product (8
//! partial sums, combined pairwise, then the tail), threads split over the rows of W. A general
//! GEMM picks its blocking by the number of rows, so one row's result would change in the last
//! bits between a 1-row step and a 20-row `score`; here it cannot (docs/quant.md#gemm).

use crate::error::QuantError;
use rayon::prelude::*;

/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_WORK: usize = 1 << 16;

/// `Σ a_i b_i` in a fixed order: 8 lanes, combined pairwise, then the tail.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `X · Wᵀ` for W (m, k) and X (n, k), both row-major f32: (n, m) row-major, every element
/// independent of n and of the thread split.
pub fn matmul_f32(
    w: &[f32],
    m: usize,
    k: usize,
    x: &[f32],
    n: usize,
) -> Result<Vec<f32>, QuantError> {
    if w.len() != m * k || x.len() != n * k {
        return Err(QuantError::new(format!(
            "f32 product: {} weights for ({m}, {k}) and {} activations for {n} rows",
            w.len(),
            x.len()
        )));
    }
    let mut yt = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return Ok(yt);
    }
    let run = |(r, out): (usize, &mut [f32])| {
        let wr = &w[r * k..(r + 1) * k];
        for (j, o) in out.iter_mut().enumerate() {
            *o = dot(wr, &x[j * k..(j + 1) * k]);
        }
    };
    if m * n * k < PARALLEL_WORK || rayon::current_num_threads() == 1 {
        yt.chunks_mut(n).enumerate().for_each(run);
    } else {
        yt.par_chunks_mut(n).enumerate().for_each(run);
    }
    if n == 1 {
        return Ok(yt);
    }
    let mut y = vec![0f32; m * n];
    for (r, row) in yt.chunks_exact(n).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            y[j * m + r] = v;
        }
    }
    Ok(y)
}
