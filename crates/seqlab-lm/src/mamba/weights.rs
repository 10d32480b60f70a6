//! Checked loading of Mamba checkpoints.
//!
//! The expected tensors (names, shapes, f32) are built from the [`MambaConfig`] alone, then read
//! with `seqlab_tensor`'s checked loader, so a missing, misnamed or misshapen tensor is reported
//! by its full name before anything is used. Names (HF; the original layout differs only in
//! `backbone.embedding.weight`):
//!
//! ```text
//! backbone.embeddings.weight                      (V, D)
//! backbone.layers.{i}.norm.weight                 (D)
//! backbone.layers.{i}.mixer.in_proj.weight        (2·E·D, D)      [.bias (2·E·D) if use_bias]
//! backbone.layers.{i}.mixer.conv1d.weight         (E·D, 1, K)     [.bias (E·D) if conv bias]
//! backbone.layers.{i}.mixer.x_proj.weight         (R + 2N, E·D)
//! backbone.layers.{i}.mixer.dt_proj.weight/.bias  (E·D, R) / (E·D)
//! backbone.layers.{i}.mixer.out_proj.weight       (D, E·D)        [.bias (D) if use_bias]
//! backbone.layers.{i}.mixer.A_log / .D            (E·D, N) / (E·D)
//! backbone.norm_f.weight                          (D)
//! lm_head.weight                                  (V, D)  only when embeddings are not tied
//! ```
//!
//! Files: `model.safetensors`, or a sharded `model.safetensors.index.json` whose `weight_map`
//! names the shard of each tensor. Half-precision checkpoints are converted to f32 on load.

use crate::error::{LmError, Result};
use crate::mamba::config::{MambaConfig, MambaLayout};
use candle_core::{DType, Device, Tensor};
use seqlab_tensor::{load_checked_with, CheckOptions, TensorSpec};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Single-file checkpoint name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Sharded checkpoint index name.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Name of the embedding matrix in `layout`.
pub fn embedding_name(layout: MambaLayout) -> &'static str {
    match layout {
        MambaLayout::Hf => "backbone.embeddings.weight",
        MambaLayout::Original => "backbone.embedding.weight",
    }
}

/// Prefix of layer `i`'s tensors.
pub fn layer_prefix(i: usize) -> String {
    format!("backbone.layers.{i}")
}

/// Every tensor a checkpoint for `cfg` must hold, in load order.
pub fn expected_specs(cfg: &MambaConfig) -> Vec<TensorSpec> {
    let f = |name: String, shape: Vec<usize>| TensorSpec::new(name, shape, DType::F32);
    let (v, d, di, n, k, r) = (
        cfg.vocab_size,
        cfg.d_model,
        cfg.d_inner,
        cfg.d_state,
        cfg.d_conv,
        cfg.dt_rank,
    );
    let mut out = vec![f(embedding_name(cfg.layout).into(), vec![v, d])];
    for i in 0..cfg.n_layer {
        let p = layer_prefix(i);
        out.push(f(format!("{p}.norm.weight"), vec![d]));
        out.push(f(format!("{p}.mixer.in_proj.weight"), vec![2 * di, d]));
        if cfg.proj_bias {
            out.push(f(format!("{p}.mixer.in_proj.bias"), vec![2 * di]));
        }
        out.push(f(format!("{p}.mixer.conv1d.weight"), vec![di, 1, k]));
        if cfg.conv_bias {
            out.push(f(format!("{p}.mixer.conv1d.bias"), vec![di]));
        }
        out.push(f(format!("{p}.mixer.x_proj.weight"), vec![r + 2 * n, di]));
        out.push(f(format!("{p}.mixer.dt_proj.weight"), vec![di, r]));
        out.push(f(format!("{p}.mixer.dt_proj.bias"), vec![di]));
        out.push(f(format!("{p}.mixer.out_proj.weight"), vec![d, di]));
        if cfg.proj_bias {
            out.push(f(format!("{p}.mixer.out_proj.bias"), vec![d]));
        }
        out.push(f(format!("{p}.mixer.A_log"), vec![di, n]));
        out.push(f(format!("{p}.mixer.D"), vec![di]));
    }
    out.push(f("backbone.norm_f.weight".into(), vec![d]));
    if !cfg.tie_embeddings {
        out.push(f("lm_head.weight".into(), vec![v, d]));
    }
    out
}

/// Loads the tensors `specs` from the checkpoint in `dir` (single file or sharded index),
/// checking every name and shape.
pub fn load_tensors(dir: &Path, specs: &[TensorSpec]) -> Result<HashMap<String, Tensor>> {
    let opts = CheckOptions {
        reject_unexpected: false,
        cast_float: true,
    };
    let single = dir.join(SINGLE_FILE);
    let index = dir.join(INDEX_FILE);
    if single.is_file() {
        return Ok(load_checked_with(&single, specs, &Device::Cpu, opts)?);
    }
    if !index.is_file() {
        let hint = if dir.join("pytorch_model.bin").exists() {
            " (only pytorch_model.bin is there: convert it to safetensors first)"
        } else {
            ""
        };
        return Err(LmError::FileNotFound {
            what: format!("model weights ({SINGLE_FILE} or {INDEX_FILE}){hint}"),
            path: single,
        });
    }
    let shards = shard_map(&index, specs)?;
    let mut out = HashMap::with_capacity(specs.len());
    for (file, wanted) in shards {
        out.extend(load_checked_with(
            dir.join(file),
            &wanted,
            &Device::Cpu,
            opts,
        )?);
    }
    Ok(out)
}

