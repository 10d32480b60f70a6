//! The Mamba-2 block (Dao & Gu 2024, "Transformers are SSMs", §7 and Fig. 6; docs/ssm.md#mamba-2-block):
//! its weights, and its mixer on the CPU fast path and as tensor-op recurrent steps.
//!
//! ```text
//! Mixer(u):  [z0, x0, z, xBC, dt] = u W_inᵀ (+ b_in)      (d_mlp, d_mlp, H·P, H·P + 2·G·N, H)
//!            xBC' = SiLU(causal_conv1d(xBC) + b_conv)     (depthwise, kernel K)
//!            [x, B, C] = xBC'                             (H·P, G·N, G·N)
//!            Δ_h = clamp(softplus(dt_h + b_dt,h), limit)  A_h = −exp(A_log,h)
//!            s_h ← exp(Δ_h A_h) s_h + Δ_h x_h B_gᵀ         (P × N per head; g = h / (H/G))
//!            y_h = s_h C_g + D_h x_h
//!            y ← RMSNorm_groups(y ⊙ SiLU(z))              (or RMSNorm(y) ⊙ SiLU(z); no norm: y ⊙ SiLU(z))
//!            out = [SiLU(z0) ⊙ x0, y] W_outᵀ (+ b_out)
//! ```
//!
//! The recurrence is the SSD layer in its linear (recurrent) form: a scalar decay per head
//! makes the sequence transformation a semiseparable matrix (the paper's eq. (4)–(6)), which
//! the chunked prefill evaluates block by block. One struct, [`Mamba2Block`], holds the
//! parameters as candle tensors (HF `Mamba2ForCausalLM` names under `backbone.layers.{i}`,
//! mamba_ssm's the same); its methods are the block on each path:
//!
//! - [`Mamba2Block::cpu_mixer_seq`]: the CPU prefill over whole sequences (the chunked SSD of
//!   `seqlab_ssm::ssd`), returning the conv window and the SSM state (batch, H, P, N) when asked;
//! - [`Mamba2Block::cpu_step`] / [`Mamba2Block::cpu_block`]: one token per row, and a short
//!   block with the state after every position (speculative verification);
//! - [`Mamba2Block::step`]: the recurrent step as tensor ops (the device LM);
//! - the tensor-op mixer over sequences (training, diffusion backbones) is not written yet:
//!   [`Mamba2Block::mixer`] returns [`LmError::Unsupported`].

use crate::error::{LmError, Result};
use crate::mamba::config::{Mamba2Options, MambaConfig};
use crate::mamba::ops::{
    channel_to_token_major, columns, columns_to_channel_major, f32_view, linear, linear_block,
    F32View,
};
use candle_core::{DType, Tensor, D};
use rayon::prelude::*;
use seqlab_ssm::float::{silu, softplus as softplus_f32};
use seqlab_ssm::{causal_conv1d_final_state, causal_conv1d_fwd, causal_conv1d_update};
use seqlab_ssm::{ssd_chunked, Conv1dArgs, Conv1dDims, SsdDims, SsdInputs, SsdOutput};
use seqlab_tensor::{softplus, TensorSpec};

/// One Mamba-2 block's parameters (names under `backbone.layers.{i}`), all candle tensors.
#[derive(Debug, Clone)]
pub struct Mamba2Block {
    /// Pre-norm RMSNorm weight (D): `norm.weight`.
    pub norm: Tensor,
    /// in_proj (2·d_mlp + 2·H·P + 2·G·N + H, D).
    pub in_proj: Tensor,
    /// in_proj bias, with `use_bias`.
    pub in_proj_bias: Option<Tensor>,
    /// Depthwise conv1d weight (H·P + 2·G·N, 1, K).
    pub conv1d: Tensor,
    /// conv1d bias, with `use_conv_bias`.
    pub conv_bias: Option<Tensor>,
    /// Δ bias (H), added before the softplus.
    pub dt_bias: Tensor,
    /// A_log (H); A = −exp(A_log).
    pub a_log: Tensor,
    /// D skip (H, or H·P with `D_has_hdim`).
    pub d: Tensor,
    /// Gated RMSNorm weight (H·P): `mixer.norm.weight`, when the block has the norm.
    pub gate_norm: Option<Tensor>,
    /// out_proj (D, d_inner).
    pub out_proj: Tensor,
    /// out_proj bias, with `use_bias`.
    pub out_proj_bias: Option<Tensor>,
}

