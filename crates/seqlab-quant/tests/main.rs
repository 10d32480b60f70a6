//! seqlab-quant against references: the block layouts against candle's (ggml's) quantization
//! of the same floats, and every kernel level's dot products and small-batch GEMM against an
//! f64 reference on random blocks.

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab_quant::{dequantize_row, quantize_row, Level, QMatrix, QuantType, QuantizedRows};
use std::borrow::Cow;

fn ggml(ty: QuantType) -> GgmlDType {
    match ty {
        QuantType::Q8_0 => GgmlDType::Q8_0,
        QuantType::Q4_0 => GgmlDType::Q4_0,
        QuantType::Q4_1 => GgmlDType::Q4_1,
    }
}

/// Random values with a few awkward blocks: all zero, constant, one spike, all negative.
fn values(rng: &mut StdRng, rows: usize, cols: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random_range(-1.0f32..1.0) * rng.random_range(0.1f32..3.0))
        .collect();
    if x.len() >= 4 * 32 {
        x[..32].fill(0.0);
        x[32..64].fill(0.37);
        x[64..96].fill(0.01);
        x[70] = -9.0;
        for v in &mut x[96..128] {
            *v = -v.abs() - 0.1;
        }
    }
    x
}

fn quantize(ty: QuantType, x: &[f32], cols: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for row in x.chunks_exact(cols) {
        quantize_row(ty, row, &mut out).unwrap();
    }
    out
}

#[test]
fn blocks_equal_candles_bytes_and_dequantization() {
    let mut rng = StdRng::seed_from_u64(1);
    let (rows, cols) = (3, 160);
    for ty in QuantType::ALL {
        let x = values(&mut rng, rows, cols);
        let ours = quantize(ty, &x, cols);
        assert_eq!(ours.len(), rows * ty.row_bytes(cols).unwrap());
        let t = Tensor::from_vec(x.clone(), (rows, cols), &Device::Cpu).unwrap();
        let theirs = QTensor::quantize(&t, ggml(ty)).unwrap();
        assert_eq!(
            ours,
            theirs.data().unwrap().as_ref(),
            "{}: bytes differ from candle's",
            ty.name()
        );
        // Our dequantization of the bytes equals candle's exactly.
        let storage = QStorage::from_data(Cow::Borrowed(&ours), &Device::Cpu, ggml(ty)).unwrap();
        let q = QTensor::new(storage, (rows, cols)).unwrap();
        let want: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut got = Vec::new();
        dequantize_row(ty, &ours, &mut got).unwrap();
        assert_eq!(got, want, "{}: dequantization", ty.name());
        // And the round trip is within half a quantum of each block.
        for (b, (xs, ys)) in x.chunks_exact(32).zip(got.chunks_exact(32)).enumerate() {
            let lo = xs.iter().fold(f32::INFINITY, |a, &v| a.min(v));
            let hi = xs.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let amax = lo.abs().max(hi.abs());
            let step = match ty {
                QuantType::Q8_0 => amax / 127.0,
                QuantType::Q4_0 => amax / 8.0,
                QuantType::Q4_1 => (hi - lo) / 15.0,
            };
            // Q4_0 maps the largest magnitude to −8: the other end clips by up to one step.
            let clip = if ty == QuantType::Q4_0 { 1.0 } else { 0.5 };
            for (a, y) in xs.iter().zip(ys) {
                assert!(
                    (a - y).abs() <= clip * step * 1.01 + 4e-3 * amax + 1e-7,
                    "{} block {b}: {a} → {y} (step {step})",
                    ty.name()
                );
            }
        }
    }
}

/// The f64 value of `Σ_i w_i · a_i` with w dequantized from the blocks and a = d · q from the
/// quantized activations, and `Σ |w_i a_i|` (the scale rounding errors are measured against).
fn reference(ty: QuantType, w: &[u8], acts: &QuantizedRows, j: usize) -> (f64, f64) {
    let mut wd = Vec::new();
    dequantize_row(ty, w, &mut wd).unwrap();
    let a = acts.row(j);
    let (mut s, mut mag) = (0f64, 0f64);
    for (i, &wi) in wd.iter().enumerate() {
        let ai = a.qs[i] as f64 * a.d[i / 32] as f64;
        s += wi as f64 * ai;
        mag += (wi as f64 * ai).abs();
    }
    (s, mag)
}

