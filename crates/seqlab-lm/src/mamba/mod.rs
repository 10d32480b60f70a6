//! The Mamba language model (Gu & Dao 2023): configuration, checkpoint loading, forward passes.
//!
//! - [`config`]: HF `MambaConfig` and original `mamba_ssm` configs → one [`MambaConfig`];
//! - [`weights`]: the checked loader (HF / original names, single file or sharded index);
//! - [`ops`]: the CPU path's RMSNorm, linear layers and layout transposes;
//! - [`state`]: the recurrent cache (conv + SSM state per layer);
//! - [`mamba1`]: the Mamba-1 block — its typed weights and its mixer on every path (tensor ops
//!   over sequences for training / diffusion / any device, the tensor-op recurrent step, and the
//!   CPU fast path's sequence, step and block code); [`block`]: the block kinds the LM stacks;
//! - [`model`]: the CPU LM — parallel forward, prefill, recurrent step, block scoring;
//! - [`causal_lm_impl`]: [`CausalLm`](crate::CausalLm) for [`MambaLm`];
//! - [`train_model`]: the trainable LM over `Var`s; [`device_lm`]: recurrent steps as tensor ops
//!   on any device.

pub mod block;
pub mod causal_lm_impl;
pub mod config;
pub mod device_lm;
pub mod mamba1;
pub mod mamba2;
pub mod model;
pub mod ops;
pub mod state;
pub mod train_model;
pub mod weights;

pub use block::MambaBlock;
pub use causal_lm_impl::{MambaLmState, MAMBA_SCORE_STEP_MAX};
pub use config::{Mamba2Options, MambaConfig, MambaLayout};
pub use device_lm::{MambaDeviceLm, MambaDeviceState};
pub use mamba1::Mamba1Block;
pub use mamba2::Mamba2Block;
pub use model::{LogitsMode, MambaLm, MambaOutput};
pub use state::MambaState;
pub use train_model::{cross_entropy, MambaDims, TrainMamba};
pub use weights::MambaWeights;
