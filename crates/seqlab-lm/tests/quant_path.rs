//! The quantized GGUF path through seqlab-quant (docs/quant.md), on the tiny GGUF of
//! `gguf.rs` (Q4_1, Q8_0 and F16 matrices):
//! - every covered quantized linear (Q4_1, Q8_0) runs seqlab-quant's GEMM: its output equals
//!   `QMatrix::matmul` on the file's bytes bit for bit, and stays within activation-quantization
//!   error of candle's `QMatMul` and of the dequantized f32 product;
//! - whole-model logits of the quantized model follow the dequantized f32 model's.

use super::gguf::{f32s, max_abs, max_abs_diff, tmp, vocab, write_tiny, Tiny, TOKENS};
use candle_core::quantized::QMatMul;
use candle_core::{Device, Module, Tensor};
use seqlab_lm::gguf::{load_gguf, load_gguf_with, WeightFormat};
use seqlab_lm::transformer::quant_linear::covered_type;
use seqlab_lm::transformer::Linear;
use seqlab_quant::QMatrix;

#[test]
fn covered_quantized_linears_run_the_blocked_gemm() {
    let dir = tmp();
    let opts = Tiny {
        untied: true,
        ..Tiny::default()
    };
    let path = write_tiny(dir.path(), "tiny.gguf", &opts);
    let (lm, _) = load_gguf(&path).unwrap();
    let w = lm.weights();
    let l0 = &w.layers[0];
    let mut linears: Vec<(&str, &Linear)> = vec![
        ("q", &l0.q_proj),
        ("k", &l0.k_proj),
        ("v", &l0.v_proj),
        ("o", &l0.o_proj),
        ("up", &l0.up_proj),
        ("down", &l0.down_proj),
        ("gate", l0.gate_proj.as_ref().unwrap()),
    ];
    linears.push(("lm_head", w.lm_head.as_ref().unwrap()));
    let mut covered = 0;
    for (name, lin) in linears {
        let Linear::Quantized(QMatMul::QTensor(t)) = lin else {
            continue;
        };
        let Some(ty) = covered_type(t.dtype()) else {
            continue;
        };
        covered += 1;
        let (out, inn) = lin.shape();
        // Three rows (decode would be one, prefill many), shaped (1, 3, in) as the model does.
        let x = Tensor::randn(0f32, 1.0, (1, 3, inn), &Device::Cpu).unwrap();
        let y = lin.forward(&x).unwrap();
        assert_eq!(y.dims(), &[1, 3, out], "{name}");
        let y = f32s(&y);
        let bytes = t.data().unwrap();
        let want = QMatrix::new(ty, &bytes, out, inn)
            .unwrap()
            .matmul(&f32s(&x), 3)
            .unwrap();
        assert_eq!(
            y,
            want,
            "{name} ({}) is not seqlab-quant's product",
            ty.name()
        );
        // Candle's QMatMul and the dequantized product: within 8-bit activation error.
        let candle = f32s(&QMatMul::QTensor(t.clone()).forward(&x).unwrap());
        let dense = t.dequantize(&Device::Cpu).unwrap();
        let exact = f32s(&x.broadcast_matmul(&dense.t().unwrap()).unwrap());
        let scale = max_abs(&exact);
        let (dc, dd) = (max_abs_diff(&y, &candle), max_abs_diff(&y, &exact));
        println!(
            "{name} {}: |y| ≤ {scale:.3}, Δ candle {dc:.2e}, Δ f32 {dd:.2e}",
            ty.name()
        );
        assert!(dc < 0.02 * scale, "{name}: vs candle {dc} (scale {scale})");
        assert!(
            dd < 0.02 * scale,
            "{name}: vs dequantized {dd} (scale {scale})"
        );
    }
    assert!(covered >= 5, "only {covered} covered linears");
}

#[test]
fn quantized_logits_follow_the_dequantized_model() {
    let dir = tmp();
    for untied in [false, true] {
        let opts = Tiny {
            untied,
            ..Tiny::default()
        };
        let path = write_tiny(dir.path(), &format!("tiny{untied}.gguf"), &opts);
        let (quant, _) = load_gguf(&path).unwrap();
        let (dense, _) = load_gguf_with(&path, WeightFormat::Dequantized).unwrap();
        let lq = f32s(&quant.forward_causal(TOKENS, 1, None).unwrap());
        let ld = f32s(&dense.forward_causal(TOKENS, 1, None).unwrap());
        let scale = max_abs(&ld);
        let d = max_abs_diff(&lq, &ld);
        println!("untied={untied}: |logits| ≤ {scale:.3}, quantized Δ {d:.2e}");
        assert!(d < 0.02 * scale, "untied={untied}: {d} (scale {scale})");
        let v = vocab();
        let argmax = |l: &[f32]| -> Vec<usize> {
            l.chunks(v)
                .map(|r| (0..v).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap())
                .collect()
        };
        let same = argmax(&lq)
            .iter()
            .zip(argmax(&ld))
            .filter(|(a, b)| **a == *b)
            .count();
        assert!(
            same * 10 >= TOKENS.len() * 9,
            "argmax agrees at {same}/{}",
            TOKENS.len()
        );
    }
}
