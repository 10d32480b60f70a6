//! SaShiMi (Goel et al. 2022, "It's Raw! Audio Generation with State-Space Models";
//! state-spaces/s4 `models/sashimi/sashimi.py`, non-U-Net variant): a multi-scale stack of
//! S4 + feed-forward residual blocks over 8-bit mu-law samples.
//!
//! With pooling factors p₁, p₂, … (default [4, 4]) and widths H₀ = d_model, H_{i+1} = e·H_i
//! (e = `expand`, default 2):
//!
//! - **Down-pooling** (§3.2, eq. before (4)): level i's sequence (L, H_i) is reshaped to
//!   (L/p, p·H_i) — each group of p consecutive samples concatenated — and mapped by a linear
//!   layer to (L/p, H_{i+1}). Pooled position j therefore reads samples jp … jp+p−1 only.
//! - **Up-pooling**: a linear layer maps (L/p, H_{i+1}) → (L/p, p·H_i), the result is shifted
//!   right by one pooled position (zero first), then reshaped to (L, H_i). Sample t thus
//!   receives pooled position ⌊t/p⌋ − 1, which read samples ≤ p·⌊t/p⌋ − 1 < t: no future
//!   leaks (this shift is what makes the whole model causal).
//! - **Stages**: the centre (widest, shortest) stage and every up stage hold `n_layer` ×
//!   (S4 block, FF block); the FF block is x + W₂·GELU(W₁·LN(x)) (expansion `ff_expand`).
//! - **Skips** (U-Net across stages): the centre adds its input; each up stage adds the
//!   down-path activation of its level right after up-pooling, and its own input after its
//!   blocks.
//! - Embedding in (256 mu-law codes), LayerNorm, untied 256-way head out.
//!
//! **Recurrent mode** (`sashimi.py` `step`): level i buffers its inputs; every p_i-th sample
//! the buffer is pooled and level i+1 advances by one step, whose output is up-pooled into
//! the p_i outputs of the next p_i samples (a queue, initially zero — the shift). So the
//! pooled stages step once every 4 / 16 samples.

use crate::causal_lm::CausalLm;
use crate::error::{LmError, Result};
use crate::s4lm::layer::{
    self, block_params, layer_norm, layer_norm_t, linear, linear_t, var_f32, FfBlock, FfCache,
    S4StepCache, SsmName,
};
use crate::s4lm::{load_params, read_config, save_model, truncate_err};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use seqlab_ssm::s4::{S4Block, S4BlockConfig, C64};
use seqlab_tensor::limits::{check_plausible, Dim};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// `model_type` of a saved SaShiMi.
pub const SASHIMI_MODEL_TYPE: &str = "seqlab_sashimi";

/// Longest block [`CausalLm::score`] keeps per-position snapshots for.
pub const SASHIMI_SCORE_SNAPSHOT_MAX: usize = 64;

/// Sizes of a SaShiMi model (`config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SashimiConfig {
    /// Always `"seqlab_sashimi"`.
    pub model_type: String,
    /// Vocabulary (256 mu-law codes).
    pub vocab_size: usize,
    /// Width H₀ of the outermost stage.
    pub d_model: usize,
    /// (S4, FF) pairs per stage.
    pub n_layer: usize,
    /// SSM state size N (even).
    pub d_state: usize,
    /// SSM kind.
    pub ssm: SsmName,
    /// Pooling factors, outermost first.
    pub pool: Vec<usize>,
    /// Width multiplier per pooling level.
    pub expand: usize,
    /// FF expansion.
    pub ff_expand: usize,
    /// Longest parallel sequence at the sample rate (S4-LegS kernel lengths derive from it).
    pub l_max: usize,
}

impl SashimiConfig {
    /// The reference shape: pool [4, 4], expand 2, ff 2.
    pub fn new(
        vocab_size: usize,
        d_model: usize,
        n_layer: usize,
        d_state: usize,
        ssm: SsmName,
        l_max: usize,
    ) -> Self {
        Self {
            model_type: SASHIMI_MODEL_TYPE.into(),
            vocab_size,
            d_model,
            n_layer,
            d_state,
            ssm,
            pool: vec![4, 4],
            expand: 2,
            ff_expand: 2,
            l_max,
        }
    }

