//! One recurrent step of the selective SSM (Mamba's step mode; `selective_state_update_ref` of
//! mamba_ssm), with heads and groups so Mamba-2's layout is covered too:
//!
//! ```text
//! Δ = softplus(dt + dt_bias)                         (or dt + dt_bias)
//! state ← state ⊙ exp(Δ A) + (Δ B) x                 (per head h, channel p, state n)
//! out = Σ_n state·C + D x,   out ·= SiLU(z)
//! ```
//!
//! Layout: state (batch, nheads, headdim, dstate); x, dt, z, out (batch, nheads, headdim);
//! A (nheads, headdim, dstate); B, C (batch, ngroups, dstate), group g serving heads
//! g·nheads/ngroups …; D, dt_bias (nheads, headdim). Mamba-1 is nheads = 1, headdim = d_inner,
//! ngroups = 1 ([`StepDims::mamba1`]): state (batch, d_inner, N), B/C (batch, N).

use rayon::prelude::*;

use crate::error::{check_len, Result, SsmError};
use crate::float::{silu, softplus, Float};
use crate::selective_scan::numel;

/// Sizes of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepDims {
    /// Batch size.
    pub batch: usize,
    /// Heads (1 for Mamba-1).
    pub nheads: usize,
    /// Channels per head (d_inner for Mamba-1).
    pub headdim: usize,
    /// State size N.
    pub dstate: usize,
    /// B/C groups; must divide nheads.
    pub ngroups: usize,
}

impl StepDims {
    /// Mamba-1's layout: one head of `dim` channels, one group.
    pub fn mamba1(batch: usize, dim: usize, dstate: usize) -> Self {
        Self {
            batch,
            nheads: 1,
            headdim: dim,
            dstate,
            ngroups: 1,
        }
    }
}

/// Inputs of one step (see the module doc for layouts).
#[derive(Clone, Copy, Debug)]
pub struct StepArgs<'a, T> {
    /// Sizes.
    pub dims: StepDims,
    /// Input x_t.
    pub x: &'a [T],
    /// Raw step size.
    pub dt: &'a [T],
    /// A (nheads, headdim, dstate).
    pub a: &'a [T],
    /// B_t (batch, ngroups, dstate).
    pub b: &'a [T],
    /// C_t (batch, ngroups, dstate).
    pub c: &'a [T],
    /// Skip D (nheads, headdim).
    pub d: Option<&'a [T]>,
    /// Gate z (batch, nheads, headdim).
    pub z: Option<&'a [T]>,
    /// dt bias (nheads, headdim), added before the softplus.
    pub dt_bias: Option<&'a [T]>,
    /// Δ = softplus(dt + bias) when true.
    pub dt_softplus: bool,
}

impl<'a, T> StepArgs<'a, T> {
    /// The required inputs; every option off.
    pub fn new(
        dims: StepDims,
        x: &'a [T],
        dt: &'a [T],
        a: &'a [T],
        b: &'a [T],
        c: &'a [T],
    ) -> Self {
        Self {
            dims,
            x,
            dt,
            a,
            b,
            c,
            d: None,
            z: None,
            dt_bias: None,
            dt_softplus: false,
        }
    }
    /// Sets D.
    pub fn with_d(mut self, d: &'a [T]) -> Self {
        self.d = Some(d);
        self
    }
    /// Sets z.
    pub fn with_z(mut self, z: &'a [T]) -> Self {
        self.z = Some(z);
        self
    }
    /// Sets dt_bias.
    pub fn with_dt_bias(mut self, bias: &'a [T]) -> Self {
        self.dt_bias = Some(bias);
        self
    }
    /// Sets the softplus on Δ.
    pub fn with_dt_softplus(mut self, on: bool) -> Self {
        self.dt_softplus = on;
        self
    }
}

/// Advances `state` by one token and returns out (batch, nheads, headdim).
pub fn selective_state_update<T: Float>(state: &mut [T], args: &StepArgs<'_, T>) -> Result<Vec<T>> {
    let StepDims {
        batch,
        nheads,
        headdim,
        dstate: n,
        ngroups,
    } = args.dims;
    if batch == 0 || nheads == 0 || headdim == 0 || n == 0 {
        return Err(SsmError::Invalid(format!(
            "step sizes must be ≥ 1, got {:?}",
            args.dims
        )));
    }
    if ngroups == 0 || nheads % ngroups != 0 {
        return Err(SsmError::Invalid(format!(
            "ngroups={ngroups} must be ≥ 1 and divide nheads={nheads}"
        )));
    }
    let bhp = numel(&[batch, nheads, headdim])?;
    let s_bhp = || format!("(batch={batch}, nheads={nheads}, headdim={headdim})");
    check_len("state", state.len(), numel(&[bhp, n])?, || {
        format!("(batch={batch}, nheads={nheads}, headdim={headdim}, dstate={n})")
    })?;
    check_len("x", args.x.len(), bhp, s_bhp)?;
    check_len("dt", args.dt.len(), bhp, s_bhp)?;
    if let Some(z) = args.z {
        check_len("z", z.len(), bhp, s_bhp)?;
    }
    check_len("A", args.a.len(), numel(&[nheads, headdim, n])?, || {
        format!("(nheads={nheads}, headdim={headdim}, dstate={n})")
    })?;
    let s_bgn = || format!("(batch={batch}, ngroups={ngroups}, dstate={n})");
    check_len("B", args.b.len(), numel(&[batch, ngroups, n])?, s_bgn)?;
    check_len("C", args.c.len(), numel(&[batch, ngroups, n])?, s_bgn)?;
    let s_hp = || format!("(nheads={nheads}, headdim={headdim})");
    if let Some(d) = args.d {
        check_len("D", d.len(), nheads * headdim, s_hp)?;
    }
    if let Some(b) = args.dt_bias {
        check_len("dt_bias", b.len(), nheads * headdim, s_hp)?;
    }

    let heads_per_group = nheads / ngroups;
    let mut out = vec![T::ZERO; bhp];
    out.par_iter_mut()
        .zip(state.par_chunks_mut(n))
        .enumerate()
        .with_min_len(64)
        .for_each(|(row, (o, st))| {
            let hp = row % (nheads * headdim);
            let b = row / (nheads * headdim);
            let g = (hp / headdim) / heads_per_group;
            let raw = args.dt[row] + args.dt_bias.map_or(T::ZERO, |v| v[hp]);
            let dt = if args.dt_softplus { softplus(raw) } else { raw };
            let x = args.x[row];
            let a = &args.a[hp * n..][..n];
            let bv = &args.b[(b * ngroups + g) * n..][..n];
            let cv = &args.c[(b * ngroups + g) * n..][..n];
            for ((s, &a), &bk) in st.iter_mut().zip(a).zip(bv) {
                *s = *s * (dt * a).exp_fast() + (dt * bk) * x;
            }
            let mut y = crate::float::dot(st, cv);
            if let Some(d) = args.d {
                y += x * d[hp];
            }
            if let Some(z) = args.z {
                y *= silu(z[row]);
            }
            *o = y;
        });
    Ok(out)
}
