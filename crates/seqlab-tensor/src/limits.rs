//! Plausibility limits for every number that sizes memory, checked before anything is allocated.
//!
//! A config file or a flag is user input: `num_hidden_layers: 1000000000` must be one error
//! line, not a loader that builds a billion-entry tensor list until the machine runs out of
//! memory. Every loader (Mamba, Transformer / Llama, S4 LM, SaShiMi, the diffusion and training
//! configs) passes its sizes through [`check_plausible`] first; the bounds are far above any
//! published model (the reasons are on each constant), so they never refuse a real checkpoint.
//! What a plausible config can still ask for is then compared with the machine:
//! [`check_fits_in_memory`] compares an estimate of the bytes a command will allocate with
//! `MemAvailable` from `/proc/meminfo` and says how much it would need.

use std::fmt;

/// Most layers (blocks) of a model. The deepest published LMs have about 130 (Llama 3.1 405B:
/// 126; Mamba 2.8B: 64; SaShiMi stages: a few each).
pub const MAX_LAYERS: usize = 4096;
/// Widest hidden, inner or feed-forward dimension. The widest published ones are about 53,000
/// (Llama 3.1 405B's feed-forward, 53,248; its hidden size 16,384).
pub const MAX_WIDTH: usize = 1 << 18;
/// Most attention heads (query or key/value). Published models have at most 128.
pub const MAX_HEADS: usize = 4096;
/// Largest SSM state size N per channel. Mamba uses 16, Mamba-2 64–256, S4 64–256.
pub const MAX_STATE: usize = 1 << 14;
/// Largest vocabulary. The largest published ones have about 262,000 ids (Gemma 3).
pub const MAX_VOCAB: usize = 1 << 22;
/// Widest convolution kernel (Mamba's causal conv1d is 4 wide).
pub const MAX_KERNEL: usize = 1 << 12;
/// Longest sequence a config sizes buffers for (training length, S4's `l_max`): 16.7 M tokens,
/// 17 minutes of 16 kHz audio.
pub const MAX_SEQUENCE: usize = 1 << 24;
/// Largest batch (sequences per optimizer step).
pub const MAX_BATCH: usize = 1 << 16;
/// Most tokens one command generates or holds per sequence at a time (`generate` and
/// `speculate --max-new-tokens`, diffusion sample lengths and infill templates): a million
/// tokens, several books; beyond it the per-token buffers (ids, logits rows) alone would be
/// gigabytes.
pub const MAX_GENERATED_TOKENS: usize = 1 << 20;
/// Largest small multiplier of a width (expand factors, pooling factors).
pub const MAX_FACTOR: usize = 1 << 10;

/// What a number in a config counts; each kind has its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// Number of layers or blocks: [`MAX_LAYERS`].
    Layers,
    /// A hidden, inner, head or feed-forward width: [`MAX_WIDTH`].
    Width,
    /// A number of attention heads: [`MAX_HEADS`].
    Heads,
    /// An SSM state size: [`MAX_STATE`].
    State,
    /// A vocabulary size: [`MAX_VOCAB`].
    Vocab,
    /// A convolution kernel width: [`MAX_KERNEL`].
    Kernel,
    /// A sequence length: [`MAX_SEQUENCE`].
    Sequence,
    /// A batch size: [`MAX_BATCH`].
    Batch,
    /// An expand or pooling factor: [`MAX_FACTOR`].
    Factor,
}

impl Dim {
    /// The largest plausible value.
    pub const fn max(self) -> usize {
        match self {
            Dim::Layers => MAX_LAYERS,
            Dim::Width => MAX_WIDTH,
            Dim::Heads => MAX_HEADS,
            Dim::State => MAX_STATE,
            Dim::Vocab => MAX_VOCAB,
            Dim::Kernel => MAX_KERNEL,
            Dim::Sequence => MAX_SEQUENCE,
            Dim::Batch => MAX_BATCH,
            Dim::Factor => MAX_FACTOR,
        }
    }

