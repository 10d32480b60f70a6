//! The Mamba-1 block (Gu & Dao 2023, §3.4 and Fig. 3; docs/ssm.md): its weights, and its mixer
//! written once for every path that runs it.
//!
//! ```text
//! Mixer(u):  [x, z] = u W_inᵀ (+ b_in)                     (2·E·D)
//!            x' = SiLU(causal_conv1d(x) + b_conv)          (depthwise, kernel K)
//!            [δ, B, C] = x' W_xᵀ                           (R, N, N)
//!            (Falcon-Mamba: δ, B, C ← v / √(mean(v²) + ε) each, weightless RMS norms)
//!            Δ = softplus(δ W_dtᵀ + b_dt)
//!            y = SelectiveScan(x', Δ, A = −exp(A_log), B, C, D) · SiLU(z)
//!            out = y W_outᵀ (+ b_out)
//! ```
//!
//! One struct, [`Mamba1Block`], holds the block's parameters as candle tensors (from a
//! checkpoint, or the `Var`s of training). Its methods are the block on each path:
//!
//! - [`Mamba1Block::mixer`]: tensor ops over whole sequences (differentiable; `seq_idx`
//!   document resets) — training, the diffusion backbone, any device;
//! - [`Mamba1Block::step`]: tensor ops, one token in recurrent mode (Alg. 2) — the device LM;
//! - [`Mamba1Block::cpu_mixer_seq`], [`Mamba1Block::cpu_step`], [`Mamba1Block::cpu_block`]:
//!   the CPU fast path (f32 slices read in place from the same tensors, `seqlab-ssm`'s kernels:
//!   parallel scan, `causal_conv1d_update` / `selective_state_update`, and the per-position
//!   block recurrences for speculative verification).

use crate::error::{LmError, Result};
use crate::mamba::config::MambaConfig;
use crate::mamba::ops::{
    channel_to_token_major, columns, columns_to_channel_major, f32_view, linear, linear_block,
    F32View,
};
use candle_core::{DType, Device, Tensor};
use seqlab_ssm::{
    causal_conv1d_final_state, causal_conv1d_fwd, causal_conv1d_update, conv_block, scan_block,
    selective_scan_fwd, selective_scan_tensor, selective_state_update, AMatrix, BcMatrix,
    BlockDims, Conv1dArgs, Conv1dDims, ScanArgs, ScanBlockInputs, ScanConfig, ScanDims,
    ScanTensors, StepArgs, StepDims,
};
use seqlab_tensor::{softplus, TensorSpec};

/// One Mamba-1 block's parameters (HF names under `backbone.layers.{i}`), all candle tensors.
#[derive(Debug, Clone)]
pub struct Mamba1Block {
    /// Pre-norm RMSNorm weight (D): `norm.weight`.
    pub norm: Tensor,
    /// in_proj (2·Di, D).
    pub in_proj: Tensor,
    /// in_proj bias (2·Di), with `use_bias`.
    pub in_proj_bias: Option<Tensor>,
    /// Depthwise conv1d weight (Di, 1, K).
    pub conv1d: Tensor,
    /// conv1d bias (Di), with `use_conv_bias`.
    pub conv_bias: Option<Tensor>,
    /// x_proj (R + 2N, Di).
    pub x_proj: Tensor,
    /// dt_proj weight (Di, R).
    pub dt_proj: Tensor,
    /// dt_proj bias (Di): the δ bias, added before the softplus.
    pub dt_bias: Tensor,
    /// out_proj (D, Di).
    pub out_proj: Tensor,
    /// out_proj bias (D), with `use_bias`.
    pub out_proj_bias: Option<Tensor>,
    /// A_log (Di, N); A = −exp(A_log).
    pub a_log: Tensor,
    /// D skip (Di).
    pub d: Tensor,
}

/// The f32 slices of a block's small parameters, borrowed from its tensors for the CPU path.
struct CpuParams<'a> {
    in_proj_bias: Option<F32View<'a>>,
    conv1d: F32View<'a>,
    conv_bias: Option<F32View<'a>>,
    dt_bias: F32View<'a>,
    out_proj_bias: Option<F32View<'a>>,
    d: F32View<'a>,
}

