//! A small deterministic, structure-aware mutation fuzzer for the loaders' tests.
//!
//! Every loader of a user-supplied file (safetensors header, `config.json`, GGUF,
//! `tokenizer.json`, WAV, `metrics.jsonl` rows) must answer `Ok` or one clean error: never a
//! panic, never an allocation out of proportion to its input (docs/architecture.md,
//! "Conventions"). [`fuzz`] drives one loader over inputs derived from seed files taken from
//! the repository itself:
//!
//! - the seeds unchanged, then the regression inputs kept under `tests/fuzz/<target>/`;
//! - every seed cut at each structural boundary the target names (and at a stride in between);
//! - `cases` random mutations ([`mutate`]): bit flips, byte stores, huge length fields,
//!   deletions, duplications, splices of two seeds, and for JSON documents ([`json`]) values
//!   replaced by wrong types, absurd numbers, removed keys and deep nesting.
//!
//! Each input runs under [`std::panic::catch_unwind`] with the allocation meter ([`meter`])
//! armed; a panic or an allocation above the limit fails the test and writes the input to a
//! file named in the failure message, for reproduction and to be kept as a regression case.
//!
//! The number of random cases is `$SEQLAB_FUZZ_CASES` (a test's small default otherwise), the
//! random stream `$SEQLAB_FUZZ_SEED` (fixed by default, so CI is deterministic).

pub mod json;
pub mod meter;
pub mod mutate;
pub mod rng;
pub mod run;

pub use meter::MeteredAlloc;
pub use mutate::Field;
pub use rng::Rng;
pub use run::{fuzz, Input, JsonPart, Report, Seed, Target};
