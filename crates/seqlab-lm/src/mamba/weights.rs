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
use crate::mamba::block::MambaBlock;
use crate::mamba::config::{MambaConfig, MambaLayout};
use candle_core::{DType, Device, Tensor};
use seqlab_tensor::{load_checked_with, CheckOptions, TensorSpec};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Single-file checkpoint name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Sharded checkpoint index name.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Name of the final RMSNorm weight.
pub const NORM_F: &str = "backbone.norm_f.weight";
/// Name of the untied lm_head.
pub const LM_HEAD: &str = "lm_head.weight";

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

/// Every tensor a checkpoint for `cfg` must hold, in load order (each block's from
/// [`MambaBlock::specs`]).
pub fn expected_specs(cfg: &MambaConfig) -> Vec<TensorSpec> {
    let f = |name: String, shape: Vec<usize>| TensorSpec::new(name, shape, DType::F32);
    let (v, d) = (cfg.vocab_size, cfg.d_model);
    let mut out = vec![f(embedding_name(cfg.layout).into(), vec![v, d])];
    for i in 0..cfg.n_layer {
        out.extend(MambaBlock::specs(cfg, &layer_prefix(i)));
    }
    out.push(f(NORM_F.into(), vec![d]));
    if !cfg.tie_embeddings {
        out.push(f(LM_HEAD.into(), vec![v, d]));
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

/// All parameters of a Mamba LM, typed and built once (from a checkpoint, or from the `Var`s
/// of [`TrainMamba`](crate::TrainMamba)): every path runs over these.
#[derive(Debug, Clone)]
pub struct MambaWeights {
    /// Embedding (V, D).
    pub embedding: Tensor,
    /// The blocks.
    pub layers: Vec<MambaBlock>,
    /// Final RMSNorm weight (D).
    pub norm_f: Tensor,
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

    /// Builds the weights from tensors named as in [`expected_specs`] (already shape-checked),
    /// taking them out of `t`.
    pub fn from_tensors(t: &mut HashMap<String, Tensor>, cfg: &MambaConfig) -> Result<Self> {
        let mut take = |name: &str| -> Result<Tensor> {
            t.remove(name)
                .ok_or_else(|| LmError::Weights(format!("tensor `{name}` was not loaded")))
        };
        let embedding = take(embedding_name(cfg.layout))?;
        let layers = (0..cfg.n_layer)
            .map(|i| MambaBlock::from_tensors(cfg, &layer_prefix(i), &mut take))
            .collect::<Result<Vec<_>>>()?;
        let norm_f = take(NORM_F)?;
        let lm_head = if cfg.tie_embeddings {
            None
        } else {
            Some(take(LM_HEAD)?)
        };
        Ok(Self {
            embedding,
            layers,
            norm_f,
            lm_head,
        })
    }

    /// The output projection: the untied lm_head, or the embedding.
    pub fn head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embedding)
    }
}
