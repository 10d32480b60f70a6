//! Every `CausalLm` implementation passes the one conformance suite
//! (`seqlab_lm::conformance::check_causal_lm`): prefill = score = steps, truncate then re-step =
//! a fresh run, independent snapshots, bad lengths rejected.

use crate::common;

use common::*;
use seqlab_lm::conformance::check_causal_lm;
use seqlab_lm::{CausalLm, MambaLm};

/// The golden prompt followed by its greedy continuation: a real token sequence, repeated when
/// a golden set's sequence is shorter than the long-score test needs (mamba-tiny's 96 tokens
/// are used as they are).
fn golden_sequence() -> Vec<u32> {
    let g = golden_tensors(&golden_dir());
    let mut t = ids(&g["input_ids"]);
    t.extend(ids(&g["generated_ids"]));
    let need = seqlab_lm::mamba::MAMBA_SCORE_STEP_MAX + 3;
    let n = t.len();
    if n < need {
        t = t.iter().cycle().take(need).copied().collect();
    }
    t
}

#[test]
fn mamba_conforms() {
    let model = MambaLm::load(golden_dir()).unwrap();
    let tokens = golden_sequence();
    check_causal_lm(&model, &tokens[..40], 3, 1e-4).unwrap();
    check_causal_lm(&model, &tokens[..5], 1, 1e-4).unwrap();
}

#[test]
fn mamba_long_score_uses_the_parallel_scan_and_keeps_no_snapshots() {
    let model = MambaLm::load(golden_dir()).unwrap();
    let tokens = golden_sequence();
    assert!(tokens.len() > 2 + seqlab_lm::mamba::MAMBA_SCORE_STEP_MAX);
    let (last, _) = CausalLm::prefill(&model, &tokens).unwrap();
    let (_, mut st) = CausalLm::prefill(&model, &tokens[..2]).unwrap();
    let rows = CausalLm::score(&model, &mut st, &tokens[2..]).unwrap();
    let v = CausalLm::vocab_size(&model);
    let d = seqlab_lm::conformance::max_rel_diff(&rows[rows.len() - v..], &last);
    assert!(d < 1e-4, "{d}");
    assert!(model.truncate(&mut st, tokens.len() / 2).is_err());
}

#[test]
fn mamba_rollback_reaches_only_the_scored_block() {
    let model = MambaLm::load(golden_dir()).unwrap();
    let tokens = golden_sequence();
    let (_, mut st) = CausalLm::prefill(&model, &tokens[..4]).unwrap();
    CausalLm::step(&model, &mut st, tokens[4]).unwrap();
    // Stepping keeps no snapshots: only the current length and 0 are reachable.
    let err = model.truncate(&mut st.clone(), 3).unwrap_err().to_string();
    assert!(err.contains("keeps no snapshots"), "{err}");
    model.truncate(&mut st, 5).unwrap();
    CausalLm::score(&model, &mut st, &tokens[5..9]).unwrap();
    let err = model.truncate(&mut st.clone(), 4).unwrap_err().to_string();
    assert!(err.contains("lengths 5..=8"), "{err}");
    // Rolling back drops the snapshots beyond the new length but keeps the earlier ones.
    model.truncate(&mut st, 7).unwrap();
    model.truncate(&mut st, 6).unwrap();
    assert_eq!(model.state_len(&st), 6);
    assert!(model.truncate(&mut st, 7).is_err());
}

/// `MambaLm::score_block` (the verifier's parallel score) on a batch of two rows: its logits
/// equal recurrent steps, and the state it returns after each position equals the state the
/// steps reach there (conv windows bit for bit: same arithmetic; SSM states to rounding, since
/// the projections feeding them run as a gemm instead of matrix-vector products).
#[test]
fn mamba_score_block_returns_the_state_after_every_position() {
    let model = MambaLm::load(golden_dir()).unwrap();
    let tokens = golden_sequence();
    let (p, l) = (6, 9);
    let rows = [&tokens[..p + l], &tokens[10..10 + p + l]];
    let prompt: Vec<u32> = rows.iter().flat_map(|r| r[..p].iter().copied()).collect();
    let block: Vec<u32> = rows.iter().flat_map(|r| r[p..].iter().copied()).collect();
    let (_, st0) = model
        .prefill(&prompt, 2, seqlab_lm::LogitsMode::Skip)
        .unwrap();
    let mut st = st0.clone();
    let (logits, states) = model.score_block(&mut st, &block).unwrap();
    let v = model.vocab_size();
    assert_eq!(logits.dims(), &[2, l, v]);
    assert_eq!(states.len(), l);
    assert_eq!(states[l - 1], st);
    let logits: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    let mut stepped = st0;
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0f32, f32::max)
    };
    for t in 0..l {
        let ids = [rows[0][p + t], rows[1][p + t]];
        let want: Vec<f32> = model
            .step(&mut stepped, &ids)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for b in 0..2 {
            let got = &logits[(b * l + t) * v..][..v];
            let d = seqlab_lm::conformance::max_rel_diff(got, &want[b * v..][..v]);
            assert!(d < 1e-4, "row {b} position {t}: logits differ by {d}");
        }
        let s = &states[t];
        assert_eq!(s.seqlen, p + t + 1);
        for i in 0..s.conv.len() {
            assert!(
                max_diff(&s.conv[i], &stepped.conv[i]) < 1e-5,
                "conv {i} at {t}"
            );
            assert!(
                max_diff(&s.ssm[i], &stepped.ssm[i]) < 1e-5,
                "ssm {i} at {t}"
            );
        }
    }
    // Rows of different lengths or a foreign state are errors, not panics.
    assert!(model.score_block(&mut st.clone(), &block[..3]).is_err());
    let c = model.config();
    let mut foreign =
        seqlab_lm::MambaState::zeros(2, c.n_layer, c.d_inner + 1, c.d_conv, c.d_state);
    assert!(model.score_block(&mut foreign, &block).is_err());
}