fn view_opt(t: &Option<Tensor>) -> Result<Option<F32View<'_>>> {
    t.as_ref().map(f32_view).transpose()
}

impl Mamba1Block {
    /// The tensors of one block under `prefix` (`backbone.layers.{i}`), in checkpoint order.
    pub fn specs(cfg: &MambaConfig, prefix: &str) -> Vec<TensorSpec> {
        let f = |name: String, shape: Vec<usize>| TensorSpec::new(name, shape, DType::F32);
        let (d, di, n, k, r) = (
            cfg.d_model,
            cfg.d_inner,
            cfg.d_state,
            cfg.d_conv,
            cfg.dt_rank,
        );
        let p = prefix;
        let mut out = vec![
            f(format!("{p}.norm.weight"), vec![d]),
            f(format!("{p}.mixer.in_proj.weight"), vec![2 * di, d]),
        ];
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
        out
    }

    /// The block under `prefix`, its tensors taken by name (as in [`Mamba1Block::specs`]).
    pub fn from_tensors(
        cfg: &MambaConfig,
        prefix: &str,
        take: &mut dyn FnMut(&str) -> Result<Tensor>,
    ) -> Result<Self> {
        let p = format!("{prefix}.mixer");
        let mut opt =
            |on: bool, name: &str| -> Result<Option<Tensor>> { on.then(|| take(name)).transpose() };
        let in_proj_bias = opt(cfg.proj_bias, &format!("{p}.in_proj.bias"))?;
        let conv_bias = opt(cfg.conv_bias, &format!("{p}.conv1d.bias"))?;
        let out_proj_bias = opt(cfg.proj_bias, &format!("{p}.out_proj.bias"))?;
        Ok(Self {
            norm: take(&format!("{prefix}.norm.weight"))?,
            in_proj: take(&format!("{p}.in_proj.weight"))?,
            in_proj_bias,
            conv1d: take(&format!("{p}.conv1d.weight"))?,
            conv_bias,
            x_proj: take(&format!("{p}.x_proj.weight"))?,
            dt_proj: take(&format!("{p}.dt_proj.weight"))?,
            dt_bias: take(&format!("{p}.dt_proj.bias"))?,
            out_proj: take(&format!("{p}.out_proj.weight"))?,
            out_proj_bias,
            a_log: take(&format!("{p}.A_log"))?,
            d: take(&format!("{p}.D"))?,
        })
    }

    /// A = −exp(A_log) (Di, N) as tensor ops (differentiable; any device).
    pub fn a(&self) -> Result<Tensor> {
        Ok(self.a_log.exp()?.neg()?)
    }

    /// A = −exp(A_log) (Di, N) for the CPU path, computed in f32 element by element (as the
    /// reference does).
    pub fn a_f32(&self) -> Result<Vec<f32>> {
        Ok(f32_view(&self.a_log)?.iter().map(|&v| -v.exp()).collect())
    }

