//! The Transformer LM: cached decoding vs the parallel pass, score, KV truncation, the
//! bidirectional mode, grouped-query attention, both RoPE layouts, packed documents,
//! quantized linear layers, gradients against finite differences, save / load and load errors.

use seqlab_lm::mamba::train_model::cross_entropy;
use seqlab_lm::mamba::LogitsMode;
use seqlab_lm::transformer::{expected_specs, LayerWeights};
use seqlab_lm::{
    CausalLm, Linear, MlpKind, RopeLayout, TrainTransformer, TransformerConfig, TransformerLm,
    TransformerWeights,
};
use seqlab_tensor::candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use seqlab_tensor::candle_core::{DType, Device, IndexOp, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// max |a − b| / max |b|.
fn rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let s = b.iter().map(|x| x.abs()).fold(0.0, f32::max);
    d / s.max(1e-30)
}

fn cfg(vocab: usize, n_kv: usize) -> TransformerConfig {
    let mut c = TransformerConfig::new(vocab, 32, 2, 4, 48);
    c.n_kv_head = n_kv;
    c
}

/// A random model: weights N(0, 0.02²) scaled up so that attention is far from uniform.
fn model(c: &TransformerConfig, seed: u64) -> TransformerLm {
    let t = TrainTransformer::init(c, seed, DType::F32).unwrap();
    let mut named: HashMap<String, Tensor> = HashMap::new();
    for (n, v) in t.params() {
        let x = v.as_tensor().clone();
        let x = if n.contains("norm") {
            x
        } else {
            (x * 10.0).unwrap()
        };
        named.insert(n.clone(), x);
    }
    let w = TransformerWeights::from_tensors(&mut named, c).unwrap();
    TransformerLm::new(c.clone(), w).unwrap()
}

fn toks(n: usize, vocab: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 7 + salt * 13 + 3) % vocab as u32)
        .collect()
}

fn row(all: &Tensor, i: usize) -> Vec<f32> {
    f32s(&all.i((0, i)).unwrap())
}

#[test]
fn prefill_then_step_equals_parallel_forward() {
    let c = cfg(50, 2);
    let m = model(&c, 1);
    let t = toks(14, 50, 0);
    let full = m.forward_causal(&t, 1, None).unwrap();
    let (l, mut st) = m.prefill(&t[..5]).unwrap();
    assert!(
        rel(&l, &row(&full, 4)) < 1e-4,
        "prefill {}",
        rel(&l, &row(&full, 4))
    );
    for (i, &tok) in t.iter().enumerate().skip(5) {
        let l = m.step(&mut st, tok).unwrap();
        let r = rel(&l, &row(&full, i));
        assert!(r < 1e-4, "step at {i}: rel err {r}");
    }
    assert_eq!(m.state_len(&st), 14);
}

#[test]
fn score_equals_forward() {
    let c = cfg(50, 4);
    let m = model(&c, 2);
    let t = toks(12, 50, 1);
    let full = m.forward_causal(&t, 1, None).unwrap();
    let (_, mut st) = m.prefill(&t[..4]).unwrap();
    let s = m.score(&mut st, &t[4..]).unwrap();
    assert_eq!(s.len(), 8 * 50);
    for i in 4..12 {
        let r = rel(&s[(i - 4) * 50..][..50], &row(&full, i));
        assert!(r < 1e-4, "score row {i}: {r}");
    }
    assert_eq!(m.state_len(&st), 12);
}

