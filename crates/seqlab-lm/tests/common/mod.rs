//! Helpers shared by the Mamba integration tests: the golden directory, golden tensors, errors.
#![allow(dead_code)]

use seqlab_tensor::candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The mamba-tiny golden directory: `$SEQLAB_GOLDEN_DIR` itself when it holds `golden.json`,
/// else `$SEQLAB_GOLDEN_DIR/mamba-tiny`; without the variable `<repo>/tests/golden/mamba-tiny`.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("SEQLAB_GOLDEN_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.join("golden.json").is_file() {
                d
            } else {
                d.join("mamba-tiny")
            }
        }
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/mamba-tiny"),
    }
}

/// The mamba2-tiny golden directory: `$SEQLAB_GOLDEN_MAMBA2_DIR` when set, else
/// `$SEQLAB_GOLDEN_DIR/mamba2-tiny` when that holds `golden.json`, else
/// `<repo>/tests/golden/mamba2-tiny`.
pub fn mamba2_golden_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SEQLAB_GOLDEN_MAMBA2_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("SEQLAB_GOLDEN_DIR") {
        let d = PathBuf::from(d).join("mamba2-tiny");
        if d.join("golden.json").is_file() {
            return d;
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/mamba2-tiny")
}

/// The falcon-mamba-tiny golden directory: `$SEQLAB_GOLDEN_DIR/falcon-mamba-tiny` when that
/// holds `golden.json`, else `<repo>/tests/golden/falcon-mamba-tiny`.
pub fn falcon_golden_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SEQLAB_GOLDEN_DIR") {
        let d = PathBuf::from(d).join("falcon-mamba-tiny");
        if d.join("golden.json").is_file() {
            return d;
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/falcon-mamba-tiny")
}

/// golden.json.
pub fn golden_json(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("golden.json")).expect("read golden.json");
    serde_json::from_str(&text).expect("parse golden.json")
}

/// golden.safetensors, every tensor.
pub fn golden_tensors(dir: &Path) -> HashMap<String, Tensor> {
    seqlab_tensor::load(
        dir.join("golden.safetensors"),
        &seqlab_tensor::candle_core::Device::Cpu,
    )
    .expect("load golden.safetensors")
}

/// A golden tensor flattened to f32.
pub fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// A golden int64 tensor flattened to token ids.
pub fn ids(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| u32::try_from(v).expect("token id fits u32"))
        .collect()
}

/// max |a − b|; panics on a length mismatch or a non-finite value.
pub fn max_abs(what: &str, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: length mismatch");
    assert!(a.iter().all(|v| v.is_finite()), "{what}: non-finite value");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Copies every file of `src` into `dst`.
pub fn copy_dir(src: &Path, dst: &Path) {
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}
