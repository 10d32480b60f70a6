//! The integration tests of `seqlab-diffusion` in one binary, one module per file (one binary links the
//! stack once). Run one file's tests with a filter: `cargo test -p seqlab-diffusion --test diffusion backbone::`.

mod backbone;
mod edlm;
mod fuzz_mdlm_config;
mod gen_eval;
mod loss;
mod samplers;
mod schedule;
mod train;
