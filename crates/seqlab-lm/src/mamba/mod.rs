//! The Mamba language model (Gu & Dao 2023): configuration, checkpoint loading, forward passes.
//!
//! - [`config`]: HF `MambaConfig` and original `mamba_ssm` configs → one [`MambaConfig`];
//! - [`weights`]: the checked loader (HF / original names, single file or sharded index);
//! - [`ops`]: RMSNorm, linear layers, layout transposes, and the per-position block conv/scan;
//! - [`state`]: the recurrent cache (conv + SSM state per layer);
//! - [`model`]: the block and the LM — parallel forward, prefill, recurrent step.

pub mod config;
pub mod device_lm;
pub mod model;
pub mod ops;
pub mod state;
pub mod train_model;
pub mod weights;

pub use config::{MambaConfig, MambaLayout};
pub use device_lm::{MambaDeviceLm, MambaDeviceState};
pub use model::{LogitsMode, MambaLm, MambaOutput};
pub use state::MambaState;
pub use train_model::{cross_entropy, MambaDims, TrainMamba};