/// The sizes of one block, from its config.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Width of each of z0 and x0 (the gated-MLP part; 0 for HF checkpoints).
    d_mlp: usize,
    /// H·P.
    d_ssm: usize,
    /// H·P + 2·G·N.
    conv_dim: usize,
    /// Heads H, head channels P, groups G, state N, conv width K.
    h: usize,
    p: usize,
    g: usize,
    n: usize,
    k: usize,
    /// Width of in_proj's output.
    width: usize,
    /// Gated norm: its group size, and the order.
    group: usize,
    norm_before_gate: bool,
    /// Δ limits (None when [0, ∞): no clamp).
    limit: Option<(f32, f32)>,
    d_per_channel: bool,
}

impl Shape {
    fn of(cfg: &MambaConfig) -> Result<(Self, &Mamba2Options)> {
        let m = cfg
            .mamba2
            .as_ref()
            .ok_or_else(|| LmError::Unsupported("a Mamba-2 block needs a Mamba-2 config".into()))?;
        let d_mlp = m.d_mlp(cfg.d_inner);
        let conv_dim = m.conv_dim(cfg.d_state);
        let limit = (m.dt_limit != (0.0, f64::INFINITY))
            .then_some((m.dt_limit.0 as f32, m.dt_limit.1 as f32));
        Ok((
            Self {
                d_mlp,
                d_ssm: m.d_ssm,
                conv_dim,
                h: m.nheads,
                p: m.headdim,
                g: m.ngroups,
                n: cfg.d_state,
                k: cfg.d_conv,
                width: 2 * d_mlp + m.d_ssm + conv_dim + m.nheads,
                group: m.norm_group_size,
                norm_before_gate: m.norm_before_gate,
                limit,
                d_per_channel: m.d_per_channel,
            },
            m,
        ))
    }

    /// Column offsets of z, xBC and dt in in_proj's output.
    fn z_off(&self) -> usize {
        2 * self.d_mlp
    }
    fn xbc_off(&self) -> usize {
        2 * self.d_mlp + self.d_ssm
    }
    fn dt_off(&self) -> usize {
        2 * self.d_mlp + self.d_ssm + self.conv_dim
    }

    /// Δ = clamp(softplus(dt + bias), limit) for one row of heads.
    fn delta(&self, dt: &[f32], bias: &[f32], out: &mut [f32]) {
        for ((o, &v), &b) in out.iter_mut().zip(dt).zip(bias) {
            let s = softplus_f32(v + b);
            *o = match self.limit {
                Some((lo, hi)) => s.clamp(lo, hi),
                None => s,
            };
        }
    }
}

/// The f32 slices of a block's small parameters, borrowed for the CPU path.
struct CpuParams<'a> {
    in_proj_bias: Option<F32View<'a>>,
    conv1d: F32View<'a>,
    conv_bias: Option<F32View<'a>>,
    dt_bias: F32View<'a>,
    d: F32View<'a>,
    gate_norm: Option<F32View<'a>>,
    out_proj_bias: Option<F32View<'a>>,
}

fn view_opt(t: &Option<Tensor>) -> Result<Option<F32View<'_>>> {
    t.as_ref().map(f32_view).transpose()
}

