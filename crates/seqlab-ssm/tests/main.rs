//! The integration tests of `seqlab-ssm` in one binary, one module per file (one binary links the
//! stack once). Run one file's tests with a filter: `cargo test -p seqlab-ssm --test ssm causal_conv1d::`.

mod causal_conv1d;
mod common;
mod cuda_kernels;
mod golden_selective_scan;
mod s4_golden;
mod s4_modes;
mod s4_toeplitz_conv;
mod selective_scan;
mod ssd;
