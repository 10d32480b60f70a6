//! The bidirectional denoisers: shapes, bidirectionality (a later token changes an earlier
//! position's logits), time-agnostic by default, time conditioning, gradients into every
//! parameter, save / load round trip, and bad inputs.

use candle_core::{Tensor, Var};
use seqlab_diffusion::backbone::{AnyDenoiser, BidirMerge, DiffusionConfig};
use seqlab_diffusion::loss::{nelbo_loss, scalar};
use seqlab_diffusion::{load_denoiser, Denoiser, NoiseSchedule};
use seqlab_lm::train::ModelKind;

const VOCAB: usize = 11; // tokenizer ids; [MASK] = 11

fn cfg(model: ModelKind, f: impl FnOnce(&mut DiffusionConfig)) -> DiffusionConfig {
    let mut c = DiffusionConfig::from_json_str(
        r#"{"d_model": 16, "n_layer": 2, "n_head": 2, "d_state": 4, "seq_len": 8, "seed": 3}"#,
    )
    .unwrap();
    c.lm.model = model;
    f(&mut c);
    c
}

fn variants() -> Vec<(&'static str, DiffusionConfig)> {
    vec![
        ("transformer", cfg(ModelKind::Transformer, |_| {})),
        (
            "transformer+time",
            cfg(ModelKind::Transformer, |c| {
                c.diffusion.time_conditioning = true
            }),
        ),
        ("mamba sum", cfg(ModelKind::Mamba, |_| {})),
        (
            "mamba concat",
            cfg(ModelKind::Mamba, |c| c.diffusion.bidir = BidirMerge::Concat),
        ),
        (
            "mamba shared+time",
            cfg(ModelKind::Mamba, |c| {
                c.diffusion.share_weights = true;
                c.diffusion.time_conditioning = true;
            }),
        ),
    ]
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

const TOKENS: [u32; 16] = [1, 11, 3, 4, 11, 6, 7, 2, 11, 11, 0, 5, 9, 10, 11, 8];

#[test]
fn shapes_bidirectionality_and_time_agnosticism() {
    for (name, c) in variants() {
        let m = AnyDenoiser::init(&c, VOCAB).unwrap();
        assert_eq!(m.vocab_size(), VOCAB + 1, "{name}");
        assert_eq!(m.mask_id(), VOCAB as u32, "{name}");
        let l = m.logits(&TOKENS, 2, &[0.3, 0.9]).unwrap();
        assert_eq!(l.dims(), &[2, 8, VOCAB + 1], "{name}");
        let a = vals(&l);
        assert!(a.iter().all(|x| x.is_finite()), "{name}");
        // Change the LAST token of row 0: position 0's logits must change (bidirectional),
        // row 1 must not.
        let mut t2 = TOKENS;
        t2[7] = 5;
        let b = vals(&m.logits(&t2, 2, &[0.3, 0.9]).unwrap());
        let v = VOCAB + 1;
        let d0: f32 = (0..v).map(|j| (a[j] - b[j]).abs()).sum();
        assert!(d0 > 1e-6, "{name}: position 0 ignores a later token");
        assert_eq!(
            &a[8 * v..],
            &b[8 * v..],
            "{name}: rows leak into each other"
        );
        // Time-agnostic by default; a zero-initialised time embedding also starts agnostic.
        let c2 = vals(&m.logits(&TOKENS, 2, &[0.0, 1.0]).unwrap());
        assert_eq!(a, c2, "{name}: depends on t at init");
    }
}

#[test]
fn gradients_reach_every_parameter_and_time_conditioning_works() {
    for (name, c) in variants() {
        let m = AnyDenoiser::init(&c, VOCAB).unwrap();
        let x0: Vec<u32> = TOKENS.iter().map(|&x| x % VOCAB as u32).collect();
        let t = [0.4, 0.7];
        let logits = m.logits(&TOKENS, 2, &t).unwrap();
        let loss = nelbo_loss(&logits, &x0, &TOKENS, &t, &NoiseSchedule::default(), 11).unwrap();
        assert!(scalar(&loss).unwrap() > 0.0);
        let g = loss.backward().unwrap();
        for (pname, v) in m.params() {
            let gr = g
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
            let n = scalar(&gr.sqr().unwrap().sum_all().unwrap()).unwrap();
            assert!(n.is_finite(), "{name}: {pname}");
            // Every parameter but the (zero-initialised) time embedding's inputs is used.
            if !pname.contains("A_log") {
                assert!(n > 0.0, "{name}: zero gradient for {pname}");
            }
        }
        if c.diffusion.time_conditioning {
            let (_, w) = m
                .params()
                .iter()
                .find(|(n, _)| n == "time_embed.weight")
                .unwrap();
            let x = (w.as_tensor().ones_like().unwrap() * 0.05).unwrap();
            Var::set(w, &x).unwrap();
            let a = vals(&m.logits(&TOKENS, 2, &[0.1, 0.1]).unwrap());
            let b = vals(&m.logits(&TOKENS, 2, &[0.8, 0.1]).unwrap());
            let v = VOCAB + 1;
            assert_ne!(a[..8 * v], b[..8 * v], "{name}: row 0 ignores t");
            assert_eq!(a[8 * v..], b[8 * v..], "{name}: row 1 saw row 0's t");
        }
    }
}

#[test]
fn save_and_load_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (name, c)) in variants().into_iter().enumerate() {
        let m = AnyDenoiser::init(&c, VOCAB).unwrap();
        let dir = tmp.path().join(format!("m{i}"));
        m.save(&dir).unwrap();
        let back = load_denoiser(&dir).unwrap();
        assert_eq!(back.vocab_size(), VOCAB + 1);
        assert_eq!(back.mask_id(), VOCAB as u32);
        let a = vals(&m.logits(&TOKENS, 2, &[0.2, 0.5]).unwrap());
        let b = vals(&back.logits(&TOKENS, 2, &[0.2, 0.5]).unwrap());
        assert_eq!(a, b, "{name}");
        let any = AnyDenoiser::load(&dir).unwrap();
        assert_eq!(any.config(), m.config(), "{name}");
        assert_eq!(any.params().len(), m.params().len(), "{name}");
    }
    let e = AnyDenoiser::load(&tmp.path().join("nope")).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    // A missing tensor is named.
    let c = cfg(ModelKind::Mamba, |c| c.diffusion.bidir = BidirMerge::Concat);
    let dir = tmp.path().join("broken");
    AnyDenoiser::init(&c, VOCAB).unwrap().save(&dir).unwrap();
    let mut t =
        seqlab_tensor::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    t.remove("bidir.layers.1.merge.weight");
    seqlab_tensor::save_atomic(dir.join("model.safetensors"), &t).unwrap();
    let e = AnyDenoiser::load(&dir).unwrap_err();
    assert!(e.to_string().contains("bidir.layers.1.merge.weight"), "{e}");
}

