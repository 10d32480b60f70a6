//! Device selection: parse `--device cpu|cuda|cuda:N` and open the matching candle device, turning
//! "no CUDA in this build" and "no GPU/driver on this machine" into clear errors instead of panics.

use crate::error::{Result, TensorError};
use candle_core::Device;
use std::fmt;
use std::str::FromStr;

/// Where tensors live: the CPU or one CUDA GPU (by ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceChoice {
    /// The host CPU (candle's CPU backend). The default.
    #[default]
    Cpu,
    /// CUDA GPU number `N` (as `nvidia-smi` numbers them, after `CUDA_VISIBLE_DEVICES`).
    Cuda(usize),
}

impl DeviceChoice {
    /// True for [`DeviceChoice::Cuda`].
    pub fn is_cuda(&self) -> bool {
        matches!(self, DeviceChoice::Cuda(_))
    }
}

impl FromStr for DeviceChoice {
    type Err = TensorError;

    /// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N`, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || TensorError::InvalidDevice {
            input: s.to_string(),
        };
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => {
                let n = t.strip_prefix("cuda:").ok_or_else(invalid)?;
                // Digits only: `usize::from_str` would also accept a leading `+`.
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                n.parse().map(DeviceChoice::Cuda).map_err(|_| invalid())
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    /// `cpu` or `cuda:N`; the output parses back to the same choice.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Whether this build has CUDA support (the crate's `cuda` feature, i.e. candle's CUDA backend).
pub fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

/// Opens the device `choice` names.
///
/// `Cpu` always succeeds. `Cuda(n)` fails with [`TensorError::CudaNotCompiled`] in a build
/// without the `cuda` feature, and with [`TensorError::CudaUnavailable`] when the driver or the
/// GPU is missing — including when the CUDA libraries panic instead of returning an error.
pub fn select_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(ordinal) => {
            if !cuda_compiled() {
                return Err(TensorError::CudaNotCompiled {
                    requested: choice.to_string(),
                });
            }
            open_cuda_guarded(ordinal).map_err(|reason| TensorError::CudaUnavailable {
                requested: choice.to_string(),
                reason,
            })
        }
    }
}

/// `Device::new_cuda`, with a panic in the driver bindings (cudarc panics when `libcuda` cannot
/// be loaded) turned into an `Err`. The default panic hook is silenced for the duration so the
/// user sees one error line rather than a panic report.
fn open_cuda_guarded(ordinal: usize) -> std::result::Result<Device, String> {
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| Device::new_cuda(ordinal));
    std::panic::set_hook(previous_hook);
    match outcome {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(err)) => Err(one_line(&err.to_string())),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("the CUDA driver library could not be loaded");
            Err(one_line(msg))
        }
    }
}

/// First non-empty line of a (possibly multi-line, backtrace-carrying) message.
fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_names_and_round_trips_display() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(" CPU ".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(3)
        );
        for c in [
            DeviceChoice::Cpu,
            DeviceChoice::Cuda(0),
            DeviceChoice::Cuda(7),
        ] {
            assert_eq!(c.to_string().parse::<DeviceChoice>().unwrap(), c);
        }
        assert_eq!(DeviceChoice::Cuda(2).to_string(), "cuda:2");
        assert_eq!(DeviceChoice::default(), DeviceChoice::Cpu);
    }

    #[test]
    fn rejects_other_names_listing_valid_values() {
        for bad in [
            "gpu", "", "cuda:", "cuda:-1", "cuda:+1", "cuda:x", "cuda0", "metal",
        ] {
            let err = bad.parse::<DeviceChoice>().unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, TensorError::InvalidDevice { .. }), "{bad}");
            assert!(
                msg.contains("`cpu`") && msg.contains("`cuda`") && msg.contains("`cuda:N`"),
                "{msg}"
            );
            assert!(msg.contains(&format!("`{bad}`")), "{msg}");
        }
    }

    #[test]
    fn cpu_always_opens() {
        assert!(select_device(DeviceChoice::Cpu).unwrap().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        assert!(!cuda_compiled());
        let err = select_device(DeviceChoice::Cuda(0)).unwrap_err();
        assert!(matches!(err, TensorError::CudaNotCompiled { .. }));
        let msg = err.to_string();
        assert!(msg.contains("no CUDA support"), "{msg}");
        assert!(msg.contains("--features cuda"), "{msg}");
        assert!(msg.contains("cuda:0"), "{msg}");
    }

    /// With the feature but possibly no GPU: either a device or the "no CUDA GPU/driver" error,
    /// never a panic.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_with_feature_opens_or_errors_cleanly() {
        assert!(cuda_compiled());
        match select_device(DeviceChoice::Cuda(0)) {
            Ok(d) => assert!(d.is_cuda()),
            Err(e) => {
                assert!(matches!(e, TensorError::CudaUnavailable { .. }));
                assert!(e.to_string().contains("no CUDA GPU/driver found"));
            }
        }
        // An ordinal no machine has.
        let err = select_device(DeviceChoice::Cuda(4096)).unwrap_err();
        assert!(err.to_string().contains("cuda:4096"), "{err}");
    }

    #[test]
    fn one_line_takes_first_nonempty_line() {
        assert_eq!(
            one_line("\n  driver missing \nbacktrace..."),
            "driver missing"
        );
        assert_eq!(one_line(""), "unknown error");
    }
}