/// One token of the SSD recurrence for every head of one sequence (scalar decay per head,
/// Dao & Gu 2024 eq. (2)): `s_h ← exp(Δ_h A_h) s_h + (Δ_h B_g) x_hᵀ`, `y_h = s_h C_g + D x_h`,
/// in the arithmetic order of HF's and mamba_ssm's reference step. `xbc` is the conv output
/// row (x, B, C); `state` (H, P, N); `y` (H·P).
fn ssd_token(
    s: &Shape,
    xbc: &[f32],
    delta: &[f32],
    a: &[f32],
    d: &[f32],
    state: &mut [f32],
    y: &mut [f32],
) {
    let (p, n) = (s.p, s.n);
    let heads_per_group = s.h / s.g;
    let (x, bc) = xbc.split_at(s.d_ssm);
    let (b, c) = bc.split_at(s.g * n);
    let one_head = |hh: usize, st: &mut [f32], yh: &mut [f32]| {
        let g = hh / heads_per_group;
        let (bg, cg) = (&b[g * n..][..n], &c[g * n..][..n]);
        let dt = delta[hh];
        let da = (dt * a[hh]).exp();
        for (pp, (row, yv)) in st.chunks_exact_mut(n).zip(yh.iter_mut()).enumerate() {
            let xv = x[hh * p + pp];
            let mut acc = 0f32;
            for ((sv, &bv), &cv) in row.iter_mut().zip(bg).zip(cg) {
                *sv = *sv * da + (dt * bv) * xv;
                acc += *sv * cv;
            }
            let dv = if s.d_per_channel {
                d[hh * p + pp]
            } else {
                d[hh]
            };
            *yv = acc + xv * dv;
        }
    };
    if s.d_ssm * n >= PAR_MIN {
        state
            .par_chunks_mut(p * n)
            .zip(y.par_chunks_mut(p))
            .enumerate()
            .for_each(|(hh, (st, yh))| one_head(hh, st, yh));
    } else {
        for (hh, (st, yh)) in state.chunks_mut(p * n).zip(y.chunks_mut(p)).enumerate() {
            one_head(hh, st, yh);
        }
    }
}

/// State elements (H·P·N) from which a token's heads run in parallel.
const PAR_MIN: usize = 1 << 15;

impl Mamba2Block {
    /// The tensors of one block under `prefix` (`backbone.layers.{i}`), in checkpoint order.
    pub fn specs(cfg: &MambaConfig, prefix: &str) -> Vec<TensorSpec> {
        let f = |name: String, shape: Vec<usize>| TensorSpec::new(name, shape, DType::F32);
        let Ok((s, m)) = Shape::of(cfg) else {
            return Vec::new();
        };
        let (d, p) = (cfg.d_model, prefix);
        let mut out = vec![
            f(format!("{p}.norm.weight"), vec![d]),
            f(format!("{p}.mixer.in_proj.weight"), vec![s.width, d]),
        ];
        if cfg.proj_bias {
            out.push(f(format!("{p}.mixer.in_proj.bias"), vec![s.width]));
        }
        out.push(f(
            format!("{p}.mixer.conv1d.weight"),
            vec![s.conv_dim, 1, s.k],
        ));
        if cfg.conv_bias {
            out.push(f(format!("{p}.mixer.conv1d.bias"), vec![s.conv_dim]));
        }
        out.push(f(format!("{p}.mixer.dt_bias"), vec![s.h]));
        out.push(f(format!("{p}.mixer.A_log"), vec![s.h]));
        let d_len = if m.d_per_channel { s.d_ssm } else { s.h };
        out.push(f(format!("{p}.mixer.D"), vec![d_len]));
        if m.gated_norm {
            out.push(f(format!("{p}.mixer.norm.weight"), vec![s.d_ssm]));
        }
        out.push(f(
            format!("{p}.mixer.out_proj.weight"),
            vec![d, cfg.d_inner],
        ));
        if cfg.proj_bias {
            out.push(f(format!("{p}.mixer.out_proj.bias"), vec![d]));
        }
        out
    }

