//! The integration tests of `seqlab-tokenizer` in one binary, one module per file (one binary links the
//! stack once). Run one file's tests with a filter: `cargo test -p seqlab-tokenizer --test tokenizer char_byte::`.

mod char_byte;
mod fuzz_tokenizer;
mod load_errors;
mod pretrained;
mod train_bpe;