#[test]
fn truncate_then_restep_equals_fresh_run() {
    let c = cfg(50, 2);
    let m = model(&c, 3);
    let t = toks(10, 50, 2);
    let (_, mut st) = m.prefill(&t).unwrap();
    let snapshot = st.clone();
    m.truncate(&mut st, 6).unwrap();
    assert_eq!(m.state_len(&st), 6);
    let alt = [11u32, 12, 13];
    let (_, mut fresh) = m.prefill(&t[..6]).unwrap();
    for &a in &alt {
        let x = m.step(&mut st, a).unwrap();
        let y = m.step(&mut fresh, a).unwrap();
        assert!(rel(&x, &y) < 1e-5);
    }
    // The snapshot taken before truncating is untouched.
    assert_eq!(m.state_len(&snapshot), 10);
    let mut s2 = snapshot.clone();
    let x = m.step(&mut s2, 5).unwrap();
    let mut t2 = t.clone();
    t2.push(5);
    let full = m.forward_causal(&t2, 1, None).unwrap();
    assert!(rel(&x, &row(&full, 10)) < 1e-4);
    // Growing is an error naming the lengths.
    let e = m.truncate(&mut st, 100).unwrap_err().to_string();
    assert!(e.contains("100") && !e.contains('\n'), "{e}");
    m.truncate(&mut st, 0).unwrap();
    assert_eq!(m.state_len(&st), 0);
    let (l0, _) = m.prefill(&[alt[0]]).unwrap();
    let l1 = m.step(&mut st, alt[0]).unwrap();
    assert!(rel(&l1, &l0) < 1e-5);
}

#[test]
fn bidirectional_sees_the_future() {
    let c = cfg(50, 2);
    let m = model(&c, 4);
    let t = toks(8, 50, 3);
    let mut t2 = t.clone();
    t2[7] = (t2[7] + 1) % 50;
    let bi = m.forward_bidirectional(&t, 1).unwrap();
    let causal = m.forward_causal(&t, 1, None).unwrap();
    assert!(rel(&f32s(&bi), &f32s(&causal)) > 1e-2);
    let bi2 = m.forward_bidirectional(&t2, 1).unwrap();
    let causal2 = m.forward_causal(&t2, 1, None).unwrap();
    for i in 0..7 {
        assert!(
            rel(&row(&bi2, i), &row(&bi, i)) > 1e-4,
            "position {i} did not see the change"
        );
        assert!(
            rel(&row(&causal2, i), &row(&causal, i)) < 1e-6,
            "causal position {i} saw the future"
        );
    }
    // With one layer the last position sees the same keys either way (with more layers the
    // keys themselves have seen the future).
    let mut c1 = c.clone();
    c1.n_layer = 1;
    let m1 = model(&c1, 4);
    let bi1 = m1.forward_bidirectional(&t, 1).unwrap();
    let causal1 = m1.forward_causal(&t, 1, None).unwrap();
    assert!(rel(&row(&bi1, 7), &row(&causal1, 7)) < 1e-5);
    assert!(rel(&row(&bi1, 6), &row(&causal1, 6)) > 1e-4);
}

/// Rows [h·hd, (h+1)·hd) of a (heads·hd, D) weight, for each `h` in `heads`, stacked.
fn pick_heads(w: &Tensor, heads: &[usize], hd: usize) -> Tensor {
    let parts: Vec<Tensor> = heads
        .iter()
        .map(|&h| w.narrow(0, h * hd, hd).unwrap())
        .collect();
    Tensor::cat(&parts, 0).unwrap()
}

fn dense(l: &Linear) -> Tensor {
    l.dense().unwrap().clone()
}

#[test]
fn grouped_query_attention_equals_mha_with_repeated_kv_heads() {
    let g = cfg(40, 2); // 4 query heads, 2 kv heads
    let m = model(&g, 5);
    let mut mc = g.clone();
    mc.n_kv_head = 4;
    let rep = [0usize, 0, 1, 1]; // query head h reads kv head h / 2
    let mut w = m.weights().clone();
    for l in w.layers.iter_mut() {
        l.k_proj = Linear::Dense(pick_heads(&dense(&l.k_proj), &rep, g.head_dim));
        l.v_proj = Linear::Dense(pick_heads(&dense(&l.v_proj), &rep, g.head_dim));
    }
    let mha = TransformerLm::new(mc, w).unwrap();
    let t = toks(9, 40, 4);
    let a = f32s(&m.forward_causal(&t, 1, None).unwrap());
    let b = f32s(&mha.forward_causal(&t, 1, None).unwrap());
    assert!(rel(&a, &b) < 1e-5, "{}", rel(&a, &b));
    // The other assignment (h reads h mod 2) is a different model.
    let mut w2 = m.weights().clone();
    let rep2 = [0usize, 1, 0, 1];
    for l in w2.layers.iter_mut() {
        l.k_proj = Linear::Dense(pick_heads(&dense(&l.k_proj), &rep2, g.head_dim));
        l.v_proj = Linear::Dense(pick_heads(&dense(&l.v_proj), &rep2, g.head_dim));
    }
    let mut mc2 = g.clone();
    mc2.n_kv_head = 4;
    let wrong = TransformerLm::new(mc2, w2).unwrap();
    let c = f32s(&wrong.forward_causal(&t, 1, None).unwrap());
    assert!(rel(&c, &a) > 1e-3);
}

