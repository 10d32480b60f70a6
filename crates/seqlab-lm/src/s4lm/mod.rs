//! The S4 language model: embedding → n × S4 block (S4D or S4-LegS, pre-LayerNorm residual,
//! `seqlab_ssm::s4::S4Block`) → LayerNorm → tied head (logits = LN(x)·Eᵀ).
//!
//! Parallel mode (training, prefill) convolves with the SSM kernel by FFT (S4 paper §3.3,
//! y = K ∗ u + D·u); recurrent mode steps x_t = Āx_{t−1} + B̄u_t, y_t = 2·Re(C·x_t) + D·u_t
//! (S4 eq. (3)) in f64. `prefill` runs the parallel forward and then obtains each block's exact
//! state after the prompt by running that block's recurrence over its (already computed)
//! normalised inputs — no head, no other block — so the state is the recurrent one the steps
//! continue from. Saved as `config.json` (`model_type: "seqlab_s4"`) + `model.safetensors`.

pub mod layer;

use crate::causal_lm::CausalLm;
use crate::error::{LmError, Result};
use candle_core::{DType, Device, Tensor, Var};
pub use layer::SsmName;
use layer::{block_params, layer_norm, layer_norm_t, rows_f64, var_f32, S4StepCache};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use seqlab_ssm::s4::{S4Block, S4BlockConfig, C64};
use seqlab_tensor::limits::{check_plausible, Dim};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// `model_type` of a saved S4 LM.
pub const S4_MODEL_TYPE: &str = "seqlab_s4";

/// Longest block [`CausalLm::score`] keeps per-position snapshots for.
pub const S4_SCORE_SNAPSHOT_MAX: usize = 64;

/// Sizes of an S4 LM (`config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S4LmConfig {
    /// Always `"seqlab_s4"`.
    pub model_type: String,
    /// Vocabulary V.
    pub vocab_size: usize,
    /// Width H.
    pub d_model: usize,
    /// S4 blocks.
    pub n_layer: usize,
    /// State size N (even).
    pub d_state: usize,
    /// SSM kind.
    pub ssm: SsmName,
    /// Longest parallel sequence (S4-LegS: the kernel length C̃ is set up for).
    pub l_max: usize,
}

impl S4LmConfig {
    /// A config with `model_type` filled in.
    pub fn new(
        vocab_size: usize,
        d_model: usize,
        n_layer: usize,
        d_state: usize,
        ssm: SsmName,
        l_max: usize,
    ) -> Self {
        Self {
            model_type: S4_MODEL_TYPE.into(),
            vocab_size,
            d_model,
            n_layer,
            d_state,
            ssm,
            l_max,
        }
    }

    /// Plausible sizes ([`seqlab_tensor::limits`]) of an S4 LM `config.json`.
    pub fn check_sizes(&self) -> std::result::Result<(), String> {
        Ok(check_plausible(&[
            ("vocab_size", self.vocab_size, Dim::Vocab),
            ("d_model", self.d_model, Dim::Width),
            ("n_layer", self.n_layer, Dim::Layers),
            ("d_state", self.d_state, Dim::State),
            ("l_max", self.l_max, Dim::Sequence),
        ])?)
    }

    /// A lower bound on an S4 LM's parameters: the embedding and one D×D output linear per layer.
    pub fn params_lower_bound(&self) -> f64 {
        let d = self.d_model as f64;
        self.vocab_size as f64 * d + self.n_layer as f64 * d * d
    }

