//! The integration tests of `seqlab-lm` in one binary, one module per file (one binary links the
//! stack once). Run one file's tests with a filter: `cargo test -p seqlab-lm --test lm conformance::`.

mod common;
mod conformance;
mod cuda_models;
mod device_lm;
mod eval;
mod fuzz_config;
mod fuzz_gguf;
mod generate;
mod gguf;
mod golden_falcon_mamba_tiny;
mod golden_mamba2_tiny;
mod golden_mamba_tiny;
mod loader;
mod perf;
mod quant_path;
mod s4lm;
mod sashimi;
mod synthetic;
mod train_loop;
mod train_model;
mod transformer;
