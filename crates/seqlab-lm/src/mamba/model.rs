//! The Mamba block and LM (Gu & Dao 2023, §3.4 and Fig. 3; docs/ssm.md#mamba-block), f32 on CPU.
//!
//! ```text
//! h_0 = Embed(tokens)
//! h_{i+1} = h_i + Mixer_i(RMSNorm_i(h_i))                 (residual stream in f32)
//! logits = RMSNorm_f(h_n) · Eᵀ                             (lm_head tied to the embedding E)
//!
//! Mixer(u):  [x, z] = u W_inᵀ                              (2·E·D)
//!            x' = SiLU(causal_conv1d(x) + b_conv)          (depthwise, kernel K)
//!            [δ, B, C] = x' W_xᵀ                           (R, N, N)
//!            Δ = softplus(δ W_dtᵀ + b_dt)                  (b_dt and softplus inside the scan, as
//!                                                           mamba_ssm's fast path does)
//!            y = SelectiveScan(x', Δ, A = −exp(A_log), B, C, D) · SiLU(z)
//!            out = y W_outᵀ
//! ```
//!
//! Four entry points share these weights: [`MambaLm::forward`] (parallel scan over whole
//! sequences), [`MambaLm::prefill`] (the same, also returning the recurrent state),
//! [`MambaLm::step`] (one token per row through `causal_conv1d_update` and
//! `selective_state_update`) and [`MambaLm::score_block`] (a short block: batched dense
//! parts, recurrences per position, the state after every position — speculative
//! verification with rollback). The matmuls go through candle's CPU gemm; conv and scan through
//! `seqlab-ssm`'s rayon kernels. The LM is written here once over its list of blocks; each
//! block's per-layer code is the block's own ([`MambaBlock`]: `cpu_mixer_seq`, `cpu_step`,
//! `cpu_block`, over the same typed weights that training and the device path use).

use crate::error::{LmError, Result};
use crate::mamba::block::MambaBlock;
use crate::mamba::config::MambaConfig;
use crate::mamba::ops::{f32_view, linear_as_tensor, linear_tensor, rms_norm};
use crate::mamba::state::MambaState;
use crate::mamba::weights::MambaWeights;
use candle_core::{Device, Tensor};
use std::path::Path;

/// Which logits a parallel pass computes (the lm_head is the largest matmul of a small model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsMode {
    /// Every position: (batch, len, vocab).
    All,
    /// The last position of each row: (batch, vocab).
    Last,
    /// None (state or hidden states only).
    Skip,
}

/// What a parallel pass returns.
#[derive(Debug, Clone)]
pub struct MambaOutput {
    /// Logits as asked by [`LogitsMode`].
    pub logits: Option<Tensor>,
    /// When asked: n_layer + 1 arrays of (batch, len, d_model) — the residual stream after each
    /// block, then the output of norm_f (HF's `output_hidden_states` without the embedding).
    pub hidden_states: Option<Vec<Vec<f32>>>,
}

/// A Mamba language model with its weights, ready to run on the CPU.
#[derive(Debug, Clone)]
pub struct MambaLm {
    cfg: MambaConfig,
    w: MambaWeights,
    /// Per block, A = −exp(A_log) in f32 ([`MambaBlock::a_f32`]), computed once.
    a: Vec<Vec<f32>>,
}

