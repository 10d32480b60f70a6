//! The integration tests of `seqlab-speculative` in one binary, one module per file (one binary links the
//! stack once). Run one file's tests with a filter: `cargo test -p seqlab-speculative --test speculative distribution::`.

mod distribution;
mod harness;
mod lossless;
mod rollback;
mod smollm2;
mod support;
