//! The models on a CUDA GPU against the same models on the CPU (build with `--features cuda`;
//! without a GPU or a CUDA build every test prints why it is skipped):
//! - one training step (loss and every gradient) of the Mamba, Transformer, S4 and SaShiMi LMs,
//!   with packed documents for the first two;
//! - greedy decoding with the device Mamba LM against the host kernels.
//!
//! On the CPU emulator of the CUDA driver (`SEQLAB_EMULATED` set by `.ci/cuda-emulator-test`) a
//! kernel runs about 100× slower than on the CPU, so the same checks run on smaller batches and
//! fewer decode steps there: the code paths are the same, only the sizes shrink.

use candle_core::{Device, Tensor};
use seqlab_lm::conformance::max_rel_diff;
use seqlab_lm::mamba::{cross_entropy, MambaDeviceLm};
use seqlab_lm::train::{ModelKind, TrainModel};
use seqlab_lm::{load_lm, CausalLm, TrainConfig};
use std::path::PathBuf;

/// The GPU, or `None` after printing why the test is skipped (a failure instead when
/// `SEQLAB_REQUIRE_GPU` is set, as `benches/cuda/device_check.sh` does).
fn gpu(test: &str) -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os("SEQLAB_REQUIRE_GPU").is_some() => {
            panic!("{test}: SEQLAB_REQUIRE_GPU is set but there is no CUDA device ({e})")
        }
        Err(e) => {
            eprintln!("skipping {test}: no CUDA device ({e})");
            None
        }
    }
}

/// Whether the "GPU" is the CPU emulator (`.ci/cuda-emulator-test` sets `SEQLAB_EMULATED`).
fn emulated() -> bool {
    std::env::var_os("SEQLAB_EMULATED").is_some()
}

/// A bundled model: `$SEQLAB_REPO/models/NAME` (the test binary may run on another machine
/// than the one that built it), else this checkout's.
fn bundled(name: &str) -> PathBuf {
    std::env::var_os("SEQLAB_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .join("models")
        .join(name)
}

fn host(t: &Tensor) -> Vec<f32> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Loss and gradients of one batch; `(loss, [(name, grad)])`.
fn loss_and_grads(
    m: &TrainModel,
    tokens: &[u32],
    targets: &[u32],
    batch: usize,
    seq: Option<&[i32]>,
) -> (f32, Vec<(String, Vec<f32>)>) {
    let logits = m.forward(tokens, batch, seq).unwrap();
    let loss = cross_entropy(&logits, targets).unwrap();
    let grads = loss.backward().unwrap();
    let g = m
        .params()
        .iter()
        .map(|(n, v)| {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {n}"));
            (n.clone(), host(g))
        })
        .collect();
    (host(&loss)[0], g)
}

/// `max |a − b| / max |b|`: the error relative to the tensor's scale.
fn rel_to_max(a: &[f32], b: &[f32]) -> f32 {
    let scale = b
        .iter()
        .fold(0f32, |m, x| m.max(x.abs()))
        .max(f32::MIN_POSITIVE);
    let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    if err.is_nan() {
        f32::INFINITY
    } else {
        err / scale
    }
}

/// One step's loss and gradients on the GPU equal the CPU's (f32; summation orders differ):
/// `Err` names the first gradient that does not.
fn check_step(
    name: &str,
    m: &TrainModel,
    dev: &Device,
    batch: usize,
    len: usize,
    packed: bool,
) -> Result<(), String> {
    let v = m.vocab_size() as u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % v) as u32
    };
    let tokens: Vec<u32> = (0..batch * len).map(|_| next()).collect();
    let targets: Vec<u32> = (0..batch * len).map(|_| next()).collect();
    // Two documents per row when packed: the state must reset at the boundary on both sides.
    let seq: Option<Vec<i32>> = packed.then(|| {
        (0..batch * len)
            .map(|i| (i % len >= len / 3) as i32)
            .collect()
    });
    let t0 = std::time::Instant::now();
    let (l0, g0) = loss_and_grads(m, &tokens, &targets, batch, seq.as_deref());
    let cpu_s = t0.elapsed().as_secs_f64();
    let gm = m.to_device(dev).unwrap();
    if !emulated() {
        // Warm-up (NVRTC, cuBLAS), so the printed GPU time is the step's.
        let _ = loss_and_grads(&gm, &tokens, &targets, batch, seq.as_deref());
    }
    let t1 = std::time::Instant::now();
    let (l1, g1) = loss_and_grads(&gm, &tokens, &targets, batch, seq.as_deref());
    let gpu_s = t1.elapsed().as_secs_f64();
    let lerr = ((l1 - l0) / l0).abs();
    let mut worst = (0f32, String::new());
    for ((n, a), (_, b)) in g0.iter().zip(&g1) {
        let e = rel_to_max(b, a);
        if e > worst.0 {
            worst = (e, n.clone());
        }
    }
    eprintln!(
        "{name}: loss cpu {l0:.6} gpu {l1:.6} (rel {lerr:.1e}); worst gradient {} rel {:.1e}; \
         step cpu {:.1} ms, gpu {:.1} ms",
        worst.1,
        worst.0,
        cpu_s * 1e3,
        gpu_s * 1e3
    );
    if lerr >= 1e-5 || worst.0 >= 1e-4 {
        return Err(format!(
            "{name}: loss {l0} vs {l1}, gradient of {} off by {:e}",
            worst.1, worst.0
        ));
    }
    Ok(())
}

