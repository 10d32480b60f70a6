//! GGUF loading (`seqlab_lm::gguf`).
//!
//! Without any download: a tiny random Llama GGUF is written with candle's `gguf_file::write`
//! (Q8_0, Q4_1 and F16 weights, F32 norms, a small byte-level BPE tokenizer in the metadata) and
//! - loads, with the config its metadata describe;
//! - Q4_1 / Q8_0 blocks dequantize as the ggml layouts say (x = d·q + m, x = d·q);
//! - its dense (dequantized) model equals a Transformer LM built independently from the same
//!   weights under their HF names, and the quantized model agrees with it within quantization
//!   error; prefill + steps (KV cache) equal the parallel pass;
//! - quantized models (the tiny GGUF, and an in-memory Q4_1 model with SmolLM2's attention
//!   shape) pass the `CausalLm` conformance suite, steps and scores equal bit for bit;
//! - the tokenizer splits digits, matches special tokens whole and round-trips;
//! - every corruption gives one error line naming the problem, never a panic.
//!
//! With the real SmolLM2-135M-Instruct Q4_1 file (`datasets/fetch_smollm2.sh`; the tests print
//! a skip message without it):
//!
//! ```sh
//! datasets/fetch_smollm2.sh
//! cargo test -p seqlab-lm --release --test lm gguf:: -- --nocapture smollm2
//! ```

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqlab_lm::gguf::{
    load_gguf, load_gguf_parts, load_gguf_with, GgufFile, GgufTokenizer, WeightFormat,
};
use seqlab_lm::mamba::LogitsMode;
use seqlab_lm::transformer::{
    Linear, RopeLayout, TransformerConfig, TransformerLm, TransformerWeights,
};
use seqlab_lm::CausalLm;
use seqlab_tokenizer::Tokenizer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// The tiny model.

const D: usize = 64;
const N_LAYER: usize = 2;
const N_HEAD: usize = 4;
const N_KV: usize = 2;
const HD: usize = 16;
const F: usize = 96;
const THETA: f32 = 10_000.0;
const EPS: f32 = 1e-5;

/// Options of a tiny GGUF, each a way to break it.
#[derive(Clone)]
pub(crate) struct Tiny {
    pub(crate) arch: &'static str,
    pub(crate) drop_tensor: Option<&'static str>,
    pub(crate) wrong_shape: Option<&'static str>,
    pub(crate) drop_key: Option<&'static str>,
    pub(crate) alignment: Option<u32>,
    pub(crate) untied: bool,
}

impl Default for Tiny {
    fn default() -> Self {
        Self {
            arch: "llama",
            drop_tensor: None,
            wrong_shape: None,
            drop_key: None,
            alignment: None,
            untied: false,
        }
    }
}

/// GPT-2's printable stand-ins for the 256 bytes (`bytes_to_unicode`).
fn byte_chars() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut out = vec![' '; 256];
    for (b, c) in bs.into_iter().zip(cs) {
        out[b as usize] = char::from_u32(c).unwrap();
    }
    out
}

