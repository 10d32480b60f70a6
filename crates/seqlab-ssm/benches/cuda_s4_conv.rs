//! S4's long convolution y = K ∗ u (S4 eq. (5)) forward + backward, side by side on the same
//! inputs (feature `cuda`):
//! - `long_conv`: the CUDA op, `kernels/long_conv.cu` (what `s4::fft_conv_tensor` runs on a GPU);
//! - `toeplitz`: the Toeplitz matrix product of candle tensor ops (`s4::toeplitz_conv_tensor`,
//!   the GPU path before the kernel), only where its H·L² matrix fits in 4 GiB;
//! - `cpu fft`: the CPU op, real FFTs of size 2L on all cores.
//!
//! One timed pass = y = conv(u, K), ℒ = Σ y·w, and ∂ℒ/∂u, ∂ℒ/∂K. The GPU outputs and gradients
//! must agree with the CPU's (max |difference| ≤ 1e-4 of the tensor's max |value|; the run
//! fails otherwise). Shapes: `SEQLAB_LONG_CONV_SHAPES=BxHxL,…`. Prints a message and exits 0
//! when no GPU is present (fails instead with `SEQLAB_REQUIRE_GPU` set).
//!
//! Run: `cargo bench -p seqlab-ssm --features cuda --bench cuda_s4_conv`.

mod common;

use std::process::ExitCode;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab_ssm::s4::{fft_conv_tensor, toeplitz_conv_tensor};

/// Largest max |GPU − CPU| / max |CPU| accepted for y, ∂u and ∂K.
const AGREEMENT: f64 = 1e-4;
/// Largest Toeplitz matrix (H·L² f32 values) the `toeplitz` column builds.
const TOEPLITZ_MAX_BYTES: usize = 4 << 30;

type Conv = fn(&Tensor, &Tensor) -> seqlab_ssm::Result<Tensor>;

/// (batch, H, L) to time, or `SEQLAB_LONG_CONV_SHAPES=BxHxL,…`.
fn shapes() -> Result<Vec<[usize; 3]>, String> {
    let default = vec![
        [16, 128, 512], // `seqlab train --model s4` in benches/cuda/device_check.sh
        [16, 64, 2048], // the SaShiMi run there, first stage
        [4, 256, 4096],
        [1, 64, 16384], // RESULTS.md's S4D layer at L = 16384
    ];
    common::shapes_from_env("SEQLAB_LONG_CONV_SHAPES", "BxHxL", default)
}

/// One pass on `device`: (y, ∂u, ∂K) left on the device.
fn pass(conv: Conv, u: &Var, k: &Var, w: &Tensor) -> candle_core::Result<[Tensor; 3]> {
    let y = conv(u.as_tensor(), k.as_tensor()).map_err(candle_core::Error::wrap)?;
    let grads = (&y * w)?.sum_all()?.backward()?;
    let get = |v: &Var| {
        grads
            .get(v)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg("no gradient".into()))
    };
    Ok([y, get(u)?, get(k)?])
}

/// Median milliseconds of one pass (one warm-up pass first; passes until 0.5 s or 20 of them,
/// at least 3), and the warm-up pass's results on the host.
fn time(
    conv: Conv,
    device: &Device,
    host: &[Tensor; 3],
) -> candle_core::Result<(f64, [Vec<f32>; 3])> {
    let [u, k, w] = host.clone().map(|t| t.to_device(device));
    let (u, k, w) = (Var::from_tensor(&u?)?, Var::from_tensor(&k?)?, w?);
    let out = pass(conv, &u, &k, &w)?;
    device.synchronize()?;
    let mut ms = Vec::new();
    let start = Instant::now();
    while ms.len() < 3 || (ms.len() < 20 && start.elapsed().as_secs_f64() < 0.5) {
        let t = Instant::now();
        pass(conv, &u, &k, &w)?;
        device.synchronize()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let to_host = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let [y, du, dk] = &out;
    Ok((ms[ms.len() / 2], [to_host(y)?, to_host(du)?, to_host(dk)?]))
}

fn run() -> Result<(), String> {
    let shapes = shapes()?;
    let gpu = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) if std::env::var_os("SEQLAB_REQUIRE_GPU").is_some() => {
            return Err(format!(
                "SEQLAB_REQUIRE_GPU is set and the GPU cannot be opened: {e}"
            ))
        }
        Err(e) => {
            println!("skipping the CUDA S4 convolution benchmark: {e}");
            return Ok(());
        }
    };
    let e = |e: candle_core::Error| e.to_string();
    println!("forward + backward of y = K ∗ u, f32, median ms per pass");
    println!(
        "{:>5} {:>5} {:>6} | {:>10} {:>10} {:>8} | {:>10} {:>8}",
        "batch", "H", "L", "long_conv", "toeplitz", "speedup", "cpu fft", "vs cpu"
    );
    let mut rng = StdRng::seed_from_u64(0);
    for [b, h, l] in shapes {
        let mut rand = |dims: &[usize]| {
            let n = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            Tensor::from_vec(v, dims, &Device::Cpu).map_err(e)
        };
        let host = [rand(&[b, h, l])?, rand(&[h, l])?, rand(&[b, h, l])?];
        let (cpu_ms, cpu) = time(fft_conv_tensor, &Device::Cpu, &host).map_err(e)?;
        let (ours_ms, ours) = time(fft_conv_tensor, &gpu, &host).map_err(e)?;
        let fits = h * l * l * 4 <= TOEPLITZ_MAX_BYTES;
        let toeplitz = if fits {
            Some(time(toeplitz_conv_tensor, &gpu, &host).map_err(e)?)
        } else {
            None
        };
        let (tp, speedup) = match &toeplitz {
            Some((ms, _)) => (format!("{ms:.3}"), format!("{:.1}×", ms / ours_ms)),
            None => ("—".into(), "—".into()),
        };
        println!(
            "{b:>5} {h:>5} {l:>6} | {ours_ms:>10.3} {tp:>10} {speedup:>8} | {cpu_ms:>10.3} {:>7.1}×",
            cpu_ms / ours_ms
        );
        let mut line = String::from("      agreement with the cpu (max |Δ| / max |·|):");
        let mut worst = 0.0f64;
        for (name, got) in [
            ("long_conv", Some(&ours)),
            ("toeplitz", toeplitz.as_ref().map(|t| &t.1)),
        ] {
            let Some(got) = got else { continue };
            for (part, (g, c)) in ["y", "du", "dk"].iter().zip(got.iter().zip(&cpu)) {
                let d = common::rel_err(g, c);
                worst = worst.max(d);
                line.push_str(&format!(" {name} {part} {d:.1e}"));
            }
        }
        println!("{line}");
        if worst > AGREEMENT {
            return Err(format!(
                "(B, H, L) = ({b}, {h}, {l}): the GPU differs from the CPU by {worst:.1e} \
                 (max accepted {AGREEMENT:.0e})"
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
