//! A small strided matrix product for the kernels that are matmul-shaped (SSD's intra-chunk
//! blocks, docs/ssm.md#ssd): `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`, each operand a slice
//! read through (row, column) strides, so transposes and the heads / groups interleaved in a
//! (batch, seqlen, heads, dim) tensor need no copy. f32 and f64 go to the `gemm` crate (the
//! kernel candle's CPU matmul uses), single-threaded: the callers parallelise over blocks.
//! Extents are checked before any pointer is formed; a product that does not fit its slices is
//! an error, not undefined behaviour.

use std::any::TypeId;

use crate::error::{Result, SsmError};
use crate::float::Float;

/// A read-only matrix view: element (i, j) is `data[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a, T> {
    /// The elements (the view may use only part of them).
    pub data: &'a [T],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major view with row stride `rs` (column stride 1).
    pub fn rows(data: &'a [T], rs: usize) -> Self {
        Self { data, rs, cs: 1 }
    }
    /// The transpose of a row-major view with row stride `rs`.
    pub fn transposed(data: &'a [T], rs: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: rs,
        }
    }
}

/// Number of elements a (rows × cols) view with strides (rs, cs) reaches.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)?
        .checked_add(1)
}

fn fits(what: &str, len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Result<()> {
    match extent(rows, cols, rs, cs) {
        Some(e) if e <= len && rs <= isize::MAX as usize && cs <= isize::MAX as usize => Ok(()),
        _ => Err(SsmError::Invalid(format!(
            "matmul: {what} view ({rows}×{cols}, strides {rs}, {cs}) exceeds its {len} elements"
        ))),
    }
}

/// `dst (m×n, row stride dst_rs, column stride 1) = [dst +] lhs (m×k) · rhs (k×n)`; with
/// `accumulate` false the old contents of dst are ignored (k = 0 then zeroes dst).
pub(crate) fn matmul<T: Float>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
) -> Result<()> {
    fits("dst", dst.len(), m, n, dst_rs, 1)?;
    fits("lhs", lhs.data.len(), m, k, lhs.rs, lhs.cs)?;
    fits("rhs", rhs.data.len(), k, n, rhs.rs, rhs.cs)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let is = |id: TypeId| TypeId::of::<T>() == id;
    if k > 0 && (is(TypeId::of::<f32>()) || is(TypeId::of::<f64>())) {
        // SAFETY: every view was checked above to stay inside its slice (strides fit in isize);
        // dst is borrowed mutably and the operands immutably, so they do not alias; T is f32 or
        // f64, the types gemm dispatches on (it panics on any other).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                dst_rs as isize,
                accumulate,
                lhs.data.as_ptr(),
                lhs.cs as isize,
                lhs.rs as isize,
                rhs.data.as_ptr(),
                rhs.cs as isize,
                rhs.rs as isize,
                T::ONE,
                T::ONE,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        return Ok(());
    }
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::ZERO;
            for l in 0..k {
                acc += lhs.data[i * lhs.rs + l * lhs.cs] * rhs.data[l * rhs.rs + j * rhs.cs];
            }
            let d = &mut dst[i * dst_rs + j];
            *d = if accumulate { *d + acc } else { acc };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn strided_products_match_naive() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let want = naive(m, n, k, &a, &b);
        // Plain row-major, into a dst with a wider row stride, then accumulated once more.
        let mut dst = vec![0.0; m * 9];
        matmul(
            (m, n, k),
            &mut dst,
            9,
            false,
            Mat::rows(&a, k),
            Mat::rows(&b, n),
        )
        .unwrap();
        matmul(
            (m, n, k),
            &mut dst,
            9,
            true,
            Mat::rows(&a, k),
            Mat::rows(&b, n),
        )
        .unwrap();
        for i in 0..m {
            for j in 0..n {
                assert!((dst[i * 9 + j] - 2.0 * want[i * n + j]).abs() < 1e-12);
            }
        }
        // Operands given as transposes of their transposes.
        let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut dst = vec![0.0; m * n];
        matmul(
            (m, n, k),
            &mut dst,
            n,
            false,
            Mat::transposed(&at, m),
            Mat::transposed(&bt, k),
        )
        .unwrap();
        for (x, y) in dst.iter().zip(&want) {
            assert!((x - y).abs() < 1e-12);
        }
        // f32 through the same path.
        let (a32, b32): (Vec<f32>, Vec<f32>) = (
            a.iter().map(|&v| v as f32).collect(),
            b.iter().map(|&v| v as f32).collect(),
        );
        let mut d32 = vec![0.0f32; m * n];
        matmul(
            (m, n, k),
            &mut d32,
            n,
            false,
            Mat::rows(&a32, k),
            Mat::rows(&b32, n),
        )
        .unwrap();
        for (x, y) in d32.iter().zip(&want) {
            assert!((*x as f64 - y).abs() < 1e-5);
        }
    }

    #[test]
    fn views_outside_their_slices_are_errors() {
        let a = [1.0f64; 6];
        let mut dst = [0.0f64; 4];
        assert!(matmul(
            (2, 2, 3),
            &mut dst,
            2,
            false,
            Mat::rows(&a, 3),
            Mat::rows(&a, 2)
        )
        .is_ok());
        assert!(matmul(
            (2, 2, 4),
            &mut dst,
            2,
            false,
            Mat::rows(&a, 4),
            Mat::rows(&a, 2)
        )
        .is_err());
        assert!(matmul(
            (2, 3, 3),
            &mut dst,
            2,
            false,
            Mat::rows(&a, 3),
            Mat::rows(&a, 3)
        )
        .is_err());
    }
}