    fn validate(&self) -> Result<()> {
        self.check_sizes().map_err(LmError::InvalidConfig)?;
        if self.vocab_size == 0
            || self.d_model == 0
            || self.n_layer == 0
            || self.l_max == 0
            || self.d_state < 2
            || !self.d_state.is_multiple_of(2)
        {
            return Err(LmError::InvalidConfig(format!(
                "bad S4 LM config: need vocab, d_model, n_layer, l_max ≥ 1 and an even d_state ≥ 2 \
                 (got {}, {}, {}, {}, {})",
                self.vocab_size, self.d_model, self.n_layer, self.l_max, self.d_state
            )));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Inner {
    emb: Var,
    blocks: Vec<S4Block>,
    norm_w: Var,
    norm_b: Var,
}

#[derive(Debug)]
struct StepCache {
    emb: Vec<f64>,
    blocks: Vec<S4StepCache>,
    norm_w: Vec<f64>,
    norm_b: Vec<f64>,
}

/// The S4 LM (trainable: its parameters are candle `Var`s).
#[derive(Debug, Clone)]
pub struct S4Lm {
    cfg: S4LmConfig,
    inner: Arc<Inner>,
    params: Vec<(String, Var)>,
    /// f64 recurrent form, built on first use (after training, reload to refresh it).
    cache: Arc<OnceLock<StepCache>>,
}

/// The [`CausalLm`] state of an [`S4Lm`]: one complex SSM state per block, the length, and the
/// snapshots the last short `score` kept.
#[derive(Debug, Clone)]
pub struct S4LmState {
    len: usize,
    layers: Vec<Vec<C64>>,
    kept: Vec<(usize, Vec<Vec<C64>>)>,
}

impl S4LmState {
    /// Tokens consumed.
    pub fn consumed(&self) -> usize {
        self.len
    }
}

impl S4Lm {
    /// A freshly initialised model, deterministic in `seed` (embedding N(0, 0.02²), blocks as
    /// `S4Block::new` with seed `seed·1000 + i`).
    pub fn init(cfg: &S4LmConfig, seed: u64) -> Result<Self> {
        Self::init_on(cfg, seed, &Device::Cpu)
    }

    /// [`S4Lm::init`] with the parameters on `device`.
    pub fn init_on(cfg: &S4LmConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (v, h) = (cfg.vocab_size, cfg.d_model);
        let emb = var_f32(
            (0..v * h)
                .map(|_| 0.02 * rng.sample::<f64, _>(StandardNormal))
                .collect(),
            &[v, h],
            device,
        )?;
        let mut blocks = Vec::new();
        for i in 0..cfg.n_layer {
            let mut bc = S4BlockConfig::new(h, cfg.ssm.kind(), cfg.l_max);
            bc.d_state = cfg.d_state;
            bc.seed = seed.wrapping_mul(1000).wrapping_add(i as u64);
            blocks.push(S4Block::new(bc, DType::F32, device)?);
        }
        let inner = Inner {
            emb,
            blocks,
            norm_w: var_f32(vec![1.0; h], &[h], device)?,
            norm_b: var_f32(vec![0.0; h], &[h], device)?,
        };
        let mut params = vec![("embedding.weight".to_string(), inner.emb.clone())];
        for (i, b) in inner.blocks.iter().enumerate() {
            params.extend(block_params(&format!("layers.{i}"), b));
        }
        params.push(("norm_f.weight".into(), inner.norm_w.clone()));
        params.push(("norm_f.bias".into(), inner.norm_b.clone()));
        Ok(Self {
            cfg: cfg.clone(),
            inner: Arc::new(inner),
            params,
            cache: Arc::new(OnceLock::new()),
        })
    }

    /// Loads `dir/config.json` + `dir/model.safetensors`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg: S4LmConfig = read_config(dir, S4_MODEL_TYPE, |c: &S4LmConfig| &c.model_type)?;
        check_before_init(
            dir,
            &cfg,
            S4LmConfig::check_sizes,
            S4LmConfig::params_lower_bound,
        )?;
        let m = Self::init(&cfg, 0)?;
        load_params(dir, &m.params)?;
        Ok(m)
    }

    /// Writes `config.json` and `model.safetensors` (f32) into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        save_model(dir, &self.cfg, &self.params)
    }

    /// The configuration.
    pub fn config(&self) -> &S4LmConfig {
        &self.cfg
    }

    /// The same model with every parameter copied to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let m = Self::init_on(&self.cfg, 0, device)?;
        layer::copy_params(&self.params, &m.params, device)?;
        Ok(m)
    }

