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
//! `seqlab-ssm`'s rayon kernels.

use crate::error::{LmError, Result};
use crate::mamba::config::MambaConfig;
use crate::mamba::ops::{
    channel_to_token_major, columns, columns_to_channel_major, conv_block, linear,
    linear_as_tensor, linear_block, linear_tensor, rms_norm, scan_block, BlockDims,
    ScanBlockInputs,
};
use crate::mamba::state::MambaState;
use crate::mamba::weights::{LayerWeights, MambaWeights};
use candle_core::{Device, Tensor};
use seqlab_ssm::{
    causal_conv1d_final_state, causal_conv1d_fwd, causal_conv1d_update, selective_scan_fwd,
    selective_state_update, AMatrix, BcMatrix, Conv1dArgs, Conv1dDims, ScanArgs, ScanConfig,
    ScanDims, StepArgs, StepDims,
};
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
        Ok(Self { cfg, w })
    }

    /// A model from already loaded parts (the caller guarantees the shapes match `cfg`).
    pub fn from_parts(cfg: MambaConfig, w: MambaWeights) -> Self {
        Self { cfg, w }
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
        MambaState::zeros(batch, c.n_layer, c.d_inner, c.d_conv, c.d_state)
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
        for (i, lw) in self.w.layers.iter().enumerate() {
            let normed = rms_norm(&h, &lw.norm, self.cfg.norm_eps);
            let st = state
                .as_deref_mut()
                .map(|s| (&mut s.conv[i], &mut s.ssm[i]));
            let out = self.mixer_seq(lw, &normed, batch, len, st)?;
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
        let normed = rms_norm(&h, &self.w.norm_f, self.cfg.norm_eps);
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
            return Err(LmError::Input(format!(
                "step needs one token per row: {} tokens for a batch of {batch}",
                tokens.len()
            )));
        }
        self.check_ids(tokens)?;
        let c = &self.cfg;
        let (di, n, r, k) = (c.d_inner, c.d_state, c.dt_rank, c.d_conv);
        let xw = c.x_proj_dim();
        let mut h = self.embed(tokens)?;
        for (i, lw) in self.w.layers.iter().enumerate() {
            let normed = rms_norm(&h, &lw.norm, c.norm_eps);
            let xz = linear(&normed, batch, &lw.in_proj, lw.in_proj_bias.as_deref())?;
            let x = columns(&xz, 2 * di, 0, di);
            let z = columns(&xz, 2 * di, di, di);
            let dims = Conv1dDims {
                batch,
                dim: di,
                len: 1,
                width: k,
            };
            let xc = causal_conv1d_update(
                dims,
                &x,
                &mut state.conv[i],
                &lw.conv_weight,
                lw.conv_bias.as_deref(),
                true,
            )?;
            let xdbl = linear(&xc, batch, &lw.x_proj, None)?;
            let dt = columns(&xdbl, xw, 0, r);
            let bm = columns(&xdbl, xw, r, n);
            let cm = columns(&xdbl, xw, r + n, n);
            let delta = linear(&dt, batch, &lw.dt_proj, None)?;
            let args = StepArgs::new(StepDims::mamba1(batch, di, n), &xc, &delta, &lw.a, &bm, &cm)
                .with_d(&lw.d)
                .with_z(&z)
                .with_dt_bias(&lw.dt_bias)
                .with_dt_softplus(true);
            let y = selective_state_update(&mut state.ssm[i], &args)?;
            let out = linear(&y, batch, &lw.out_proj, lw.out_proj_bias.as_deref())?;
            for (h, o) in h.iter_mut().zip(&out) {
                *h += o;
            }
        }
        state.seqlen += 1;
        let normed = rms_norm(&h, &self.w.norm_f, c.norm_eps);
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
    /// position by position ([`conv_block`], [`scan_block`]: the step kernels' arithmetic,
    /// `h_t = exp(Δ_t A) h_{t−1} + Δ_t B_t x_t, y_t = C_t h_t + D x_t`), copying each layer's
    /// conv window and SSM state after each position. The logits match [`MambaLm::step`] up to
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
        let (di, n, r, k) = (c.d_inner, c.d_state, c.dt_rank, c.d_conv);
        let xw = c.x_proj_dim();
        let rows = batch * len;
        let start = state.seqlen;
        let mut states: Vec<MambaState> = (1..=len)
            .map(|j| MambaState {
                seqlen: start + j,
                ..state.clone()
            })
            .collect();
        let mut h = self.embed(tokens)?;
        for (i, lw) in self.w.layers.iter().enumerate() {
            let normed = rms_norm(&h, &lw.norm, c.norm_eps);
            let xz = linear_block(&normed, rows, &lw.in_proj, lw.in_proj_bias.as_deref())?;
            let dims = BlockDims {
                batch,
                len,
                dim: di,
            };
            let (xc, windows) = conv_block(
                dims,
                &xz,
                2 * di,
                &mut state.conv[i],
                &lw.conv_weight,
                lw.conv_bias.as_deref(),
            );
            let xdbl = linear_block(&xc, rows, &lw.x_proj, None)?;
            let dt = columns(&xdbl, xw, 0, r);
            let delta = linear_block(&dt, rows, &lw.dt_proj, None)?;
            let inputs = ScanBlockInputs {
                x: &xc,
                delta: &delta,
                xdbl: &xdbl,
                dt_rank: r,
                xz: &xz,
                a: &lw.a,
                d: &lw.d,
                dt_bias: &lw.dt_bias,
            };
            let (y, hs) = scan_block(dims, &inputs, &mut state.ssm[i]);
            let (cw, sw) = (batch * di * k, batch * di * n);
            for (t, st) in states.iter_mut().enumerate() {
                st.conv[i].copy_from_slice(&windows[t * cw..][..cw]);
                st.ssm[i].copy_from_slice(&hs[t * sw..][..sw]);
            }
            let out = linear_block(&y, rows, &lw.out_proj, lw.out_proj_bias.as_deref())?;
            for (h, o) in h.iter_mut().zip(&out) {
                *h += o;
            }
        }
        state.seqlen += len;
        let normed = rms_norm(&h, &self.w.norm_f, c.norm_eps);
        let w = self.w.lm_head.as_ref().unwrap_or(&self.w.embedding);
        let logits = if rows < 2 {
            self.lm_head(&normed, rows)?
        } else {
            linear_tensor(&normed, rows, w, None)?
        };
        let logits = logits.reshape((batch, len, c.vocab_size))?;
        Ok((logits, states))
    }

    /// The mixer over whole sequences: `normed` (batch, len, D) → (batch, len, D). With a state,
    /// conv and scan start from it and it is replaced by the state after the last position.
    fn mixer_seq(
        &self,
        lw: &LayerWeights,
        normed: &[f32],
        batch: usize,
        len: usize,
        state: Option<(&mut Vec<f32>, &mut Vec<f32>)>,
    ) -> Result<Vec<f32>> {
        let c = &self.cfg;
        let (di, n, r, k) = (c.d_inner, c.d_state, c.dt_rank, c.d_conv);
        let rows = batch * len;
        let xw = c.x_proj_dim();
        let xz = linear(normed, rows, &lw.in_proj, lw.in_proj_bias.as_deref())?;
        let x = columns_to_channel_major(&xz, batch, len, 2 * di, 0, di);
        let z = columns_to_channel_major(&xz, batch, len, 2 * di, di, di);
        drop(xz);

        // Conv initial state: the last K−1 of the K stored inputs.
        let conv_init: Option<Vec<f32>> = state.as_ref().map(|(cs, _)| {
            cs.chunks_exact(k)
                .flat_map(|row| row[1..].iter().copied())
                .collect()
        });
        let dims = Conv1dDims {
            batch,
            dim: di,
            len,
            width: k,
        };
        let mut conv = Conv1dArgs::new(dims, &x, &lw.conv_weight).with_silu(true);
        if let Some(b) = lw.conv_bias.as_deref() {
            conv = conv.with_bias(b);
        }
        if let Some(init) = conv_init.as_deref() {
            conv = conv.with_initial_state(init);
        }
        let xc = causal_conv1d_fwd(&conv)?;
        let new_conv = match state {
            Some(_) => Some(causal_conv1d_final_state(&conv, k)?),
            None => None,
        };

        let xc_t = channel_to_token_major(&xc, batch, di, len);
        let xdbl = linear(&xc_t, rows, &lw.x_proj, None)?;
        drop(xc_t);
        let dt = columns(&xdbl, xw, 0, r);
        let delta_t = linear(&dt, rows, &lw.dt_proj, None)?;
        let delta = channel_to_token_major_inv(&delta_t, batch, len, di);
        let bm = columns_to_channel_major(&xdbl, batch, len, xw, r, n);
        let cm = columns_to_channel_major(&xdbl, batch, len, xw, r + n, n);

        let sdims = ScanDims {
            batch,
            dim: di,
            len,
            dstate: n,
        };
        let mut scan = ScanArgs::new(
            sdims,
            &xc,
            &delta,
            AMatrix::Real(&lw.a),
            BcMatrix::Var(&bm),
            BcMatrix::Var(&cm),
        )
        .with_d(&lw.d)
        .with_z(&z)
        .with_delta_bias(&lw.dt_bias);
        let ssm_init = state.as_ref().map(|(_, s)| s.as_slice());
        if let Some(s) = ssm_init {
            scan = scan.with_initial_state(s);
        }
        let cfg = ScanConfig {
            delta_softplus: true,
            chunk_len: len.max(1),
            return_last_state: state.is_some(),
        };
        let out = selective_scan_fwd(&scan, &cfg)?;
        if let (Some((cs, ss)), Some(new_conv)) = (state, new_conv) {
            *cs = new_conv;
            *ss = out.last_state.expect("return_last_state was set");
        }
        let y = channel_to_token_major(&out.out, batch, di, len);
        linear(&y, rows, &lw.out_proj, lw.out_proj_bias.as_deref())
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
        let w = self.w.lm_head.as_ref().unwrap_or(&self.w.embedding);
        linear_as_tensor(x, rows, w, None)
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
        if batch == 0 || tokens.is_empty() || !tokens.len().is_multiple_of(batch) {
            return Err(LmError::Input(format!(
                "{} tokens do not form a non-empty batch of {batch} equal-length rows",
                tokens.len()
            )));
        }
        self.check_ids(tokens)?;
        Ok(tokens.len() / batch)
    }

    fn check_state(&self, s: &MambaState, batch: usize) -> Result<()> {
        let c = &self.cfg;
        let ok = s.batch == batch
            && s.conv.len() == c.n_layer
            && s.ssm.len() == c.n_layer
            && s.conv
                .iter()
                .all(|v| v.len() == batch * c.d_inner * c.d_conv)
            && s.ssm
                .iter()
                .all(|v| v.len() == batch * c.d_inner * c.d_state);
        if ok {
            Ok(())
        } else {
            Err(LmError::Input(format!(
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

/// (batch, len, dim) → (batch, dim, len).
fn channel_to_token_major_inv(src: &[f32], batch: usize, len: usize, dim: usize) -> Vec<f32> {
    columns_to_channel_major(src, batch, len, dim, 0, dim)
}
