//! Training a byte-level BPE (Sennrich et al., 2016; GPT-2's byte-level variant) from text files
//! with HF `tokenizers`' `BpeTrainer`.
//!
//! The vocabulary is: the special tokens (ids `0..k`, in the order given), then the 256
//! byte-level symbols (every byte is encodable, so there is no `<unk>`), then one token per
//! merge. Training repeatedly merges the most frequent adjacent pair of symbols inside
//! pre-tokenized words (GPT-2's regex split) until the vocabulary reaches `vocab_size` or no pair
//! occurs at least `min_frequency` times: a small corpus can therefore yield a vocabulary
//! **smaller** than asked. Ties between equally frequent pairs are broken by the pair's ids, so
//! the same files and options give a byte-identical `tokenizer.json`.

use crate::error::describe_files;
use crate::special::validate_specials;
use crate::{HfTokenizer, Result, TokenizerError};
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

/// Number of byte-level base symbols: every byte value has one.
pub const BYTE_ALPHABET: usize = 256;

/// Options of [`train_bpe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpeTrainOptions {
    /// Target vocabulary size, special tokens and the 256 byte symbols included.
    pub vocab_size: usize,
    /// A pair is merged only if it occurs at least this often (HF's default for byte-level BPE: 2).
    pub min_frequency: u64,
    /// Special tokens, given ids `0..k` in this order; matched whole in text when encoding.
    pub special_tokens: Vec<String>,
    /// Print the training stages on stderr.
    pub show_progress: bool,
}

impl Default for BpeTrainOptions {
    fn default() -> Self {
        Self {
            vocab_size: 8192,
            min_frequency: 2,
            special_tokens: vec![crate::gpt2::GPT2_ENDOFTEXT.to_owned()],
            show_progress: false,
        }
    }
}

impl BpeTrainOptions {
    /// Default options with `vocab_size` set.
    pub fn with_vocab_size(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            ..Self::default()
        }
    }
}

/// Train a byte-level BPE on the UTF-8 text files `files` (see the module docs).
///
/// Errors: no files, a missing or unreadable file, a file that is not UTF-8 (named, with the
/// offset), a corpus with no text at all, `vocab_size < 256 + special tokens`, or invalid special
/// tokens (empty or duplicated).
pub fn train_bpe<P: AsRef<Path>>(files: &[P], options: &BpeTrainOptions) -> Result<HfTokenizer> {
    if files.is_empty() {
        return Err(TokenizerError::NoFiles);
    }
    validate(options)?;
    let texts = files
        .iter()
        .map(|p| Ok(seqlab_io::read_text(p.as_ref())?))
        .collect::<Result<Vec<_>>>()?;
    if texts.iter().all(|t| t.is_empty()) {
        return Err(TokenizerError::EmptyCorpus {
            files: describe_files(files),
        });
    }
    train_bpe_from_texts(&texts, options)
}

/// Train a byte-level BPE on in-memory texts (each text is split into lines, keeping the
/// newlines, exactly as [`train_bpe`] does with files).
pub fn train_bpe_from_texts<S: AsRef<str> + Sync>(
    texts: &[S],
    options: &BpeTrainOptions,
) -> Result<HfTokenizer> {
    validate(options)?;
    let total_bytes: usize = texts.iter().map(|t| t.as_ref().len()).sum();
    if total_bytes == 0 {
        return Err(TokenizerError::EmptyCorpus {
            files: "the given texts".into(),
        });
    }
    let start = Instant::now();
    if options.show_progress {
        eprintln!(
            "training byte-level BPE on {total_bytes} bytes of text, target vocab {}",
            options.vocab_size
        );
    }

    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let specials = options
        .special_tokens
        .iter()
        .map(|s| AddedToken::from(s.clone(), true))
        .collect();
    let trainer = BpeTrainer::builder()
        .vocab_size(options.vocab_size)
        .min_frequency(options.min_frequency)
        .special_tokens(specials)
        .initial_alphabet(alphabet)
        .show_progress(false)
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);

    let mut tok = tokenizers::Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_post_processor(Some(ByteLevel::new(true, false, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    let lines = texts.iter().flat_map(|t| t.as_ref().split_inclusive('\n'));
    tok.train(&mut trainer, lines)
        .map_err(|error| TokenizerError::Hf {
            context: "BPE training failed".into(),
            error,
        })?;
    let tok = HfTokenizer::from_tokenizer(tok);
    if options.show_progress {
        eprintln!(
            "trained vocab of {} tokens in {:.1} s",
            crate::Tokenizer::vocab_size(&tok),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(tok)
}

fn validate(options: &BpeTrainOptions) -> Result<()> {
    validate_specials(&options.special_tokens)?;
    let minimum = BYTE_ALPHABET + options.special_tokens.len();
    if options.vocab_size < minimum {
        return Err(TokenizerError::VocabTooSmall {
            requested: options.vocab_size,
            minimum,
            what: format!(
                "the 256 byte symbols and {} special token(s)",
                options.special_tokens.len()
            ),
        });
    }
    Ok(())
}
