//! `seqlab info`: the build (version, CUDA support) and a check of a `--device` choice; for a
//! GPU, what it is, the driver and NVRTC versions, and whether every kernel compiles and loads.

use seqlab_tensor::candle_core::DeviceLocation;
use seqlab_tensor::{cuda_compiled, select_device, DeviceChoice};

/// Show the build and check that a compute device can be opened.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Device to check: `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// Prints the seqlab version and whether CUDA support is compiled in, then opens the requested
/// device and, for a GPU, compiles and loads our kernels on it; failing to open the device, or a
/// kernel that does not load, is the command's error (one line, exit status 1). A `--device`
/// that does not parse is clap's usage error (exit status 2).
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    println!("seqlab {}", env!("CARGO_PKG_VERSION"));
    if cuda_compiled() {
        println!("CUDA support: compiled in");
    } else {
        println!(
            "CUDA support: not compiled in (build with `cargo build --release --features cuda`)"
        );
    }
    let choice = args.device;
    let device = select_device(choice)?;
    let place = match device.location() {
        DeviceLocation::Cpu => "host CPU".to_string(),
        DeviceLocation::Cuda { gpu_id } => format!("CUDA GPU {gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("Metal GPU {gpu_id}"),
    };
    println!("device {choice}: ok ({place})");
    #[cfg(feature = "cuda")]
    if let seqlab_tensor::candle_core::Device::Cuda(gpu) = &device {
        let r = seqlab_ssm::cuda::gpu_report(&gpu.cuda_stream())?;
        println!(
            "gpu: {}, compute capability {}.{}, {} SMs, {:.1} GiB",
            r.name,
            r.arch / 10,
            r.arch % 10,
            r.multiprocessors,
            r.memory_bytes as f64 / (1u64 << 30) as f64
        );
        println!(
            "cuda: driver {}, NVRTC {}",
            r.driver_version, r.nvrtc_version
        );
        println!(
            "kernels: {} files compile and load for sm_{} ({:.2} s)",
            seqlab_ssm::cuda::KernelFile::ALL.len(),
            r.arch,
            r.kernel_seconds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `seqlab info` with only its own flags, parsed as the binary parses them.
    #[derive(Debug, clap::Parser)]
    struct InfoCli {
        #[command(flatten)]
        args: InfoArgs,
    }

    /// Parses `--device DEVICE` and runs the command.
    fn info(device: &str) -> anyhow::Result<()> {
        let cli = InfoCli::try_parse_from(["info", "--device", device])?;
        run(cli.args)
    }

    #[test]
    fn cpu_is_fine() {
        info("cpu").unwrap();
    }

    #[test]
    fn unknown_device_is_one_line_listing_valid_values() {
        // clap rejects it while parsing (a usage error); its error line names the value and
        // lists the valid ones.
        let err = info("gpu").unwrap_err();
        let clap_err = err.downcast_ref::<clap::Error>().expect("a clap error");
        assert_eq!(clap_err.kind(), clap::error::ErrorKind::ValueValidation);
        let msg = format!("{err:#}");
        let line = msg.lines().next().unwrap_or_default();
        assert!(line.contains("`gpu`"), "{msg}");
        assert!(line.contains("`cpu`, `cuda` or `cuda:N`"), "{msg}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_support_says_how_to_build_it() {
        let msg = format!("{:#}", info("cuda").unwrap_err());
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("no CUDA support"), "{msg}");
        assert!(msg.contains("--features cuda"), "{msg}");
    }
}