    /// `x Wᵀ (+ b)` with a tensor weight and optional bias.
    fn linear_t(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let y = x.matmul(&w.t()?)?;
        Ok(match b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// The mixer on `normed` (batch·len, D) as tensor ops: (batch·len, D). `seq_idx` (batch·len
    /// document ids) with its `masks` ([`conv_masks`]) stops the conv and the scan state at
    /// document boundaries; `scan_chunk` is the scan's chunk length (saved states vs
    /// recomputation). Differentiable through `seqlab-ssm`'s scan op.
    #[allow(clippy::too_many_arguments)]
    pub fn mixer(
        &self,
        cfg: &MambaConfig,
        normed: &Tensor,
        batch: usize,
        len: usize,
        seq_idx: Option<&[i32]>,
        masks: Option<&[Tensor]>,
        scan_chunk: usize,
    ) -> Result<Tensor> {
        let (di, n, r, k) = (cfg.d_inner, cfg.d_state, cfg.dt_rank, cfg.d_conv);
        let xz = Self::linear_t(normed, &self.in_proj, self.in_proj_bias.as_ref())?.reshape((
            batch,
            len,
            2 * di,
        ))?;
        let x = xz.narrow(2, 0, di)?.transpose(1, 2)?.contiguous()?; // (B, Di, L)
        let z = xz.narrow(2, di, di)?.transpose(1, 2)?.contiguous()?;

        // Depthwise causal conv: Σ_k w[:, k] · x shifted right by K−1−k (zeros / other documents
        // masked out).
        let cw = self.conv1d.reshape((di, k))?;
        let mut acc: Option<Tensor> = None;
        for kk in 0..k {
            let shift = k - 1 - kk;
            if shift >= len {
                continue;
            }
            let xs = if shift == 0 {
                x.clone()
            } else {
                let zeros = Tensor::zeros((batch, di, shift), x.dtype(), x.device())?;
                Tensor::cat(&[&zeros, &x.narrow(2, 0, len - shift)?], 2)?
            };
            let xs = match masks {
                Some(m) if shift > 0 => xs.broadcast_mul(&m[shift])?,
                _ => xs,
            };
            let wk = cw.narrow(1, kk, 1)?.reshape((1, di, 1))?;
            let term = xs.broadcast_mul(&wk)?;
            acc = Some(match acc {
                Some(a) => (a + term)?,
                None => term,
            });
        }
        let mut pre = acc.expect("shift 0 always contributes");
        if let Some(b) = &self.conv_bias {
            pre = pre.broadcast_add(&b.reshape((1, di, 1))?)?;
        }
        let xc = candle_core::Tensor::silu(&pre)?; // (B, Di, L)

        let xc_t = xc
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch * len, di))?;
        // (B·L, R+2N)
        let xdbl = bcdt_rms_t(&xc_t.matmul(&self.x_proj.t()?)?, cfg)?;
        // Contiguous: candle's CUDA matmul (cuBLAS) rejects a row stride wider than the row.
        let dt = xdbl.narrow(1, 0, r)?.contiguous()?;
        let bc = |off: usize| -> Result<Tensor> {
            Ok(xdbl
                .narrow(1, off, n)?
                .reshape((batch, len, n))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (bm, cm) = (bc(r)?, bc(r + n)?);
        let delta = dt
            .matmul(&self.dt_proj.t()?)?
            .reshape((batch, len, di))?
            .transpose(1, 2)?
            .contiguous()?;
        let a = self.a()?;
        let mut args = ScanTensors::new(&xc, &delta, &a, &bm, &cm)
            .with_d(&self.d)
            .with_z(&z)
            .with_delta_bias(&self.dt_bias);
        if let Some(s) = seq_idx {
            args = args.with_seq_idx(s);
        }
        let scan_cfg = ScanConfig {
            delta_softplus: true,
            chunk_len: scan_chunk.max(1),
            return_last_state: false,
        };
        let (y, _) = selective_scan_tensor(&args, &scan_cfg)?;
        let y = y
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch * len, di))?;
        Self::linear_t(&y, &self.out_proj, self.out_proj_bias.as_ref())
    }

