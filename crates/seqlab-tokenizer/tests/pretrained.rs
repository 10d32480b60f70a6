//! The real GPT-2 and GPT-NeoX tokenizer files, bundled unchanged in `datasets/tokenizers/`.
//!
//! Expected GPT-2 ids come from OpenAI's reference `encoder.py` algorithm run on the same
//! `encoder.json`/`vocab.bpe`; expected NeoX ids from the Python `tokenizers` package on the same
//! `tokenizer.json` (see `datasets/tokenizers/README.md`).

use seqlab_tokenizer::{load, HfTokenizer, SpecialIds, Tokenizer};
use std::path::PathBuf;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/tokenizers")
        .join(rel)
}

fn gpt2() -> HfTokenizer {
    HfTokenizer::from_gpt2_files(&data("gpt2/encoder.json"), &data("gpt2/vocab.bpe")).unwrap()
}

fn neox() -> HfTokenizer {
    HfTokenizer::from_file(&data("gpt-neox/tokenizer.json")).unwrap()
}

/// NFC text (the NeoX pipeline NFC-normalises, so only NFC text round-trips there).
const ROUND_TRIP: &[&str] = &[
    "",
    "Hello world",
    " leading space and trailing space ",
    "  multiple   spaces\n\nand\ttabs\n",
    "line one\r\nline two\r\n\r\n",
    "naïve café, Ærøskøbing, Straße, Ελληνικά, русский, العربية, עברית",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "emoji: 🦀🎉👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵",
    "code: fn main() { println!(\"{}\", 1 + 2); }\n\tlet x = vec![1, 2, 3];",
    "numbers 1234567890 3.14159 -42 1e-9 0xFF",
    "<|endoftext|>Between documents<|endoftext|>",
    "                                        forty spaces",
    "\u{0}\u{1}\u{7f} control chars and \u{feff} BOM",
];

const GPT2_IDS: &[(&str, &[u32])] = &[
    ("Hello world", &[15496, 995]),
    (" the", &[262]),
    (
        "The quick brown fox jumps over the lazy dog.",
        &[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13],
    ),
    (
        "I'm here, aren't you?",
        &[40, 1101, 994, 11, 3588, 470, 345, 30],
    ),
    (
        "naïve café 日本語 🦀🎉",
        &[
            2616, 38776, 40304, 10545, 245, 98, 17312, 105, 45739, 252, 12520, 99, 222, 8582, 236,
            231,
        ],
    ),
    (
        "  multiple   spaces\n\nand\ttabs\n",
        &[220, 3294, 220, 220, 9029, 198, 198, 392, 197, 8658, 82, 198],
    ),
    (
        "1234567890 3.14159",
        &[10163, 2231, 30924, 3829, 513, 13, 1415, 19707],
    ),
    ("<|endoftext|>", &[50256]),
];

const NEOX_IDS: &[(&str, &[u32])] = &[
    ("Hello world", &[12092, 1533]),
    (" the", &[253]),
    (
        "The quick brown fox jumps over the lazy dog.",
        &[510, 3158, 8516, 30013, 27287, 689, 253, 22658, 4370, 15],
    ),
    (
        "naïve café 日本語 🦀🎉",
        &[
            2072, 30180, 36241, 209, 49868, 19119, 241, 22692, 101, 211, 14931, 225, 220,
        ],
    ),
    // Whitespace runs are added tokens 50254..50276 (24 down to 2 spaces).
    (
        "  multiple   spaces\n\nand\ttabs\n",
        &[50276, 34263, 50275, 31748, 187, 187, 395, 186, 33754, 187],
    ),
    ("x    y", &[89, 50274, 90]),
    ("a<|endoftext|>b", &[66, 0, 67]),
    // The PII placeholders of this variant of the file.
    ("|||EMAIL_ADDRESS|||", &[50277]),
];

