//! TEMPORARY (not committed): writes a golden set of mamba-tiny's layout with other dimensions,
//! computed by our own Mamba, only to check that the tests read their dimensions from the files.
//! TMP_VARIANT="out_dir vocab n_layer d_state prompt_len gen_len" cargo test -p seqlab-lm --test lm tmp_golden_variant -- --ignored

use crate::common::*;
use seqlab_lm::{generate, GenerateConfig, LogitsMode, MambaLm};
use seqlab_tensor::candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

#[test]
#[ignore]
fn make_variant() {
    let spec = std::env::var("TMP_VARIANT").unwrap();
    let p: Vec<&str> = spec.split_whitespace().collect();
    let out = PathBuf::from(p[0]);
    let (vocab, n_layer, d_state, plen, glen): (usize, usize, usize, usize, usize) = (
        p[1].parse().unwrap(),
        p[2].parse().unwrap(),
        p[3].parse().unwrap(),
        p[4].parse().unwrap(),
        p[5].parse().unwrap(),
    );
    std::fs::create_dir_all(&out).unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/mamba-tiny");
    let w = seqlab_tensor::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let r = 4usize;
    let n0 = 16usize;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let emb = &w["backbone.embeddings.weight"];
    let rows: Vec<Tensor> = (0..vocab)
        .map(|i| {
            let row = emb.narrow(0, i % 256, 1).unwrap();
            if i >= 256 {
                (row * (0.5 + (i % 7) as f64 * 0.1)).unwrap()
            } else {
                row
            }
        })
        .collect();
    t.insert(
        "backbone.embeddings.weight".into(),
        Tensor::cat(&rows, 0).unwrap(),
    );
    t.insert(
        "backbone.norm_f.weight".into(),
        w["backbone.norm_f.weight"].clone(),
    );
    for l in 0..n_layer {
        let s = l % 2;
        for name in [
            "norm.weight",
            "mixer.D",
            "mixer.conv1d.bias",
            "mixer.conv1d.weight",
            "mixer.dt_proj.bias",
            "mixer.dt_proj.weight",
            "mixer.in_proj.weight",
            "mixer.out_proj.weight",
        ] {
            t.insert(
                format!("backbone.layers.{l}.{name}"),
                w[&format!("backbone.layers.{s}.{name}")].clone(),
            );
        }
        let a = w[&format!("backbone.layers.{s}.mixer.A_log")]
            .narrow(1, 0, d_state)
            .unwrap();
        t.insert(format!("backbone.layers.{l}.mixer.A_log"), a);
        let x = &w[&format!("backbone.layers.{s}.mixer.x_proj.weight")];
        let x = Tensor::cat(
            &[
                x.narrow(0, 0, r).unwrap(),
                x.narrow(0, r, d_state).unwrap(),
                x.narrow(0, r + n0, d_state).unwrap(),
            ],
            0,
        )
        .unwrap();
        t.insert(format!("backbone.layers.{l}.mixer.x_proj.weight"), x);
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    seqlab_tensor::save_atomic(out.join("model.safetensors"), &t).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["vocab_size"] = vocab.into();
    cfg["num_hidden_layers"] = n_layer.into();
    cfg["state_size"] = d_state.into();
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
    for f in ["generation_config.json", "crosscheck_original.json"] {
        std::fs::copy(src.join(f), out.join(f)).unwrap();
    }

    let model = MambaLm::load(&out).unwrap();
    let g0 = golden_tensors(&src);
    let src_prompt = ids(&g0["input_ids"]);
    let prompt: Vec<u32> = (0..plen)
        .map(|i| src_prompt[i % src_prompt.len()] % vocab as u32)
        .collect();
    let fwd = model
        .forward_with(&prompt, 1, None, LogitsMode::All, true)
        .unwrap();
    let logits = f32s(&fwd.logits.unwrap());
    let hidden = fwd.hidden_states.unwrap();
    let (_, state) = model.prefill(&prompt, 1, LogitsMode::Skip).unwrap();
    let gen = generate(&model, &prompt, &GenerateConfig::greedy(glen), |_| Ok(()))
        .unwrap()
        .generated_ids;
    let mut step_logits: Vec<f32> = logits[(plen - 1) * vocab..].to_vec();
    let mut st = state.clone();
    for &id in &gen[..glen - 1] {
        step_logits.extend(f32s(&model.step(&mut st, &[id]).unwrap()));
    }
    let c = model.config().clone();
    let d = c.d_model;
    let i64s = |v: &[u32]| -> Tensor {
        Tensor::from_vec(
            v.iter().map(|&x| x as i64).collect::<Vec<i64>>(),
            (1, v.len()),
            &Device::Cpu,
        )
        .unwrap()
    };
    let f = |v: Vec<f32>, shape: Vec<usize>| Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
    let mut g: HashMap<String, Tensor> = HashMap::new();
    let mut shapes = serde_json::Map::new();
    let mut put = |name: String, tensor: Tensor, dtype: &str, g: &mut HashMap<String, Tensor>| {
        shapes.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": tensor.dims()}),
        );
        g.insert(name, tensor);
    };
    put("input_ids".into(), i64s(&prompt), "int64", &mut g);
    put(
        "logits".into(),
        f(logits.clone(), vec![1, plen, vocab]),
        "float32",
        &mut g,
    );
    put("generated_ids".into(), i64s(&gen), "int64", &mut g);
    let full: Vec<u32> = prompt.iter().chain(&gen).copied().collect();
    put("full_sequence".into(), i64s(&full), "int64", &mut g);
    put(
        "step_logits".into(),
        f(step_logits, vec![1, glen, vocab]),
        "float32",
        &mut g,
    );
    for (i, h) in hidden.iter().enumerate() {
        put(
            format!("hidden_states.{i}"),
            f(h.clone(), vec![1, plen, d]),
            "float32",
            &mut g,
        );
    }
    for l in 0..n_layer {
        put(
            format!("prefill_conv_state.{l}"),
            f(state.conv[l].clone(), vec![1, c.d_inner, c.d_conv]),
            "float32",
            &mut g,
        );
        put(
            format!("prefill_ssm_state.{l}"),
            f(state.ssm[l].clone(), vec![1, c.d_inner, c.d_state]),
            "float32",
            &mut g,
        );
    }
    seqlab_tensor::save_atomic(out.join("golden.safetensors"), &g).unwrap();
    let mut gj = golden_json(&src);
    gj["config"] = cfg;
    gj["golden_tensors"] = serde_json::Value::Object(shapes);
    gj["generator"] = "seqlab's own Mamba (layout check only)".into();
    std::fs::write(
        out.join("golden.json"),
        serde_json::to_string_pretty(&gj).unwrap(),
    )
    .unwrap();
    eprintln!("variant written to {}", out.display());
}
