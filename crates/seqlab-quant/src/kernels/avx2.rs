//! AVX2 kernels (ggml's approach): a block's 32 weights become 32 unsigned bytes (Q4: the low
//! and high nibbles, 0..=15) or stay signed bytes (Q8_0: multiplied through `vpsignb` so the
//! unsigned operand is |w| and the signed one a·sign(w)); `vpmaddubsw` + `vpmaddwd` give eight
//! exact i32 partial sums, which are converted to f32 and added with one FMA per block:
//! `acc += (d_w · d_a) · Σ`. The Q4 offset term `m_w · s_a` is summed separately in f32.

use crate::activations::ActRow;
use crate::format::{QuantType, BLOCK};
use std::arch::x86_64::*;

/// The f32 values of the f16 pair at `p` (scale, and minimum for Q4_1).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn halves2(p: *const u8) -> (f32, f32) {
    // SAFETY: the caller guarantees 4 readable bytes at `p`.
    let bits = unsafe { (p as *const u32).read_unaligned() };
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// The f32 value of the f16 at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn half1(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes at `p`.
    let bits = unsafe { (p as *const u16).read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// A Q4 block's (scale, offset): (d, m) for Q4_1, (d, −8·d) for Q4_0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q4_scales(p: *const u8, q4_1: bool) -> (f32, f32) {
    // SAFETY: the caller guarantees a whole block at `p`.
    unsafe {
        if q4_1 {
            halves2(p)
        } else {
            let d = half1(p);
            (d, -8.0 * d)
        }
    }
}

/// Σ of the eight lanes, in a fixed order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// The 32 weights of a Q4 block's 16 bytes at `p` as unsigned bytes 0..=15 (elements 0..16
/// from the low nibbles, 16..32 from the high ones).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn unpack_q4(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes at `p`.
    let raw = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let mask = _mm_set1_epi8(15);
    let lo = _mm_and_si128(raw, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
    _mm256_set_m128i(hi, lo)
}

/// See [`crate::kernels`].
///
/// # Safety
/// AVX2, FMA and F16C must be available; `w` holds whole blocks of `ty` and every row of
/// `acts` has as many blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_rows<const N: usize>(
    ty: QuantType,
    w: &[u8],
    acts: &[ActRow<'_>; N],
) -> [f32; N] {
    let bs = ty.block_bytes();
    let nb = w.len() / bs;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut macc = [0f32; N];
    let base = w.as_ptr();
    // SAFETY (all loads below): block b spans bytes b·bs..(b+1)·bs of `w` (b < nb), and each
    // activation row has nb·32 values and nb scales (the caller's contract).
    unsafe {
        match ty {
            QuantType::Q8_0 => {
                for b in 0..nb {
                    let p = base.add(b * bs);
                    let dw = half1(p);
                    let wv = _mm256_loadu_si256(p.add(2) as *const __m256i);
                    let wabs = _mm256_sign_epi8(wv, wv);
                    for (a, acc) in acts.iter().zip(acc.iter_mut()) {
                        let av = _mm256_loadu_si256(a.qs.as_ptr().add(b * BLOCK) as *const __m256i);
                        let sa = _mm256_sign_epi8(av, wv);
                        let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, sa), ones);
                        let scale = _mm256_set1_ps(dw * *a.d.get_unchecked(b));
                        *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), *acc);
                    }
                }
            }
            QuantType::Q4_0 | QuantType::Q4_1 => {
                let q4_1 = ty == QuantType::Q4_1;
                for b in 0..nb {
                    let p = base.add(b * bs);
                    let (dw, mw) = q4_scales(p, q4_1);
                    let wv = unpack_q4(p.add(if q4_1 { 4 } else { 2 }));
                    for ((a, acc), macc) in acts.iter().zip(acc.iter_mut()).zip(macc.iter_mut()) {
                        let av = _mm256_loadu_si256(a.qs.as_ptr().add(b * BLOCK) as *const __m256i);
                        let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, av), ones);
                        let scale = _mm256_set1_ps(dw * *a.d.get_unchecked(b));
                        *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), *acc);
                        *macc += mw * *a.s.get_unchecked(b);
                    }
                }
            }
        }
    }
    let mut out = [0f32; N];
    for ((o, acc), macc) in out.iter_mut().zip(acc).zip(macc) {
        *o = hsum(acc) + macc;
    }
    out
}
