//! Parse-time bounds of the numeric flags that size memory or work: a value outside its range
//! is clap's usage error (status 2) naming the flag and the range, before anything is loaded
//! or allocated. Each bound is far above any sensible use and says why it is where it is; the
//! flag help repeats it.

use clap::builder::RangedU64ValueParser;

/// Most new tokens of `generate` and `speculate` (`--max-new-tokens`): the bound every
/// per-sequence buffer shares, [`seqlab_tensor::limits::MAX_GENERATED_TOKENS`] (1,048,576).
pub const MAX_NEW_TOKENS: u64 = seqlab_tensor::limits::MAX_GENERATED_TOKENS as u64;

/// Most tokens per diffusion sample and per evaluation window (`--length`, `--window`,
/// `--stride`): the same per-sequence bound.
pub const MAX_SEQUENCE_TOKENS: u64 = seqlab_tensor::limits::MAX_GENERATED_TOKENS as u64;

/// Most samples or clips one command draws (`-n`): 100,000; each is generated in full and kept
/// for the summary, so more is a job for several runs.
pub const MAX_SAMPLES: u64 = 100_000;

/// Most reverse steps of a diffusion sampler (`--steps`, `--edlm-steps`): 1,048,576, far past
/// the point where more steps stop changing the samples (the papers use up to 4,096).
pub const MAX_STEPS: u64 = 1 << 20;

/// Most candidates per step (EDLM's `--k`, speculative decoding's `--gamma` / `--gamma-max`,
/// BiLD's `--max-small`): each is a full row of logits; the papers use at most a few dozen.
pub const MAX_CANDIDATES: u64 = 1024;

/// Most repetitions of a timing (`speculate --repeats`).
pub const MAX_REPEATS: u64 = 1000;

/// Longest audio clip `audio generate` writes (`--seconds`): one hour, 57.6 M samples.
pub const MAX_AUDIO_SECONDS: f64 = 3600.0;

/// A count flag in `min..=max` (a `usize` field).
pub fn count(min: u64, max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(min..=max)
}

/// `--seconds` of `audio generate`: a number of at most [`MAX_AUDIO_SECONDS`] (the command
/// itself refuses values ≤ 0 with its own message).
pub fn audio_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if v.is_nan() || v > MAX_AUDIO_SECONDS {
        return Err(format!("{s} is not in (0, {MAX_AUDIO_SECONDS}] seconds"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_bounded() {
        assert_eq!(audio_seconds("1.5"), Ok(1.5));
        assert_eq!(audio_seconds("3600"), Ok(3600.0));
        // Left to the command's own check (status 1, "must be > 0").
        assert_eq!(audio_seconds("0"), Ok(0.0));
        for bad in ["3600.5", "1e15", "inf", "NaN", "x"] {
            assert!(audio_seconds(bad).is_err(), "{bad}");
        }
    }
}
