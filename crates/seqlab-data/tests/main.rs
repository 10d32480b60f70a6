//! The integration tests of `seqlab-data` in one binary, one module per file (one binary links the
//! stack once). Run one file's tests with a filter: `cargo test -p seqlab-data --test data data_layer::`.

mod data_layer;
mod fuzz_wav;
