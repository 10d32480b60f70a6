//! Byte-level mutations of a seed file. A seed may name its integer fields (offset and width,
//! e.g. a safetensors header length or a GGUF count); those are overwritten with huge, zero,
//! negative and off-by-one values far more often than random bytes are, since a length read
//! from the file is what a loader most easily trusts too much.

use crate::rng::Rng;

/// An integer field inside a seed: its byte offset and width (1, 2, 4 or 8, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Byte offset of the field in the seed.
    pub offset: usize,
    /// Width in bytes.
    pub width: usize,
}

/// Values a length, count or offset field is set to: the edges of every integer width, values
/// just past them, and sizes a loader must not allocate on trust.
pub const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x1_0000_0000,
    1 << 40,
    1 << 48,
    0x7FFF_FFFF_FFFF_FFFF,
    0x8000_0000_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

/// Bytes that make text formats interesting: delimiters, quotes, escapes, digits.
const TEXT_BYTES: &[u8] = b"{}[]\",:\\-+.eE0123456789 \n\ttfn\x00\xff";

/// One random mutation of `seed` (`fields`: its integer fields; `others`: the other seeds, for
/// splicing). Returns the mutated bytes and a short name of what was done.
pub fn mutate(rng: &mut Rng, seed: &[u8], fields: &[Field], others: &[&[u8]]) -> (Vec<u8>, String) {
    let mut b = seed.to_vec();
    let rounds = 1 + rng.below(3);
    let mut what = Vec::new();
    for _ in 0..rounds {
        what.push(mutate_once(rng, &mut b, fields, others));
    }
    (b, what.join("+"))
}

fn mutate_once(rng: &mut Rng, b: &mut Vec<u8>, fields: &[Field], others: &[&[u8]]) -> String {
    if b.is_empty() {
        b.extend((0..1 + rng.below(16)).map(|_| rng.next_u64() as u8));
        return "fill".into();
    }
    let n = b.len();
    match rng.below(11) {
        0 => {
            let at = rng.below(n);
            b.truncate(at);
            format!("truncate@{at}")
        }
        1 => {
            let at = rng.below(n);
            b[at] ^= 1 << rng.below(8);
            format!("bitflip@{at}")
        }
        2 => {
            let at = rng.below(n);
            b[at] = rng.next_u64() as u8;
            format!("byte@{at}")
        }
        3 | 4 if !fields.is_empty() => {
            let f = *rng.pick(fields);
            let v = interesting(rng, f.width);
            store(b, f.offset, f.width, v);
            format!("field@{}={v:#x}", f.offset)
        }
        3..=5 => {
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let at = rng.below(n);
            let v = interesting(rng, width);
            store(b, at, width, v);
            format!("int{width}@{at}={v:#x}")
        }
        6 => {
            let at = rng.below(n);
            let len = 1 + rng.below((n - at).min(64));
            b.drain(at..at + len);
            format!("delete@{at}+{len}")
        }
        7 => {
            let at = rng.below(n);
            let len = 1 + rng.below((n - at).min(256));
            let chunk = b[at..at + len].to_vec();
            let times = 1 + rng.below(8);
            for _ in 0..times {
                b.splice(at..at, chunk.iter().copied());
            }
            format!("duplicate@{at}+{len}x{times}")
        }
        8 => {
            let at = rng.below(n + 1);
            let len = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..len).map(|_| *rng.pick(TEXT_BYTES)).collect();
            b.splice(at..at, bytes);
            format!("insert@{at}+{len}")
        }
        9 if !others.is_empty() => {
            let other = *rng.pick(others);
            let at = rng.below(n + 1);
            let from = rng.below(other.len() + 1);
            b.truncate(at);
            b.extend_from_slice(&other[from..]);
            format!("splice@{at}<-{from}")
        }
        _ => {
            let at = rng.below(n);
            let len = 1 + rng.below((n - at).min(16));
            let v = rng.next_u64() as u8;
            b[at..at + len].fill(v);
            format!("fill@{at}+{len}={v:#x}")
        }
    }
}

/// An interesting value that fits in `width` bytes, sometimes off by one.
fn interesting(rng: &mut Rng, width: usize) -> u64 {
    let mask = if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let v = *rng.pick(INTERESTING) & mask;
    match rng.below(4) {
        0 => v.wrapping_add(1) & mask,
        1 => v.wrapping_sub(1) & mask,
        _ => v,
    }
}

/// Stores `value` little-endian in `width` bytes at `at` (clipped at the end of `b`).
pub fn store(b: &mut [u8], at: usize, width: usize, value: u64) {
    for (i, byte) in value.to_le_bytes().iter().take(width).enumerate() {
        if let Some(slot) = b.get_mut(at + i) {
            *slot = *byte;
        }
    }
}

/// The cut points of a seed of `len` bytes: every structural boundary given (and its
/// neighbours), plus every `stride`-th byte; sorted, without duplicates, all `< len`.
pub fn cut_points(len: usize, boundaries: &[usize], stride: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..len).step_by(stride.max(1)).collect();
    for &b in boundaries {
        for c in [b.saturating_sub(1), b, b + 1] {
            if c < len {
                cuts.push(c);
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}