/// llama.cpp's converter permutation: within each head, new row 2i = old row i and new row
/// 2i + 1 = old row i + hd/2 (HF rotate_half layout → interleaved pairs).
fn to_interleaved(w: &Tensor, heads: usize, hd: usize) -> Tensor {
    let d = w.dim(1).unwrap();
    w.reshape((heads, 2, hd / 2, d))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((heads * hd, d))
        .unwrap()
}

#[test]
fn interleaved_rope_equals_half_rope_under_the_qk_permutation() {
    let c = cfg(40, 2);
    let m = model(&c, 6);
    let mut ic = c.clone();
    ic.rope_layout = RopeLayout::Interleaved;
    let mut w = m.weights().clone();
    for l in w.layers.iter_mut() {
        l.q_proj = Linear::Dense(to_interleaved(&dense(&l.q_proj), c.n_head, c.head_dim));
        l.k_proj = Linear::Dense(to_interleaved(&dense(&l.k_proj), c.n_kv_head, c.head_dim));
    }
    let im = TransformerLm::new(ic.clone(), w).unwrap();
    let t = toks(11, 40, 5);
    let a = f32s(&m.forward_causal(&t, 1, None).unwrap());
    let b = f32s(&im.forward_causal(&t, 1, None).unwrap());
    assert!(rel(&b, &a) < 1e-5, "{}", rel(&b, &a));
    // Cached decoding agrees in the interleaved layout too.
    let (_, mut st) = im.prefill(&t[..3]).unwrap();
    for (i, &tok) in t.iter().enumerate().skip(3) {
        let l = im.step(&mut st, tok).unwrap();
        assert!(rel(&l, &a[i * 40..][..40]) < 1e-4);
    }
    // Without the permutation the layouts differ.
    let plain = TransformerLm::new(ic, m.weights().clone()).unwrap();
    let p = f32s(&plain.forward_causal(&t, 1, None).unwrap());
    assert!(rel(&p, &a) > 1e-3);
}

#[test]
fn packed_documents_do_not_attend_across_boundaries() {
    let c = cfg(50, 2);
    let m = model(&c, 7);
    let a = toks(5, 50, 6);
    let b = toks(7, 50, 7);
    let mut packed = a.clone();
    packed.extend(&b);
    let seq: Vec<i32> = (0..12).map(|i| if i < 5 { 1 } else { 2 }).collect();
    let out = m.forward_causal(&packed, 1, Some(&seq)).unwrap();
    let alone_a = m.forward_causal(&a, 1, None).unwrap();
    let alone_b = m.forward_causal(&b, 1, None).unwrap();
    // RoPE is relative, so document b alone (positions from 0) gives the same logits.
    for i in 0..5 {
        assert!(rel(&row(&out, i), &row(&alone_a, i)) < 1e-4);
    }
    for i in 0..7 {
        let r = rel(&row(&out, 5 + i), &row(&alone_b, i));
        assert!(r < 1e-4, "doc b position {i}: {r}");
    }
    // Without seq_idx the second document sees the first.
    let joined = m.forward_causal(&packed, 1, None).unwrap();
    assert!(rel(&row(&joined, 5), &row(&alone_b, 0)) > 1e-3);
    // Batched rows with their own documents match row by row.
    let mut two = packed.clone();
    two.extend(&packed);
    let mut seq2 = seq.clone();
    seq2.extend(seq.iter().map(|s| s + 5));
    let out2 = m.forward_causal(&two, 2, Some(&seq2)).unwrap();
    assert!(rel(&f32s(&out2.i(1).unwrap()), &f32s(&out.i(0).unwrap())) < 1e-5);
}

