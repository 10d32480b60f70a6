//! The device paths, checked on the CPU (the GPU runs the same tensor ops; see
//! crates/seqlab-ssm/tests/cuda_kernels.rs for the on-GPU comparison):
//! - `MambaDeviceLm` (recurrent steps as tensor ops) against `MambaLm` (host kernels) on a
//!   bundled model, and through the shared `CausalLm` conformance suite;
//! - `TrainModel::to_device` and `train_on` keep weights and losses exactly.

use candle_core::Device;
use seqlab_lm::conformance::{check_causal_lm, max_rel_diff};
use seqlab_lm::mamba::MambaDeviceLm;
use seqlab_lm::{load_lm, load_lm_on, AnyLm, CausalLm};
use std::path::PathBuf;

fn bundled(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name)
}

fn prompt_tokens(lm: &seqlab_lm::LoadedLm) -> Vec<u32> {
    lm.tokenizer
        .as_ref()
        .expect("bundled models carry tokenizer.json")
        .encode("HAMLET. To be, or not to be, that is the question: whether 'tis nobler")
        .unwrap()
}

#[test]
fn device_mamba_steps_match_the_host_model() {
    let host = load_lm(&bundled("mamba-little")).unwrap();
    let tokens = prompt_tokens(&host);
    let dev = MambaDeviceLm::load(&bundled("mamba-little"), &Device::Cpu).unwrap();
    // Prefill logits, then every step's logits, against the host kernels.
    let (l0, mut s0) = host.model.prefill(&tokens[..3]).unwrap();
    let (l1, mut s1) = dev.prefill(&tokens[..3]).unwrap();
    assert!(
        max_rel_diff(&l1, &l0) < 1e-4,
        "prefill {}",
        max_rel_diff(&l1, &l0)
    );
    for (i, &t) in tokens[3..].iter().enumerate() {
        let a = host.model.step(&mut s0, t).unwrap();
        let b = dev.step(&mut s1, t).unwrap();
        let err = max_rel_diff(&b, &a);
        assert!(err < 1e-4, "step {i}: {err}");
    }
    check_causal_lm(&dev, &tokens, 4, 1e-4).unwrap();
}

#[test]
fn load_lm_on_cpu_is_load_lm_and_bad_kinds_are_one_line_errors() {
    let lm = load_lm_on(&bundled("mamba-big"), &Device::Cpu).unwrap();
    assert!(matches!(lm.model, AnyLm::Mamba(_)));
    // The device variant goes through AnyLm's dispatch like every other kind.
    let dev = AnyLm::MambaDevice(MambaDeviceLm::load(&bundled("mamba-big"), &Device::Cpu).unwrap());
    let tokens = prompt_tokens(&lm);
    check_causal_lm(&dev, &tokens, 5, 1e-4).unwrap();
    let err = MambaDeviceLm::load(&bundled("no-such-model"), &Device::Cpu).unwrap_err();
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn to_device_keeps_every_parameter() {
    use seqlab_lm::train::{ModelKind, TrainModel};
    for (kind, dir) in [
        (ModelKind::Mamba, "mamba-little"),
        (ModelKind::Transformer, "transformer-little"),
    ] {
        let m = TrainModel::load(kind, &bundled(dir)).unwrap();
        let moved = m.to_device(&Device::Cpu).unwrap();
        assert_eq!(m.params().len(), moved.params().len());
        for ((n0, v0), (n1, v1)) in m.params().iter().zip(moved.params()) {
            assert_eq!(n0, n1);
            let a = v0
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let b = v1
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(a, b, "{n0}");
        }
        let tokens: Vec<u32> = (0..16).map(|i| (i * 37 % 2048) as u32).collect();
        let y0 = m.forward(&tokens, 2, None).unwrap();
        let y1 = m
            .to_device(&Device::Cpu)
            .unwrap()
            .forward(&tokens, 2, None)
            .unwrap();
        let (y0, y1) = (
            y0.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            y1.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(y0, y1, "{dir}");
    }
}