#[test]
fn training_steps_on_cuda_match_cpu() {
    let Some(dev) = gpu("training_steps_on_cuda_match_cpu") else {
        return;
    };
    let mut failed = Vec::new();
    // Rows per batch of the two bundled models: 4 on a GPU, 1 and 2 on the emulator (the row
    // lengths, which cross the kernels' chunk boundaries, stay).
    let (mamba_rows, tf_rows) = if emulated() { (1, 2) } else { (4, 4) };
    let mamba = TrainModel::load(ModelKind::Mamba, &bundled("mamba-big")).unwrap();
    failed.extend(check_step("mamba-big", &mamba, &dev, mamba_rows, 300, false).err());
    failed.extend(check_step("mamba-big packed", &mamba, &dev, mamba_rows, 300, true).err());
    let tf = TrainModel::load(ModelKind::Transformer, &bundled("transformer-big")).unwrap();
    failed.extend(check_step("transformer-big", &tf, &dev, tf_rows, 128, false).err());
    failed.extend(check_step("transformer-big packed", &tf, &dev, tf_rows, 128, true).err());
    for (name, json) in [
        (
            "s4d lm",
            r#"{"model": "s4", "ssm": "s4d", "d_model": 64, "n_layer": 2, "d_state": 32, "seq_len": 256}"#,
        ),
        (
            "s4legs lm",
            r#"{"model": "s4", "ssm": "s4legs", "d_model": 32, "n_layer": 2, "d_state": 32, "seq_len": 128}"#,
        ),
        (
            "sashimi",
            r#"{"model": "sashimi", "ssm": "s4d", "d_model": 32, "n_layer": 2, "d_state": 16, "seq_len": 512}"#,
        ),
    ] {
        let cfg = TrainConfig::from_json_str(json).unwrap();
        let vocab = if cfg.model == ModelKind::Sashimi {
            256
        } else {
            512
        };
        let m = TrainModel::init(&cfg, vocab, candle_core::DType::F32).unwrap();
        failed.extend(check_step(name, &m, &dev, 2, cfg.seq_len, false).err());
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn device_mamba_decodes_like_the_host_model() {
    let Some(dev) = gpu("device_mamba_decodes_like_the_host_model") else {
        return;
    };
    let host_lm = load_lm(&bundled("mamba-big")).unwrap();
    let prompt = host_lm
        .tokenizer
        .as_ref()
        .unwrap()
        .encode("HAMLET. To be, or not to be")
        .unwrap();
    let gpu_lm = MambaDeviceLm::load(&bundled("mamba-big"), &dev).unwrap();
    let argmax = |l: &[f32]| {
        l.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &x)| if x > b.1 { (i, x) } else { b },
            )
            .0 as u32
    };
    let (mut a, mut sa) = host_lm.model.prefill(&prompt).unwrap();
    let (mut b, mut sb) = gpu_lm.prefill(&prompt).unwrap();
    let mut worst = 0f32;
    let steps = if emulated() { 16 } else { 48 };
    for i in 0..steps {
        worst = worst.max(max_rel_diff(&b, &a));
        assert_eq!(argmax(&a), argmax(&b), "greedy token {i}");
        let t = argmax(&a);
        a = host_lm.model.step(&mut sa, t).unwrap();
        b = gpu_lm.step(&mut sb, t).unwrap();
    }
    eprintln!("device mamba: {steps} greedy tokens identical, worst logit rel diff {worst:.1e}");
    assert!(worst < 1e-4, "{worst}");
}
