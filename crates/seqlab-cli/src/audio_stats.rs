//! Statistics that tell a generated clip from silence and from white noise (issue 4: "not
//! silence or white noise — energy envelope and spectral flatness differ from noise").
//!
//! The clip is cut into non-overlapping 20 ms frames (320 samples at 16 kHz). Per frame:
//!
//! - RMS energy `e_f = √(mean x²)`; the **envelope coefficient of variation** is
//!   `CV = std(e) / mean(e)` over all frames. Stationary white noise has `CV ≈ 0` (about
//!   `1/√(2·320)` ≈ 0.04 from sampling alone); speech switches between syllables and pauses, CV ≳ 0.5.
//! - **Spectral flatness** (Wiener entropy, Gray & Markel 1974; Johnston 1988):
//!   `SF = exp(mean_k ln P_k) / mean_k P_k` of the Hann-windowed power spectrum `P_k`
//!   (bins 1 … N/2, DC excluded), averaged over the non-silent frames. White noise: SF ≈ e^{−γ}
//!   ≈ 0.56 (the geometric/arithmetic mean ratio of exponentially distributed powers); voiced
//!   speech, harmonic and band-limited: SF ≲ 0.1.
//! - A frame is **silent** when its RMS is below −60 dBFS (1e−3 of full scale).
//!
//! [`verdict`] turns these into `silence` / `noise` / `steady` / `structured`; a clip "differs
//! from noise" in the issue's sense when it is `structured`: both its spectrum (SF ≤ 0.3) and its
//! envelope (CV ≥ 0.3) differ from stationary white noise.

use serde_json::json;

/// Frame length in seconds.
pub const FRAME_SECONDS: f64 = 0.020;
/// RMS below which a frame counts as silent (−60 dBFS, samples in [−1, 1]).
pub const SILENT_RMS: f64 = 1e-3;

/// Statistics of one clip (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipStats {
    /// RMS of the whole clip.
    pub rms: f64,
    /// Coefficient of variation of the 20 ms RMS envelope.
    pub envelope_cv: f64,
    /// Mean spectral flatness of the non-silent frames (0 when every frame is silent).
    pub spectral_flatness: f64,
    /// Fraction of silent frames.
    pub silent_fraction: f64,
    /// Frames analysed.
    pub frames: usize,
}

impl ClipStats {
    /// The statistics as a JSON object (with the [`verdict`]).
    pub fn to_json(self) -> serde_json::Value {
        json!({
            "rms": self.rms,
            "envelope_cv": self.envelope_cv,
            "spectral_flatness": self.spectral_flatness,
            "silent_fraction": self.silent_fraction,
            "frames": self.frames,
            "verdict": verdict(&self),
        })
    }
}

