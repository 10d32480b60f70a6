//! Row-exact causal attention for decoding on the CPU: `softmax(q kᵀ/√hd + M) v` per query row,
//! each row computed by the same fixed-order loops whatever the number of rows in the call.
//!
//! Why: a decoder compares one-token [`CausalLm::step`](crate::CausalLm::step) logits with
//! multi-token `score`/`prefill` ones (lossless speculative decoding verifies with `score`).
//! The batched matmuls of [`super::attention`] (candle's gemm) pick their kernels and blocking by
//! the number of rows (G·L), so one query row's scores differ in the last bits between a 1-row
//! and a 15-row call (~1e-6). A dense f32 model carries that ~1e-6 to the logits, but a quantized
//! one (GGUF Q4_1 / Q8_0 through candle's `QMatMul`) re-quantizes every activation row to 8 bits
//! per 32-block: a 1e-6 change flips an int8 rounding, a flip moves the row by a whole quantum
//! (block max / 127), and 30 layers of that gave logit differences of 0.1–0.5 on SmolLM2-135M.
//! Here every output row depends only on its own query row, the keys and values it sees and
//! fixed-order f32 arithmetic, so step, score and prefill agree bit for bit.
//!
//! Query row i of a call that continues `offset` cached positions sees keys `0..=offset + i`
//! (the causal mask M); the masked keys are skipped, which is what `exp(−10³⁰ − max) = 0` gives
//! in the masked formulation.

use crate::error::{LmError, Result};
use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Causal grouped-query attention over a KV cache, computed row by row on the CPU (module docs).
/// `q` (B, H, L, hd), `k`, `v` (B, H_kv, offset + L, hd) f32; query head h reads kv head
/// ⌊h / group⌋. Returns (B, H, L, hd). No gradient.
pub fn causal_attention_rows(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    offset: usize,
    group: usize,
) -> Result<Tensor> {
    let (b, h, l, hd) = q.dims4()?;
    let (bk, hkv, lk, hdk) = k.dims4()?;
    if v.dims() != k.dims() || bk != b || hdk != hd || hkv * group != h || lk != offset + l {
        return Err(LmError::Shape(format!(
            "causal attention: q {:?}, k {:?}, v {:?} with offset {offset} and group {group} \
             do not fit",
            q.dims(),
            k.dims(),
            v.dims()
        )));
    }
    let op = CausalAttnRows { offset, group };
    Ok(q.contiguous()?
        .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)?)
}

/// Whether [`causal_attention_rows`] can run on tensors of this device and dtype.
pub fn rows_kernel_applies(device: &Device, dtype: DType) -> bool {
    device.is_cpu() && dtype == DType::F32
}

struct CausalAttnRows {
    offset: usize,
    group: usize,
}

/// `Σ a_i b_i` in a fixed order (8 partial sums, then the lanes left to right, then the tail):
/// vectorizable, and the same bits for the same inputs wherever it is called.
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

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let (start, end) = l.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg("causal attention needs contiguous inputs".into())
    })?;
    Ok(&s.as_slice::<f32>()?[start..end])
}

impl CustomOp3 for CausalAttnRows {
    fn name(&self) -> &'static str {
        "causal-attention-rows"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk_: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (q, k, v) = (slice(sq, lq)?, slice(sk, lk_)?, slice(sv, lv)?);
        let (b, h, l, hd) = lq.shape().dims4()?;
        let lk = lk_.shape().dims4()?.2;
        let (offset, group) = (self.offset, self.group);
        let scale = (1.0 / (hd as f64).sqrt()) as f32;
        let mut out = vec![0f32; b * h * l * hd];
        // One task per (batch row, query head, query row): each writes its own output row.
        let work = |(idx, o): (usize, &mut [f32])| {
            let (bh, i) = (idx / l, idx % l);
            let (bi, hi) = (bh / h, bh % h);
            let kv = bi * (h / group) + hi / group;
            let qr = &q[idx * hd..(idx + 1) * hd];
            let keys = &k[kv * lk * hd..(kv * lk + offset + i + 1) * hd];
            let vals = &v[kv * lk * hd..(kv * lk + offset + i + 1) * hd];
            let mut s: Vec<f32> = keys
                .chunks_exact(hd)
                .map(|kr| dot(qr, kr) * scale)
                .collect();
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for x in s.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            for (p, vr) in s.iter().zip(vals.chunks_exact(hd)) {
                let p = p / sum;
                for (oj, vj) in o.iter_mut().zip(vr) {
                    *oj += p * vj;
                }
            }
        };
        // Threads only change which task runs where, never a task's arithmetic.
        if b * h * l * lk * hd >= 1 << 16 {
            out.par_chunks_mut(hd).enumerate().for_each(work);
        } else {
            out.chunks_mut(hd).enumerate().for_each(work);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, h, l, hd))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transformer::attention;

    /// Equals the masked batched formulation, and every row equals a one-row call over its
    /// visible keys bit for bit (the property the batched matmul lacks beyond a few rows).
    #[test]
    fn rows_match_masked_attention_and_single_rows_exactly() {
        let d = Device::Cpu;
        let (b, hkv, g, hd) = (2, 3, 3, 40);
        for (l, offset) in [(1, 0), (1, 7), (5, 16), (16, 0), (9, 4)] {
            let lk = offset + l;
            let q = Tensor::randn(0f32, 1.0, (b, hkv * g, l, hd), &d).unwrap();
            let k = Tensor::randn(0f32, 1.0, (b, hkv, lk, hd), &d).unwrap();
            let v = Tensor::randn(0f32, 1.0, (b, hkv, lk, hd), &d).unwrap();
            let mut m = vec![0f32; l * lk];
            for i in 0..l {
                m[i * lk + offset + i + 1..(i + 1) * lk].fill(-1e30);
            }
            let mask = Tensor::from_vec(m, (1, 1, 1, l, lk), &d).unwrap();
            let want = attention(&q, &k, &v, Some(&mask), g).unwrap();
            let got = causal_attention_rows(&q, &k, &v, offset, g).unwrap();
            let diff = (got.clone() - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "L {l} offset {offset}: {diff}");
            for i in 0..l {
                let n = offset + i + 1;
                let one = causal_attention_rows(
                    &q.narrow(2, i, 1).unwrap(),
                    &k.narrow(2, 0, n).unwrap(),
                    &v.narrow(2, 0, n).unwrap(),
                    n - 1,
                    g,
                )
                .unwrap();
                let a: Vec<f32> = got
                    .narrow(2, i, 1)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let z: Vec<f32> = one.flatten_all().unwrap().to_vec1().unwrap();
                assert_eq!(a, z, "L {l} offset {offset} row {i}");
            }
        }
    }

    #[test]
    fn misfit_shapes_are_an_error() {
        let d = Device::Cpu;
        let q = Tensor::zeros((1, 4, 2, 8), DType::F32, &d).unwrap();
        let k = Tensor::zeros((1, 2, 3, 8), DType::F32, &d).unwrap();
        // offset 0 + L 2 ≠ 3 keys
        assert!(causal_attention_rows(&q, &k, &k, 0, 2).is_err());
        // 2 kv heads × group 3 ≠ 4 heads
        assert!(causal_attention_rows(&q, &k, &k, 1, 3).is_err());
        assert!(causal_attention_rows(&q, &k, &k, 1, 2).is_ok());
    }
}