    /// One token of the mixer in recurrent mode, as tensor ops (Alg. 2 / eq. (2a)):
    ///
    /// ```text
    /// window ← shift(window, x);  x' = SiLU(Σ_k window[:, k]·w_conv[:, k] + b_conv)
    /// s ← exp(Δ·A) ⊙ s + (Δ·x') ⊗ B;  y = (s·C + D·x') ⊙ SiLU(z)
    /// ```
    ///
    /// `normed` (1, D); `a` = [`Mamba1Block::a`] (computed once by the caller); `conv`
    /// (1, Di, K) and `ssm` (1, Di, N) are replaced by the states after the token. Returns the
    /// mixer output (1, D).
    pub fn step(
        &self,
        cfg: &MambaConfig,
        a: &Tensor,
        normed: &Tensor,
        conv: &mut Tensor,
        ssm: &mut Tensor,
    ) -> Result<Tensor> {
        let (di, n, r, k) = (cfg.d_inner, cfg.d_state, cfg.dt_rank, cfg.d_conv);
        let xz = Self::linear_t(normed, &self.in_proj, self.in_proj_bias.as_ref())?; // (1, 2·Di)
        let x = xz.narrow(1, 0, di)?;
        let z = xz.narrow(1, di, di)?;
        // Conv window: drop the oldest input, append x; x' = SiLU(Σ_k window·w + b).
        let window = Tensor::cat(&[&conv.narrow(2, 1, k - 1)?, &x.unsqueeze(2)?], 2)?;
        let cw = self.conv1d.reshape((1, di, k))?;
        let mut pre = window.broadcast_mul(&cw)?.sum(2)?; // (1, Di)
        if let Some(b) = &self.conv_bias {
            pre = pre.broadcast_add(b)?;
        }
        let xc = pre.silu()?;
        *conv = window;
        let xdbl = bcdt_rms_t(&xc.matmul(&self.x_proj.t()?)?, cfg)?; // (1, R+2N)
        let dt = xdbl.narrow(1, 0, r)?;
        let bm = xdbl.narrow(1, r, n)?; // (1, N)
        let cm = xdbl.narrow(1, r + n, n)?;
        let delta = softplus(
            &dt.matmul(&self.dt_proj.t()?)?
                .broadcast_add(&self.dt_bias)?,
        )?; // (1, Di)
        let da = delta.unsqueeze(2)?.broadcast_mul(&a.unsqueeze(0)?)?.exp()?;
        let dbx = (&delta * &xc)?
            .unsqueeze(2)?
            .broadcast_mul(&bm.unsqueeze(1)?)?; // (1, Di, N)
        let s = ((&*ssm * da)? + dbx)?;
        let y = s.broadcast_mul(&cm.unsqueeze(1)?)?.sum(2)?; // (1, Di)
        let y = (y + xc.broadcast_mul(&self.d)?)?;
        let y = (y * z.silu()?)?;
        *ssm = s;
        Self::linear_t(&y, &self.out_proj, self.out_proj_bias.as_ref())
    }