/// Statistics of `x` (samples in [−1, 1]) at `sample_rate`; a clip shorter than one frame is
/// analysed as one zero-padded frame.
pub fn clip_stats(x: &[f32], sample_rate: u32) -> ClipStats {
    let n = ((FRAME_SECONDS * f64::from(sample_rate)).round() as usize).max(16);
    let frames = (x.len() / n).max(1);
    let hann: Vec<f64> = (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect();
    let (cos, sin): (Vec<f64>, Vec<f64>) = (0..n)
        .map(|k| {
            let a = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            (a.cos(), a.sin())
        })
        .unzip();
    let mut env = Vec::with_capacity(frames);
    let (mut flat_sum, mut voiced) = (0.0, 0usize);
    let mut total_sq = 0.0;
    for f in 0..frames {
        let frame: Vec<f64> = (0..n)
            .map(|i| x.get(f * n + i).copied().unwrap_or(0.0) as f64)
            .collect();
        let sq: f64 = frame.iter().map(|v| v * v).sum();
        total_sq += sq;
        let rms = (sq / n as f64).sqrt();
        env.push(rms);
        if rms < SILENT_RMS {
            continue;
        }
        // Power spectrum of the Hann-windowed frame, bins 1..=n/2 (naive DFT; 50 frames/s).
        let (mut log_sum, mut sum) = (0.0, 0.0);
        let bins = n / 2;
        for k in 1..=bins {
            let (mut re, mut im) = (0.0, 0.0);
            for (i, v) in frame.iter().enumerate() {
                let j = (k * i) % n;
                re += v * hann[i] * cos[j];
                im -= v * hann[i] * sin[j];
            }
            let p = re * re + im * im + 1e-20;
            log_sum += p.ln();
            sum += p;
        }
        flat_sum += (log_sum / bins as f64).exp() / (sum / bins as f64);
        voiced += 1;
    }
    let mean = env.iter().sum::<f64>() / frames as f64;
    let var = env.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / frames as f64;
    ClipStats {
        rms: (total_sq / (frames * n) as f64).sqrt(),
        envelope_cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        spectral_flatness: if voiced > 0 {
            flat_sum / voiced as f64
        } else {
            0.0
        },
        silent_fraction: env.iter().filter(|&&e| e < SILENT_RMS).count() as f64 / frames as f64,
        frames,
    }
}

/// `silence` when ≥ 95% of the frames are silent; `noise` when the sounding frames have a flat
/// spectrum (SF > 0.3: white or lightly coloured noise, steady or in bursts, or clicks);
/// `steady` when the spectrum is peaked but the envelope does not move (CV < 0.3: a tone or a
/// hum); otherwise `structured` (peaked spectrum and an envelope that comes and goes, as speech).
pub fn verdict(s: &ClipStats) -> &'static str {
    if s.silent_fraction >= 0.95 {
        "silence"
    } else if s.spectral_flatness > 0.3 {
        "noise"
    } else if s.envelope_cv < 0.3 {
        "steady"
    } else {
        "structured"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real spoken digit ("seven", espeak-ng via `datasets/synth_digits.sh`, test-split voice),
    /// 1 s of 8-bit mu-law codes at 16 kHz.
    const DIGIT_MULAW: &[u8] = include_bytes!("../tests/data/digit_seven.mulaw");

    /// Seeded Gaussian white noise of standard deviation `amp`.
    fn white_noise(n: usize, amp: f64, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| (amp * rng.sample::<f64, _>(rand_distr::StandardNormal)) as f32)
            .collect()
    }

    #[test]
    fn separates_noise_silence_and_speech() {
        let noise = clip_stats(&white_noise(16_000, 0.1, 1), 16_000);
        assert_eq!(noise.frames, 50);
        assert!((noise.spectral_flatness - 0.56).abs() < 0.04, "{noise:?}");
        assert!(noise.envelope_cv < 0.1, "{noise:?}");
        assert!((noise.rms - 0.1).abs() < 0.005);
        assert_eq!(noise.silent_fraction, 0.0);
        assert_eq!(verdict(&noise), "noise");

        let silence = clip_stats(&vec![0.0; 16_000], 16_000);
        assert_eq!(
            (
                silence.silent_fraction,
                silence.rms,
                silence.spectral_flatness
            ),
            (1.0, 0.0, 0.0)
        );
        assert_eq!(verdict(&silence), "silence");
        // Dither far below −60 dBFS is still silence.
        assert_eq!(
            verdict(&clip_stats(&white_noise(16_000, 1e-4, 2), 16_000)),
            "silence"
        );

        let speech: Vec<f32> = seqlab_tokenizer::MuLaw.decode_slice(DIGIT_MULAW);
        let s = clip_stats(&speech, 16_000);
        assert!(s.spectral_flatness < 0.2, "{s:?}");
        assert!(s.envelope_cv > 0.5, "{s:?}");
        assert!(s.silent_fraction > 0.05 && s.silent_fraction < 0.9, "{s:?}");
        assert_eq!(verdict(&s), "structured");
        // A pure tone: peaked spectrum.
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (0.3 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16e3).sin()) as f32)
            .collect();
        let t = clip_stats(&tone, 16_000);
        assert!(t.spectral_flatness < 0.05 && t.envelope_cv < 0.05, "{t:?}");
        assert_eq!(verdict(&t), "steady");
        // Noise in bursts (on 0.2 s, off 0.2 s): the envelope moves, the spectrum stays flat.
        let bursts: Vec<f32> = white_noise(16_000, 0.1, 3)
            .iter()
            .enumerate()
            .map(|(i, &v)| if (i / 3200) % 2 == 0 { v } else { 0.0 })
            .collect();
        let b = clip_stats(&bursts, 16_000);
        assert!(b.envelope_cv > 0.8 && b.spectral_flatness > 0.5, "{b:?}");
        assert_eq!(verdict(&b), "noise");
        // Shorter than one frame: one padded frame.
        assert_eq!(clip_stats(&[0.5; 10], 16_000).frames, 1);
        let j = s.to_json();
        assert_eq!(j["verdict"], "structured");
    }
}