/// Mamba-2 (the mamba2-tiny golden checkpoint): the same contract, `truncate` into a scored
/// block included.
#[test]
fn mamba2_conforms() {
    let dir = mamba2_golden_dir();
    let g = golden_tensors(&dir);
    let model = MambaLm::load(&dir).unwrap();
    let mut tokens = ids(&g["input_ids"]);
    tokens.extend(ids(&g["generated_ids"]));
    check_causal_lm(&model, &tokens[..40.min(tokens.len())], 3, 1e-4).unwrap();
    check_causal_lm(&model, &tokens[..5], 1, 1e-4).unwrap();
    let (_, mut st) = CausalLm::prefill(&model, &tokens[..4]).unwrap();
    let rows = CausalLm::score(&model, &mut st, &tokens[4..9]).unwrap();
    model.truncate(&mut st, 6).unwrap();
    let again = CausalLm::step(&model, &mut st, tokens[6]).unwrap();
    let v = CausalLm::vocab_size(&model);
    let d = seqlab_lm::conformance::max_rel_diff(&again, &rows[2 * v..3 * v]);
    assert!(d < 1e-4, "re-step after truncate differs by {d}");
    assert!(model.truncate(&mut st, 3).is_err());
}

/// A randomly initialised Transformer LM (the training initialisation, seeded).
fn transformer(cfg: seqlab_lm::TransformerConfig, seed: u64) -> seqlab_lm::TransformerLm {
    seqlab_lm::TrainTransformer::init(&cfg, seed, seqlab_tensor::candle_core::DType::F32)
        .unwrap()
        .model()
        .clone()
}

#[test]
fn transformers_conform() {
    use seqlab_lm::{MlpKind, RopeLayout, TransformerConfig};
    let tokens: Vec<u32> = (0..24u32).map(|i| (i * 37 + 5) % 61).collect();
    let plain = TransformerConfig::new(61, 32, 2, 4, 64);
    let gqa = TransformerConfig {
        n_kv_head: 2,
        rope_layout: RopeLayout::Interleaved,
        ..plain.clone()
    };
    let gelu_untied = TransformerConfig {
        mlp: MlpKind::Gelu,
        tie_embeddings: false,
        n_kv_head: 1,
        ..plain.clone()
    };
    for (i, cfg) in [plain, gqa, gelu_untied].into_iter().enumerate() {
        let model = transformer(cfg.clone(), i as u64);
        check_causal_lm(&model, &tokens, 5, 1e-4).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        check_causal_lm(&model, &tokens[..3], 1, 1e-4).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
    }
}

#[test]
fn any_lm_conforms_for_both_kinds() {
    let dir = tempfile::tempdir().unwrap();
    // The Transformer shares the golden model's vocabulary, so the golden tokens fit both.
    let vocab = MambaLm::load(golden_dir()).unwrap().vocab_size();
    let tf = transformer(seqlab_lm::TransformerConfig::new(vocab, 32, 2, 4, 64), 7);
    tf.save(dir.path()).unwrap();
    let tokens = golden_sequence();
    for path in [golden_dir(), dir.path().to_path_buf()] {
        let lm = seqlab_lm::load_lm(&path).unwrap();
        check_causal_lm(&lm.model, &tokens[..30], 4, 1e-4)
            .unwrap_or_else(|e| panic!("{}: {e}", lm.model.kind()));
    }
    // A state of one kind given to the other is an error, not a panic.
    let mamba = seqlab_lm::load_lm(&golden_dir()).unwrap().model;
    let tfm = seqlab_lm::load_lm(dir.path()).unwrap().model;
    let (_, mut st) = tfm.prefill(&tokens[..3]).unwrap();
    let e = mamba.step(&mut st, 1).unwrap_err().to_string();
    assert!(e.contains("another kind"), "{e}");
}

/// The bundled models (`models/`, trained with `seqlab train`): real checkpoints of both kinds
/// with their shared tokenizer.
#[test]
fn bundled_models_conform() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for name in [
        "mamba-little",
        "mamba-big",
        "transformer-little",
        "transformer-big",
    ] {
        let lm = seqlab_lm::load_lm(&root.join(name)).unwrap();
        let tok = lm
            .tokenizer
            .as_ref()
            .expect("bundled models carry tokenizer.json");
        let tokens = tok
            .encode("HAMLET. To be, or not to be, that is the question: whether 'tis nobler")
            .unwrap();
        assert!(tokens.len() > 12, "{name}: {tokens:?}");
        check_causal_lm(&lm.model, &tokens, 4, 1e-4).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