    fn cpu_params(&self) -> Result<CpuParams<'_>> {
        Ok(CpuParams {
            in_proj_bias: view_opt(&self.in_proj_bias)?,
            conv1d: f32_view(&self.conv1d)?,
            conv_bias: view_opt(&self.conv_bias)?,
            dt_bias: f32_view(&self.dt_bias)?,
            out_proj_bias: view_opt(&self.out_proj_bias)?,
            d: f32_view(&self.d)?,
        })
    }

    /// CPU fast path over whole sequences: `normed` (batch, len, D) → (batch, len, D), parallel
    /// conv (`causal_conv1d_fwd`) and scan (`selective_scan_fwd`). `a` = [`Mamba1Block::a_f32`].
    /// With a state (conv (batch, Di, K), SSM (batch, Di, N)), conv and scan start from it and
    /// it is replaced by the state after the last position.
    pub fn cpu_mixer_seq(
        &self,
        cfg: &MambaConfig,
        a: &[f32],
        normed: &[f32],
        batch: usize,
        len: usize,
        state: Option<(&mut Vec<f32>, &mut Vec<f32>)>,
    ) -> Result<Vec<f32>> {
        let (di, n, r, k) = (cfg.d_inner, cfg.d_state, cfg.dt_rank, cfg.d_conv);
        let p = self.cpu_params()?;
        let rows = batch * len;
        let xw = cfg.x_proj_dim();
        let xz = linear(normed, rows, &self.in_proj, p.in_proj_bias.as_deref())?;
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
        let mut conv = Conv1dArgs::new(dims, &x, &p.conv1d).with_silu(true);
        if let Some(b) = p.conv_bias.as_deref() {
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
        let mut xdbl = linear(&xc_t, rows, &self.x_proj, None)?;
        bcdt_rms_rows(&mut xdbl, cfg);
        drop(xc_t);
        let dt = columns(&xdbl, xw, 0, r);
        let delta_t = linear(&dt, rows, &self.dt_proj, None)?;
        // (batch, len, Di) → (batch, Di, len).
        let delta = columns_to_channel_major(&delta_t, batch, len, di, 0, di);
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
            AMatrix::Real(a),
            BcMatrix::Var(&bm),
            BcMatrix::Var(&cm),
        )
        .with_d(&p.d)
        .with_z(&z)
        .with_delta_bias(&p.dt_bias);
        let ssm_init = state.as_ref().map(|(_, s)| s.as_slice());
        if let Some(s) = ssm_init {
            scan = scan.with_initial_state(s);
        }
        let scan_cfg = ScanConfig {
            delta_softplus: true,
            chunk_len: len.max(1),
            return_last_state: state.is_some(),
        };
        let out = selective_scan_fwd(&scan, &scan_cfg)?;
        if let (Some((cs, ss)), Some(new_conv)) = (state, new_conv) {
            *cs = new_conv;
            *ss = out.last_state.expect("return_last_state was set");
        }
        let y = channel_to_token_major(&out.out, batch, di, len);
        linear(&y, rows, &self.out_proj, p.out_proj_bias.as_deref())
    }

    /// CPU fast path, one token per row (`causal_conv1d_update`, `selective_state_update`):
    /// `normed` (batch, D) → (batch, D); `conv` (batch, Di, K) and `ssm` (batch, Di, N) are
    /// updated in place. `a` = [`Mamba1Block::a_f32`].
    pub fn cpu_step(
        &self,
        cfg: &MambaConfig,
        a: &[f32],
        normed: &[f32],
        batch: usize,
        conv: &mut [f32],
        ssm: &mut [f32],
    ) -> Result<Vec<f32>> {
        let (di, n, r, k) = (cfg.d_inner, cfg.d_state, cfg.dt_rank, cfg.d_conv);
        let xw = cfg.x_proj_dim();
        let p = self.cpu_params()?;
        let xz = linear(normed, batch, &self.in_proj, p.in_proj_bias.as_deref())?;
        let x = columns(&xz, 2 * di, 0, di);
        let z = columns(&xz, 2 * di, di, di);
        let dims = Conv1dDims {
            batch,
            dim: di,
            len: 1,
            width: k,
        };
        let xc = causal_conv1d_update(dims, &x, conv, &p.conv1d, p.conv_bias.as_deref(), true)?;
        let mut xdbl = linear(&xc, batch, &self.x_proj, None)?;
        bcdt_rms_rows(&mut xdbl, cfg);
        let dt = columns(&xdbl, xw, 0, r);
        let bm = columns(&xdbl, xw, r, n);
        let cm = columns(&xdbl, xw, r + n, n);
        let delta = linear(&dt, batch, &self.dt_proj, None)?;
        let args = StepArgs::new(StepDims::mamba1(batch, di, n), &xc, &delta, a, &bm, &cm)
            .with_d(&p.d)
            .with_z(&z)
            .with_dt_bias(&p.dt_bias)
            .with_dt_softplus(true);
        let y = selective_state_update(ssm, &args)?;
        linear(&y, batch, &self.out_proj, p.out_proj_bias.as_deref())
    }

    /// CPU fast path over a short block in step semantics (speculative verification):
    /// `normed` (batch, len, D) → (batch, len, D), the dense parts once over all batch·len rows,
    /// the conv and scan position by position (`seqlab_ssm::conv_block` / `scan_block`, equal
    /// to the step kernels bit for bit). `conv` and `ssm` are updated to the states after the
    /// last position; also returns the conv windows (len, batch, Di, K) and SSM states
    /// (len, batch, Di, N) after every position.
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    pub fn cpu_block(
        &self,
        cfg: &MambaConfig,
        a: &[f32],
        normed: &[f32],
        batch: usize,
        len: usize,
        conv: &mut [f32],
        ssm: &mut [f32],
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (di, r) = (cfg.d_inner, cfg.dt_rank);
        let xw = cfg.x_proj_dim();
        let rows = batch * len;
        let p = self.cpu_params()?;
        let xz = linear_block(normed, rows, &self.in_proj, p.in_proj_bias.as_deref())?;
        let dims = BlockDims {
            batch,
            len,
            dim: di,
        };
        let (xc, windows) = conv_block(dims, &xz, 2 * di, conv, &p.conv1d, p.conv_bias.as_deref());
        let mut xdbl = linear_block(&xc, rows, &self.x_proj, None)?;
        bcdt_rms_rows(&mut xdbl, cfg);
        let dt = columns(&xdbl, xw, 0, r);
        let delta = linear_block(&dt, rows, &self.dt_proj, None)?;
        let inputs = ScanBlockInputs {
            x: &xc,
            delta: &delta,
            xdbl: &xdbl,
            dt_rank: r,
            xz: &xz,
            a,
            d: &p.d,
            dt_bias: &p.dt_bias,
        };
        let (y, hs) = scan_block(dims, &inputs, ssm);
        let out = linear_block(&y, rows, &self.out_proj, p.out_proj_bias.as_deref())?;
        Ok((out, windows, hs))
    }
}

