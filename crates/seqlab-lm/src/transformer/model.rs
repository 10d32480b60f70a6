//! The pre-norm decoder-only Transformer LM (Vaswani et al. 2017; Llama's variant):
//!
//! ```text
//! h⁰ = E[x]
//! a  = hˡ + W_o · Attn(RoPE(W_q n), RoPE(W_k n), W_v n),      n = RMSNorm(hˡ)
//! hˡ⁺¹ = a + MLP(RMSNorm(a))
//! logits = RMSNorm(hᴸ) · Eᵀ   (tied)   or   lm_head(RMSNorm(hᴸ))
//! Attn(Q, K, V) = softmax(Q Kᵀ / √hd + M) V       per head; head h reads kv head ⌊h / G⌋
//! RMSNorm(x) = x / √(mean(x²) + ε) ⊙ w
//! ```
//!
//! `M` is the causal mask (0 where key j ≤ query i, −∞ elsewhere), optionally intersected with
//! "same document" for packed rows, or absent in bidirectional mode. RoPE (Su et al. 2021)
//! rotates each pair (x_a, x_b) of a head at position p by angle p·θ^(−2i/hd):
//! `(x_a cos − x_b sin, x_a sin + x_b cos)`, where the pairs are (i, i + hd/2) in the
//! [`RopeLayout::Half`] layout and (2i, 2i + 1) in the [`RopeLayout::Interleaved`] one.
//!
//! Every op is a candle op, so the same forward pass trains (dense [`Linear`]s holding
//! `Var` tensors) and decodes. Decoding keeps a [`KvCache`]: a step computes q, k, v for the new
//! token only, appends k, v, and attends over the cache. On the CPU in f32, a pass with a cache
//! (prefill, step, score) attends with [`causal_attention_rows`] (no gradient), whose rows do not
//! depend on how many rows the call has, so a quantized model's steps and scores agree exactly.

use crate::causal_lm::CausalLm;
use crate::error::{LmError, Result};
use crate::mamba::LogitsMode;
use crate::transformer::causal_attn::{causal_attention_rows, rows_kernel_applies};
use crate::transformer::config::{GeluKind, MlpKind, RopeLayout, TransformerConfig};
use crate::transformer::weights::{layer_prefix, Linear, TransformerWeights};
use candle_core::{DType, Device, Tensor, D};
use seqlab_tensor::{batch_rows, rms_norm};
use std::collections::HashMap;
use std::path::Path;

/// A key/value cache: per layer K and V of shape (batch, H_kv, len, hd), after RoPE.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// Per layer (K, V); `None` before the first token.
    pub layers: Vec<Option<(Tensor, Tensor)>>,
    /// Positions cached.
    pub len: usize,
    /// Rows.
    pub batch: usize,
}

impl KvCache {
    /// An empty cache for `n_layer` layers and `batch` rows.
    pub fn new(n_layer: usize, batch: usize) -> Self {
        Self {
            layers: vec![None; n_layer],
            len: 0,
            batch,
        }
    }

    /// Cuts the cache to its first `len` positions (any `len` ≤ the current length).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(LmError::State(format!(
                "cannot truncate a KV cache of {} positions to {len}",
                self.len
            )));
        }
        if len == self.len {
            return Ok(());
        }
        for l in self.layers.iter_mut() {
            *l = match l.take() {
                Some((k, v)) if len > 0 => Some((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?)),
                _ => None,
            };
        }
        self.len = len;
        Ok(())
    }
}

/// The [`CausalLm`] state of a [`TransformerLm`]: its KV cache (batch 1).
#[derive(Debug, Clone)]
pub struct TransformerState {
    /// The cache; its `len` is the number of tokens consumed.
    pub cache: KvCache,
}

/// Which attention mask a forward pass uses.
#[derive(Debug, Clone, Copy)]
enum Mask<'a> {
    /// Key j visible to query i iff j ≤ i (positions counted from the cache start).
    Causal,
    /// Causal and in the same document (`seq_idx` per token, batch·len).
    Docs(&'a [i32]),
    /// Every key visible.
    Bidirectional,
}