/// Merges of the tiny vocabulary (each adds its concatenation as a token).
const MERGES: &[(&str, &str)] = &[
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("T", "he"),
    ("i", "n"),
    ("Ġ", "a"),
    ("o", "n"),
    ("Ġa", "n"),
    ("Ġan", "d"),
    ("e", "r"),
];
const SPECIALS: &[&str] = &["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Tokens: 3 control tokens, 256 byte chars, the merges.
fn tiny_tokens() -> Vec<String> {
    let mut t: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    t.extend(byte_chars().into_iter().map(String::from));
    t.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    t
}

pub(crate) fn vocab() -> usize {
    tiny_tokens().len()
}

fn rand_tensor(rng: &mut StdRng, shape: &[usize], scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// The tensors of the tiny model as written (name, quantized tensor), in file order.
fn tiny_tensors(opts: &Tiny) -> Vec<(String, QTensor)> {
    let mut rng = StdRng::seed_from_u64(7);
    let v = vocab();
    let (qd, kd) = (N_HEAD * HD, N_KV * HD);
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, dtype: GgmlDType, rng: &mut StdRng| {
        let scale = if shape.len() == 1 {
            0.5
        } else {
            1.0 / (shape[1] as f32).sqrt() * 1.7
        };
        let mut t = rand_tensor(rng, &shape, scale);
        if shape.len() == 1 {
            t = (t + 1.0).unwrap(); // norm weights around 1
        }
        out.push((name, QTensor::quantize(&t, dtype).unwrap()));
    };
    push(
        "token_embd.weight".into(),
        vec![v, D],
        GgmlDType::Q8_0,
        &mut rng,
    );
    for i in 0..N_LAYER {
        let p = format!("blk.{i}");
        push(
            format!("{p}.attn_norm.weight"),
            vec![D],
            GgmlDType::F32,
            &mut rng,
        );
        push(
            format!("{p}.attn_q.weight"),
            vec![qd, D],
            GgmlDType::Q4_1,
            &mut rng,
        );
        push(
            format!("{p}.attn_k.weight"),
            vec![kd, D],
            GgmlDType::Q4_1,
            &mut rng,
        );
        push(
            format!("{p}.attn_v.weight"),
            vec![kd, D],
            GgmlDType::Q8_0,
            &mut rng,
        );
        push(
            format!("{p}.attn_output.weight"),
            vec![D, qd],
            GgmlDType::Q4_1,
            &mut rng,
        );
        push(
            format!("{p}.ffn_norm.weight"),
            vec![D],
            GgmlDType::F32,
            &mut rng,
        );
        push(
            format!("{p}.ffn_gate.weight"),
            vec![F, D],
            GgmlDType::Q4_1,
            &mut rng,
        );
        push(
            format!("{p}.ffn_up.weight"),
            vec![F, D],
            GgmlDType::Q8_0,
            &mut rng,
        );
        push(
            format!("{p}.ffn_down.weight"),
            vec![D, F],
            GgmlDType::F16,
            &mut rng,
        );
    }
    push(
        "output_norm.weight".into(),
        vec![D],
        GgmlDType::F32,
        &mut rng,
    );
    if opts.untied {
        push(
            "output.weight".into(),
            vec![v, D],
            GgmlDType::Q8_0,
            &mut rng,
        );
    }
    if let Some(name) = opts.drop_tensor {
        out.retain(|(n, _)| n != name);
    }
    if let Some(name) = opts.wrong_shape {
        let i = out.iter().position(|(n, _)| n == name).unwrap();
        let (_, q) = &out[i];
        let dims = q.shape().dims().to_vec();
        let bad = rand_tensor(&mut rng, &[dims[0] + 1, dims[1]], 0.1);
        out[i].1 = QTensor::quantize(&bad, q.dtype()).unwrap();
    }
    out
}

fn tiny_metadata(opts: &Tiny) -> Vec<(String, Value)> {
    let tokens = tiny_tokens();
    let mut types = vec![1i32; tokens.len()];
    types[..SPECIALS.len()].fill(3);
    let strs = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    let mut m: Vec<(String, Value)> = vec![
        (
            "general.architecture".into(),
            Value::String(opts.arch.into()),
        ),
        ("general.name".into(), Value::String("tiny".into())),
        ("llama.block_count".into(), Value::U32(N_LAYER as u32)),
        ("llama.context_length".into(), Value::U32(256)),
        ("llama.embedding_length".into(), Value::U32(D as u32)),
        ("llama.feed_forward_length".into(), Value::U32(F as u32)),
        (
            "llama.attention.head_count".into(),
            Value::U32(N_HEAD as u32),
        ),
        (
            "llama.attention.head_count_kv".into(),
            Value::U32(N_KV as u32),
        ),
        ("llama.rope.freq_base".into(), Value::F32(THETA)),
        ("llama.rope.dimension_count".into(), Value::U32(HD as u32)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(EPS),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
        ("tokenizer.ggml.tokens".into(), strs(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        (
            "tokenizer.ggml.merges".into(),
            strs(MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        (
            "tokenizer.chat_template".into(),
            Value::String("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}".into()),
        ),
    ];
    if let Some(a) = opts.alignment {
        m.push(("general.alignment".into(), Value::U32(a)));
    }
    if let Some(k) = opts.drop_key {
        m.retain(|(n, _)| n != k);
    }
    m
}

/// Writes the tiny GGUF into `dir` and returns its path (also the seed of `fuzz_gguf`).
pub(crate) fn write_tiny(dir: &Path, name: &str, opts: &Tiny) -> PathBuf {
    let path = dir.join(name);
    let meta = tiny_metadata(opts);
    let tensors = tiny_tensors(opts);
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut f, &meta_refs, &t_refs).unwrap();
    path
}

pub(crate) fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub(crate) fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub(crate) fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

/// The error message of a load that must fail; checks it is one line.
fn load_err(path: &Path) -> String {
    let e = match load_gguf(path) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(!e.contains('\n'), "error is not one line: {e:?}");
    println!("error: {e}");
    e
}

// ---------------------------------------------------------------------------------------------
// Loading and numerics.

#[test]
fn tiny_gguf_config_and_tokenizer_metadata() {
    let dir = tmp();
    let path = write_tiny(dir.path(), "tiny.gguf", &Tiny::default());
    let (lm, tok) = load_gguf(&path).unwrap();
    let c = lm.config();
    assert_eq!(
        (
            c.vocab_size,
            c.d_model,
            c.n_layer,
            c.n_head,
            c.n_kv_head,
            c.head_dim,
            c.d_ff
        ),
        (vocab(), D, N_LAYER, N_HEAD, N_KV, HD, F)
    );
    assert_eq!(c.rope_layout, RopeLayout::Interleaved);
    assert_eq!(c.rope_theta, THETA as f64);
    assert!((c.norm_eps - EPS as f64).abs() < 1e-12);
    assert!(c.tie_embeddings);
    assert_eq!(c.max_position_embeddings, 256);
    assert_eq!(c.eos_token_id, Some(2));
    let s = tok.special_ids();
    assert_eq!(
        (s.bos, s.eos, s.unk, s.pad),
        (Some(1), Some(2), Some(0), Some(2))
    );
    assert!(!tok.add_bos());
    assert_eq!(tok.pre_tokenizer(), "smollm");
    assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
    assert_eq!(tok.vocab_size(), vocab());
    assert_eq!(tok.kind(), "gguf-bpe");
}

/// Q4_1: `d: f16, m: f16, qs: [u8; 16]` per 32 weights, x_j = d·(qs[j] & 15) + m and
/// x_{16+j} = d·(qs[j] >> 4) + m; Q8_0: `d: f16, q: [i8; 32]`, x = d·q. Decoded by hand from the
/// file's bytes and compared with the loader's dequantized tensor.
#[test]
fn quantized_blocks_dequantize_as_the_ggml_layouts_say() {
    let dir = tmp();
    let path = write_tiny(dir.path(), "tiny.gguf", &Tiny::default());
    let file = GgufFile::open(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let f16 = |b: &[u8]| f16_to_f32(u16::from_le_bytes([b[0], b[1]]));

    let name = "blk.0.attn_q.weight";
    let info = file.tensor_info(name).unwrap().clone();
    assert_eq!(info.dtype, GgmlDType::Q4_1);
    let raw = &bytes[info.start..info.start + info.len];
    let mut by_hand = Vec::new();
    for block in raw.chunks_exact(20) {
        let (d, m) = (f16(&block[0..2]), f16(&block[2..4]));
        let qs = &block[4..20];
        by_hand.extend(qs.iter().map(|q| d * (q & 15) as f32 + m));
        by_hand.extend(qs.iter().map(|q| d * (q >> 4) as f32 + m));
    }
    let deq = f32s(&file.dequantized(name, &info.shape).unwrap());
    assert!(max_abs_diff(&by_hand, &deq) < 1e-6);

    let name = "token_embd.weight";
    let info = file.tensor_info(name).unwrap().clone();
    assert_eq!(info.dtype, GgmlDType::Q8_0);
    let raw = &bytes[info.start..info.start + info.len];
    let by_hand: Vec<f32> = raw
        .chunks_exact(34)
        .flat_map(|b| {
            let d = f16(&b[0..2]);
            b[2..].iter().map(move |&q| d * (q as i8) as f32)
        })
        .collect();
    let deq = f32s(&file.dequantized(name, &info.shape).unwrap());
    assert!(max_abs_diff(&by_hand, &deq) < 1e-6);
}

/// IEEE half precision bits → f32 (sign, 5-bit exponent, 10-bit mantissa).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as f32;
    sign * match exp {
        0 => mant * 2f32.powi(-24),
        31 if mant == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + mant / 1024.0) * 2f32.powi(e - 15),
    }
}

/// The tiny weights as written (regenerated from the same seed), dequantized, under HF Llama
/// names.
fn hf_named_tensors(opts: &Tiny) -> HashMap<String, Tensor> {
    let map = |g: &str| -> Option<&'static str> {
        Some(match g {
            "attn_norm" => "input_layernorm",
            "attn_q" => "self_attn.q_proj",
            "attn_k" => "self_attn.k_proj",
            "attn_v" => "self_attn.v_proj",
            "attn_output" => "self_attn.o_proj",
            "ffn_norm" => "post_attention_layernorm",
            "ffn_gate" => "mlp.gate_proj",
            "ffn_up" => "mlp.up_proj",
            "ffn_down" => "mlp.down_proj",
            _ => return None,
        })
    };
    tiny_tensors(opts)
        .into_iter()
        .map(|(name, q)| {
            let t = q.dequantize(&Device::Cpu).unwrap();
            let hf = match name.as_str() {
                "token_embd.weight" => "model.embed_tokens.weight".to_string(),
                "output_norm.weight" => "model.norm.weight".to_string(),
                "output.weight" => "lm_head.weight".to_string(),
                n => {
                    let mut parts = n.split('.');
                    let (_, i, g) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
                    format!("model.layers.{i}.{}.weight", map(g).unwrap())
                }
            };
            (hf, t)
        })
        .collect()
}

/// A Transformer LM built without the GGUF mapping: config by hand, weights by HF name.
fn reference_model(opts: &Tiny) -> TransformerLm {
    let mut cfg = TransformerConfig::new(vocab(), D, N_LAYER, N_HEAD, F);
    cfg.n_kv_head = N_KV;
    cfg.head_dim = HD;
    cfg.rope_theta = THETA as f64;
    cfg.rope_layout = RopeLayout::Interleaved;
    cfg.norm_eps = EPS as f64;
    cfg.tie_embeddings = !opts.untied;
    let mut t = hf_named_tensors(opts);
    let w = TransformerWeights::from_tensors(&mut t, &cfg).unwrap();
    TransformerLm::new(cfg, w).unwrap()
}

pub(crate) const TOKENS: &[u32] = &[5, 40, 77, 260, 261, 3, 100, 200, 9, 17, 263, 150];

#[test]
fn dense_gguf_model_equals_the_reference_and_quantized_agrees() {
    for untied in [false, true] {
        let opts = Tiny {
            untied,
            ..Tiny::default()
        };
        let dir = tmp();
        let path = write_tiny(dir.path(), "tiny.gguf", &opts);
        let (dense, _) = load_gguf_with(&path, WeightFormat::Dequantized).unwrap();
        let (quant, _) = load_gguf(&path).unwrap();
        let reference = reference_model(&opts);

        let l_ref = f32s(&reference.forward_causal(TOKENS, 1, None).unwrap());
        let l_dense = f32s(&dense.forward_causal(TOKENS, 1, None).unwrap());
        let l_quant = f32s(&quant.forward_causal(TOKENS, 1, None).unwrap());
        let scale = max_abs(&l_ref);
        assert!(scale > 0.5, "logits too small to compare: {scale}");
        let d_dense = max_abs_diff(&l_ref, &l_dense);
        assert!(
            d_dense < 1e-5 * scale.max(1.0),
            "dense vs reference: {d_dense}"
        );
        // QMatMul quantizes the activations to 8 bits per block: agreement to a few percent.
        let d_quant = max_abs_diff(&l_ref, &l_quant);
        println!("untied={untied}: |logits| ≤ {scale:.3}, dense Δ {d_dense:.2e}, quantized Δ {d_quant:.2e}");
        assert!(
            d_quant < 0.05 * scale,
            "quantized vs dense: {d_quant} (scale {scale})"
        );
        // And the same next-token choice almost everywhere.
        let v = vocab();
        let argmax = |l: &[f32]| -> Vec<usize> {
            l.chunks(v)
                .map(|r| (0..v).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap())
                .collect()
        };
        let same = argmax(&l_ref)
            .iter()
            .zip(argmax(&l_quant))
            .filter(|(a, b)| **a == *b)
            .count();
        assert!(
            same * 10 >= TOKENS.len() * 8,
            "argmax agrees at {same}/{}",
            TOKENS.len()
        );
    }
}

#[test]
fn kv_cache_steps_equal_the_parallel_pass() {
    let dir = tmp();
    let path = write_tiny(dir.path(), "tiny.gguf", &Tiny::default());
    let (lm, _) = load_gguf(&path).unwrap();
    let v = vocab();
    let all = f32s(&lm.forward_causal(TOKENS, 1, None).unwrap());
    let (first, mut state) = lm.prefill(&TOKENS[..4]).unwrap();
    assert!(max_abs_diff(&first, &all[3 * v..4 * v]) < 1e-4);
    for (i, &t) in TOKENS.iter().enumerate().skip(4) {
        let l = lm.step(&mut state, t).unwrap();
        let d = max_abs_diff(&l, &all[i * v..(i + 1) * v]);
        assert!(d < 1e-4, "step {i}: {d}");
    }
    // The quantized path also runs the cached forward with LogitsMode::Last.
    let mut cache = lm.new_cache(1);
    let last = lm
        .forward(TOKENS, 1, &mut cache, LogitsMode::Last)
        .unwrap()
        .unwrap();
    assert!(max_abs_diff(&f32s(&last), &all[(TOKENS.len() - 1) * v..]) < 1e-4);
}

/// A quantized Transformer with SmolLM2's attention shape (9 heads of 64 on 3 kv heads), its
/// matrices Q4_1 (`QTensor::quantize`) and its output layer Q8_0, built in memory.
fn quantized_hd64_model(seed: u64, n_layer: usize) -> TransformerLm {
    let mut cfg = TransformerConfig::new(vocab(), 128, n_layer, 9, 256);
    cfg.n_kv_head = 3;
    cfg.head_dim = 64;
    cfg.rope_layout = RopeLayout::Interleaved;
    cfg.tie_embeddings = false;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = HashMap::new();
    for spec in seqlab_lm::transformer::expected_specs(&cfg) {
        let shape = spec.shape.clone();
        let x = if shape.len() == 1 {
            (rand_tensor(&mut rng, &shape, 0.3) + 1.0).unwrap()
        } else {
            rand_tensor(&mut rng, &shape, 1.7 / (shape[1] as f32).sqrt())
        };
        t.insert(spec.name.clone(), x);
    }
    let mut w = TransformerWeights::from_tensors(&mut t, &cfg).unwrap();
    let q = |l: &mut Linear, dt: GgmlDType| {
        let d = l.dense().unwrap().clone();
        *l = Linear::Quantized(QMatMul::from_qtensor(QTensor::quantize(&d, dt).unwrap()).unwrap());
    };
    for l in w.layers.iter_mut() {
        for lin in [
            &mut l.q_proj,
            &mut l.k_proj,
            &mut l.v_proj,
            &mut l.o_proj,
            &mut l.up_proj,
            &mut l.down_proj,
        ] {
            q(lin, GgmlDType::Q4_1);
        }
        q(l.gate_proj.as_mut().unwrap(), GgmlDType::Q4_1);
    }
    q(w.lm_head.as_mut().unwrap(), GgmlDType::Q8_0);
    TransformerLm::new(cfg, w).unwrap()
}

/// A quantized model (Q4_1 / Q8_0 `QMatMul`, which re-quantizes every activation row to 8
/// bits per 32-block) keeps the `CausalLm` contract: one-token steps, multi-token scores and
/// prefills give the same logits. With SmolLM2's attention shape and blocks of 5+ tokens
/// (G·L ≥ 15 query rows) candle's batched attention matmul rounds a row differently from a
/// one-row step (~1e-6), and the activation re-quantization amplifies that past 1e-4: with the
/// masked batched attention this model's steps and scores differed by 2.7e-2 (relative). The
/// cached passes now use the row-exact kernel, so the rows agree bit for bit.
/// Also the tiny GGUF (hd 16), tied and untied.
#[test]
fn quantized_models_pass_the_conformance_suite_exactly() {
    let tokens: Vec<u32> = (0..24u32).map(|i| (i * 37 + 5) % vocab() as u32).collect();
    let dir = tmp();
    let mut models = vec![("9×64-head Q4_1".to_string(), quantized_hd64_model(2, 2))];
    for untied in [false, true] {
        let opts = Tiny {
            untied,
            ..Tiny::default()
        };
        let path = write_tiny(dir.path(), &format!("tiny{untied}.gguf"), &opts);
        models.push((
            format!("tiny gguf untied={untied}"),
            load_gguf(&path).unwrap().0,
        ));
    }
    let v = vocab();
    for (name, lm) in &models {
        for split in [1, 4, 17] {
            seqlab_lm::conformance::check_causal_lm(lm, &tokens, split, 1e-4)
                .unwrap_or_else(|e| panic!("{name}, split {split}: {e}"));
        }
        // Exactly, not just within the tolerance: steps = score rows = prefill's last row.
        let (_, st) = lm.prefill(&tokens[..4]).unwrap();
        let rows = lm.score(&mut st.clone(), &tokens[4..]).unwrap();
        let mut stepped = st;
        for (i, &t) in tokens[4..].iter().enumerate() {
            let l = lm.step(&mut stepped, t).unwrap();
            assert_eq!(l, rows[i * v..(i + 1) * v], "{name}: row {i}");
        }
        let (last, _) = lm.prefill(&tokens).unwrap();
        assert_eq!(last, rows[rows.len() - v..], "{name}: prefill");
    }
}

#[test]
fn tiny_tokenizer_splits_digits_matches_specials_and_round_trips() {
    let dir = tmp();
    let path = write_tiny(dir.path(), "tiny.gguf", &Tiny::default());
    let tok = GgufTokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let hf = tok.hf();
    let id = |t: &str| hf.token_to_id(t).unwrap();
    assert_eq!(tok.encode("The").unwrap(), vec![id("The")]);
    assert_eq!(tok.encode(" the").unwrap(), vec![id("Ġthe")]);
    assert_eq!(
        tok.encode(" and").unwrap(),
        vec![id("Ġand")],
        "merges apply by rank"
    );
    // smollm pre-tokenizer: every digit alone, so "2024" is four tokens, never merged.
    assert_eq!(
        tok.encode("2024").unwrap(),
        vec![id("2"), id("0"), id("2"), id("4")]
    );
    let chat = tok.encode("<|im_start|>user\nThe<|im_end|>").unwrap();
    assert_eq!(chat.first(), Some(&1));
    assert_eq!(chat.last(), Some(&2));
    for text in [
        "The cat sat on the mat, and then 1234 times again!",
        "  spaces\tand\nnew lines  ",
        "ünïcödé ✓ — 東京",
        "<|endoftext|>The end",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
    assert!(tok.decode(&[vocab() as u32]).is_err());
    // Saved as a tokenizer.json, it reads back to the same ids.
    let json = dir.path().join("tokenizer.json");
    tok.save(&json).unwrap();
    let back = seqlab_tokenizer::load(&json).unwrap();
    let text = "The 42 cats and the <|im_end|> dog";
    assert_eq!(back.encode(text).unwrap(), tok.encode(text).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Corrupt files: one line naming the problem.

#[test]
fn truncated_files_name_the_cut() {
    let dir = tmp();
    let path = write_tiny(dir.path(), "tiny.gguf", &Tiny::default());
    let bytes = std::fs::read(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let data_start = file.content().tensor_data_offset as usize;
    let embd = file.tensor_info("token_embd.weight").unwrap().clone();
    let last = file
        .tensors()
        .values()
        .max_by_key(|t| t.start)
        .unwrap()
        .clone();
    let cut = dir.path().join("cut.gguf");
    let cases: Vec<(usize, Vec<&str>)> = vec![
        (0, vec!["truncated", "fewer than the 4-byte GGUF magic"]),
        (3, vec!["truncated", "magic"]),
        (6, vec!["truncated", "version"]),
        (20, vec!["truncated", "header"]),
        (100, vec!["truncated", "header/metadata"]),
        (data_start / 2, vec!["truncated", "header/metadata"]),
        (data_start - 3, vec!["truncated"]),
        (data_start + 10, vec!["truncated", "`token_embd.weight`"]),
        (
            embd.start + embd.len,
            vec!["truncated", "`blk.0.attn_norm.weight`"],
        ),
        (bytes.len() - 1, vec!["truncated", &last.name]),
    ];
    for (at, want) in cases {
        std::fs::write(&cut, &bytes[..at]).unwrap();
        let e = load_err(&cut);
        for w in &want {
            assert!(e.contains(w), "cut at {at}: {e:?} lacks {w:?}");
        }
        assert!(
            e.contains("cut.gguf"),
            "cut at {at}: {e:?} does not name the file"
        );
    }
}

#[test]
fn a_wrong_magic_or_version_is_named() {
    let dir = tmp();
    let path = write_tiny(dir.path(), "tiny.gguf", &Tiny::default());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] = b'G';
    std::fs::write(&path, &bytes).unwrap();
    let e = load_err(&path);
    assert!(
        e.contains("not a GGUF file") && e.contains("\"GGUG\""),
        "{e}"
    );
    bytes[3] = b'F';
    bytes[4..8].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = load_err(&path);
    assert!(e.contains("unsupported GGUF version 7"), "{e}");
    let e = load_err(&dir.path().join("absent.gguf"));
    assert!(e.contains("not found") && e.contains("absent.gguf"), "{e}");
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = tmp();
    let opts = Tiny {
        drop_tensor: Some("blk.1.ffn_up.weight"),
        ..Tiny::default()
    };
    let e = load_err(&write_tiny(dir.path(), "t.gguf", &opts));
    assert!(e.contains("missing tensor `blk.1.ffn_up.weight`"), "{e}");
    assert!(e.contains(&format!("[{F}, {D}]")), "{e}");
}

#[test]
fn a_wrong_shape_is_named() {
    let dir = tmp();
    let opts = Tiny {
        wrong_shape: Some("blk.0.attn_k.weight"),
        ..Tiny::default()
    };
    let e = load_err(&write_tiny(dir.path(), "t.gguf", &opts));
    assert!(e.contains("`blk.0.attn_k.weight`"), "{e}");
    assert!(e.contains(&format!("[{}, {D}]", N_KV * HD + 1)), "{e}");
    assert!(e.contains(&format!("[{}, {D}]", N_KV * HD)), "{e}");
}

#[test]
fn a_wrong_architecture_or_missing_key_is_named() {
    let dir = tmp();
    let opts = Tiny {
        arch: "mamba",
        ..Tiny::default()
    };
    let e = load_err(&write_tiny(dir.path(), "a.gguf", &opts));
    assert!(e.contains("unsupported architecture `mamba`"), "{e}");
    for key in [
        "llama.block_count",
        "llama.attention.layer_norm_rms_epsilon",
        "tokenizer.ggml.tokens",
        "general.architecture",
    ] {
        let opts = Tiny {
            drop_key: Some(key),
            ..Tiny::default()
        };
        let e = load_err(&write_tiny(dir.path(), "k.gguf", &opts));
        assert!(e.contains(&format!("`{key}`")), "{key}: {e}");
    }
}

#[test]
fn a_zero_alignment_is_an_error_not_a_panic() {
    let dir = tmp();
    let opts = Tiny {
        alignment: Some(0),
        ..Tiny::default()
    };
    let e = load_err(&write_tiny(dir.path(), "z.gguf", &opts));
    assert!(e.contains("general.alignment"), "{e}");
}

/// Random byte flips anywhere in the header and metadata: loading returns (Ok or) an error,
/// never panics, and errors are one line.
#[test]
fn random_corruption_never_panics() {
    let dir = tmp();
    let path = write_tiny(dir.path(), "tiny.gguf", &Tiny::default());
    let bytes = std::fs::read(&path).unwrap();
    let data_start = GgufFile::open(&path).unwrap().content().tensor_data_offset as usize;
    let bad = dir.path().join("bad.gguf");
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..150 {
        let mut b = bytes.clone();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(4..data_start);
            b[i] = rng.random();
        }
        std::fs::write(&bad, &b).unwrap();
        if let Err(e) = load_gguf(&bad) {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct Q4_1 file.

fn smollm2() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/downloads/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        println!(
            "skipped: {} not found; run datasets/fetch_smollm2.sh, then \
             cargo test -p seqlab-lm --release --test lm gguf:: -- --nocapture smollm2",
            p.display()
        );
        None
    }
}

/// Opening of "The Wind in the Willows" (Kenneth Grahame, 1908; public domain).
const PROSE: &str = "The Mole had been working very hard all the morning, spring-cleaning his \
little home. First with brooms, then with dusters; then on ladders and steps and chairs, with a \
brush and a pail of whitewash; till he had dust in his throat and eyes, and splashes of \
whitewash all over his black fur, and an aching back and weary arms. Spring was moving in the \
air above and in the earth below and around him, penetrating even his dark and lowly little \
house with its spirit of divine discontent and longing. It was small wonder, then, that he \
suddenly flung down his brush on the floor, said \"Bother!\" and \"O blow!\" and also \"Hang \
spring-cleaning!\" and bolted out of the house without even waiting to put on his coat. \
Something up above was calling him imperiously, and he made for the steep little tunnel which \
answered in his case to the gravelled carriage-drive owned by animals whose residences are \
nearer to the sun and air. So he scraped and scratched and scrabbled and scrooged and then he \
scrooged again and scrabbled and scratched and scraped, working busily with his little paws \
and muttering to himself, \"Up we go! Up we go!\" till at last, pop! his snout came out into \
the sunlight, and he found himself rolling in the warm grass of a great meadow.";

/// exp(mean NLL) of `ids[1..]` given their prefixes, in one causal pass (log-softmax in f64).
fn perplexity(lm: &TransformerLm, ids: &[u32]) -> f64 {
    let v = lm.config().vocab_size;
    let logits = f32s(&lm.forward_causal(ids, 1, None).unwrap());
    let mut nll = 0.0;
    for (i, &next) in ids.iter().enumerate().skip(1) {
        let row = &logits[(i - 1) * v..i * v];
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        nll += lse - row[next as usize] as f64;
    }
    (nll / (ids.len() - 1) as f64).exp()
}

#[test]
fn smollm2_tokenizer_ids_and_round_trip() {
    let Some(path) = smollm2() else { return };
    let file = GgufFile::open(&path).unwrap();
    let tok = GgufTokenizer::from_gguf(&file).unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.pre_tokenizer(), "smollm");
    let s = tok.special_ids();
    assert_eq!(
        (s.bos, s.eos, s.unk, s.pad),
        (Some(1), Some(2), Some(0), Some(2))
    );
    let hf = tok.hf();
    // Known SmolLM2 ids (HF `HuggingFaceTB/SmolLM2-135M-Instruct` tokenizer): "The" 504,
    // " the" ("Ġthe") 260, "\n" ("Ċ") 198, "user" 4093, "system" 9690; a chat turn starts
    // `<|im_start|>user\n` = [1, 4093, 198].
    assert_eq!(tok.encode("The").unwrap(), vec![504]);
    assert_eq!(tok.encode(" the").unwrap(), vec![260]);
    assert_eq!(hf.id_to_token(260).as_deref(), Some("Ġthe"));
    let chat = tok.encode("<|im_start|>user\nHello!<|im_end|>\n").unwrap();
    println!("chat ids: {chat:?}");
    assert_eq!(chat[..3], [1, 4093, 198]);
    assert_eq!(chat[chat.len() - 2..], [2, 198]);
    assert_eq!(tok.encode("<|im_start|>system").unwrap(), vec![1, 9690]);
    let ids = tok.encode("In 2024, the quick brown fox").unwrap();
    let pieces: Vec<String> = ids.iter().map(|&i| hf.id_to_token(i).unwrap()).collect();
    println!("pieces: {pieces:?}");
    assert_eq!(
        pieces,
        ["In", "Ġ", "2", "0", "2", "4", ",", "Ġthe", "Ġquick", "Ġbrown", "Ġfox"]
    );
    for text in [
        PROSE,
        "naïve café — ✓ 東京 😀",
        "<|im_start|>system\nHi<|im_end|>",
    ] {
        assert_eq!(tok.decode(&tok.encode(text).unwrap()).unwrap(), text);
    }
}

#[test]
fn smollm2_greedy_continuation_is_fluent() {
    let Some(path) = smollm2() else { return };
    let (lm, tok) = load_gguf(&path).unwrap();
    let prompt =
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let ids = tok.encode(prompt).unwrap();
    let argmax = |l: &[f32]| (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap() as u32;
    let (mut logits, mut state) = lm.prefill(&ids).unwrap();
    let mut out = Vec::new();
    for _ in 0..24 {
        let t = argmax(&logits);
        if Some(t) == tok.special_ids().eos {
            break;
        }
        out.push(t);
        logits = lm.step(&mut state, t).unwrap();
    }
    let text = tok.decode(&out).unwrap();
    println!("SmolLM2 greedy: {text:?}");
    let distinct: std::collections::HashSet<_> = out.iter().collect();
    assert!(distinct.len() >= 4, "degenerate continuation: {text:?}");
    assert!(text.contains("Paris"), "{text:?}");

    let ids = tok.encode("The little town by the river was").unwrap();
    let (mut logits, mut state) = lm.prefill(&ids).unwrap();
    let mut out = Vec::new();
    for _ in 0..32 {
        let t = argmax(&logits);
        out.push(t);
        logits = lm.step(&mut state, t).unwrap();
    }
    let text = tok.decode(&out).unwrap();
    println!("SmolLM2 greedy (plain prompt): {text:?}");
    let distinct: std::collections::HashSet<_> = out.iter().collect();
    assert!(distinct.len() >= 12, "degenerate continuation: {text:?}");
    let letters = text
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || *c == ' ')
        .count();
    assert!(
        letters * 10 >= text.chars().count() * 8,
        "not English prose: {text:?}"
    );
}

#[test]
fn smollm2_perplexity_on_held_out_prose_and_the_wrong_rope_layout() {
    let Some(path) = smollm2() else { return };
    let file = GgufFile::open(&path).unwrap();
    let tok = GgufTokenizer::from_gguf(&file).unwrap();
    let ids = tok.encode(PROSE).unwrap();
    let (cfg, w) = load_gguf_parts(&file, WeightFormat::Quantized).unwrap();
    let good = TransformerLm::new(cfg.clone(), w.clone()).unwrap();
    let ppl = perplexity(&good, &ids);
    let mut flipped = cfg;
    flipped.rope_layout = RopeLayout::Half;
    let bad = TransformerLm::new(flipped, w).unwrap();
    let ppl_half = perplexity(&bad, &ids);
    println!(
        "SmolLM2-135M-Instruct Q4_1, {} tokens of The Wind in the Willows: perplexity {ppl:.2} \
         (interleaved RoPE, correct); {ppl_half:.2} with the half layout",
        ids.len()
    );
    assert!((5.0..80.0).contains(&ppl), "perplexity {ppl}");
    assert!(ppl_half > 3.0 * ppl, "wrong layout {ppl_half} vs {ppl}");
}

#[test]
fn smollm2_dequantized_and_quantized_paths_agree() {
    let Some(path) = smollm2() else { return };
    let file = GgufFile::open(&path).unwrap();
    let tok = GgufTokenizer::from_gguf(&file).unwrap();
    let ids = tok
        .encode("It was a bright cold day in April, and the clocks")
        .unwrap();
    let (cfg, wq) = load_gguf_parts(&file, WeightFormat::Quantized).unwrap();
    let (_, wd) = load_gguf_parts(&file, WeightFormat::Dequantized).unwrap();
    let q = TransformerLm::new(cfg.clone(), wq).unwrap();
    let d = TransformerLm::new(cfg, wd).unwrap();
    let (pq, pd) = (perplexity(&q, &ids), perplexity(&d, &ids));
    println!("quantized-path perplexity {pq:.3}, dequantized f32 path {pd:.3}");
    assert!((pq / pd - 1.0).abs() < 0.05, "{pq} vs {pd}");
}

/// SmolLM2's one-token steps, multi-token scores and prefills agree (the conformance suite at
/// the suite's 1e-4), so lossless greedy speculative decoding (which verifies with `score`)
/// reproduces big-only greedy (which decodes with `step`). Before the row-exact attention they
/// differed by 0.1–0.5 (relative, logits ≈ 17–32).
#[test]
fn smollm2_passes_the_conformance_suite() {
    let Some(path) = smollm2() else { return };
    let (lm, tok) = load_gguf(&path).unwrap();
    let ids = tok
        .encode("Because of our powerful sanctions, the Iranian economy is doing very poorly.")
        .unwrap();
    let split = ids.len() - 7;
    seqlab_lm::conformance::check_causal_lm(&lm, &ids, split, 1e-4).unwrap();
    let v = lm.vocab_size();
    let (_, st) = lm.prefill(&ids[..split]).unwrap();
    let rows = lm.score(&mut st.clone(), &ids[split..]).unwrap();
    let mut stepped = st;
    for (i, &t) in ids[split..].iter().enumerate() {
        assert_eq!(
            lm.step(&mut stepped, t).unwrap(),
            rows[i * v..(i + 1) * v],
            "row {i}"
        );
    }
}