    /// Named parameters in checkpoint order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let v = self.cfg.vocab_size;
        match tokens.iter().find(|&&t| t as usize >= v) {
            Some(&id) => Err(LmError::TokenOutOfRange { id, vocab: v }),
            None => Ok(()),
        }
    }

    /// Logits (batch, len, V) of `tokens` (batch·len ids) in parallel (FFT convolution) mode;
    /// differentiable. Also returns each block's input (batch, len, H).
    fn forward_collect(&self, tokens: &[u32], batch: usize) -> Result<(Tensor, Vec<Tensor>)> {
        self.check_tokens(tokens)?;
        let l = seqlab_tensor::batch_rows(tokens.len(), batch)?;
        let ids = Tensor::from_slice(tokens, tokens.len(), self.inner.emb.device())?;
        let mut x = self.inner.emb.as_tensor().index_select(&ids, 0)?.reshape((
            batch,
            l,
            self.cfg.d_model,
        ))?;
        let mut inputs = Vec::new();
        for b in &self.inner.blocks {
            inputs.push(x.clone());
            x = b.forward(&x)?;
        }
        let z = layer_norm_t(&x, &self.inner.norm_w, &self.inner.norm_b)?;
        let logits = z.broadcast_matmul(&self.inner.emb.as_tensor().t()?)?;
        Ok((logits, inputs))
    }

    /// Logits (batch, len, V); `seq_idx` is ignored (a convolution cannot reset its state
    /// inside a window: packed documents see their predecessors).
    pub fn forward(
        &self,
        tokens: &[u32],
        batch: usize,
        _seq_idx: Option<&[i32]>,
    ) -> Result<Tensor> {
        Ok(self.forward_collect(tokens, batch)?.0)
    }

    fn cache(&self) -> Result<&StepCache> {
        if let Some(c) = self.cache.get() {
            return Ok(c);
        }
        let c = StepCache {
            emb: layer::vals(&self.inner.emb)?,
            blocks: self
                .inner
                .blocks
                .iter()
                .map(S4StepCache::new)
                .collect::<Result<_>>()?,
            norm_w: layer::vals(&self.inner.norm_w)?,
            norm_b: layer::vals(&self.inner.norm_b)?,
        };
        let _ = self.cache.set(c);
        Ok(self.cache.get().expect("just set"))
    }

    /// A zero state.
    pub fn new_state(&self) -> Result<S4LmState> {
        let c = self.cache()?;
        Ok(S4LmState {
            len: 0,
            layers: c.blocks.iter().map(S4StepCache::zero_state).collect(),
            kept: Vec::new(),
        })
    }

    fn step_inner(&self, st: &mut S4LmState, token: u32) -> Result<Vec<f32>> {
        self.check_tokens(&[token])?;
        let c = self.cache()?;
        let h = self.cfg.d_model;
        let t = token as usize;
        let mut x = c.emb[t * h..(t + 1) * h].to_vec();
        for (b, s) in c.blocks.iter().zip(st.layers.iter_mut()) {
            x = b.step(&x, s)?;
        }
        let z = layer_norm(&x, &c.norm_w, &c.norm_b);
        st.len += 1;
        Ok(c.emb
            .chunks(h)
            .map(|e| e.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>() as f32)
            .collect())
    }
}

/// Reads `dir/config.json` as `C`, checking that its `model_type` is `expected`.
pub(crate) fn read_config<C: serde::de::DeserializeOwned>(
    dir: &Path,
    expected: &str,
    model_type: impl Fn(&C) -> &String,
) -> Result<C> {
    let cpath = dir.join("config.json");
    let text = std::fs::read_to_string(&cpath).map_err(|source| LmError::Read {
        path: cpath.clone(),
        source,
    })?;
    let cfg: C = serde_json::from_str(&text).map_err(|e| LmError::Config {
        path: cpath.clone(),
        reason: e.to_string(),
    })?;
    let found = model_type(&cfg);
    if found != expected {
        return Err(LmError::Config {
            path: cpath,
            reason: format!("model_type `{found}`, expected `{expected}`"),
        });
    }
    Ok(cfg)
}

/// Checks a config read from `dir` before a model is initialised from it (which allocates
/// every parameter): its sizes are plausible (`check`) and the weights file is large enough for
/// the parameters it implies (`params`, a lower bound; [`crate::limits::check_weights_cover`]).
pub(crate) fn check_before_init<C>(
    dir: &Path,
    cfg: &C,
    check: impl Fn(&C) -> std::result::Result<(), String>,
    params: impl Fn(&C) -> f64,
) -> Result<()> {
    let cpath = dir.join("config.json");
    let config_err = |reason| LmError::Config {
        path: cpath.clone(),
        reason,
    };
    check(cfg).map_err(config_err)?;
    crate::limits::check_weights_cover(params(cfg), &dir.join("model.safetensors"))
        .map_err(config_err)
}