    /// What the number counts, for the error message.
    pub const fn what(self) -> &'static str {
        match self {
            Dim::Layers => "number of layers",
            Dim::Width => "width",
            Dim::Heads => "number of heads",
            Dim::State => "state size",
            Dim::Vocab => "vocabulary size",
            Dim::Kernel => "kernel width",
            Dim::Sequence => "sequence length",
            Dim::Batch => "batch size",
            Dim::Factor => "factor",
        }
    }
}

/// A size beyond its plausibility bound, or an allocation beyond the memory available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError(String);

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitError {}

impl From<LimitError> for String {
    fn from(e: LimitError) -> String {
        e.0
    }
}

/// Checks each `(key, value, kind)` against its bound ([`Dim::max`]); the first value above its
/// bound is an error naming the key, the value and the bound. Zero is not checked here (each
/// config says which of its fields may be zero).
pub fn check_plausible(fields: &[(&str, usize, Dim)]) -> Result<(), LimitError> {
    for &(key, value, dim) in fields {
        if value > dim.max() {
            return Err(LimitError(format!(
                "`{key}` = {value} is not a plausible {} (at most {}): refusing to size memory by it",
                dim.what(),
                dim.max()
            )));
        }
    }
    Ok(())
}

/// `MemAvailable` from `/proc/meminfo`, in bytes: what the kernel estimates a new allocation
/// can take without swapping. `None` where the file does not exist (not Linux) or lacks it.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

/// The `MemAvailable:  N kB` line of a `/proc/meminfo` text, in bytes.
fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kb: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    kb.checked_mul(1024)
}

/// `bytes` in binary units with three significant digits: `12.3 GiB`.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Refuses `what` when its estimated allocation `bytes` exceeds the memory available
/// ([`mem_available`]); the error says how much it would need and how much there is. Where the
/// available memory cannot be read, only estimates beyond what any machine holds (1 EiB) are
/// refused. `bytes` is f64 so that products of plausible sizes cannot overflow.
pub fn check_fits_in_memory(what: &str, bytes: f64) -> Result<(), LimitError> {
    check_fits(what, bytes, mem_available())
}

fn check_fits(what: &str, bytes: f64, available: Option<u64>) -> Result<(), LimitError> {
    let (limit, source) = match available {
        Some(a) => (a as f64, "available (MemAvailable in /proc/meminfo)"),
        None => (2f64.powi(60), "any machine holds"),
    };
    if bytes > limit {
        return Err(LimitError(format!(
            "{what} would need about {} of memory, more than the {} {source}",
            human_bytes(bytes),
            human_bytes(limit)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_above_their_bound_are_named() {
        assert!(
            check_plausible(&[("n_layer", 24, Dim::Layers), ("d_model", 768, Dim::Width)]).is_ok()
        );
        assert!(check_plausible(&[("n_layer", MAX_LAYERS, Dim::Layers)]).is_ok());
        let e = check_plausible(&[
            ("d_model", 768, Dim::Width),
            ("num_hidden_layers", 1_000_000_000, Dim::Layers),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("`num_hidden_layers` = 1000000000 is not a plausible number of layers (at most 4096)"),
            "{e}"
        );
    }

    #[test]
    fn meminfo_is_parsed_in_bytes() {
        let text = "MemTotal:       16318412 kB\nMemFree:  100 kB\nMemAvailable:    8000 kB\n";
        assert_eq!(parse_mem_available(text), Some(8000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn an_estimate_above_the_available_memory_says_how_much() {
        assert!(check_fits("x", 1e6, Some(2_000_000)).is_ok());
        let e = check_fits("training", 3.0 * 1024f64.powi(3), Some(1 << 30))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "training would need about 3.0 GiB of memory, more than the 1.0 GiB available \
             (MemAvailable in /proc/meminfo)"
        );
        assert!(check_fits("x", 1e15, None).is_ok());
        assert!(check_fits("x", 1e19, None).is_err());
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
    }
}