#[test]
fn gpt2_known_ids() {
    let tok = gpt2();
    for (text, ids) in GPT2_IDS {
        assert_eq!(&tok.encode(text).unwrap(), ids, "encode {text:?}");
        assert_eq!(&tok.decode(ids).unwrap(), text, "decode {ids:?}");
    }
}

#[test]
fn gpt2_vocab_and_specials() {
    let tok = gpt2();
    assert_eq!(tok.vocab_size(), 50257);
    assert_eq!(tok.kind(), "hf-bpe");
    assert_eq!(
        tok.special_ids(),
        SpecialIds {
            bos: Some(50256),
            eos: Some(50256),
            ..SpecialIds::default()
        }
    );
    assert_eq!(tok.id_to_token(262).as_deref(), Some("Ġthe"));
    assert!(
        tok.decode(&[50257]).is_err(),
        "id past the vocabulary must be an error"
    );
}

#[test]
fn gpt2_round_trips_including_non_nfc() {
    let tok = gpt2();
    for text in ROUND_TRIP
        .iter()
        .chain(&["e\u{301}cole (decomposed accent)"])
    {
        let ids = tok.encode(text).unwrap();
        assert_eq!(&tok.decode(&ids).unwrap(), text, "ids {ids:?}");
    }
}

#[test]
fn gpt2_split_utf8_decodes_lossily() {
    let tok = gpt2();
    // "🦀" is 4 UTF-8 bytes, split over several byte-level tokens.
    let ids = tok.encode("🦀").unwrap();
    assert!(ids.len() > 1);
    let half = tok.decode(&ids[..1]).unwrap();
    assert!(half.contains('\u{FFFD}'), "{half:?}");
}

#[test]
fn gpt2_via_load_and_saved_tokenizer_json_agree() {
    let direct = gpt2();
    let loaded = load(&data("gpt2/encoder.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("gpt2.json");
    direct.save(&saved).unwrap();
    let reloaded = load(&saved).unwrap();
    assert_eq!(reloaded.vocab_size(), 50257);
    assert_eq!(reloaded.special_ids(), direct.special_ids());
    for text in ROUND_TRIP {
        let ids = direct.encode(text).unwrap();
        assert_eq!(loaded.encode(text).unwrap(), ids);
        assert_eq!(reloaded.encode(text).unwrap(), ids);
    }
    // Saving the reloaded tokenizer reproduces the same file.
    let again = dir.path().join("again.json");
    reloaded.save(&again).unwrap();
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn neox_known_ids() {
    let tok = neox();
    for (text, ids) in NEOX_IDS {
        assert_eq!(&tok.encode(text).unwrap(), ids, "encode {text:?}");
        assert_eq!(&tok.decode(ids).unwrap(), text, "decode {ids:?}");
    }
}

#[test]
fn neox_vocab_and_specials() {
    let tok = neox();
    // 50254 BPE tokens + 23 whitespace runs + 3 PII placeholders = Mamba's padded 50280.
    assert_eq!(tok.vocab_size(), 50280);
    assert_eq!(
        tok.special_ids(),
        SpecialIds {
            bos: Some(0),
            eos: Some(0),
            pad: Some(1),
            ..SpecialIds::default()
        }
    );
    assert_eq!(tok.token_to_id("<|padding|>"), Some(1));
    assert!(tok.decode(&[50280]).is_err());
}

#[test]
fn neox_round_trips() {
    let tok = neox();
    for text in ROUND_TRIP {
        let ids = tok.encode(text).unwrap();
        assert_eq!(&tok.decode(&ids).unwrap(), text, "ids {ids:?}");
    }
}

#[test]
fn neox_file_loads_unchanged_via_load() {
    let tok = load(&data("gpt-neox/tokenizer.json")).unwrap();
    assert_eq!(tok.kind(), "hf-bpe");
    assert_eq!(tok.encode("Hello world").unwrap(), vec![12092, 1533]);
}
