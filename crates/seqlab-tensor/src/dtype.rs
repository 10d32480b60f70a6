//! Dtype handling: the floating-point dtypes seqlab computes in, parsed from `--dtype` names, and
//! conversion of tensors to the compute dtype.

use crate::error::{Result, TensorError};
use candle_core::{DType, Tensor};

/// The dtype names accepted by [`parse_dtype`], in the order shown to users.
pub const DTYPE_NAMES: [&str; 4] = ["f32", "f16", "bf16", "f64"];

/// Parses a compute dtype name: `f32`, `f16`, `bf16` or `f64` (case-insensitive; `float32`,
/// `float16`, `bfloat16`, `float64` and `half` are accepted as aliases).
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "float" => Ok(DType::F32),
        "f16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f64" | "float64" | "double" => Ok(DType::F64),
        _ => Err(TensorError::InvalidDtype {
            input: name.to_string(),
        }),
    }
}

/// The short name of a dtype as seqlab prints it (`f32`, `bf16`, `u32`, ...).
pub fn dtype_name(dtype: DType) -> &'static str {
    dtype.as_str()
}

/// True for the floating-point dtypes a model can compute in (f16, bf16, f32, f64).
pub fn is_compute_dtype(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

/// Returns `t` converted to `dtype` (a cheap clone when it already has it).
///
/// Used to bring stored weights (often f16/bf16) to the dtype the forward pass runs in; the
/// conversion rounds to nearest, as candle's `to_dtype` does.
pub fn to_compute_dtype(t: &Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t.clone())
    } else {
        Ok(t.to_dtype(dtype)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn parses_the_four_names_and_aliases() {
        assert_eq!(parse_dtype("f32").unwrap(), DType::F32);
        assert_eq!(parse_dtype("F16").unwrap(), DType::F16);
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert_eq!(parse_dtype("f64").unwrap(), DType::F64);
        assert_eq!(parse_dtype("bfloat16").unwrap(), DType::BF16);
        for n in DTYPE_NAMES {
            let d = parse_dtype(n).unwrap();
            assert_eq!(dtype_name(d), n);
            assert!(is_compute_dtype(d));
        }
        assert!(!is_compute_dtype(DType::U32));
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = parse_dtype("fp8").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`fp8`") && msg.contains("f32, f16, bf16, f64"),
            "{msg}"
        );
    }

    #[test]
    fn converts_only_when_needed() {
        let t = Tensor::new(&[1.5f32, -2.25, 3.0], &Device::Cpu).unwrap();
        let same = to_compute_dtype(&t, DType::F32).unwrap();
        assert_eq!(same.dtype(), DType::F32);
        let h = to_compute_dtype(&t, DType::BF16).unwrap();
        assert_eq!(h.dtype(), DType::BF16);
        let back = to_compute_dtype(&h, DType::F64).unwrap();
        assert_eq!(back.to_vec1::<f64>().unwrap(), vec![1.5, -2.25, 3.0]);
    }
}