#[test]
fn batched_cached_forward_matches_rows() {
    let c = cfg(30, 2);
    let m = model(&c, 8);
    let a = toks(6, 30, 1);
    let b = toks(6, 30, 2);
    let mut both = a.clone();
    both.extend(&b);
    let mut cache = m.new_cache(2);
    let l = m
        .forward(&both, 2, &mut cache, LogitsMode::Last)
        .unwrap()
        .unwrap();
    assert_eq!(l.dims(), &[2, 30]);
    let fa = m.forward_causal(&a, 1, None).unwrap();
    let fb = m.forward_causal(&b, 1, None).unwrap();
    assert!(rel(&f32s(&l.i(0).unwrap()), &row(&fa, 5)) < 1e-4);
    assert!(rel(&f32s(&l.i(1).unwrap()), &row(&fb, 5)) < 1e-4);
    assert_eq!(cache.len, 6);
}

#[test]
fn quantized_linear_layers_run_close_to_dense() {
    let mut c = TransformerConfig::new(64, 64, 2, 4, 96);
    c.n_kv_head = 2;
    let m = model(&c, 9);
    let q = |l: &Linear| -> Linear {
        let qt = QTensor::quantize(l.dense().unwrap(), GgmlDType::Q8_0).unwrap();
        Linear::Quantized(QMatMul::from_qtensor(qt).unwrap())
    };
    let mut w = m.weights().clone();
    for l in w.layers.iter_mut() {
        let LayerWeights {
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            gate_proj,
            up_proj,
            down_proj,
            ..
        } = l;
        *q_proj = q(q_proj);
        *k_proj = q(k_proj);
        *v_proj = q(v_proj);
        *o_proj = q(o_proj);
        *gate_proj = gate_proj.as_ref().map(q);
        *up_proj = q(up_proj);
        *down_proj = q(down_proj);
    }
    w.lm_head = Some(q(&Linear::Dense(w.embed.clone())));
    let mut qc = c.clone();
    qc.tie_embeddings = false;
    let qm = TransformerLm::new(qc, w).unwrap();
    let t = toks(10, 64, 3);
    let a = f32s(&m.forward_causal(&t, 1, None).unwrap());
    let b = f32s(&qm.forward_causal(&t, 1, None).unwrap());
    let r = rel(&b, &a);
    // Q8_0 weights (≈0.4% error each) through sharp attention: close, not equal.
    assert!(r < 0.15 && r > 0.0, "Q8_0 vs dense rel err {r}");
    let (_, mut st) = qm.prefill(&t[..4]).unwrap();
    for (i, &tok) in t.iter().enumerate().skip(4) {
        let l = qm.step(&mut st, tok).unwrap();
        assert!(rel(&l, &b[i * 64..][..64]) < 1e-3);
    }
}