/// Falcon-Mamba's weightless RMS norms (`cfg.bcdt_rms_eps`) on the δ, B and C columns of
/// `x_proj`'s output `xdbl` (rows, R + 2N), as tensor ops (differentiable, any device):
/// v ← v / √(mean(v²) + ε) over each group's columns. `xdbl` itself without them.
fn bcdt_rms_t(xdbl: &Tensor, cfg: &MambaConfig) -> Result<Tensor> {
    let Some(eps) = cfg.bcdt_rms_eps else {
        return Ok(xdbl.clone());
    };
    let (r, n) = (cfg.dt_rank, cfg.d_state);
    let norm = |off: usize, w: usize| -> Result<Tensor> {
        let v = xdbl.narrow(1, off, w)?;
        let ms = (v.sqr()?.mean_keepdim(1)? + eps)?;
        Ok(v.broadcast_div(&ms.sqrt()?)?)
    };
    Ok(Tensor::cat(
        &[norm(0, r)?, norm(r, n)?, norm(r + n, n)?],
        1,
    )?)
}

/// [`bcdt_rms_t`] on the CPU path's f32 rows, in place (the mean of squares accumulated in
/// f64); nothing without `cfg.bcdt_rms_eps`.
fn bcdt_rms_rows(xdbl: &mut [f32], cfg: &MambaConfig) {
    let Some(eps) = cfg.bcdt_rms_eps else {
        return;
    };
    let (r, n) = (cfg.dt_rank, cfg.d_state);
    for row in xdbl.chunks_exact_mut(r + 2 * n) {
        let (dt, bc) = row.split_at_mut(r);
        let (b, c) = bc.split_at_mut(n);
        for group in [dt, b, c] {
            let ms = group
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                / group.len() as f64;
            let scale = (1.0 / (ms + eps).sqrt()) as f32;
            group.iter_mut().for_each(|v| *v *= scale);
        }
    }
}

/// `masks[s]` (batch, 1, len): 1 where the input `s` positions back is in the same document
/// (the conv of [`Mamba1Block::mixer`] on packed rows).
pub fn conv_masks(
    seq: &[i32],
    batch: usize,
    len: usize,
    k: usize,
    dtype: DType,
    device: &Device,
) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(k);
    for shift in 0..k {
        let mut m = vec![0f32; batch * len];
        for b in 0..batch {
            let row = &seq[b * len..][..len];
            for t in 0..len {
                // Positions before 0 are zero padding anyway.
                let same = t < shift || (t - shift..t).all(|q| row[q] == row[t]);
                m[b * len + t] = if same { 1.0 } else { 0.0 };
            }
        }
        out.push(Tensor::from_vec(m, (batch, 1, len), device)?.to_dtype(dtype)?);
    }
    Ok(out)
}

/// An error for a block index past the model's depth.
pub(crate) fn no_block(layer: usize, n_layer: usize) -> LmError {
    LmError::Shape(format!("no block {layer} in a {n_layer}-block Mamba"))
}