impl MambaLm {
    /// Loads `config.json` and the checkpoint (`model.safetensors` or a sharded index) from `dir`,
    /// HF or original mamba_ssm layout; any missing or misshapen tensor is an error naming it.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(LmError::ModelDirNotFound {
                path: dir.to_path_buf(),
            });
        }
        let cfg = MambaConfig::from_file(&dir.join("config.json"))?;
        let w = MambaWeights::load(dir, &cfg)?;
        Self::from_parts(cfg, w)
    }

    /// A model from already loaded parts (the caller guarantees the shapes match `cfg`); an
    /// error when a weight is not a contiguous f32 tensor on the CPU.
    pub fn from_parts(cfg: MambaConfig, w: MambaWeights) -> Result<Self> {
        let a = w
            .layers
            .iter()
            .map(MambaBlock::a_f32)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { cfg, w, a })
    }

    /// The configuration.
    pub fn config(&self) -> &MambaConfig {
        &self.cfg
    }

    /// The weights.
    pub fn weights(&self) -> &MambaWeights {
        &self.w
    }

    /// Logits per position (= embedding rows, the padded vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    /// The all-zero state for `batch` rows (nothing consumed yet).
    pub fn new_state(&self, batch: usize) -> MambaState {
        let c = &self.cfg;
        MambaState::with_channels(
            batch,
            c.n_layer,
            c.conv_channels(),
            c.d_conv,
            c.ssm_channels(),
            c.d_state,
        )
    }

    /// Logits (batch, len, vocab) of `tokens` (batch·len ids, row-major), parallel scan.
    pub fn forward(&self, tokens: &[u32], batch: usize) -> Result<Tensor> {
        let out = self.forward_with(tokens, batch, None, LogitsMode::All, false)?;
        Ok(out.logits.expect("LogitsMode::All computes logits"))
    }

    /// Runs the prompt `tokens` (batch·len ids) through the parallel scan from the empty state
    /// and returns the logits asked for with the state after the last token.
    pub fn prefill(
        &self,
        tokens: &[u32],
        batch: usize,
        logits: LogitsMode,
    ) -> Result<(Option<Tensor>, MambaState)> {
        let mut state = self.new_state(batch);
        let out = self.forward_with(tokens, batch, Some(&mut state), logits, false)?;
        Ok((out.logits, state))
    }

    /// The general parallel pass. With `state`, the sequence continues from it (chunked prefill:
    /// its conv inputs and SSM state are the initial states of conv and scan) and it is updated
    /// to the state after the last token.
    pub fn forward_with(
        &self,
        tokens: &[u32],
        batch: usize,
        mut state: Option<&mut MambaState>,
        logits: LogitsMode,
        hidden: bool,
    ) -> Result<MambaOutput> {
        let len = self.check_tokens(tokens, batch)?;
        if let Some(s) = state.as_deref() {
            self.check_state(s, batch)?;
        }
        let d = self.cfg.d_model;
        let mut h = self.embed(tokens)?;
        let mut hs = hidden.then(Vec::new);
        for (i, block) in self.w.layers.iter().enumerate() {
            let normed = rms_norm(&h, &f32_view(block.norm())?, self.cfg.norm_eps);
            let st = state
                .as_deref_mut()
                .map(|s| (&mut s.conv[i], &mut s.ssm[i]));
            let out = block.cpu_mixer_seq(&self.cfg, &self.a[i], &normed, batch, len, st)?;
            for (h, o) in h.iter_mut().zip(&out) {
                *h += o;
            }
            if let Some(hs) = hs.as_mut() {
                hs.push(h.clone());
            }
        }
        if let Some(s) = state {
            s.seqlen += len;
        }
        let normed = rms_norm(&h, &f32_view(&self.w.norm_f)?, self.cfg.norm_eps);
        let logits = match logits {
            LogitsMode::Skip => None,
            LogitsMode::All => Some(self.lm_head(&normed, batch * len)?.reshape((
                batch,
                len,
                self.cfg.vocab_size,
            ))?),
            LogitsMode::Last => {
                let last: Vec<f32> = normed
                    .chunks_exact(len * d)
                    .flat_map(|row| row[(len - 1) * d..].iter().copied())
                    .collect();
                Some(self.lm_head(&last, batch)?)
            }
        };
        if let Some(hs) = hs.as_mut() {
            hs.push(normed);
        }
        Ok(MambaOutput {
            logits,
            hidden_states: hs,
        })
    }

    /// One recurrent step: consumes `tokens` (one id per row of `state`) and returns the next
    /// logits (batch, vocab). Conv: `causal_conv1d_update`; SSM:
    /// `state ← state·exp(ΔA) + ΔB·x, y = C·state + D·x` (`selective_state_update`).
    pub fn step(&self, state: &mut MambaState, tokens: &[u32]) -> Result<Tensor> {
        let batch = state.batch;
        self.in_decode_context(batch, || self.step_inner(state, tokens))
    }

    /// Runs `f` where recurrent steps of `batch` rows are fastest. A step is many small loops;
    /// when the model is small, waking other threads for them costs more than the work, so the
    /// steps run on one dedicated thread (calling [`MambaLm::step`] inside `f` then costs no
    /// thread hand-off at all). Large models run `f` on the calling thread.
    pub fn in_decode_context<R: Send>(&self, batch: usize, f: impl FnOnce() -> R + Send) -> R {
        let c = &self.cfg;
        let work = batch * c.d_inner * (c.d_state + c.d_model);
        if work < SMALL_STEP_WORK {
            single_thread_pool().install(f)
        } else {
            f()
        }
    }

    fn step_inner(&self, state: &mut MambaState, tokens: &[u32]) -> Result<Tensor> {
        let batch = state.batch;
        self.check_state(state, batch)?;
        if tokens.len() != batch {
            return Err(LmError::Shape(format!(
                "step needs one token per row: {} tokens for a batch of {batch}",
                tokens.len()
            )));
        }
        self.check_ids(tokens)?;
        let c = &self.cfg;
        let mut h = self.embed(tokens)?;
        for (i, block) in self.w.layers.iter().enumerate() {
            let normed = rms_norm(&h, &f32_view(block.norm())?, c.norm_eps);
            let (conv, ssm) = (&mut state.conv[i], &mut state.ssm[i]);
            let out = block.cpu_step(c, &self.a[i], &normed, batch, conv, ssm)?;
            for (h, o) in h.iter_mut().zip(&out) {
                *h += o;
            }
        }
        state.seqlen += 1;
        let normed = rms_norm(&h, &f32_view(&self.w.norm_f)?, c.norm_eps);
        self.lm_head(&normed, batch)
    }

    /// Consumes a block of `tokens` (batch·len ids, row-major; len ≥ 1) from `state` and returns
    /// the logits after every position (batch, len, vocab) together with the state after every
    /// position (`len` states, the last equal to the updated `state`), for rollback into the
    /// block (speculative verification).
    ///
    /// Every dense part — RMSNorm, in/x/dt/out projections, lm_head — runs once over all
    /// batch·len rows (matrix-matrix products instead of a matrix-vector product per token:
    /// where a loop of steps spends its time); only the O(len·E·D·(K + N)) recurrences run
    /// position by position ([`seqlab_ssm::conv_block`], [`seqlab_ssm::scan_block`]: the step
    /// kernels' arithmetic, `h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t x_t, y_t = C_t h_t + D x_t`),
    /// copying each layer's conv window and SSM state after each position. The logits match [`MambaLm::step`] up to
    /// the gemm's summation order. An error (never a panic) for a state of another shape or
    /// `tokens` that do not split into `state.batch` equal rows.
    pub fn score_block(
        &self,
        state: &mut MambaState,
        tokens: &[u32],
    ) -> Result<(Tensor, Vec<MambaState>)> {
        let batch = state.batch;
        self.check_state(state, batch)?;
        let len = self.check_tokens(tokens, batch)?;
        let c = &self.cfg;
        let (n, k) = (c.d_state, c.d_conv);
        let rows = batch * len;
        let start = state.seqlen;
        let mut states: Vec<MambaState> = (1..=len)
            .map(|j| MambaState {
                seqlen: start + j,
                ..state.clone()
            })
            .collect();
        let mut h = self.embed(tokens)?;
        for (i, block) in self.w.layers.iter().enumerate() {
            let normed = rms_norm(&h, &f32_view(block.norm())?, c.norm_eps);
            let (conv, ssm) = (&mut state.conv[i], &mut state.ssm[i]);
            let (out, windows, hs) =
                block.cpu_block(c, &self.a[i], &normed, batch, len, conv, ssm)?;
            let (cw, sw) = (batch * c.conv_channels() * k, batch * c.ssm_channels() * n);
            for (t, st) in states.iter_mut().enumerate() {
                st.conv[i].copy_from_slice(&windows[t * cw..][..cw]);
                st.ssm[i].copy_from_slice(&hs[t * sw..][..sw]);
            }
            for (h, o) in h.iter_mut().zip(&out) {
                *h += o;
            }
        }
        state.seqlen += len;
        let normed = rms_norm(&h, &f32_view(&self.w.norm_f)?, c.norm_eps);
        let logits = if rows < 2 {
            self.lm_head(&normed, rows)?
        } else {
            linear_tensor(&normed, rows, self.w.head(), None)?
        };
        let logits = logits.reshape((batch, len, c.vocab_size))?;
        Ok((logits, states))
    }

    /// Embedding rows of `ids` (already range-checked), (ids.len(), D).
    fn embed(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let idx = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
        Ok(self
            .w
            .embedding
            .index_select(&idx, 0)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    /// `x Eᵀ` (tied) or `x W_headᵀ`: (rows, vocab).
    fn lm_head(&self, x: &[f32], rows: usize) -> Result<Tensor> {
        linear_as_tensor(x, rows, self.w.head(), None)
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let vocab = self.cfg.vocab_size;
        match ids.iter().find(|&&id| id as usize >= vocab) {
            Some(&id) => Err(LmError::TokenOutOfRange { id, vocab }),
            None => Ok(()),
        }
    }

    /// Checks a (batch, len) id array and returns len.
    fn check_tokens(&self, tokens: &[u32], batch: usize) -> Result<usize> {
        let len = seqlab_tensor::batch_rows(tokens.len(), batch)?;
        self.check_ids(tokens)?;
        Ok(len)
    }

    fn check_state(&self, s: &MambaState, batch: usize) -> Result<()> {
        let c = &self.cfg;
        let ok = s.batch == batch
            && s.conv.len() == c.n_layer
            && s.ssm.len() == c.n_layer
            && s.conv
                .iter()
                .all(|v| v.len() == batch * c.conv_channels() * c.d_conv)
            && s.ssm
                .iter()
                .all(|v| v.len() == batch * c.ssm_channels() * c.d_state);
        if ok {
            Ok(())
        } else {
            Err(LmError::State(format!(
                "the state does not belong to this model with batch {batch} (state batch {})",
                s.batch
            )))
        }
    }
}

/// Below this many (batch · d_inner · (d_state + d_model)) multiply-adds per layer, a recurrent
/// step runs on one thread.
const SMALL_STEP_WORK: usize = 1 << 16;

/// A one-thread rayon pool: parallel loops inside it run inline, with no wake-ups.
fn single_thread_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "seqlab-lm-step".into())
            .build()
            .expect("a one-thread pool can be built")
    })
}
