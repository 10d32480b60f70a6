//! seqlab-ssm: the state-space kernels every sequence model of seqlab builds on, on the CPU
//! and, with the `cuda` feature, on an NVIDIA GPU (docs/ssm.md, docs/s4.md).
//!
//! - [`selective_scan`]: Mamba's selective scan (Gu & Dao 2023),
//!   x_t = exp(Δ_t A) ⊙ x_{t−1} + Δ_t B_t u_t, y_t = C_t·x_t, forward and backward, with every
//!   option of `mamba_ssm`'s `selective_scan_ref` (D skip, z gate, δ bias + softplus,
//!   input-dependent / grouped / constant B and C, complex A, last state) plus an initial state
//!   (chunked prefill, state passing) and `seq_idx` resets for packed sequences. Generic over
//!   f32 / f64 ([`Float`]).
//! - [`ssd`]: Mamba-2's SSD (Dao & Gu 2024), H_t = exp(Δ_t A_h) H_{t−1} + Δ_t x_t ⊗ B_t,
//!   y_t = H_t C_t + D x_t with a scalar A per head, chunked so the work is matrix products
//!   (intra-chunk blocks, inter-chunk state passing), plus the sequential recurrence as its twin;
//!   initial / final states and `seq_idx` resets; [`ssd_backward`] its chunked backward and
//!   [`ssd_op`] the candle op with backward.
//! - [`causal_conv1d`]: Mamba's depthwise causal conv1d (with optional SiLU), forward, backward,
//!   the one-token update with a rolling conv state, and the conv state after a prefill.
//! - [`state_update`]: one recurrent step of the SSM (`selective_state_update_ref`), with heads
//!   and groups in the multi-head layout (one head and one group for Mamba).
//! - [`block_recurrence`]: conv and scan over a short block in step semantics, returning the
//!   state after every position (speculative verification with rollback).
//! - [`candle_op`]: the scan as a candle custom op with backward, so `candle_core::Var`s train
//!   through it, on CPU tensors and (feature `cuda`) on CUDA tensors.
//! - [`s4`]: S4 / S4D (HiPPO + NPLR inits, Vandermonde and Cauchy kernels with backward, FFT
//!   convolution, recurrent step modes, the S4 block); its complex parameters are separate
//!   re / im slices.
//! - `cuda` (feature `cuda`): the CUDA twins of these kernels — `kernels/*.cu`, compiled at run
//!   time by NVRTC, launched through cudarc — checked against the CPU functions in the tests
//!   (docs/architecture.md#cuda).
//!
//! Layouts follow the reference (row-major, (batch, dim, len) for sequences); complex tensors
//! are real buffers with a trailing (re, im) pair. Errors are [`SsmError`]; no function panics on
//! inconsistent shapes.

pub mod block_recurrence;
pub mod candle_op;
pub mod causal_conv1d;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod elem;
pub mod error;
pub mod float;
mod matmul;
pub mod s4;
pub mod selective_scan;
pub mod ssd;
pub mod ssd_backward;
pub mod ssd_op;
pub mod state_update;

pub use block_recurrence::{conv_block, scan_block, BlockDims, ScanBlockInputs};
pub use candle_op::{selective_scan as selective_scan_tensor, ScanTensors};
pub use causal_conv1d::{
    causal_conv1d_bwd, causal_conv1d_final_state, causal_conv1d_fwd, causal_conv1d_update,
    Conv1dArgs, Conv1dDims, Conv1dGrads,
};
pub use elem::Cplx;
pub use error::{Result, SsmError};
pub use float::Float;
pub use selective_scan::{
    selective_scan_bwd, selective_scan_fwd, AMatrix, BcMatrix, ScanArgs, ScanConfig, ScanDims,
    ScanGrads, ScanOutput, ScanSaved,
};
pub use ssd::{ssd_chunked, ssd_sequential, SsdDims, SsdInputs, SsdOutput};
pub use ssd_backward::{ssd_chunked_backward, SsdGrads};
pub use ssd_op::{ssd as ssd_tensor, SsdTensors};
pub use state_update::{selective_state_update, StepArgs, StepDims};