/// Every available level, every type, odd shapes (rows not a multiple of the thread split,
/// odd block counts) and n = 1, 3, 8, 13 rows: within 1e-5 of Σ|w·a| of the f64 value, each
/// level within that of the scalar one, and every row bit-identical to a one-row product.
#[test]
fn gemm_matches_the_f64_reference_at_every_level() {
    let levels = Level::available();
    println!("levels on this machine: {levels:?}");
    assert!(levels.contains(&Level::Scalar) && levels[0] == Level::Scalar);
    assert!(levels.contains(&Level::best()));
    let mut rng = StdRng::seed_from_u64(2);
    for ty in QuantType::ALL {
        for &(m, k) in &[(1usize, 32usize), (7, 96), (37, 160), (130, 288)] {
            let wx = values(&mut rng, m, k);
            let bytes = quantize(ty, &wx, k);
            let mat = QMatrix::new(ty, &bytes, m, k).unwrap();
            let rb = ty.row_bytes(k).unwrap();
            for n in [1usize, 3, 8, 13] {
                let x = values(&mut rng, n, k);
                let acts = QuantizedRows::new(&x, n, k).unwrap();
                let scalar = mat.matmul_at(Level::Scalar, &x, n).unwrap();
                for &level in &levels {
                    let y = mat.matmul_at(level, &x, n).unwrap();
                    assert_eq!(y.len(), n * m);
                    for j in 0..n {
                        for r in 0..m {
                            let (want, mag) = reference(ty, &bytes[r * rb..(r + 1) * rb], &acts, j);
                            let tol = 1e-5 * mag + 1e-6;
                            let got = y[j * m + r] as f64;
                            let ctx = format!(
                                "{} {level:?} m {m} k {k} n {n} (row {j}, out {r})",
                                ty.name()
                            );
                            assert!((got - want).abs() <= tol, "{ctx}: {got} vs f64 {want}");
                            let s = scalar[j * m + r] as f64;
                            assert!((got - s).abs() <= tol, "{ctx}: {got} vs scalar {s}");
                        }
                        // Row-exact: the same bits as a product of that row alone.
                        let one = mat.matmul_at(level, &x[j * k..(j + 1) * k], 1).unwrap();
                        assert_eq!(
                            one,
                            y[j * m..(j + 1) * m],
                            "{} {level:?} row {j}",
                            ty.name()
                        );
                    }
                    if n == 1 {
                        let d = seqlab_quant::dot(level, ty, &bytes[..rb], &x).unwrap();
                        assert_eq!(d, y[0]);
                    }
                }
            }
        }
    }
}

#[test]
fn misfit_inputs_are_errors() {
    let bytes = vec![0u8; 2 * 20];
    assert!(QMatrix::new(QuantType::Q4_1, &bytes, 2, 32).is_ok());
    assert!(QMatrix::new(QuantType::Q4_1, &bytes, 2, 33).is_err());
    assert!(QMatrix::new(QuantType::Q4_1, &bytes, 3, 32).is_err());
    assert!(QMatrix::new(QuantType::Q8_0, &bytes, 2, 32).is_err());
    let m = QMatrix::new(QuantType::Q4_1, &bytes, 2, 32).unwrap();
    let e = m.matmul(&[0.0; 31], 1).unwrap_err();
    assert!(e.to_string().contains("31"), "{e}");
    assert!(m.matmul(&[0.0; 64], 1).is_err());
    assert_eq!(m.matmul(&[], 0).unwrap(), Vec::<f32>::new());
    assert!(QuantizedRows::new(&[0.0; 48], 1, 48).is_err());
    let mut out = Vec::new();
    assert!(quantize_row(QuantType::Q8_0, &[1.0; 40], &mut out).is_err());
    assert!(dequantize_row(QuantType::Q4_0, &[0; 17], &mut Vec::new()).is_err());
    // A zero block quantizes to zeros and multiplies to exactly 0.
    quantize_row(QuantType::Q4_0, &[0.0; 32], &mut out).unwrap();
    let z = QMatrix::new(QuantType::Q4_0, &out, 1, 32).unwrap();
    for level in Level::available() {
        assert_eq!(z.matmul_at(level, &[1.0; 32], 1).unwrap(), vec![0.0]);
    }
}

/// The f32 product for unquantized matrices: within 1e-5 of Σ|w·x| of the f64 value and every
/// row bit-identical to a one-row product, across the thread split.
#[test]
fn f32_product_is_row_exact_and_matches_f64() {
    let mut rng = StdRng::seed_from_u64(3);
    let (m, k) = (131, 77);
    let w = values(&mut rng, m, k);
    for n in [1usize, 3, 13] {
        let x = values(&mut rng, n, k);
        let y = seqlab_quant::matmul_f32(&w, m, k, &x, n).unwrap();
        for j in 0..n {
            for r in 0..m {
                let (mut s, mut mag) = (0f64, 0f64);
                for i in 0..k {
                    let p = w[r * k + i] as f64 * x[j * k + i] as f64;
                    s += p;
                    mag += p.abs();
                }
                assert!(
                    (y[j * m + r] as f64 - s).abs() <= 1e-5 * mag + 1e-7,
                    "n {n} ({j}, {r})"
                );
            }
            let one = seqlab_quant::matmul_f32(&w, m, k, &x[j * k..(j + 1) * k], 1).unwrap();
            assert_eq!(one, y[j * m..(j + 1) * m], "n {n} row {j}");
        }
    }
    assert!(seqlab_quant::matmul_f32(&w, m, k, &[0.0; 5], 1).is_err());
}