/// Groups `specs` by the shard file the index's `weight_map` assigns them to; a tensor absent
/// from the map is an error naming it.
fn shard_map(index: &Path, specs: &[TensorSpec]) -> Result<BTreeMap<PathBuf, Vec<TensorSpec>>> {
    let text = std::fs::read_to_string(index).map_err(|source| LmError::Read {
        path: index.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| LmError::Config {
        path: index.to_path_buf(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON ({e})")))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut shards: BTreeMap<PathBuf, Vec<TensorSpec>> = BTreeMap::new();
    for spec in specs {
        let file = map
            .get(&spec.name)
            .ok_or_else(|| LmError::MissingTensor {
                path: index.to_path_buf(),
                name: spec.name.clone(),
            })?
            .as_str()
            .ok_or_else(|| {
                bad(format!(
                    "weight_map entry of `{}` is not a file name",
                    spec.name
                ))
            })?;
        let file = Path::new(file);
        if file.is_absolute() || file.components().count() != 1 {
            return Err(bad(format!(
                "weight_map entry of `{}` must be a file name in the same directory, got {}",
                spec.name,
                file.display()
            )));
        }
        shards
            .entry(file.to_path_buf())
            .or_default()
            .push(spec.clone());
    }
    Ok(shards)
}

/// One Mamba block's parameters, ready for the CPU kernels: matrices as candle tensors (for the
/// matmuls), per-channel vectors as plain f32 arrays.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// RMSNorm weight (D).
    pub norm: Vec<f32>,
    /// in_proj (2·Di, D).
    pub in_proj: Tensor,
    /// in_proj bias (2·Di).
    pub in_proj_bias: Option<Vec<f32>>,
    /// conv1d weight (Di, K).
    pub conv_weight: Vec<f32>,
    /// conv1d bias (Di).
    pub conv_bias: Option<Vec<f32>>,
    /// x_proj (R + 2N, Di).
    pub x_proj: Tensor,
    /// dt_proj weight (Di, R); its bias is the scan's δ bias.
    pub dt_proj: Tensor,
    /// dt_proj bias (Di), added before the softplus.
    pub dt_bias: Vec<f32>,
    /// out_proj (D, Di).
    pub out_proj: Tensor,
    /// out_proj bias (D).
    pub out_proj_bias: Option<Vec<f32>>,
    /// A = −exp(A_log) (Di, N).
    pub a: Vec<f32>,
    /// D skip (Di).
    pub d: Vec<f32>,
}

/// All parameters of a Mamba LM.
#[derive(Debug, Clone)]
pub struct MambaWeights {
    /// Embedding (V, D).
    pub embedding: Tensor,
    /// The blocks.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm weight (D).
    pub norm_f: Vec<f32>,
    /// Untied lm_head (V, D); `None` when tied to the embedding.
    pub lm_head: Option<Tensor>,
}

impl MambaWeights {
    /// Loads and checks the checkpoint in `dir` for `cfg`.
    pub fn load(dir: &Path, cfg: &MambaConfig) -> Result<Self> {
        let specs = expected_specs(cfg);
        let mut t = load_tensors(dir, &specs)?;
        Self::from_tensors(&mut t, cfg)
    }

    /// Builds the weights from tensors named as in [`expected_specs`] (already shape-checked).
    pub fn from_tensors(t: &mut HashMap<String, Tensor>, cfg: &MambaConfig) -> Result<Self> {
        let mut take = |name: &str| -> Result<Tensor> {
            t.remove(name)
                .ok_or_else(|| LmError::Input(format!("tensor `{name}` was not loaded")))
        };
        let vec = |x: Tensor| -> Result<Vec<f32>> { Ok(x.flatten_all()?.to_vec1::<f32>()?) };
        let embedding = take(embedding_name(cfg.layout))?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("{}.mixer", layer_prefix(i));
            let a_log = vec(take(&format!("{p}.A_log"))?)?;
            layers.push(LayerWeights {
                norm: vec(take(&format!("{}.norm.weight", layer_prefix(i)))?)?,
                in_proj: take(&format!("{p}.in_proj.weight"))?,
                in_proj_bias: if cfg.proj_bias {
                    Some(vec(take(&format!("{p}.in_proj.bias"))?)?)
                } else {
                    None
                },
                conv_weight: vec(take(&format!("{p}.conv1d.weight"))?)?,
                conv_bias: if cfg.conv_bias {
                    Some(vec(take(&format!("{p}.conv1d.bias"))?)?)
                } else {
                    None
                },
                x_proj: take(&format!("{p}.x_proj.weight"))?,
                dt_proj: take(&format!("{p}.dt_proj.weight"))?,
                dt_bias: vec(take(&format!("{p}.dt_proj.bias"))?)?,
                out_proj: take(&format!("{p}.out_proj.weight"))?,
                out_proj_bias: if cfg.proj_bias {
                    Some(vec(take(&format!("{p}.out_proj.bias"))?)?)
                } else {
                    None
                },
                // A = −exp(A_log) (docs/ssm.md#initialisation), computed in f32 as the reference.
                a: a_log.iter().map(|&v| -v.exp()).collect(),
                d: vec(take(&format!("{p}.D"))?)?,
            });
        }
        let norm_f = vec(take("backbone.norm_f.weight")?)?;
        let lm_head = if cfg.tie_embeddings {
            None
        } else {
            Some(take("lm_head.weight")?)
        };
        Ok(Self {
            embedding,
            layers,
            norm_f,
            lm_head,
        })
    }
}
