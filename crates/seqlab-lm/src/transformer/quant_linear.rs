//! Quantized linear layers on the CPU through `seqlab-quant` (docs/quant.md): a GGUF matrix of
//! a covered block type (Q8_0, Q4_0, Q4_1) is multiplied in place (the mapped file's bytes,
//! never copied or dequantized) by the small-batch GEMM, which reads each weight block once per
//! group of activation rows and splits output rows over threads. Other types (K-quants, …) and
//! other devices keep candle's [`QMatMul`].
//!
//! Setting the environment variable `SEQLAB_QMATMUL=candle` sends every quantized layer to
//! candle's `QMatMul` instead: the A/B switch of the benchmarks (`benches/compare/`).
//!
//! Every output row depends only on its own input row (seqlab-quant's row-exact kernels), so
//! one-token steps, multi-token scores and prefills agree bit for bit, as the row-exact
//! attention of [`super::causal_attn`] requires.

use crate::error::{LmError, Result};
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{DType, Storage, Tensor};
use seqlab_quant::{QMatrix, QuantType};

/// The `seqlab-quant` format of a candle (ggml) block type, when it is covered.
pub fn covered_type(dtype: GgmlDType) -> Option<QuantType> {
    match dtype {
        GgmlDType::Q8_0 => Some(QuantType::Q8_0),
        GgmlDType::Q4_0 => Some(QuantType::Q4_0),
        GgmlDType::Q4_1 => Some(QuantType::Q4_1),
        _ => None,
    }
}

/// `x · Wᵀ` over the last dimension of `x` (…, in) → (…, out) with seqlab-quant's kernels,
/// when they cover `w` (a CPU matrix of a [`covered_type`]) and `x` is f32 on the CPU;
/// `None` otherwise (the caller falls back to candle's [`QMatMul::forward`]).
pub fn forward_blocked(w: &QMatMul, x: &Tensor) -> Result<Option<Tensor>> {
    if candle_forced() {
        return Ok(None);
    }
    let t = match w {
        QMatMul::QTensor(t) => t,
        QMatMul::Tensor(d) => return forward_dense_rows(d, x),
        QMatMul::TensorF16(_) => return Ok(None),
    };
    let Some(ty) = covered_type(t.dtype()) else {
        return Ok(None);
    };
    if !t.device().is_cpu() || !x.device().is_cpu() || x.dtype() != DType::F32 {
        return Ok(None);
    }
    let (rows, cols) = t.shape().dims2()?;
    let dims = x.dims();
    let inn = dims.last().copied().unwrap_or(0);
    if dims.is_empty() || inn != cols {
        return Err(LmError::Shape(format!(
            "quantized linear ({rows}, {cols}) applied to activations of shape {dims:?}"
        )));
    }
    let n = x.elem_count() / cols.max(1);
    let bytes = t.data()?;
    let quant = |e: seqlab_quant::QuantError| LmError::Shape(format!("quantized linear: {e}"));
    let mat = QMatrix::new(ty, &bytes, rows, cols).map_err(quant)?;
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let y = mat.matmul(&xs, n).map_err(quant)?;
    let mut out = dims.to_vec();
    *out.last_mut().expect("rank ≥ 1") = rows;
    Ok(Some(Tensor::from_vec(y, out, x.device())?))
}

/// Whether `SEQLAB_QMATMUL=candle` asks for candle's kernels (read once).
fn candle_forced() -> bool {
    static FORCED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| std::env::var("SEQLAB_QMATMUL").is_ok_and(|v| v == "candle"))
}

/// `x · Wᵀ` for a GGUF matrix stored unquantized (F32, or F16/BF16 that candle widened to f32)
/// with seqlab-quant's row-exact f32 product, so these layers keep steps and scores equal too.
fn forward_dense_rows(w: &Tensor, x: &Tensor) -> Result<Option<Tensor>> {
    if !w.device().is_cpu()
        || !x.device().is_cpu()
        || w.dtype() != DType::F32
        || x.dtype() != DType::F32
    {
        return Ok(None);
    }
    let (rows, cols) = w.dims2()?;
    let dims = x.dims();
    if dims.last().copied() != Some(cols) {
        return Err(LmError::Shape(format!(
            "linear ({rows}, {cols}) applied to activations of shape {dims:?}"
        )));
    }
    let n = x.elem_count() / cols.max(1);
    let (storage, layout) = w.storage_and_layout();
    let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
        return Ok(None);
    };
    let ws = &cpu.as_slice::<f32>()?[start..end];
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let y = seqlab_quant::matmul_f32(ws, rows, cols, &xs, n)
        .map_err(|e| LmError::Shape(format!("linear: {e}")))?;
    let mut out = dims.to_vec();
    *out.last_mut().expect("rank ≥ 1") = rows;
    Ok(Some(Tensor::from_vec(y, out, x.device())?))
}