    /// Product of the pooling factors (parallel lengths are padded to a multiple of it).
    pub fn total_pool(&self) -> usize {
        self.pool.iter().product()
    }

    /// Plausible sizes ([`seqlab_tensor::limits`]) of a SaShiMi `config.json`; the widest stage (d_model · expand^levels) must be plausible too.
    pub fn check_sizes(&self) -> std::result::Result<(), String> {
        check_plausible(&[
            ("vocab_size", self.vocab_size, Dim::Vocab),
            ("d_model", self.d_model, Dim::Width),
            ("n_layer", self.n_layer, Dim::Layers),
            ("d_state", self.d_state, Dim::State),
            ("expand", self.expand, Dim::Factor),
            ("ff_expand", self.ff_expand, Dim::Factor),
            ("l_max", self.l_max, Dim::Sequence),
            ("number of pooling levels", self.pool.len(), Dim::Layers),
        ])?;
        crate::limits::check_pool(&self.pool)?;
        check_plausible(&[(
            "d_model · expand^levels (the innermost width)",
            crate::limits::innermost_width(self.d_model, self.expand, self.pool.len()),
            Dim::Width,
        )])?;
        Ok(())
    }

    /// A lower bound on a SaShiMi's parameters: the embedding and, per layer of the outer stage,
    /// the feed-forward's two D×(ff·D) matrices.
    pub fn params_lower_bound(&self) -> f64 {
        let d = self.d_model as f64;
        self.vocab_size as f64 * d + self.n_layer as f64 * 2.0 * self.ff_expand as f64 * d * d
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        self.check_sizes().map_err(LmError::InvalidConfig)?;
        if self.vocab_size == 0
            || self.d_model == 0
            || self.n_layer == 0
            || self.expand == 0
            || self.ff_expand == 0
            || self.l_max == 0
            || self.d_state < 2
            || !self.d_state.is_multiple_of(2)
            || self.pool.contains(&0)
        {
            return Err(LmError::InvalidConfig(format!(
                "bad SaShiMi config: need vocab, d_model, n_layer, expand, ff_expand, l_max, \
                 pool factors ≥ 1 and an even d_state ≥ 2 (got {self:?})"
            )));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Stage {
    s4: Vec<S4Block>,
    ff: Vec<FfBlock>,
}

impl Stage {
    fn forward(&self, mut x: Tensor) -> Result<Tensor> {
        for (s, f) in self.s4.iter().zip(&self.ff) {
            x = s.forward(&x)?;
            x = f.forward(&x)?;
        }
        Ok(x)
    }
}

#[derive(Debug)]
struct Inner {
    emb: Var,
    /// Per level: (W (H_{i+1}, p·H_i), b).
    down: Vec<(Var, Var)>,
    center: Stage,
    /// Per level: (W (p·H_i, H_{i+1}), b) and the stage at width H_i.
    up: Vec<((Var, Var), Stage)>,
    norm_w: Var,
    norm_b: Var,
    head_w: Var,
    head_b: Var,
}

#[derive(Debug)]
struct StageCache {
    s4: Vec<S4StepCache>,
    ff: Vec<FfCache>,
}

impl StageCache {
    fn step(&self, x: &mut Vec<f64>, st: &mut [Vec<C64>]) -> Result<()> {
        for ((s, f), si) in self.s4.iter().zip(&self.ff).zip(st.iter_mut()) {
            *x = s.step(x, si)?;
            *x = f.step(x);
        }
        Ok(())
    }
    fn zero(&self) -> Vec<Vec<C64>> {
        self.s4.iter().map(S4StepCache::zero_state).collect()
    }
}

/// A linear layer frozen in f64: (W row-major, b).
type Lin64 = (Vec<f64>, Vec<f64>);

#[derive(Debug)]
struct StepCache {
    emb: Vec<f64>,
    down: Vec<Lin64>,
    center: StageCache,
    up: Vec<(Lin64, StageCache)>,
    norm_w: Vec<f64>,
    norm_b: Vec<f64>,
    head_w: Vec<f64>,
    head_b: Vec<f64>,
}

/// The SaShiMi model (trainable: its parameters are candle `Var`s).
#[derive(Debug, Clone)]
pub struct Sashimi {
    cfg: SashimiConfig,
    inner: Arc<Inner>,
    params: Vec<(String, Var)>,
    cache: Arc<OnceLock<StepCache>>,
}

/// Recurrent state of one pooling level.
#[derive(Debug, Clone)]
struct LevelState {
    /// Inputs buffered for the next down-pool (concatenated).
    buf: Vec<f64>,
    /// Up-pooled outputs for the coming samples.
    queue: VecDeque<Vec<f64>>,
    /// The up stage's S4 states.
    s4: Vec<Vec<C64>>,
}

/// The [`CausalLm`] state of a [`Sashimi`].
#[derive(Debug, Clone)]
pub struct SashimiState {
    len: usize,
    levels: Vec<LevelState>,
    center: Vec<Vec<C64>>,
    kept: Vec<(usize, Vec<LevelState>, Vec<Vec<C64>>)>,
}

impl SashimiState {
    /// Tokens consumed.
    pub fn consumed(&self) -> usize {
        self.len
    }
}

fn uniform(rng: &mut rand::rngs::StdRng, n: usize, fan_in: usize) -> Vec<f64> {
    let s = 1.0 / (fan_in as f64).sqrt();
    (0..n).map(|_| rng.random_range(-s..s)).collect()
}

impl Sashimi {
    /// A freshly initialised model, deterministic in `seed`.
    pub fn init(cfg: &SashimiConfig, seed: u64) -> Result<Self> {
        Self::init_on(cfg, seed, &Device::Cpu)
    }

    /// [`Sashimi::init`] with the parameters on `device`.
    pub fn init_on(cfg: &SashimiConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut block_seed = seed.wrapping_mul(1000);
        let mut stage = |rng: &mut rand::rngs::StdRng, h: usize, l_max: usize| -> Result<Stage> {
            let mut s4 = Vec::new();
            let mut ff = Vec::new();
            for _ in 0..cfg.n_layer {
                let mut bc = S4BlockConfig::new(h, cfg.ssm.kind(), l_max.max(1));
                bc.d_state = cfg.d_state;
                bc.seed = block_seed;
                block_seed = block_seed.wrapping_add(1);
                s4.push(S4Block::new(bc, DType::F32, device)?);
                ff.push(FfBlock::new(h, cfg.ff_expand, rng, device)?);
            }
            Ok(Stage { s4, ff })
        };
        let (v, h0) = (cfg.vocab_size, cfg.d_model);
        let emb = var_f32(
            (0..v * h0)
                .map(|_| rng.sample::<f64, _>(StandardNormal))
                .collect(),
            &[v, h0],
            device,
        )?;
        let mut widths = vec![h0];
        let mut lens = vec![cfg.l_max];
        let mut down = Vec::new();
        for &p in &cfg.pool {
            let h = *widths.last().expect("non-empty");
            let ho = h * cfg.expand;
            down.push((
                var_f32(uniform(&mut rng, ho * p * h, p * h), &[ho, p * h], device)?,
                var_f32(uniform(&mut rng, ho, p * h), &[ho], device)?,
            ));
            widths.push(ho);
            lens.push(lens.last().expect("non-empty").div_ceil(p));
        }
        let n = cfg.pool.len();
        let center = stage(&mut rng, widths[n], lens[n])?;
        let mut up = Vec::new();
        for i in 0..n {
            let (h, hi, p) = (widths[i], widths[i + 1], cfg.pool[i]);
            let w = (
                var_f32(uniform(&mut rng, p * h * hi, hi), &[p * h, hi], device)?,
                var_f32(uniform(&mut rng, p * h, hi), &[p * h], device)?,
            );
            up.push((w, stage(&mut rng, h, lens[i])?));
        }
        let head_w = var_f32(uniform(&mut rng, v * h0, h0), &[v, h0], device)?;
        let head_b = var_f32(vec![0.0; v], &[v], device)?;
        let inner = Inner {
            emb,
            down,
            center,
            up,
            norm_w: var_f32(vec![1.0; h0], &[h0], device)?,
            norm_b: var_f32(vec![0.0; h0], &[h0], device)?,
            head_w,
            head_b,
        };
        let mut params = vec![("embedding.weight".to_string(), inner.emb.clone())];
        for (i, (w, b)) in inner.down.iter().enumerate() {
            params.push((format!("down.{i}.weight"), w.clone()));
            params.push((format!("down.{i}.bias"), b.clone()));
        }
        let stage_params = |prefix: &str, s: &Stage, out: &mut Vec<(String, Var)>| {
            for (j, (a, f)) in s.s4.iter().zip(&s.ff).enumerate() {
                out.extend(block_params(&format!("{prefix}.{j}.s4"), a));
                out.extend(f.params(&format!("{prefix}.{j}.ff")));
            }
        };
        stage_params("center", &inner.center, &mut params);
        for (i, ((w, b), s)) in inner.up.iter().enumerate() {
            params.push((format!("up.{i}.pool.weight"), w.clone()));
            params.push((format!("up.{i}.pool.bias"), b.clone()));
            stage_params(&format!("up.{i}.layers"), s, &mut params);
        }
        for (n, x) in [
            ("norm_f.weight", &inner.norm_w),
            ("norm_f.bias", &inner.norm_b),
            ("head.weight", &inner.head_w),
            ("head.bias", &inner.head_b),
        ] {
            params.push((n.to_string(), x.clone()));
        }
        Ok(Self {
            cfg: cfg.clone(),
            inner: Arc::new(inner),
            params,
            cache: Arc::new(OnceLock::new()),
        })
    }

    /// Loads `dir/config.json` + `dir/model.safetensors`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg: SashimiConfig =
            read_config(dir, SASHIMI_MODEL_TYPE, |c: &SashimiConfig| &c.model_type)?;
        crate::s4lm::check_before_init(
            dir,
            &cfg,
            SashimiConfig::check_sizes,
            SashimiConfig::params_lower_bound,
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
    pub fn config(&self) -> &SashimiConfig {
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

    /// Logits (batch, len, V) of `tokens` (batch·len ids), parallel mode; `len` must be a
    /// multiple of the total pooling factor. Differentiable. `seq_idx` is ignored (clips are
    /// independent windows).
    pub fn forward(
        &self,
        tokens: &[u32],
        batch: usize,
        _seq_idx: Option<&[i32]>,
    ) -> Result<Tensor> {
        self.check_tokens(tokens)?;
        let tp = self.cfg.total_pool();
        let l = seqlab_tensor::batch_rows(tokens.len(), batch)?;
        if !l.is_multiple_of(tp) {
            return Err(LmError::Shape(format!(
                "SaShiMi: sequence length {l} is not a multiple of the pooling product {tp}"
            )));
        }
        let inn = &self.inner;
        let ids = Tensor::from_slice(tokens, tokens.len(), self.inner.emb.device())?;
        let mut x =
            inn.emb
                .as_tensor()
                .index_select(&ids, 0)?
                .reshape((batch, l, self.cfg.d_model))?;
        // Down path: outs[i] is level i's activation.
        let mut outs = vec![x.clone()];
        for (&p, (w, b)) in self.cfg.pool.iter().zip(&inn.down) {
            let (bsz, li, h) = x.dims3()?;
            x = linear_t(&x.reshape((bsz, li / p, p * h))?, w, b)?;
            outs.push(x.clone());
        }
        x = inn.center.forward(x)?;
        x = (x + outs.pop().expect("centre input"))?;
        for i in (0..self.cfg.pool.len()).rev() {
            let ((w, b), stage) = &inn.up[i];
            let p = self.cfg.pool[i];
            let (bsz, lj, _) = x.dims3()?;
            let u = linear_t(&x, w, b)?; // (B, lj, p·H_i)
            let ph = u.dim(2)?;
            let zero = Tensor::zeros((bsz, 1, ph), u.dtype(), u.device())?;
            // Shift right by one pooled step: sample t reads pooled position ⌊t/p⌋ − 1.
            let shifted = if lj > 1 {
                Tensor::cat(&[&zero, &u.narrow(1, 0, lj - 1)?], 1)?
            } else {
                zero
            };
            let u = shifted.reshape((bsz, lj * p, ph / p))?;
            let u = (u + outs.pop().expect("level activation"))?;
            x = (stage.forward(u.clone())? + u)?;
        }
        let z = layer_norm_t(&x, &inn.norm_w, &inn.norm_b)?;
        linear_t(&z, &inn.head_w, &inn.head_b)
    }

    fn cache(&self) -> Result<&StepCache> {
        if let Some(c) = self.cache.get() {
            return Ok(c);
        }
        let stage = |s: &Stage| -> Result<StageCache> {
            Ok(StageCache {
                s4: s.s4.iter().map(S4StepCache::new).collect::<Result<_>>()?,
                ff: s.ff.iter().map(FfBlock::cache).collect::<Result<_>>()?,
            })
        };
        let v = layer::vals;
        let inn = &self.inner;
        let c = StepCache {
            emb: v(&inn.emb)?,
            down: inn
                .down
                .iter()
                .map(|(w, b)| Ok((v(w)?, v(b)?)))
                .collect::<Result<_>>()?,
            center: stage(&inn.center)?,
            up: inn
                .up
                .iter()
                .map(|((w, b), s)| Ok(((v(w)?, v(b)?), stage(s)?)))
                .collect::<Result<_>>()?,
            norm_w: v(&inn.norm_w)?,
            norm_b: v(&inn.norm_b)?,
            head_w: v(&inn.head_w)?,
            head_b: v(&inn.head_b)?,
        };
        let _ = self.cache.set(c);
        Ok(self.cache.get().expect("just set"))
    }

    /// A zero state (empty buffers, up-pool queues of p zero outputs each).
    pub fn new_state(&self) -> Result<SashimiState> {
        let c = self.cache()?;
        let mut h = self.cfg.d_model;
        let mut levels = Vec::new();
        for (i, &p) in self.cfg.pool.iter().enumerate() {
            levels.push(LevelState {
                buf: Vec::new(),
                queue: (0..p).map(|_| vec![0.0; h]).collect(),
                s4: c.up[i].1.zero(),
            });
            h *= self.cfg.expand;
        }
        Ok(SashimiState {
            len: 0,
            levels,
            center: c.center.zero(),
            kept: Vec::new(),
        })
    }

    /// One step of level `i` (0 = samples) on input `x` (H_i): its output (H_i).
    fn step_level(
        &self,
        c: &StepCache,
        i: usize,
        x: Vec<f64>,
        st: &mut SashimiState,
    ) -> Result<Vec<f64>> {
        if i == self.cfg.pool.len() {
            let mut u = x.clone();
            c.center.step(&mut u, &mut st.center)?;
            return Ok(u.iter().zip(&x).map(|(a, b)| a + b).collect());
        }
        let p = self.cfg.pool[i];
        let y = {
            let lv = &mut st.levels[i];
            let y = lv
                .queue
                .pop_front()
                .ok_or_else(|| LmError::State("SaShiMi state: empty up-pool queue".into()))?;
            lv.buf.extend_from_slice(&x);
            y
        };
        if st.levels[i].buf.len() == p * x.len() {
            let buf = std::mem::take(&mut st.levels[i].buf);
            let (w, b) = &c.down[i];
            let pooled = linear(&buf, w, b);
            let inner = self.step_level(c, i + 1, pooled, st)?;
            let ((w, b), _) = &c.up[i];
            let u = linear(&inner, w, b);
            let h = x.len();
            st.levels[i].queue.extend(u.chunks(h).map(<[f64]>::to_vec));
        }
        let mut u: Vec<f64> = y.iter().zip(&x).map(|(a, b)| a + b).collect();
        let skip = u.clone();
        c.up[i].1.step(&mut u, &mut st.levels[i].s4)?;
        Ok(u.iter().zip(&skip).map(|(a, b)| a + b).collect())
    }

    fn step_inner(&self, st: &mut SashimiState, token: u32) -> Result<Vec<f32>> {
        self.check_tokens(&[token])?;
        let c = self.cache()?;
        let h = self.cfg.d_model;
        let t = token as usize;
        let x = self.step_level(c, 0, c.emb[t * h..(t + 1) * h].to_vec(), st)?;
        let z = layer_norm(&x, &c.norm_w, &c.norm_b);
        st.len += 1;
        Ok(linear(&z, &c.head_w, &c.head_b)
            .into_iter()
            .map(|v| v as f32)
            .collect())
    }

    /// Logits (len, V) of `tokens` from the empty state in parallel mode (padding the
    /// sequence to a multiple of the pooling product: causal, so the pad changes nothing
    /// before it).
    pub fn logits_parallel(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(LmError::Shape("no tokens".into()));
        }
        let tp = self.cfg.total_pool();
        let mut padded = tokens.to_vec();
        padded.resize(tokens.len().div_ceil(tp) * tp, tokens[tokens.len() - 1]);
        let lg = self.forward(&padded, 1, None)?;
        Ok(lg
            .narrow(1, 0, tokens.len())?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?)
    }
}

impl CausalLm for Sashimi {
    type State = SashimiState;

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    /// Parallel forward for the logits; the state (down-pool buffers, up-pool queues, every
    /// S4 state) by recurrent steps over the prompt, which give it exactly.
    fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, SashimiState)> {
        if tokens.is_empty() {
            return Err(LmError::Shape("prefill needs at least one token".into()));
        }
        self.check_tokens(tokens)?;
        let mut st = self.new_state()?;
        let mut last = Vec::new();
        for &t in tokens {
            last = self.step_inner(&mut st, t)?;
        }
        let tp = self.cfg.total_pool();
        if !(self.cfg.ssm == SsmName::S4legs && tokens.len().div_ceil(tp) * tp > self.cfg.l_max) {
            let v = self.cfg.vocab_size;
            let all = self.logits_parallel(tokens)?;
            last = all[(tokens.len() - 1) * v..].to_vec();
        }
        Ok((last, st))
    }

    fn step(&self, state: &mut SashimiState, token: u32) -> Result<Vec<f32>> {
        self.step_inner(state, token)
    }

    /// Recurrent steps, keeping the state before each token when the block is at most
    /// [`SASHIMI_SCORE_SNAPSHOT_MAX`] long.
    fn score(&self, state: &mut SashimiState, tokens: &[u32]) -> Result<Vec<f32>> {
        state.kept.clear();
        let keep = tokens.len() <= SASHIMI_SCORE_SNAPSHOT_MAX;
        let mut out = Vec::with_capacity(tokens.len() * self.cfg.vocab_size);
        for &t in tokens {
            if keep {
                state
                    .kept
                    .push((state.len, state.levels.clone(), state.center.clone()));
            }
            out.extend(self.step_inner(state, t)?);
        }
        Ok(out)
    }

    fn state_len(&self, state: &SashimiState) -> usize {
        state.len
    }

    fn truncate(&self, state: &mut SashimiState, len: usize) -> Result<()> {
        if len == state.len {
            return Ok(());
        }
        if len == 0 {
            *state = self.new_state()?;
            return Ok(());
        }
        match state.kept.iter().position(|k| k.0 == len) {
            Some(i) => {
                let (l, levels, center) = state.kept.swap_remove(i);
                state.kept.truncate(i);
                state.len = l;
                state.levels = levels;
                state.center = center;
                Ok(())
            }
            None => {
                let kept: Vec<usize> = state.kept.iter().map(|k| k.0).collect();
                Err(truncate_err("SaShiMi", len, state.len, &kept))
            }
        }
    }
}
