//! The integration tests of `seqlab-tensor` in one binary, one module per file (one binary links the
//! stack once). Run one file's tests with a filter: `cargo test -p seqlab-tensor --test tensor checkpoint::`.

mod checkpoint;
mod fuzz_safetensors;
mod sampling_stats;
