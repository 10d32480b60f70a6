//! The integration tests of `seqlab-train` in one binary, one module per file (one binary links
//! the stack once). Run one file's tests with a filter: `cargo test -p seqlab-train --test train
//! fuzz_metrics::`.

mod fuzz_metrics;
