//! The small-batch quantized GEMM `Y = X · Wᵀ` (docs/quant.md#gemm): W (m, k) in ggml blocks,
//! X (n, k) f32 rows quantized per block once, Y (n, m) f32. Threads split the output rows of
//! W into contiguous ranges; inside a range each weight row is dotted with the activation rows
//! in groups of up to [`GROUP`], so a weight block is read from memory once per pass and reused
//! from registers for the whole group. Every output element is computed by the same arithmetic
//! whatever n, the grouping or the thread split, so a one-row decode step and a many-row
//! prefill or `score` give bit-identical rows.

use crate::activations::{ActRow, QuantizedRows};
use crate::dispatch::{dot_rows, Level};
use crate::error::QuantError;
use crate::format::QuantType;
use rayon::prelude::*;

/// Activation rows dotted per read of a weight block.
pub const GROUP: usize = 8;

/// Weight rows per cache tile (see [`QMatrix::matmul_quantized`]).
const TILE_ROWS: usize = 16;

/// Below this many multiply-adds (m·k·n) a product runs on the calling thread.
const PARALLEL_WORK: usize = 1 << 16;

/// A borrowed quantized matrix W (rows, cols) in ggml blocks of `ty`, row-major (each row
/// `cols / 32` blocks), as GGUF stores a linear layer's weight (out, in).
#[derive(Debug, Clone, Copy)]
pub struct QMatrix<'a> {
    ty: QuantType,
    bytes: &'a [u8],
    rows: usize,
    cols: usize,
}

impl<'a> QMatrix<'a> {
    /// Views `bytes` as a (rows, cols) matrix of `ty`; the byte count must fit exactly.
    pub fn new(
        ty: QuantType,
        bytes: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, QuantError> {
        let rb = ty.row_bytes(cols)?;
        if rows.checked_mul(rb) != Some(bytes.len()) {
            return Err(QuantError::new(format!(
                "{}: {} bytes for a ({rows}, {cols}) matrix (needs {rows} × {rb})",
                ty.name(),
                bytes.len()
            )));
        }
        Ok(Self {
            ty,
            bytes,
            rows,
            cols,
        })
    }

    /// The block format.
    pub fn quant_type(&self) -> QuantType {
        self.ty
    }

    /// (rows, cols).
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// `X · Wᵀ` for `x` holding `n` rows of `cols` values: (n, rows) row-major, with the
    /// fastest kernels this CPU has.
    pub fn matmul(&self, x: &[f32], n: usize) -> Result<Vec<f32>, QuantError> {
        self.matmul_at(Level::best(), x, n)
    }

    /// [`Self::matmul`] with the kernels of `level` (an error when this CPU lacks it).
    pub fn matmul_at(&self, level: Level, x: &[f32], n: usize) -> Result<Vec<f32>, QuantError> {
        let acts = QuantizedRows::new(x, n, self.cols)?;
        self.matmul_quantized(level, &acts)
    }

    /// `X · Wᵀ` for activations already quantized (e.g. one X shared by several matrices).
    pub fn matmul_quantized(
        &self,
        level: Level,
        acts: &QuantizedRows,
    ) -> Result<Vec<f32>, QuantError> {
        let level = level.check()?;
        if acts.cols() != self.cols {
            return Err(QuantError::new(format!(
                "activation rows of {} values for a matrix of {} columns",
                acts.cols(),
                self.cols
            )));
        }
        let (m, n) = (self.rows, acts.rows());
        if m == 0 || n == 0 {
            return Ok(vec![0f32; m * n]);
        }
        let rb = self.ty.row_bytes(self.cols)?;
        // Output transposed, (m, n): a task owns a contiguous range of weight rows.
        let mut yt = vec![0f32; m * n];
        let work = m * n * self.cols;
        let threads = rayon::current_num_threads();
        let row_block = if work < PARALLEL_WORK || threads == 1 {
            m
        } else {
            m.div_ceil(threads * 4).max(1)
        };
        let run = |(t, out): (usize, &mut [f32])| {
            // Tiles of TILE_ROWS weight rows × GROUP activation rows: the tile's weight rows
            // and the group's activation rows both stay in L1 while they meet.
            let rows_here = out.len() / n;
            for t0 in (0..rows_here).step_by(TILE_ROWS) {
                let t1 = (t0 + TILE_ROWS).min(rows_here);
                for j in (0..n).step_by(GROUP) {
                    let g = (n - j).min(GROUP);
                    for i in t0..t1 {
                        let r = t * row_block + i;
                        let w = &self.bytes[r * rb..(r + 1) * rb];
                        self.row_times_group(level, w, acts, j, &mut out[i * n + j..i * n + j + g]);
                    }
                }
            }
        };
        if row_block == m {
            yt.chunks_mut(row_block * n).enumerate().for_each(run);
        } else {
            yt.par_chunks_mut(row_block * n).enumerate().for_each(run);
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

    /// `out[i] = w · x_{j+i}` for the activation rows `j..j + out.len()` (at most [`GROUP`]).
    fn row_times_group(
        &self,
        level: Level,
        w: &[u8],
        acts: &QuantizedRows,
        j: usize,
        out: &mut [f32],
    ) {
        macro_rules! group {
            ($g:literal) => {{
                let a: [ActRow<'_>; $g] = std::array::from_fn(|i| acts.row(j + i));
                out.copy_from_slice(&dot_rows::<$g>(level, self.ty, w, &a));
            }};
        }
        match out.len() {
            1 => group!(1),
            2 => group!(2),
            3 => group!(3),
            4 => group!(4),
            5 => group!(5),
            6 => group!(6),
            7 => group!(7),
            _ => group!(8),
        }
    }
}

/// The dot product of one quantized weight row (whole blocks of `ty`) with the f32 vector `x`
/// (quantized per block first, as in [`QMatrix::matmul`]), at `level`.
pub fn dot(level: Level, ty: QuantType, w: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    let m = QMatrix::new(ty, w, 1, x.len())?;
    Ok(m.matmul_at(level, x, 1)?[0])
}
