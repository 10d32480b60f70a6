//! The device-generic Toeplitz convolution (the S4 layers' path on devices other than the CPU
//! and CUDA) against the FFT convolution op (the CPU path): same outputs and same gradients,
//! checked on the CPU.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use seqlab_ssm::s4::{fft_conv_tensor, toeplitz_conv_tensor};

fn random(shape: &[usize], rng: &mut rand::rngs::StdRng, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let (a, b) = (a.to_vec1::<f64>().unwrap(), b.to_vec1::<f64>().unwrap());
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-30);
    a.iter()
        .zip(&b)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Forward and both gradients of `conv` for a weighted sum loss Σ w·y.
fn run(
    conv: fn(&Tensor, &Tensor) -> seqlab_ssm::Result<Tensor>,
    u: &Tensor,
    k: &Tensor,
    w: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let (uv, kv) = (Var::from_tensor(u).unwrap(), Var::from_tensor(k).unwrap());
    let y = conv(uv.as_tensor(), kv.as_tensor()).unwrap();
    let loss = (&y * w).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    (
        y,
        g.get(uv.as_tensor()).unwrap().clone(),
        g.get(kv.as_tensor()).unwrap().clone(),
    )
}

#[test]
fn toeplitz_equals_fft_conv_with_gradients() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        for &(b, h, l) in &[(1, 1, 1), (2, 3, 37), (3, 4, 128)] {
            let u = random(&[b, h, l], &mut rng, dtype);
            let k = random(&[h, l], &mut rng, dtype);
            let w = random(&[b, h, l], &mut rng, dtype);
            let (y0, du0, dk0) = run(fft_conv_tensor, &u, &k, &w);
            let (y1, du1, dk1) = run(toeplitz_conv_tensor, &u, &k, &w);
            for (name, a, e) in [("y", &y1, &y0), ("du", &du1, &du0), ("dK", &dk1, &dk0)] {
                let err = max_rel(a, e);
                assert!(err < tol, "{dtype:?} ({b},{h},{l}) {name}: {err:e}");
            }
        }
    }
}

#[test]
fn toeplitz_is_causal_and_checks_shapes() {
    // A unit impulse at t0 reproduces K shifted to t0 and nothing before it.
    let (h, l, t0) = (2, 9, 3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let k = random(&[h, l], &mut rng, DType::F64);
    let mut u = vec![0f64; h * l];
    for c in 0..h {
        u[c * l + t0] = 1.0;
    }
    let u = Tensor::from_vec(u, (1, h, l), &Device::Cpu).unwrap();
    let y = toeplitz_conv_tensor(&u, &k).unwrap();
    let (y, kv) = (
        y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
        k.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
    );
    for c in 0..h {
        for t in 0..l {
            let want = if t < t0 { 0.0 } else { kv[c * l + t - t0] };
            assert_eq!(y[c * l + t], want, "channel {c} t {t}");
        }
    }
    let bad = random(&[h, l + 1], &mut rng, DType::F64);
    let err = toeplitz_conv_tensor(&u, &bad).unwrap_err().to_string();
    assert!(err.contains("expected [2, 9]"), "{err}");
}