#[test]
fn gradients_match_finite_differences() {
    for mlp in [MlpKind::SwiGlu, MlpKind::Gelu] {
        let mut c = TransformerConfig::new(11, 8, 2, 2, 12);
        c.n_kv_head = 1;
        c.mlp = mlp;
        c.tie_embeddings = mlp == MlpKind::SwiGlu;
        let tm = TrainTransformer::init(&c, 3, DType::F64).unwrap();
        // Larger weights so the gradients are not tiny.
        for (n, v) in tm.params() {
            if !n.contains("norm") {
                v.set(&(v.as_tensor() * 20.0).unwrap()).unwrap();
            }
        }
        let tokens: Vec<u32> = vec![1, 5, 2, 9, 3, 3, 10, 0, 4, 7, 6, 8];
        let targets: Vec<u32> = vec![5, 2, 9, 3, 3, 10, 0, 4, 7, 6, 8, 1];
        let seq: Vec<i32> = vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2];
        let loss = |m: &TrainTransformer| -> Tensor {
            let l = m.forward(&tokens, 2, Some(&seq)).unwrap();
            cross_entropy(&l, &targets).unwrap()
        };
        let grads = loss(&tm).backward().unwrap();
        let mut checked = 0;
        for (name, idx) in [
            ("model.embed_tokens.weight", 13usize),
            ("model.layers.0.self_attn.q_proj.weight", 5),
            ("model.layers.1.self_attn.k_proj.weight", 17),
            ("model.layers.0.self_attn.v_proj.weight", 3),
            ("model.layers.1.self_attn.o_proj.weight", 30),
            ("model.layers.0.mlp.up_proj.weight", 40),
            ("model.layers.1.mlp.down_proj.weight", 7),
            ("model.layers.0.input_layernorm.weight", 2),
            ("model.norm.weight", 6),
        ] {
            let v = tm.param(name).unwrap();
            let g = grads.get(v.as_tensor()).unwrap();
            let analytic = g.flatten_all().unwrap().to_vec1::<f64>().unwrap()[idx];
            let base = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let shape = v.as_tensor().dims().to_vec();
            let eps = 1e-6;
            let at = |delta: f64| -> f64 {
                let mut b = base.clone();
                b[idx] += delta;
                v.set(&Tensor::from_vec(b, shape.clone(), &Device::Cpu).unwrap())
                    .unwrap();
                loss(&tm).to_scalar::<f64>().unwrap()
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            at(0.0);
            let err = (analytic - numeric).abs() / numeric.abs().max(1e-3);
            assert!(
                err < 1e-5,
                "{mlp:?} {name}[{idx}]: analytic {analytic}, numeric {numeric}"
            );
            assert!(
                analytic.abs() > 1e-6,
                "{name}: gradient is ~0, the check is empty"
            );
            checked += 1;
        }
        assert_eq!(checked, 9);
    }
}

#[test]
fn save_load_roundtrip_and_config_keys() {
    for (mlp, tie, layout) in [
        (MlpKind::SwiGlu, true, RopeLayout::Half),
        (MlpKind::Gelu, false, RopeLayout::Interleaved),
    ] {
        let mut c = cfg(30, 2);
        c.mlp = mlp;
        c.tie_embeddings = tie;
        c.rope_layout = layout;
        c.rope_theta = 500.0;
        let m = model(&c, 10);
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["model_type"], "llama");
        assert_eq!(v["num_key_value_heads"], 2);
        assert_eq!(v["tie_word_embeddings"], tie);
        let back = TransformerLm::load(dir.path()).unwrap();
        assert_eq!(back.config(), m.config());
        let t = toks(7, 30, 1);
        let a = f32s(&m.forward_causal(&t, 1, None).unwrap());
        let b = f32s(&back.forward_causal(&t, 1, None).unwrap());
        assert_eq!(a, b);
        let tt = TrainTransformer::load(dir.path()).unwrap();
        assert_eq!(tt.params().len(), expected_specs(&c).len());
    }
}

/// A minimal HF Llama config.json (as `transformers` writes it) with the given overrides.
fn write_hf_dir(dir: &Path, cfg: &TransformerConfig, drop: Option<&str>, reshape: Option<&str>) {
    let m = model(cfg, 11);
    m.save(dir).unwrap();
    let mut t = seqlab_tensor::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    if let Some(d) = drop {
        t.remove(d).unwrap();
    }
    if let Some(r) = reshape {
        let x = t.remove(r).unwrap();
        t.insert(
            r.to_string(),
            x.narrow(0, 0, x.dim(0).unwrap() - 1).unwrap(),
        );
    }
    seqlab_tensor::save_atomic(dir.join("model.safetensors"), &t).unwrap();
}

