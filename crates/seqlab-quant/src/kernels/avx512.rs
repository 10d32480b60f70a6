//! AVX-512 VNNI kernels: two consecutive blocks fill one 64-byte register, and `vpdpbusd`
//! multiplies unsigned weight bytes by signed activation bytes and sums each group of four
//! into sixteen exact i32 lanes (eight per block). Lanes 0..8 are scaled by block b's
//! `d_w · d_a` and lanes 8..16 by block b+1's, with one FMA into a 16-lane f32 accumulator.
//! Q8_0 moves the weight signs onto the activations (|w| unsigned, a·sign(w) signed) with a
//! masked subtract, as `vpsignb` does at 256 bits. An odd last block runs at 256 bits
//! (`vpdpbusd ymm`). The Q4 offset term `m_w · s_a` is summed separately in f32.

use super::avx2::{half1, hsum, q4_scales, unpack_q4};
use crate::activations::ActRow;
use crate::format::{QuantType, BLOCK};
use std::arch::x86_64::*;

/// Per-lane scales of a block pair: `dw · da` with `dw = (d_b, d_b+1)` and `da` the activation
/// scales of blocks b, b+1 read at `da`; lanes 0..8 get block b's product, lanes 8..16 block
/// b+1's.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
unsafe fn pair_scales(dw: __m128, da: *const f32, spread: __m512i) -> __m512 {
    // SAFETY: the caller guarantees two readable f32 at `da`.
    let a = unsafe { _mm_castsi128_ps(_mm_loadl_epi64(da as *const __m128i)) };
    _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_mul_ps(dw, a)))
}

/// Two f32 at `p` in lanes 0, 1 (lanes 2, 3 zero).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
unsafe fn load2(p: *const f32) -> __m128 {
    // SAFETY: the caller guarantees two readable f32 at `p`.
    unsafe { _mm_castsi128_ps(_mm_loadl_epi64(p as *const __m128i)) }
}

/// Σ of the sixteen lanes, in a fixed order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
fn hsum512(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm512_extractf32x8_ps(v, 1);
    hsum(_mm256_add_ps(lo, hi))
}

/// See [`crate::kernels`].
///
/// # Safety
/// AVX-512 F/BW/VL/DQ/VNNI, AVX2, FMA and F16C must be available; `w` holds whole blocks of
/// `ty` and every row of `acts` has as many blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn dot_rows<const N: usize>(
    ty: QuantType,
    w: &[u8],
    acts: &[ActRow<'_>; N],
) -> [f32; N] {
    let bs = ty.block_bytes();
    let nb = w.len() / bs;
    let pairs = nb / 2;
    let zero = _mm512_setzero_si512();
    let mut acc = [_mm512_setzero_ps(); N];
    let mut tail = [_mm256_setzero_ps(); N];
    let mut macc = [0f32; N];
    let mut macc2 = [_mm_setzero_ps(); N];
    // Lane i of a pair's scale vector takes element ⌊i / 8⌋ of the (d_b·a_b, d_b+1·a_b+1) pair.
    let spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    let base = w.as_ptr();
    // SAFETY (all loads below): block b spans bytes b·bs..(b+1)·bs of `w` (b < nb), and each
    // activation row has nb·32 values and nb scales (the caller's contract).
    unsafe {
        match ty {
            QuantType::Q8_0 => {
                for pb in 0..pairs {
                    let b = 2 * pb;
                    let (p0, p1) = (base.add(b * bs), base.add((b + 1) * bs));
                    let dw = _mm_setr_ps(half1(p0), half1(p1), 0.0, 0.0);
                    let w0 = _mm256_loadu_si256(p0.add(2) as *const __m256i);
                    let w1 = _mm256_loadu_si256(p1.add(2) as *const __m256i);
                    let wv = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
                    let wabs = _mm512_abs_epi8(wv);
                    let neg = _mm512_movepi8_mask(wv);
                    for (a, acc) in acts.iter().zip(acc.iter_mut()) {
                        let av = _mm512_loadu_si512(a.qs.as_ptr().add(b * BLOCK) as *const _);
                        let sa = _mm512_mask_sub_epi8(av, neg, zero, av);
                        let dot = _mm512_dpbusd_epi32(zero, wabs, sa);
                        let scale = pair_scales(dw, a.d.as_ptr().add(b), spread);
                        *acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), *acc);
                    }
                }
                if !nb.is_multiple_of(2) {
                    let b = nb - 1;
                    let p = base.add(b * bs);
                    let dw = half1(p);
                    let wv = _mm256_loadu_si256(p.add(2) as *const __m256i);
                    let wabs = _mm256_sign_epi8(wv, wv);
                    for (a, tail) in acts.iter().zip(tail.iter_mut()) {
                        let av = _mm256_loadu_si256(a.qs.as_ptr().add(b * BLOCK) as *const __m256i);
                        let sa = _mm256_sign_epi8(av, wv);
                        let dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wabs, sa);
                        let scale = _mm256_set1_ps(dw * *a.d.get_unchecked(b));
                        *tail = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), *tail);
                    }
                }
            }
            QuantType::Q4_0 | QuantType::Q4_1 => {
                let q4_1 = ty == QuantType::Q4_1;
                let qoff = if q4_1 { 4 } else { 2 };
                for pb in 0..pairs {
                    let b = 2 * pb;
                    let (p0, p1) = (base.add(b * bs), base.add((b + 1) * bs));
                    let ((d0, m0), (d1, m1)) = (q4_scales(p0, q4_1), q4_scales(p1, q4_1));
                    let (dw, mw) = (_mm_setr_ps(d0, d1, 0.0, 0.0), _mm_setr_ps(m0, m1, 0.0, 0.0));
                    let wv = _mm512_inserti64x4(
                        _mm512_castsi256_si512(unpack_q4(p0.add(qoff))),
                        unpack_q4(p1.add(qoff)),
                        1,
                    );
                    for ((a, acc), macc2) in acts.iter().zip(acc.iter_mut()).zip(macc2.iter_mut()) {
                        let av = _mm512_loadu_si512(a.qs.as_ptr().add(b * BLOCK) as *const _);
                        let dot = _mm512_dpbusd_epi32(zero, wv, av);
                        let scale = pair_scales(dw, a.d.as_ptr().add(b), spread);
                        *acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), *acc);
                        *macc2 = _mm_fmadd_ps(mw, load2(a.s.as_ptr().add(b)), *macc2);
                    }
                }
                if !nb.is_multiple_of(2) {
                    let b = nb - 1;
                    let p = base.add(b * bs);
                    let (dw, mw) = q4_scales(p, q4_1);
                    let wv = unpack_q4(p.add(qoff));
                    for ((a, tail), macc) in acts.iter().zip(tail.iter_mut()).zip(macc.iter_mut()) {
                        let av = _mm256_loadu_si256(a.qs.as_ptr().add(b * BLOCK) as *const __m256i);
                        let dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, av);
                        let scale = _mm256_set1_ps(dw * *a.d.get_unchecked(b));
                        *tail = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), *tail);
                        *macc += mw * *a.s.get_unchecked(b);
                    }
                }
            }
        }
    }
    let mut out = [0f32; N];
    for ((((o, acc), tail), macc), macc2) in out.iter_mut().zip(acc).zip(tail).zip(macc).zip(macc2)
    {
        let pairs = _mm_cvtss_f32(macc2) + _mm_cvtss_f32(_mm_movehdup_ps(macc2));
        *o = hsum512(acc) + hsum(tail) + (pairs + macc);
    }
    out
}
