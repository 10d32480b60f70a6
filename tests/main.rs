//! The integration tests of `seqlab` in one binary, one module per file (one binary links the
//! stack once). Run one file's tests with a filter: `cargo test -p seqlab --test end_to_end cli_audio::`.

mod cli_audio;
mod cli_cuda;
mod cli_diffusion_energy;
mod cli_diffusion_sample;
mod cli_diffusion_train;
mod cli_eval;
mod cli_generate;
mod cli_generate_golden;
mod cli_guards;
mod cli_prepare;
mod cli_runs;
mod cli_speculate;
mod cli_synthetic;
mod cli_tokenizer;
mod cli_train;
mod common;
mod sashimi_samples;
