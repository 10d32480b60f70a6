//! seqlab-speculative: big-little decoding for any pair of [`seqlab_lm::CausalLm`] models that
//! share a vocabulary — Mamba, Transformer, or one of each — written against the trait only.
//!
//! - [`bild`]: Big Little Decoder (Kim et al. 2023): the little model decodes while confident
//!   (fallback threshold α_FB, at most `max_small` tokens), the big model scores its tokens in
//!   one pass and rolls back at the first one it finds too unlikely (rollback threshold α_RB).
//! - [`speculative_sampling`]: lossless speculative sampling (Leviathan et al. 2023; Chen et
//!   al. 2023): accept with `min(1, p/q)`, resample from `norm(max(0, p − q))`, bonus token;
//!   the output law is the big model's at any temperature / top-k / top-p, greedy included;
//!   fixed or adaptive draft length.
//! - [`cursor`]: one model's state, lag and snapshots — how both states are rolled back without
//!   recomputing a token (the cost model is in its docs); SSM drafters keep a clone of the state
//!   per drafted position, verifiers roll back with [`seqlab_lm::CausalLm::truncate`].
//! - [`row`]: one prompt being decoded (both cursors, committed tokens, random stream,
//!   counters), the state every policy's round works on.
//! - [`decode`](mod@decode): the shared loop, the choice of policy, and batches of prompts.
//! - [`harness`]: the latency experiment against big-only decoding in the same run, and sweeps;
//!   [`frontier`]: the speed/quality PNG of a sweep.

pub mod bild;
pub mod cursor;
pub mod decode;
pub mod error;
pub mod frontier;
pub mod harness;
pub mod row;
pub mod speculative_sampling;

pub use bild::BildConfig;
pub use cursor::{Cursor, ModelWork};
pub use decode::{
    check_pair, decode, decode_batch, DecodeConfig, DecodeOutput, DecodeStats, Policy, StopReason,
};
pub use error::{Result, SpecError};
pub use harness::{baseline, measure, Baseline, Experiment, Overall, PromptReport, SweepRow};
pub use speculative_sampling::{verify_drafts, SpecConfig};