/// A Transformer LM ready to run: config + weights.
#[derive(Debug, Clone)]
pub struct TransformerLm {
    cfg: TransformerConfig,
    w: TransformerWeights,
}

fn shape_err(name: String, got: Vec<usize>, want: Vec<usize>) -> LmError {
    LmError::Weights(format!(
        "tensor `{name}` has shape {got:?}, expected {want:?}"
    ))
}

impl TransformerLm {
    /// A model from a config and weights (dense or quantized); every weight's shape is checked
    /// against the config and a mismatch names the tensor (HF name).
    pub fn new(cfg: TransformerConfig, weights: TransformerWeights) -> Result<Self> {
        cfg.validate()
            .map_err(|e| LmError::InvalidConfig(format!("bad transformer config: {e}")))?;
        let (v, d, hd, f) = (cfg.vocab_size, cfg.d_model, cfg.head_dim, cfg.d_ff);
        let (qd, kd) = (cfg.n_head * hd, cfg.n_kv_head * hd);
        let w = &weights;
        let t = |name: String, x: &Tensor, want: Vec<usize>| -> Result<()> {
            if x.dims() != want.as_slice() {
                return Err(shape_err(name, x.dims().to_vec(), want));
            }
            Ok(())
        };
        let l = |name: String, x: &Linear, want: (usize, usize)| -> Result<()> {
            let s = x.shape();
            if s != want {
                return Err(shape_err(name, vec![s.0, s.1], vec![want.0, want.1]));
            }
            Ok(())
        };
        t("model.embed_tokens.weight".into(), &w.embed, vec![v, d])?;
        if w.layers.len() != cfg.n_layer {
            return Err(LmError::Weights(format!(
                "{} layers of weights for a config of {} layers",
                w.layers.len(),
                cfg.n_layer
            )));
        }
        for (i, lw) in w.layers.iter().enumerate() {
            let p = layer_prefix(i);
            t(
                format!("{p}.input_layernorm.weight"),
                &lw.attn_norm,
                vec![d],
            )?;
            l(format!("{p}.self_attn.q_proj.weight"), &lw.q_proj, (qd, d))?;
            l(format!("{p}.self_attn.k_proj.weight"), &lw.k_proj, (kd, d))?;
            l(format!("{p}.self_attn.v_proj.weight"), &lw.v_proj, (kd, d))?;
            l(format!("{p}.self_attn.o_proj.weight"), &lw.o_proj, (d, qd))?;
            t(
                format!("{p}.post_attention_layernorm.weight"),
                &lw.mlp_norm,
                vec![d],
            )?;
            match (&lw.gate_proj, cfg.mlp) {
                (Some(g), MlpKind::SwiGlu) => l(format!("{p}.mlp.gate_proj.weight"), g, (f, d))?,
                (None, MlpKind::Gelu) => {}
                (None, MlpKind::SwiGlu) => {
                    return Err(LmError::Weights(format!(
                        "tensor `{p}.mlp.gate_proj.weight` is missing (SwiGLU MLP)"
                    )))
                }
                (Some(_), MlpKind::Gelu) => {
                    return Err(LmError::Weights(format!(
                        "layer {i} has a gate projection but the config says the GELU MLP"
                    )))
                }
            }
            l(format!("{p}.mlp.up_proj.weight"), &lw.up_proj, (f, d))?;
            l(format!("{p}.mlp.down_proj.weight"), &lw.down_proj, (d, f))?;
        }
        t("model.norm.weight".into(), &w.norm_f, vec![d])?;
        if let Some(h) = &w.lm_head {
            l("lm_head.weight".into(), h, (v, d))?;
        }
        Ok(Self { cfg, w: weights })
    }