    /// The block under `prefix`, its tensors taken by name (as in [`Mamba2Block::specs`]).
    pub fn from_tensors(
        cfg: &MambaConfig,
        prefix: &str,
        take: &mut dyn FnMut(&str) -> Result<Tensor>,
    ) -> Result<Self> {
        let (_, m) = Shape::of(cfg)?;
        let p = format!("{prefix}.mixer");
        let mut opt =
            |on: bool, name: &str| -> Result<Option<Tensor>> { on.then(|| take(name)).transpose() };
        let in_proj_bias = opt(cfg.proj_bias, &format!("{p}.in_proj.bias"))?;
        let conv_bias = opt(cfg.conv_bias, &format!("{p}.conv1d.bias"))?;
        let gate_norm = opt(m.gated_norm, &format!("{p}.norm.weight"))?;
        let out_proj_bias = opt(cfg.proj_bias, &format!("{p}.out_proj.bias"))?;
        Ok(Self {
            norm: take(&format!("{prefix}.norm.weight"))?,
            in_proj: take(&format!("{p}.in_proj.weight"))?,
            in_proj_bias,
            conv1d: take(&format!("{p}.conv1d.weight"))?,
            conv_bias,
            dt_bias: take(&format!("{p}.dt_bias"))?,
            a_log: take(&format!("{p}.A_log"))?,
            d: take(&format!("{p}.D"))?,
            gate_norm,
            out_proj: take(&format!("{p}.out_proj.weight"))?,
            out_proj_bias,
        })
    }

    /// A = −exp(A_log) (H) as tensor ops.
    pub fn a(&self) -> Result<Tensor> {
        Ok(self.a_log.exp()?.neg()?)
    }

    /// A = −exp(A_log) (H) in f32, for the CPU path.
    pub fn a_f32(&self) -> Result<Vec<f32>> {
        Ok(f32_view(&self.a_log)?.iter().map(|&v| -v.exp()).collect())
    }

    /// The tensor-op mixer over sequences (training, diffusion backbones) is not written for
    /// Mamba-2 yet: an [`LmError::Unsupported`] saying so.
    pub fn mixer(&self) -> Result<Tensor> {
        Err(LmError::Unsupported(
            "the Mamba-2 block has no tensor-op sequence mixer yet (training and diffusion \
             backbones run Mamba-1; Mamba-2 runs for inference on the CPU)"
                .into(),
        ))
    }