#[test]
fn separate_and_shared_weights_have_the_right_parameter_count() {
    let sep = AnyDenoiser::init(&cfg(ModelKind::Mamba, |_| {}), VOCAB).unwrap();
    let shared = AnyDenoiser::init(
        &cfg(ModelKind::Mamba, |c| c.diffusion.share_weights = true),
        VOCAB,
    )
    .unwrap();
    let count = |m: &AnyDenoiser| -> usize {
        m.params()
            .iter()
            .map(|(_, v)| v.as_tensor().elem_count())
            .sum()
    };
    let emb = (VOCAB + 1) * 16 + 16; // embedding + final norm
    assert_eq!(count(&sep) - emb, 2 * (count(&shared) - emb));
}

#[test]
fn bad_inputs_are_errors() {
    let m = AnyDenoiser::init(&cfg(ModelKind::Transformer, |_| {}), VOCAB).unwrap();
    let e = m.logits(&[1, 12, 3, 4], 1, &[0.5]).unwrap_err();
    assert!(e.to_string().contains("12"), "{e}");
    assert!(m.logits(&[1, 2, 3], 2, &[0.5, 0.5]).is_err());
    assert!(m.logits(&[1, 2, 3, 4], 2, &[0.5]).is_err());
    assert!(m.logits(&[1, 2, 3, 4], 2, &[0.5, 1.5]).is_err());
    let e = DiffusionConfig::from_json_str(r#"{"model": "s4"}"#).unwrap_err();
    assert!(e.to_string().contains("s4"), "{e}");
    let e = DiffusionConfig::from_json_str(r#"{"schedule": "square"}"#).unwrap_err();
    assert!(e.to_string().contains("square"), "{e}");
    let e = DiffusionConfig::from_json_str(r#"{"bidir": "max"}"#).unwrap_err();
    assert!(e.to_string().contains("max"), "{e}");
    let e = DiffusionConfig::from_json_str(r#"{"t_eps": 1.5}"#).unwrap_err();
    assert!(e.to_string().contains("t_eps"), "{e}");
    let e = DiffusionConfig::from_json_str(r#"{"d_modle": 4}"#).unwrap_err();
    assert!(e.to_string().contains("d_modle"), "{e}");
}

#[test]
fn config_round_trips_through_json() {
    let c = cfg(ModelKind::Mamba, |c| {
        c.diffusion.schedule = NoiseSchedule::Cosine { eps: 0.01 };
        c.diffusion.bidir = BidirMerge::Concat;
    });
    let back = DiffusionConfig::from_value(c.to_value()).unwrap();
    assert_eq!(back, c);
    let obj = DiffusionConfig::from_json_str(
        r#"{"schedule": {"kind": "geometric", "sigma_min": 0.01, "sigma_max": 2.0}}"#,
    )
    .unwrap();
    assert_eq!(
        obj.diffusion.schedule,
        NoiseSchedule::Geometric {
            sigma_min: 0.01,
            sigma_max: 2.0
        }
    );
    assert_eq!(obj.lm.model, ModelKind::Transformer);
}
