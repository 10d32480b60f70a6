//! 8-bit mu-law companding (ITU-T G.711's continuous form, μ = 255), the audio "tokenizer" of
//! WaveNet (van den Oord et al., 2016) and SaShiMi (Goel et al., 2022).
//!
//! Compression, for a sample `x ∈ [-1, 1]` (inputs outside are clipped first):
//!
//! ```text
//! F(x) = sgn(x) · ln(1 + μ|x|) / ln(1 + μ)                          ∈ [-1, 1]
//! q    = ⌊ (F(x) + 1) / 2 · μ + 0.5 ⌋                               ∈ {0, …, 255}
//! ```
//!
//! and expansion of a code `q`:
//!
//! ```text
//! y    = 2q/μ − 1,    x̂ = F⁻¹(y) = sgn(y) · ((1 + μ)^|y| − 1) / μ
//! ```
//!
//! exactly as torchaudio's `mu_law_encoding` / `mu_law_decoding` (which do not clip). Silence
//! (x = 0) maps to the middle code 128, which decodes to ≈ 8.6e-5 (no code decodes to exactly 0).
//! NaN is treated as silence.
//!
//! **Error bound.** Rounding puts `ŷ = F(x̂)` within half a level of `F(x)`: `|F(x) − F(x̂)| ≤ 1/μ`.
//! Since `dx/dy = ln(1+μ)/μ · (1+μ)^|y|` and `(1+μ)^|y| = 1 + μ|x|`, the mean value theorem over
//! `|ξ| ≤ |y| + 1/μ` gives
//!
//! ```text
//! |x − x̂| ≤ (1 + μ|x|) · ln(1+μ)/μ · 1/μ · (1+μ)^(1/μ)     ((1+μ)^(1/μ) ≈ 1.022 for μ = 255)
//! ```
//!
//! i.e. an absolute error ≤ 8.7e-5 near silence and a relative error ≤ 2·ln(256)/255·1.022 ≈ 4.4 %
//! for every |x| ≥ 1/μ: the constant-relative-precision promise of mu-law.

use crate::{Result, TokenizerError};

/// The mu-law codec with μ = 255: 256 codes, one per token id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MuLaw;

impl MuLaw {
    /// μ.
    pub const MU: f64 = 255.0;
    /// Number of codes (the vocabulary size of a mu-law audio model).
    pub const LEVELS: usize = 256;
    /// Code of silence.
    pub const SILENCE: u8 = 128;

    /// Number of codes, 256.
    pub fn vocab_size(&self) -> usize {
        Self::LEVELS
    }