    fn cpu_params(&self) -> Result<CpuParams<'_>> {
        Ok(CpuParams {
            in_proj_bias: view_opt(&self.in_proj_bias)?,
            conv1d: f32_view(&self.conv1d)?,
            conv_bias: view_opt(&self.conv_bias)?,
            dt_bias: f32_view(&self.dt_bias)?,
            d: f32_view(&self.d)?,
            gate_norm: view_opt(&self.gate_norm)?,
            out_proj_bias: view_opt(&self.out_proj_bias)?,
        })
    }

    /// The output side for `rows` rows: y (rows, H·P) through the gated norm with z, the gated
    /// MLP part `SiLU(z0) ⊙ x0` in front, then out_proj. `zx` is in_proj's output (rows, width).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        s: &Shape,
        p: &CpuParams<'_>,
        eps: f64,
        zx: &[f32],
        y: &[f32],
        rows: usize,
        block: bool,
    ) -> Result<Vec<f32>> {
        let d_inner = s.d_mlp + s.d_ssm;
        let mut out_in = vec![0f32; rows * d_inner];
        let gs = s.group;
        out_in
            .par_chunks_mut(d_inner)
            .zip(zx.par_chunks(s.width))
            .zip(y.par_chunks(s.d_ssm))
            .with_min_len(16)
            .for_each(|((o, zr), yr)| {
                let (mlp, ssm) = o.split_at_mut(s.d_mlp);
                for (j, m) in mlp.iter_mut().enumerate() {
                    *m = silu(zr[j]) * zr[s.d_mlp + j];
                }
                let z = &zr[s.z_off()..][..s.d_ssm];
                gated_rms_norm(
                    ssm,
                    yr,
                    z,
                    p.gate_norm.as_deref(),
                    gs,
                    s.norm_before_gate,
                    eps,
                );
            });
        if block {
            linear_block(&out_in, rows, &self.out_proj, p.out_proj_bias.as_deref())
        } else {
            linear(&out_in, rows, &self.out_proj, p.out_proj_bias.as_deref())
        }
    }

    /// CPU fast path over whole sequences: `normed` (batch, len, D) → (batch, len, D); the conv
    /// through `causal_conv1d_fwd`, the SSD through `seqlab_ssm::ssd_chunked` with the config's
    /// chunk size (Dao & Gu 2024, §6). `a` = [`Mamba2Block::a_f32`].
    /// With a state (conv (batch, H·P + 2·G·N, K), SSM (batch, H, P, N)), both start from it
    /// and it is replaced by the state after the last position.
    pub fn cpu_mixer_seq(
        &self,
        cfg: &MambaConfig,
        a: &[f32],
        normed: &[f32],
        batch: usize,
        len: usize,
        state: Option<(&mut Vec<f32>, &mut Vec<f32>)>,
    ) -> Result<Vec<f32>> {
        let (s, m) = Shape::of(cfg)?;
        let p = self.cpu_params()?;
        let rows = batch * len;
        let zx = linear(normed, rows, &self.in_proj, p.in_proj_bias.as_deref())?;
        let xbc = columns_to_channel_major(&zx, batch, len, s.width, s.xbc_off(), s.conv_dim);

        let conv_init: Option<Vec<f32>> = state.as_ref().map(|(cs, _)| {
            cs.chunks_exact(s.k)
                .flat_map(|row| row[1..].iter().copied())
                .collect()
        });
        let dims = Conv1dDims {
            batch,
            dim: s.conv_dim,
            len,
            width: s.k,
        };
        let mut conv = Conv1dArgs::new(dims, &xbc, &p.conv1d).with_silu(true);
        if let Some(b) = p.conv_bias.as_deref() {
            conv = conv.with_bias(b);
        }
        if let Some(init) = conv_init.as_deref() {
            conv = conv.with_initial_state(init);
        }
        let xc = causal_conv1d_fwd(&conv)?;
        let new_conv = match state {
            Some(_) => Some(causal_conv1d_final_state(&conv, s.k)?),
            None => None,
        };
        let xc = channel_to_token_major(&xc, batch, s.conv_dim, len); // (batch, len, conv_dim)
        let mut delta = vec![0f32; rows * s.h];
        for (dr, zr) in delta.chunks_exact_mut(s.h).zip(zx.chunks_exact(s.width)) {
            s.delta(&zr[s.dt_off()..][..s.h], &p.dt_bias, dr);
        }

        // The SSD over the whole sequence, chunked (intra-chunk products as matmuls, states
        // passed between chunks), from the state given.
        let gn = s.g * s.n;
        let x = columns(&xc, s.conv_dim, 0, s.d_ssm);
        let bm = columns(&xc, s.conv_dim, s.d_ssm, gn);
        let cm = columns(&xc, s.conv_dim, s.d_ssm + gn, gn);
        let dims = SsdDims {
            batch,
            seqlen: len,
            nheads: s.h,
            headdim: s.p,
            ngroups: s.g,
            dstate: s.n,
            chunk: m.chunk_size,
        };
        let inputs = SsdInputs {
            x: &x,
            dt: &delta,
            a,
            b: &bm,
            c: &cm,
            d: Some(&p.d),
            initial_state: state.as_ref().map(|(_, st)| st.as_slice()),
            seq_idx: None,
        };
        let SsdOutput { y, final_state } = ssd_chunked(&dims, &inputs)?;
        if let (Some((cs, ss)), Some(new_conv)) = (state, new_conv) {
            *cs = new_conv;
            *ss = final_state;
        }
        self.finish(&s, &p, cfg.norm_eps, &zx, &y, rows, false)
    }

    /// CPU fast path, one token per row: `normed` (batch, D) → (batch, D); `conv`
    /// (batch, H·P + 2·G·N, K) and `ssm` (batch, H, P, N) are updated in place.
    pub fn cpu_step(
        &self,
        cfg: &MambaConfig,
        a: &[f32],
        normed: &[f32],
        batch: usize,
        conv: &mut [f32],
        ssm: &mut [f32],
    ) -> Result<Vec<f32>> {
        let (s, _) = Shape::of(cfg)?;
        let p = self.cpu_params()?;
        let zx = linear(normed, batch, &self.in_proj, p.in_proj_bias.as_deref())?;
        let y = self.recur(&s, &p, a, &zx, batch, conv, ssm)?;
        self.finish(&s, &p, cfg.norm_eps, &zx, &y, batch, false)
    }

    /// Conv update and SSD step for one position of `batch` rows of in_proj output `zx`.
    #[allow(clippy::too_many_arguments)]
    fn recur(
        &self,
        s: &Shape,
        p: &CpuParams<'_>,
        a: &[f32],
        zx: &[f32],
        batch: usize,
        conv: &mut [f32],
        ssm: &mut [f32],
    ) -> Result<Vec<f32>> {
        let xbc = columns(zx, s.width, s.xbc_off(), s.conv_dim);
        let dims = Conv1dDims {
            batch,
            dim: s.conv_dim,
            len: 1,
            width: s.k,
        };
        let xc = causal_conv1d_update(dims, &xbc, conv, &p.conv1d, p.conv_bias.as_deref(), true)?;
        let hpn = s.d_ssm * s.n;
        if ssm.len() != batch * hpn {
            return Err(LmError::State(format!(
                "a Mamba-2 SSM state of {} values for batch {batch} × {hpn}",
                ssm.len()
            )));
        }
        let mut delta = vec![0f32; s.h];
        let mut y = vec![0f32; batch * s.d_ssm];
        for b in 0..batch {
            s.delta(
                &zx[b * s.width + s.dt_off()..][..s.h],
                &p.dt_bias,
                &mut delta,
            );
            ssd_token(
                s,
                &xc[b * s.conv_dim..][..s.conv_dim],
                &delta,
                a,
                &p.d,
                &mut ssm[b * hpn..][..hpn],
                &mut y[b * s.d_ssm..][..s.d_ssm],
            );
        }
        Ok(y)
    }

    /// CPU fast path over a short block in step semantics (speculative verification):
    /// `normed` (batch, len, D) → (batch, len, D), in_proj and out_proj once over all rows, the
    /// conv and SSD position by position (the step's arithmetic). `conv` and `ssm` end at the
    /// state after the last position; also returns the conv windows (len, batch, conv, K) and
    /// SSM states (len, batch, H·P·N) after every position.
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
        let (s, _) = Shape::of(cfg)?;
        let p = self.cpu_params()?;
        let rows = batch * len;
        let zx = linear_block(normed, rows, &self.in_proj, p.in_proj_bias.as_deref())?;
        let mut windows = Vec::with_capacity(len * conv.len());
        let mut states = Vec::with_capacity(len * ssm.len());
        let mut y = vec![0f32; rows * s.d_ssm];
        for t in 0..len {
            let zt: Vec<f32> = (0..batch)
                .flat_map(|b| zx[(b * len + t) * s.width..][..s.width].iter().copied())
                .collect();
            let yt = self.recur(&s, &p, a, &zt, batch, conv, ssm)?;
            for (b, yr) in yt.chunks_exact(s.d_ssm).enumerate() {
                y[(b * len + t) * s.d_ssm..][..s.d_ssm].copy_from_slice(yr);
            }
            windows.extend_from_slice(conv);
            states.extend_from_slice(ssm);
        }
        let out = self.finish(&s, &p, cfg.norm_eps, &zx, &y, rows, true)?;
        Ok((out, windows, states))
    }

    /// One token of the mixer in recurrent mode as tensor ops (any device): `normed` (1, D);
    /// `a` = [`Mamba2Block::a`]; `conv` (1, H·P + 2·G·N, K) and `ssm` (1, H·P, N) are replaced
    /// by the states after the token. Returns the mixer output (1, D).
    pub fn step(
        &self,
        cfg: &MambaConfig,
        a: &Tensor,
        normed: &Tensor,
        conv: &mut Tensor,
        ssm: &mut Tensor,
    ) -> Result<Tensor> {
        let (s, _) = Shape::of(cfg)?;
        let (h, pd, n, k) = (s.h, s.p, s.n, s.k);
        let zx = linear_t(normed, &self.in_proj, self.in_proj_bias.as_ref())?; // (1, width)
        let xbc = zx.narrow(1, s.xbc_off(), s.conv_dim)?;
        let window = Tensor::cat(&[&conv.narrow(2, 1, k - 1)?, &xbc.unsqueeze(2)?], 2)?;
        let cw = self.conv1d.reshape((1, s.conv_dim, k))?;
        let mut pre = window.broadcast_mul(&cw)?.sum(2)?; // (1, conv_dim)
        if let Some(b) = &self.conv_bias {
            pre = pre.broadcast_add(b)?;
        }
        let xc = pre.silu()?;
        *conv = window;
        let x = xc.narrow(1, 0, s.d_ssm)?.reshape((h, pd, 1))?;
        // Group g's B and C serve heads g·H/G … (g+1)·H/G − 1.
        let per_head = |off: usize| -> Result<Tensor> {
            Ok(xc
                .narrow(1, off, s.g * n)?
                .reshape((s.g, 1, n))?
                .broadcast_as((s.g, h / s.g, n))?
                .reshape((h, 1, n))?)
        };
        let (bm, cm) = (per_head(s.d_ssm)?, per_head(s.d_ssm + s.g * n)?);
        let mut delta = softplus(
            &zx.narrow(1, s.dt_off(), h)?
                .broadcast_add(&self.dt_bias.unsqueeze(0)?)?,
        )?;
        if let Some((lo, hi)) = s.limit {
            delta = delta.clamp(lo as f64, hi as f64)?;
        }
        let delta = delta.reshape((h, 1, 1))?;
        let da = delta.broadcast_mul(&a.reshape((h, 1, 1))?)?.exp()?;
        let dbx = delta.broadcast_mul(&bm)?.broadcast_mul(&x)?; // (H, P, N)
        let st = ssm.reshape((h, pd, n))?.broadcast_mul(&da)?.add(&dbx)?;
        let y = st.broadcast_mul(&cm)?.sum(2)?; // (H, P)
        let x = x.reshape((h, pd))?;
        let dx = if s.d_per_channel {
            x.mul(&self.d.reshape((h, pd))?)?
        } else {
            x.broadcast_mul(&self.d.reshape((h, 1))?)?
        };
        let y = (y + dx)?.reshape((1, s.d_ssm))?;
        *ssm = st.reshape((1, s.d_ssm, n))?;
        let z = zx.narrow(1, s.z_off(), s.d_ssm)?;
        let y = match &self.gate_norm {
            None => (y * z.silu()?)?,
            Some(w) => {
                let groups = s.d_ssm / s.group;
                let rms = |v: &Tensor| -> Result<Tensor> {
                    let g = v.reshape((1, groups, s.group))?;
                    let ms = g.sqr()?.mean_keepdim(D::Minus1)?;
                    Ok(g.broadcast_div(&(ms + cfg.norm_eps)?.sqrt()?)?
                        .reshape((1, s.d_ssm))?
                        .broadcast_mul(w)?)
                };
                if s.norm_before_gate {
                    (rms(&y)? * z.silu()?)?
                } else {
                    rms(&(y * z.silu()?)?)?
                }
            }
        };
        let y = if s.d_mlp > 0 {
            let mlp = (zx.narrow(1, 0, s.d_mlp)?.silu()? * zx.narrow(1, s.d_mlp, s.d_mlp)?)?;
            Tensor::cat(&[&mlp, &y], 1)?
        } else {
            y
        };
        linear_t(&y, &self.out_proj, self.out_proj_bias.as_ref())
    }
}