#[test]
fn loads_a_plain_hf_llama_config() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(30, 2);
    write_hf_dir(dir.path(), &c, None, None);
    // What transformers' LlamaConfig writes (no seqlab keys, extra keys ignored).
    let hf = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 30,
        "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "hidden_act": "silu",
        "max_position_embeddings": 2048, "torch_dtype": "float32", "bos_token_id": 1,
        "eos_token_id": 2, "attention_bias": false, "attention_dropout": 0.0,
        "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": true, "rope_scaling": null
    });
    std::fs::write(dir.path().join("config.json"), hf.to_string()).unwrap();
    let m = TransformerLm::load(dir.path()).unwrap();
    assert_eq!(m.config().mlp, MlpKind::SwiGlu);
    assert_eq!(m.config().rope_layout, RopeLayout::Half);
    assert_eq!(m.config().eos_token_id, Some(2));
    assert_eq!(m.config().n_kv_head, 2);
}

fn one_line_err(dir: &Path, needles: &[&str]) {
    let e = TransformerLm::load(dir).unwrap_err().to_string();
    assert!(!e.contains('\n'), "not one line: {e}");
    for n in needles {
        assert!(e.contains(n), "`{e}` does not name {n}");
    }
}

#[test]
fn load_errors_are_one_line_and_name_the_culprit() {
    let c = cfg(30, 2);
    let d = tempfile::tempdir().unwrap();
    write_hf_dir(
        d.path(),
        &c,
        Some("model.layers.1.mlp.gate_proj.weight"),
        None,
    );
    one_line_err(d.path(), &["model.layers.1.mlp.gate_proj.weight"]);

    let d = tempfile::tempdir().unwrap();
    write_hf_dir(
        d.path(),
        &c,
        None,
        Some("model.layers.0.self_attn.k_proj.weight"),
    );
    one_line_err(d.path(), &["model.layers.0.self_attn.k_proj.weight", "15"]);

    let d = tempfile::tempdir().unwrap();
    write_hf_dir(d.path(), &c, None, None);
    let p = d.path().join("config.json");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"),
    )
    .unwrap();
    one_line_err(d.path(), &["config.json", "num_key_value_heads"]);
    std::fs::write(
        &p,
        text.replace(
            "\"seqlab_rope_layout\": \"half\"",
            "\"seqlab_rope_layout\": \"zigzag\"",
        ),
    )
    .unwrap();
    one_line_err(d.path(), &["config.json", "seqlab_rope_layout", "zigzag"]);
    std::fs::write(&p, "{not json").unwrap();
    one_line_err(d.path(), &["config.json", "JSON"]);
    std::fs::write(
        &p,
        text.replace("\"model_type\": \"llama\"", "\"model_type\": \"mamba\""),
    )
    .unwrap();
    one_line_err(d.path(), &["model_type", "mamba"]);
    std::fs::remove_file(&p).unwrap();
    one_line_err(d.path(), &["config.json"]);
    one_line_err(&d.path().join("nope"), &["nope"]);

    // Constructor checks too (what a GGUF loader fills).
    let m = model(&c, 12);
    let mut w = m.weights().clone();
    w.layers[1].up_proj = Linear::Dense(Tensor::zeros((47, 32), DType::F32, &Device::Cpu).unwrap());
    let e = TransformerLm::new(c.clone(), w).unwrap_err().to_string();
    assert!(
        e.contains("model.layers.1.mlp.up_proj.weight") && e.contains("47"),
        "{e}"
    );
    // Token ids out of range.
    let e = m.prefill(&[30]).unwrap_err().to_string();
    assert!(e.contains("30"), "{e}");
}

/// Decode throughput of a small model (prints tokens/s). Run:
/// `cargo test -p seqlab-lm --release --test lm transformer::decode_speed -- --ignored --nocapture`
#[test]
#[ignore]
fn decode_speed() {
    let mut c = TransformerConfig::new(2048, 256, 4, 8, 704);
    c.n_kv_head = 4;
    let m = model(&c, 13);
    let prompt = toks(64, 2048, 1);
    let (_, mut st) = m.prefill(&prompt).unwrap();
    let n = 192;
    let t0 = std::time::Instant::now();
    let mut tok = 1u32;
    for _ in 0..n {
        let l = m.step(&mut st, tok).unwrap();
        tok = seqlab_tensor::argmax(&l).unwrap();
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "decode: {n} tokens in {s:.3} s = {:.1} tokens/s (context 64..256)",
        n as f64 / s
    );
}
