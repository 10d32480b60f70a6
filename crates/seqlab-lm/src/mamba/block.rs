//! The kinds of block a Mamba LM stacks, behind one type the LM code loops over.
//!
//! Every kind is pre-norm residual (`h ← h + Mixer(RMSNorm(h))`, docs/architecture.md) and
//! keeps a conv window and an SSM state per layer. Mamba-1 ([`Mamba1Block`], mamba1.rs) and
//! Mamba-2 ([`Mamba2Block`], mamba2.rs; chosen by [`MambaConfig::mamba2`]); another kind (a
//! Falcon-Mamba variant) is one new file with its weights and mixer paths, plus one variant
//! here.

use crate::error::Result;
use crate::mamba::config::MambaConfig;
use crate::mamba::mamba1::Mamba1Block;
use crate::mamba::mamba2::Mamba2Block;
use candle_core::Tensor;
use seqlab_tensor::TensorSpec;

/// One block of a Mamba LM, with its weights (candle tensors).
#[derive(Debug, Clone)]
pub enum MambaBlock {
    /// Gu & Dao (2023)'s selective-SSM block.
    Mamba1(Mamba1Block),
    /// Dao & Gu (2024)'s SSD block (Mamba-2).
    Mamba2(Mamba2Block),
}

impl MambaBlock {
    /// The tensors of the block of `cfg` under `prefix`, in checkpoint order.
    pub fn specs(cfg: &MambaConfig, prefix: &str) -> Vec<TensorSpec> {
        match cfg.mamba2 {
            Some(_) => Mamba2Block::specs(cfg, prefix),
            None => Mamba1Block::specs(cfg, prefix),
        }
    }

    /// The block of `cfg` under `prefix`, its tensors taken by name.
    pub fn from_tensors(
        cfg: &MambaConfig,
        prefix: &str,
        take: &mut dyn FnMut(&str) -> Result<Tensor>,
    ) -> Result<Self> {
        Ok(match cfg.mamba2 {
            Some(_) => Self::Mamba2(Mamba2Block::from_tensors(cfg, prefix, take)?),
            None => Self::Mamba1(Mamba1Block::from_tensors(cfg, prefix, take)?),
        })
    }

    /// The pre-norm RMSNorm weight (D).
    pub fn norm(&self) -> &Tensor {
        match self {
            Self::Mamba1(b) => &b.norm,
            Self::Mamba2(b) => &b.norm,
        }
    }

    /// A = −exp(A_log) as tensor ops (for [`MambaBlock::step`], computed once).
    pub fn a(&self) -> Result<Tensor> {
        match self {
            Self::Mamba1(b) => b.a(),
            Self::Mamba2(b) => b.a(),
        }
    }

    /// A = −exp(A_log) in f32 (for the CPU path, computed once).
    pub fn a_f32(&self) -> Result<Vec<f32>> {
        match self {
            Self::Mamba1(b) => b.a_f32(),
            Self::Mamba2(b) => b.a_f32(),
        }
    }

    /// The mixer over sequences as tensor ops ([`Mamba1Block::mixer`]; Mamba-2: not yet,
    /// [`Mamba2Block::mixer`]).
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
        match self {
            Self::Mamba1(b) => b.mixer(cfg, normed, batch, len, seq_idx, masks, scan_chunk),
            Self::Mamba2(b) => b.mixer(),
        }
    }

    /// One recurrent step as tensor ops ([`Mamba1Block::step`]).
    pub fn step(
        &self,
        cfg: &MambaConfig,
        a: &Tensor,
        normed: &Tensor,
        conv: &mut Tensor,
        ssm: &mut Tensor,
    ) -> Result<Tensor> {
        match self {
            Self::Mamba1(b) => b.step(cfg, a, normed, conv, ssm),
            Self::Mamba2(b) => b.step(cfg, a, normed, conv, ssm),
        }
    }

    /// CPU fast path over sequences ([`Mamba1Block::cpu_mixer_seq`]).
    pub fn cpu_mixer_seq(
        &self,
        cfg: &MambaConfig,
        a: &[f32],
        normed: &[f32],
        batch: usize,
        len: usize,
        state: Option<(&mut Vec<f32>, &mut Vec<f32>)>,
    ) -> Result<Vec<f32>> {
        match self {
            Self::Mamba1(b) => b.cpu_mixer_seq(cfg, a, normed, batch, len, state),
            Self::Mamba2(b) => b.cpu_mixer_seq(cfg, a, normed, batch, len, state),
        }
    }

    /// CPU fast path, one token per row ([`Mamba1Block::cpu_step`]).
    pub fn cpu_step(
        &self,
        cfg: &MambaConfig,
        a: &[f32],
        normed: &[f32],
        batch: usize,
        conv: &mut [f32],
        ssm: &mut [f32],
    ) -> Result<Vec<f32>> {
        match self {
            Self::Mamba1(b) => b.cpu_step(cfg, a, normed, batch, conv, ssm),
            Self::Mamba2(b) => b.cpu_step(cfg, a, normed, batch, conv, ssm),
        }
    }

    /// CPU fast path over a short block, states after every position
    /// ([`Mamba1Block::cpu_block`]).
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
        match self {
            Self::Mamba1(b) => b.cpu_block(cfg, a, normed, batch, len, conv, ssm),
            Self::Mamba2(b) => b.cpu_block(cfg, a, normed, batch, len, conv, ssm),
        }
    }
}