/// `x Wᵀ (+ b)` with a tensor weight and optional bias.
fn linear_t(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// Mamba-2's gated RMSNorm of one row (mamba_ssm `RMSNormGated`, HF `MambaRMSNormGated`),
/// over groups of `group` channels with the mean in f64: norm after the gate
/// `w ⊙ t / √(mean_group(t²) + ε)` with `t = y ⊙ SiLU(z)`, or before it
/// `w ⊙ y / √(mean_group(y²) + ε) ⊙ SiLU(z)`; without a weight, `y ⊙ SiLU(z)`.
pub fn gated_rms_norm(
    out: &mut [f32],
    y: &[f32],
    z: &[f32],
    weight: Option<&[f32]>,
    group: usize,
    norm_before_gate: bool,
    eps: f64,
) {
    let Some(w) = weight else {
        for ((o, &v), &g) in out.iter_mut().zip(y).zip(z) {
            *o = v * silu(g);
        }
        return;
    };
    let gated: Vec<f32>;
    let src = if norm_before_gate {
        y
    } else {
        gated = y.iter().zip(z).map(|(&v, &g)| v * silu(g)).collect();
        &gated
    };
    for (gi, (o, t)) in out
        .chunks_exact_mut(group)
        .zip(src.chunks_exact(group))
        .enumerate()
    {
        let ms = t.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / group as f64;
        let inv = (1.0 / (ms + eps).sqrt()) as f32;
        for (j, (o, &v)) in o.iter_mut().zip(t).enumerate() {
            let c = gi * group + j;
            *o = w[c] * (v * inv);
            if norm_before_gate {
                *o *= silu(z[c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gated_norm_orders_and_groups() {
        let y = [1.0f32, -2.0, 3.0, 0.5];
        let z = [0.3f32, -1.0, 2.0, 0.0];
        let w = [1.0f32, 2.0, 0.5, 1.5];
        let mut after = [0f32; 4];
        gated_rms_norm(&mut after, &y, &z, Some(&w), 2, false, 1e-5);
        let mut before = [0f32; 4];
        gated_rms_norm(&mut before, &y, &z, Some(&w), 4, true, 1e-5);
        let sig = |v: f64| v / (1.0 + (-v).exp());
        for g in 0..2 {
            let t: Vec<f64> = (0..2)
                .map(|j| y[2 * g + j] as f64 * sig(z[2 * g + j] as f64))
                .collect();
            let inv = 1.0 / ((t[0] * t[0] + t[1] * t[1]) / 2.0 + 1e-5).sqrt();
            for j in 0..2 {
                let want = w[2 * g + j] as f64 * t[j] * inv;
                assert!((after[2 * g + j] as f64 - want).abs() < 1e-6);
            }
        }
        let inv = 1.0 / (y.iter().map(|&v| (v * v) as f64).sum::<f64>() / 4.0 + 1e-5).sqrt();
        for c in 0..4 {
            let want = w[c] as f64 * y[c] as f64 * inv * sig(z[c] as f64);
            assert!((before[c] as f64 - want).abs() < 1e-6);
        }
        let mut plain = [0f32; 4];
        gated_rms_norm(&mut plain, &y, &z, None, 4, false, 1e-5);
        assert!((plain[2] as f64 - 3.0 * sig(2.0)).abs() < 1e-6);
    }
}