    /// Loads a model directory: `config.json` (HF Llama keys + ours, see
    /// [`TransformerConfig::from_json_str`]) and `model.safetensors` (or a sharded index),
    /// every tensor checked by name and shape. Half-precision weights become f32.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(LmError::ModelDirNotFound {
                path: dir.to_path_buf(),
            });
        }
        let mut cfg = TransformerConfig::from_file(&dir.join("config.json"))?;
        let mut w = TransformerWeights::load(dir, &cfg)?;
        // A tied checkpoint may still carry an lm_head copy; an untied one must.
        if cfg.tie_embeddings {
            w.lm_head = None;
        }
        cfg.tie_embeddings = w.lm_head.is_none();
        Self::new(cfg, w)
    }

    /// Writes `config.json` and `model.safetensors` (f32) into `dir`, each atomically.
    /// Only dense models can be saved.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let named = self.w.named_dense();
        let want = crate::transformer::weights::expected_specs(&self.cfg).len();
        if named.len() != want {
            return Err(LmError::Unsupported(
                "a quantized transformer cannot be saved as safetensors".into(),
            ));
        }
        let mut t = HashMap::new();
        for (n, x) in named {
            t.insert(n, x.to_dtype(DType::F32)?.to_device(&Device::Cpu)?);
        }
        seqlab_tensor::save_atomic(dir.join("model.safetensors"), &t)?;
        seqlab_io::write_atomic(dir.join("config.json"), self.cfg.to_json().as_bytes())?;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// The weights.
    pub fn weights(&self) -> &TransformerWeights {
        &self.w
    }

    /// An empty KV cache for `batch` rows.
    pub fn new_cache(&self, batch: usize) -> KvCache {
        KvCache::new(self.cfg.n_layer, batch)
    }

    /// Causal forward of `tokens` (batch·len ids, row-major) continuing `cache` (positions
    /// `cache.len ..`), which is extended by them. Logits per `mode`: (batch, len, V) for
    /// [`LogitsMode::All`], (batch, V) for [`LogitsMode::Last`], none for `Skip`.
    pub fn forward(
        &self,
        tokens: &[u32],
        batch: usize,
        cache: &mut KvCache,
        mode: LogitsMode,
    ) -> Result<Option<Tensor>> {
        if cache.batch != batch {
            return Err(LmError::State(format!(
                "a KV cache of {} rows used with a batch of {batch}",
                cache.batch
            )));
        }
        if cache.layers.len() != self.cfg.n_layer {
            return Err(LmError::State(
                "the KV cache belongs to another model".into(),
            ));
        }
        self.run(tokens, batch, Mask::Causal, Some(cache), mode, None)
    }

    /// Causal forward without a cache, (batch, len, V) logits. With `seq_idx` (one document id
    /// per token) a query attends only to earlier keys of its own document: block-diagonal
    /// causal attention for packed training rows. Differentiable.
    pub fn forward_causal(
        &self,
        tokens: &[u32],
        batch: usize,
        seq_idx: Option<&[i32]>,
    ) -> Result<Tensor> {
        let mask = match seq_idx {
            Some(s) => {
                if s.len() != tokens.len() {
                    return Err(LmError::Shape("seq_idx must have one id per token".into()));
                }
                Mask::Docs(s)
            }
            None => Mask::Causal,
        };
        Ok(self
            .run(tokens, batch, mask, None, LogitsMode::All, None)?
            .expect("All gives logits"))
    }

    /// Bidirectional forward (no mask, no cache): every position attends to every position
    /// of its row; (batch, len, V) logits. The backbone of a masked-diffusion denoiser.
    pub fn forward_bidirectional(&self, tokens: &[u32], batch: usize) -> Result<Tensor> {
        self.forward_bidirectional_with(tokens, batch, None)
    }

    /// [`Self::forward_bidirectional`] with `input_add` (broadcastable to (batch, len, D), e.g.
    /// (batch, 1, D)) added to the token embeddings h⁰: the hook a time-conditioned diffusion
    /// denoiser uses to add an embedding of t. Differentiable in `input_add` too.
    pub fn forward_bidirectional_with(
        &self,
        tokens: &[u32],
        batch: usize,
        input_add: Option<&Tensor>,
    ) -> Result<Tensor> {
        Ok(self
            .run(
                tokens,
                batch,
                Mask::Bidirectional,
                None,
                LogitsMode::All,
                input_add,
            )?
            .expect("All gives logits"))
    }

    fn check_tokens(&self, tokens: &[u32], batch: usize) -> Result<usize> {
        let row = batch_rows(tokens.len(), batch)?;
        let vocab = self.cfg.vocab_size;
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
            return Err(LmError::TokenOutOfRange { id, vocab });
        }
        Ok(row)
    }

    /// cos and sin tables (len, hd/2) of positions `offset..offset+len`:
    /// angle(p, i) = p · θ^(−2i/hd), computed in f64.
    fn rope_tables(&self, offset: usize, len: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        let half = self.cfg.head_dim / 2;
        let hd = self.cfg.head_dim as f64;
        let inv: Vec<f64> = (0..half)
            .map(|i| self.cfg.rope_theta.powf(-((2 * i) as f64) / hd))
            .collect();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for p in offset..offset + len {
            for &f in &inv {
                let a = p as f64 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (len, half), self.w.embed.device())?.to_dtype(dtype)?,
            Tensor::from_vec(sin, (len, half), self.w.embed.device())?.to_dtype(dtype)?,
        ))
    }

    fn run(
        &self,
        tokens: &[u32],
        batch: usize,
        mask: Mask<'_>,
        mut cache: Option<&mut KvCache>,
        mode: LogitsMode,
        input_add: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        let c = &self.cfg;
        let len = self.check_tokens(tokens, batch)?;
        let offset = cache.as_ref().map_or(0, |k| k.len);
        let dtype = self.w.embed.dtype();
        let ids = Tensor::from_slice(tokens, tokens.len(), self.w.embed.device())?;
        let mut h = self
            .w
            .embed
            .index_select(&ids, 0)?
            .reshape((batch, len, c.d_model))?;
        if let Some(a) = input_add {
            h = h.broadcast_add(a)?;
        }
        let (cos, sin) = self.rope_tables(offset, len, dtype)?;
        // A quantized model (inference only, no gradient) takes the row-exact attention for
        // every causal pass, so its parallel forward equals its steps as well (causal_attn).
        let rows_kernel = (cache.is_some() || self.is_quantized())
            && matches!(mask, Mask::Causal)
            && rows_kernel_applies(self.w.embed.device(), dtype);
        let mask_t = if rows_kernel {
            None
        } else {
            self.mask_tensor(mask, batch, len, offset, dtype)?
        };
        for (i, lw) in self.w.layers.iter().enumerate() {
            let x = rms_norm(&h, &lw.attn_norm, c.norm_eps)?;
            let heads = |lin: &Linear, n: usize| -> Result<Tensor> {
                Ok(lin
                    .forward(&x)?
                    .reshape((batch, len, n, c.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = rope(&heads(&lw.q_proj, c.n_head)?, &cos, &sin, c.rope_layout)?;
            let mut k = rope(&heads(&lw.k_proj, c.n_kv_head)?, &cos, &sin, c.rope_layout)?;
            let mut v = heads(&lw.v_proj, c.n_kv_head)?;
            if let Some(cache) = cache.as_deref_mut() {
                if let Some((pk, pv)) = &cache.layers[i] {
                    k = Tensor::cat(&[pk, &k], 2)?;
                    v = Tensor::cat(&[pv, &v], 2)?;
                }
                cache.layers[i] = Some((k.clone(), v.clone()));
            }
            // (B, H, L, hd). Decoding (a cache, causal, CPU f32) takes the row-exact kernel so
            // one-token steps and multi-token scores agree bit for bit (see causal_attn).
            let att = if rows_kernel {
                causal_attention_rows(&q, &k, &v, offset, c.group())?
            } else {
                attention(&q, &k, &v, mask_t.as_ref(), c.group())?
            };
            let att =
                att.transpose(1, 2)?
                    .contiguous()?
                    .reshape((batch, len, c.n_head * c.head_dim))?;
            h = (h + lw.o_proj.forward(&att)?)?;
            let x = rms_norm(&h, &lw.mlp_norm, c.norm_eps)?;
            let up = lw.up_proj.forward(&x)?;
            let act = match (&lw.gate_proj, c.mlp) {
                (Some(g), _) => (g.forward(&x)?.silu()? * up)?,
                (None, _) => match c.gelu {
                    GeluKind::Erf => up.gelu_erf()?,
                    GeluKind::Tanh => up.gelu()?,
                },
            };
            h = (h + lw.down_proj.forward(&act)?)?;
        }
        if let Some(cache) = cache {
            cache.len += len;
        }
        let h = match mode {
            LogitsMode::Skip => return Ok(None),
            LogitsMode::Last => h.narrow(1, len - 1, 1)?.reshape((batch, c.d_model))?,
            LogitsMode::All => h,
        };
        let x = rms_norm(&h, &self.w.norm_f, c.norm_eps)?;
        let logits = match &self.w.lm_head {
            Some(head) => head.forward(&x)?,
            None => Linear::Dense(self.w.embed.clone()).forward(&x)?,
        };
        Ok(Some(logits))
    }

    /// Whether any linear layer is quantized (such a model only runs inference).
    fn is_quantized(&self) -> bool {
        let q = |l: &Linear| matches!(l, Linear::Quantized(_));
        self.w.lm_head.as_ref().is_some_and(q)
            || self.w.layers.iter().any(|l| {
                [
                    &l.q_proj,
                    &l.k_proj,
                    &l.v_proj,
                    &l.o_proj,
                    &l.up_proj,
                    &l.down_proj,
                ]
                .into_iter()
                .chain(l.gate_proj.as_ref())
                .any(q)
            })
    }

    /// The additive mask, shaped (B or 1, 1, 1, L, offset+L) to broadcast over (kv head,
    /// group); `None` when nothing is masked.
    fn mask_tensor(
        &self,
        mask: Mask<'_>,
        batch: usize,
        len: usize,
        offset: usize,
        dtype: DType,
    ) -> Result<Option<Tensor>> {
        let total = offset + len;
        let data: (usize, Vec<f32>) = match mask {
            Mask::Bidirectional => return Ok(None),
            Mask::Causal if len == 1 => return Ok(None),
            Mask::Causal => {
                let mut m = vec![0f32; len * total];
                for i in 0..len {
                    m[i * total + offset + i + 1..(i + 1) * total].fill(NEG);
                }
                (1, m)
            }
            Mask::Docs(seq) => {
                let mut m = vec![NEG; batch * len * len];
                for b in 0..batch {
                    let row = &seq[b * len..][..len];
                    for i in 0..len {
                        // Keys j ≤ i of the same document: a contiguous run ending at i.
                        let mut j = i + 1;
                        while j > 0 && row[j - 1] == row[i] {
                            j -= 1;
                        }
                        m[(b * len + i) * len + j..(b * len + i) * len + i + 1].fill(0.0);
                    }
                }
                (batch, m)
            }
        };
        Ok(Some(
            Tensor::from_vec(data.1, (data.0, 1, 1, len, total), self.w.embed.device())?
                .to_dtype(dtype)?,
        ))
    }
}

/// The masked-out score: exp(NEG − max) underflows to exactly 0 without ∞ arithmetic.
const NEG: f32 = -1e30;

/// Applies RoPE to `x` (B, n, L, hd) with tables (L, hd/2) in `layout` (module docs).
///
/// Written with candle's differentiable tensor ops rather than `candle_nn::rotary_emb::{rope,
/// rope_i}`: those (candle-nn 0.11.1) are fused custom ops applied with `apply_op3_no_bwd`, so
/// they have no backward pass, and [`crate::transformer::TrainTransformer`] trains through this
/// function. The same holds for RMSNorm (`candle_nn::ops::rms_norm` has no backward and
/// normalises with `x / m` in f32, not `x · (1/m)` in the dtype of `x`), hence
/// [`seqlab_tensor::rms_norm`].
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, layout: RopeLayout) -> Result<Tensor> {
    let (b, n, l, hd) = x.dims4()?;
    let half = hd / 2;
    match layout {
        RopeLayout::Half => {
            let x1 = x.narrow(3, 0, half)?;
            let x2 = x.narrow(3, half, half)?;
            let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
            let bb = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
            Ok(Tensor::cat(&[a, bb], 3)?)
        }
        RopeLayout::Interleaved => {
            let xr = x.reshape((b, n, l, half, 2))?;
            let x1 = xr.narrow(4, 0, 1)?.squeeze(4)?;
            let x2 = xr.narrow(4, 1, 1)?.squeeze(4)?;
            let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
            let bb = (x1.broadcast_mul(sin)? + x2.broadcast_mul(cos)?)?;
            Ok(Tensor::stack(&[a, bb], 4)?.reshape((b, n, l, hd))?)
        }
    }
}

/// `softmax(q kᵀ/√hd + M) v` with grouped-query heads: q (B, H, L, hd), k, v (B, H_kv, Lk, hd),
/// query head h reading kv head ⌊h/G⌋ (the G query heads of a kv head are folded into its rows,
/// so one batched matmul serves them without copying K, V). Returns (B, H, L, hd).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    group: usize,
) -> Result<Tensor> {
    let (b, h, l, hd) = q.dims4()?;
    let (_, hkv, lk, _) = k.dims4()?;
    let qg = q.reshape((b, hkv, group * l, hd))?;
    let scores = (qg.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?; // (B, Hkv, G·L, Lk)
    let scores = match mask {
        Some(m) => scores
            .reshape((b, hkv, group, l, lk))?
            .broadcast_add(m)?
            .reshape((b, hkv, group * l, lk))?,
        None => scores,
    };
    let max = scores.max_keepdim(D::Minus1)?.detach();
    let e = scores.broadcast_sub(&max)?.exp()?;
    let p = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
    Ok(p.matmul(v)?.reshape((b, h, l, hd))?)
}

impl CausalLm for TransformerLm {
    type State = TransformerState;

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn prefill(&self, tokens: &[u32]) -> Result<(Vec<f32>, TransformerState)> {
        if tokens.is_empty() {
            return Err(LmError::Shape("prefill needs at least one token".into()));
        }
        let mut cache = self.new_cache(1);
        let logits = self
            .forward(tokens, 1, &mut cache, LogitsMode::Last)?
            .expect("Last gives logits");
        Ok((logits.flatten_all()?.to_vec1()?, TransformerState { cache }))
    }

    fn step(&self, state: &mut TransformerState, token: u32) -> Result<Vec<f32>> {
        let logits = self
            .forward(&[token], 1, &mut state.cache, LogitsMode::Last)?
            .expect("Last gives logits");
        Ok(logits.flatten_all()?.to_vec1()?)
    }

    fn score(&self, state: &mut TransformerState, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let logits = self
            .forward(tokens, 1, &mut state.cache, LogitsMode::All)?
            .expect("All gives logits");
        Ok(logits.flatten_all()?.to_vec1()?)
    }

    fn state_len(&self, state: &TransformerState) -> usize {
        state.cache.len
    }

    fn truncate(&self, state: &mut TransformerState, len: usize) -> Result<()> {
        if len > state.cache.len {
            return Err(LmError::State(format!(
                "cannot roll the KV cache back to {len} tokens: it holds {} (reachable: 0..={})",
                state.cache.len, state.cache.len
            )));
        }
        state.cache.truncate(len)
    }
}
