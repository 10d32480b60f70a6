//! The portable kernel: per block an exact i32 dot product of the quantized values, then
//! `acc += (d_w · d_a) · Σ q_w q_a + m_w · s_a` in f32 (docs/quant.md#activations).

use crate::activations::ActRow;
use crate::format::{block_half, QuantType, BLOCK};

/// See [`crate::kernels`].
pub(crate) fn dot_rows<const N: usize>(
    ty: QuantType,
    w: &[u8],
    acts: &[ActRow<'_>; N],
) -> [f32; N] {
    let bs = ty.block_bytes();
    let mut acc = [0f32; N];
    for (b, blk) in w.chunks_exact(bs).enumerate() {
        let dw = block_half(blk, 0);
        match ty {
            QuantType::Q8_0 => {
                let q = &blk[2..2 + BLOCK];
                for (a, out) in acts.iter().zip(acc.iter_mut()) {
                    let qa = &a.qs[b * BLOCK..(b + 1) * BLOCK];
                    let isum: i32 = q
                        .iter()
                        .zip(qa)
                        .map(|(&x, &y)| x as i8 as i32 * y as i32)
                        .sum();
                    *out += dw * a.d[b] * isum as f32;
                }
            }
            QuantType::Q4_0 | QuantType::Q4_1 => {
                let (mw, qs) = if ty == QuantType::Q4_1 {
                    (block_half(blk, 2), &blk[4..4 + BLOCK / 2])
                } else {
                    (-8.0 * dw, &blk[2..2 + BLOCK / 2])
                };
                for (a, out) in acts.iter().zip(acc.iter_mut()) {
                    let qa = &a.qs[b * BLOCK..(b + 1) * BLOCK];
                    let mut isum = 0i32;
                    for (j, &x) in qs.iter().enumerate() {
                        isum += (x & 15) as i32 * qa[j] as i32
                            + (x >> 4) as i32 * qa[j + BLOCK / 2] as i32;
                    }
                    *out += dw * a.d[b] * isum as f32 + mw * a.s[b];
                }
            }
        }
    }
    acc
}