/// Sets a fresh model's `params` from `dir/model.safetensors` (every name, shape; the file is
/// named in the error).
pub(crate) fn load_params(dir: &Path, params: &[(String, Var)]) -> Result<()> {
    let wpath = dir.join("model.safetensors");
    let mut t = seqlab_tensor::load(&wpath, &Device::Cpu)?;
    layer::set_params(params, &mut t)
        .map_err(|e| LmError::Weights(format!("{}: {e}", wpath.display())))
}

/// Writes `cfg` as `config.json` and `params` as `model.safetensors` (f32), atomically.
pub(crate) fn save_model<C: Serialize>(
    dir: &Path,
    cfg: &C,
    params: &[(String, Var)],
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| seqlab_io::IoError::new(seqlab_io::Action::Create, dir, e))?;
    let json = serde_json::to_string_pretty(cfg).expect("config serialises");
    seqlab_io::write_atomic(dir.join("config.json"), json.as_bytes())?;
    let mut t = std::collections::HashMap::new();
    for (n, v) in params {
        let host = v
            .as_tensor()
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?;
        t.insert(n.clone(), host);
    }
    seqlab_tensor::save_atomic(dir.join("model.safetensors"), &t)?;
    Ok(())
}

/// The error of a truncate outside the reachable lengths.
pub(crate) fn truncate_err(what: &str, len: usize, cur: usize, kept: &[usize]) -> LmError {
    LmError::State(match (kept.first(), kept.last()) {
        (Some(a), Some(b)) => format!(
            "cannot roll the {what} state back to {len} tokens: it is at {cur} and keeps \
             snapshots of lengths {a}..={b} only"
        ),
        _ => format!(
            "cannot roll the {what} state back to {len} tokens: it is at {cur} and keeps no \
             snapshots (only a short `score` call keeps them)"
        ),
    })
}

impl CausalLm for S4Lm {
    type State = S4LmState;

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, S4LmState)> {
        if tokens.is_empty() {
            return Err(LmError::Shape("prefill needs at least one token".into()));
        }
        let mut st = self.new_state()?;
        if self.cfg.ssm == SsmName::S4legs && tokens.len() > self.cfg.l_max {
            // Past the kernel length C̃ was set up for: recurrent mode only.
            let mut last = Vec::new();
            for &t in tokens {
                last = self.step_inner(&mut st, t)?;
            }
            return Ok((last, st));
        }
        let (logits, inputs) = self.forward_collect(tokens, 1)?;
        let c = self.cache()?;
        for ((b, s), x) in c.blocks.iter().zip(st.layers.iter_mut()).zip(&inputs) {
            *s = b.state_after(&rows_f64(x)?)?;
        }
        st.len = tokens.len();
        let last = logits
            .narrow(1, tokens.len() - 1, 1)?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        Ok((last, st))
    }

    fn step(&self, state: &mut S4LmState, token: u32) -> Result<Vec<f32>> {
        self.step_inner(state, token)
    }

    /// Recurrent steps over `tokens`, keeping the state before each of them when the block
    /// is at most [`S4_SCORE_SNAPSHOT_MAX`] tokens long.
    fn score(&self, state: &mut S4LmState, tokens: &[u32]) -> Result<Vec<f32>> {
        state.kept.clear();
        let keep = tokens.len() <= S4_SCORE_SNAPSHOT_MAX;
        let mut out = Vec::with_capacity(tokens.len() * self.cfg.vocab_size);
        for &t in tokens {
            if keep {
                state.kept.push((state.len, state.layers.clone()));
            }
            out.extend(self.step_inner(state, t)?);
        }
        Ok(out)
    }

    fn state_len(&self, state: &S4LmState) -> usize {
        state.len
    }

    fn truncate(&self, state: &mut S4LmState, len: usize) -> Result<()> {
        if len == state.len {
            return Ok(());
        }
        if len == 0 {
            *state = self.new_state()?;
            return Ok(());
        }
        match state.kept.iter().position(|(l, _)| *l == len) {
            Some(i) => {
                let (l, layers) = state.kept.swap_remove(i);
                state.kept.truncate(i);
                state.len = l;
                state.layers = layers;
                Ok(())
            }
            None => {
                let kept: Vec<usize> = state.kept.iter().map(|k| k.0).collect();
                Err(truncate_err("S4 LM", len, state.len, &kept))
            }
        }
    }
}