    /// `F(x) = sgn(x) · ln(1 + μ|x|) / ln(1 + μ)` for x clipped to `[-1, 1]` (NaN → 0).
    pub fn compress(&self, x: f64) -> f64 {
        let x = if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) };
        x.signum() * (Self::MU * x.abs()).ln_1p() / Self::MU.ln_1p()
    }

    /// `F⁻¹(y) = sgn(y) · ((1 + μ)^|y| − 1) / μ` for y clipped to `[-1, 1]`.
    pub fn expand(&self, y: f64) -> f64 {
        let y = if y.is_nan() { 0.0 } else { y.clamp(-1.0, 1.0) };
        y.signum() * (y.abs() * Self::MU.ln_1p()).exp_m1() / Self::MU
    }

    /// Code of a sample: `⌊(F(x) + 1)/2 · μ + 0.5⌋`. Samples outside `[-1, 1]` are clipped.
    pub fn encode(&self, sample: f32) -> u8 {
        let q = ((self.compress(f64::from(sample)) + 1.0) / 2.0 * Self::MU + 0.5).floor();
        q.clamp(0.0, Self::MU) as u8
    }

    /// Sample of a code: `F⁻¹(2q/μ − 1)`.
    pub fn decode(&self, code: u8) -> f32 {
        self.expand(2.0 * f64::from(code) / Self::MU - 1.0) as f32
    }

    /// Codes of samples.
    pub fn encode_slice(&self, samples: &[f32]) -> Vec<u8> {
        samples.iter().map(|&x| self.encode(x)).collect()
    }

    /// Samples of codes.
    pub fn decode_slice(&self, codes: &[u8]) -> Vec<f32> {
        codes.iter().map(|&q| self.decode(q)).collect()
    }

    /// Code of a 16-bit PCM sample, read as `s / 32768` (so −32768 is −1.0).
    pub fn encode_i16(&self, sample: i16) -> u8 {
        self.encode(f32::from(sample) / 32768.0)
    }

    /// 16-bit PCM sample of a code: `round(x̂ · 32768)` clamped to the i16 range.
    pub fn decode_i16(&self, code: u8) -> i16 {
        (f64::from(self.decode(code)) * 32768.0)
            .round()
            .clamp(-32768.0, 32767.0) as i16
    }

    /// Codes of 16-bit PCM samples.
    pub fn encode_i16_slice(&self, samples: &[i16]) -> Vec<u8> {
        samples.iter().map(|&s| self.encode_i16(s)).collect()
    }

    /// 16-bit PCM samples of codes.
    pub fn decode_i16_slice(&self, codes: &[u8]) -> Vec<i16> {
        codes.iter().map(|&q| self.decode_i16(q)).collect()
    }

    /// Token ids (the codes as `u32`) of samples, for a language model over audio.
    pub fn encode_ids(&self, samples: &[f32]) -> Vec<u32> {
        samples.iter().map(|&x| u32::from(self.encode(x))).collect()
    }

    /// Samples of token ids; an id ≥ 256 is an error.
    pub fn decode_ids(&self, ids: &[u32]) -> Result<Vec<f32>> {
        ids.iter()
            .map(|&id| {
                u8::try_from(id)
                    .map(|q| self.decode(q))
                    .map_err(|_| TokenizerError::IdOutOfRange {
                        id,
                        vocab_size: Self::LEVELS,
                    })
            })
            .collect()
    }

    /// The bound on `|x − x̂|` derived in the module docs, for a sample `x` in `[-1, 1]`.
    pub fn error_bound(&self, x: f64) -> f64 {
        let mu = Self::MU;
        (1.0 + mu * x.abs().min(1.0)) * mu.ln_1p() / mu / mu * (1.0 + mu).powf(1.0 / mu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: MuLaw = MuLaw;

    #[test]
    fn every_code_decodes_and_reencodes_to_itself() {
        for q in 0..=255u8 {
            assert_eq!(M.encode(M.decode(q)), q, "code {q}");
        }
        assert_eq!(M.vocab_size(), 256);
    }

    #[test]
    fn extremes_silence_and_clipping() {
        assert_eq!(M.encode(0.0), MuLaw::SILENCE);
        assert_eq!(M.encode(-0.0), MuLaw::SILENCE);
        assert_eq!(M.encode(f32::NAN), MuLaw::SILENCE);
        assert_eq!(M.encode(1.0), 255);
        assert_eq!(M.encode(-1.0), 0);
        assert_eq!(M.encode(7.5), 255);
        assert_eq!(M.encode(f32::NEG_INFINITY), 0);
        assert_eq!(M.decode(255), 1.0);
        assert_eq!(M.decode(0), -1.0);
        assert!(M.decode(128).abs() < 1e-4);
        assert_eq!(M.encode_i16(0), 128);
        assert_eq!(M.encode_i16(i16::MIN), 0);
        assert_eq!(M.decode_i16(0), -32768);
        assert_eq!(M.decode_i16(255), 32767);
    }

    #[test]
    fn matches_torchaudio_reference_values() {
        // torchaudio's mu_law_encoding formula evaluated in float32 (numpy) for these x:
        // ((sgn(x)·log1p(μ|x|)/log1p(μ) + 1)/2·μ + 0.5).to(int64).
        let table = [
            (0.5f32, 239u8),
            (-0.5, 16),
            (0.01, 157),
            (-0.01, 98),
            (0.1, 203),
            (0.9, 253),
            (-0.003, 114),
        ];
        for (x, q) in table {
            assert_eq!(M.encode(x), q, "x = {x}");
        }
    }

    #[test]
    fn monotone_encode_and_decode() {
        let mut prev = 0u8;
        for i in 0..=200_000 {
            let x = -1.0 + 2.0 * i as f32 / 200_000.0;
            let q = M.encode(x);
            assert!(q >= prev, "encode not monotone at {x}");
            prev = q;
        }
        for q in 1..=255u8 {
            assert!(M.decode(q) > M.decode(q - 1));
        }
    }

    #[test]
    fn round_trip_error_is_bounded_as_mu_law_promises() {
        let n = 400_000;
        let mut worst_ratio = 0.0f64;
        for i in 0..=n {
            // Dense grid in x, plus a log-spaced grid near zero where the bound is tightest.
            let lin = -1.0 + 2.0 * i as f64 / n as f64;
            let log = (10f64).powf(-7.0 + 7.0 * i as f64 / n as f64);
            for x in [lin, log, -log] {
                let xf = x as f32;
                let x = f64::from(xf);
                let xh = f64::from(M.decode(M.encode(xf)));
                // Quantisation of the companded value: at most half a level of 2/μ.
                let dy = (M.compress(x) - M.compress(xh)).abs();
                assert!(dy <= 1.0 / MuLaw::MU + 1e-6, "|F(x)-F(x^)| = {dy} at {x}");
                // Absolute error in x, bounded relative to 1 + μ|x|.
                let err = (x - xh).abs();
                let bound = M.error_bound(x);
                assert!(
                    err <= bound * (1.0 + 1e-5) + 1e-7,
                    "x={x}: err {err} > {bound}"
                );
                worst_ratio = worst_ratio.max(err / bound);
                // Relative error for |x| ≥ 1/μ.
                if x.abs() >= 1.0 / MuLaw::MU {
                    assert!(
                        err / x.abs() <= 0.0445,
                        "relative error {} at {x}",
                        err / x.abs()
                    );
                }
            }
        }
        // The bound is tight to within the (1+μ)^(1/μ) factor and the clipping at ±1.
        assert!(
            worst_ratio > 0.9,
            "bound is loose: worst err/bound = {worst_ratio}"
        );
    }

    #[test]
    fn id_helpers() {
        let x = [0.0f32, 0.5, -1.0];
        let ids = M.encode_ids(&x);
        assert_eq!(ids, vec![128, 239, 0]);
        let back = M.decode_ids(&ids).unwrap();
        assert_eq!(back, M.decode_slice(&M.encode_slice(&x)));
        assert!(M.decode_ids(&[256]).is_err());
        let pcm = [0i16, 1000, -1000, 32767];
        assert_eq!(
            M.decode_i16_slice(&M.encode_i16_slice(&pcm)).len(),
            pcm.len()
        );
    }
}
