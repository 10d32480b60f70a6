//! Char- and byte-level vocabularies: round trips, unknowns, special tokens, save/load.

use seqlab_tokenizer::{load, ByteTokenizer, CharTokenizer, SpecialIds, Tokenizer, TokenizerError};

const TEXTS: &[&str] = &[
    "Hello, world!\n",
    "naïve café — 日本語 🦀\n",
    "tabs\tand  double  spaces\r\n",
];

#[test]
fn char_vocab_is_specials_then_sorted_chars() {
    let tok = CharTokenizer::from_texts(&["cab", "ba"]).unwrap();
    assert_eq!(tok.special_tokens(), ["<|endoftext|>", "<unk>"]);
    assert_eq!(tok.chars(), ['a', 'b', 'c']);
    assert_eq!(tok.vocab_size(), 5);
    assert_eq!(tok.encode("abc").unwrap(), vec![2, 3, 4]);
    assert_eq!(
        tok.special_ids(),
        SpecialIds {
            bos: Some(0),
            eos: Some(0),
            unk: Some(1),
            ..SpecialIds::default()
        }
    );
}

#[test]
fn char_round_trip_and_specials_in_text() {
    let tok = CharTokenizer::from_texts(TEXTS).unwrap();
    for t in TEXTS {
        assert_eq!(tok.decode(&tok.encode(t).unwrap()).unwrap(), *t);
    }
    let doc = format!("{}<|endoftext|>{}", TEXTS[0], TEXTS[1]);
    let ids = tok.encode(&doc).unwrap();
    assert_eq!(ids.iter().filter(|&&i| i == 0).count(), 1);
    assert_eq!(tok.decode(&ids).unwrap(), doc);
    // A lone '<' that starts no special token is an ordinary (here: unknown) char.
    assert_eq!(tok.encode("<").unwrap(), vec![1]);
}

#[test]
fn char_unknowns_map_to_unk_or_error() {
    let tok = CharTokenizer::from_texts(&["abc"]).unwrap();
    assert_eq!(tok.encode("axb").unwrap(), vec![2, 1, 3]);
    assert_eq!(tok.decode(&[2, 1, 3]).unwrap(), "a<unk>b");
    let strict = CharTokenizer::new("abc".chars(), &["<|endoftext|>".to_string()]).unwrap();
    let err = strict.encode("abé").unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::UnknownChar {
                ch: 'é', offset: 2
            }
        ),
        "{err}"
    );
    assert!(matches!(
        tok.decode(&[5]).unwrap_err(),
        TokenizerError::IdOutOfRange {
            id: 5,
            vocab_size: 5
        }
    ));
}

#[test]
fn char_max_vocab_keeps_most_frequent() {
    let specials = vec!["<unk>".to_string()];
    let tok = CharTokenizer::from_texts_with(&["aaaabbbcc d"], &specials, Some(4)).unwrap();
    assert_eq!(tok.chars(), ['a', 'b', 'c']);
    assert_eq!(
        tok.decode(&tok.encode("abcd").unwrap()).unwrap(),
        "abc<unk>"
    );
    assert!(CharTokenizer::from_texts_with(&["ab"], &specials, Some(1)).is_err());
}

#[test]
fn char_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let tok = CharTokenizer::from_texts(TEXTS).unwrap();
    let path = dir.path().join("char.json");
    tok.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"seqlab_tokenizer\": \"char\""), "{text}");
    let back = load(&path).unwrap();
    assert_eq!(back.kind(), "char");
    assert_eq!(back.vocab_size(), tok.vocab_size());
    assert_eq!(back.special_ids(), tok.special_ids());
    for t in TEXTS {
        assert_eq!(back.encode(t).unwrap(), tok.encode(t).unwrap());
    }
}

#[test]
fn char_from_files_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let err = CharTokenizer::from_files(&[&empty], &[], None).unwrap_err();
    assert!(err.to_string().contains("empty.txt"), "{err}");
    let bin = dir.path().join("bin.dat");
    std::fs::write(&bin, [0x66, 0x80]).unwrap();
    let err = CharTokenizer::from_files(&[&bin], &[], None).unwrap_err();
    assert!(err.to_string().contains("bin.dat") && err.to_string().contains("UTF-8"));
}

#[test]
fn byte_ids_and_round_trip() {
    let tok = ByteTokenizer::default();
    assert_eq!(tok.vocab_size(), 257);
    assert_eq!(tok.encode("A").unwrap(), vec![1 + 65]);
    assert_eq!(tok.encode("é").unwrap(), vec![1 + 0xC3, 1 + 0xA9]);
    assert_eq!(tok.encode("<|endoftext|>").unwrap(), vec![0]);
    for t in TEXTS
        .iter()
        .chain(&["", "<|endoftext|>x<|endoftext|>", "\u{0}\u{ff}"])
    {
        assert_eq!(tok.decode(&tok.encode(t).unwrap()).unwrap(), *t);
    }
    assert_eq!(tok.special_ids().eos, Some(0));
    assert!(tok.decode(&[257]).is_err());
}

#[test]
fn byte_invalid_utf8_decodes_lossily_but_bytes_are_exact() {
    let tok = ByteTokenizer::new(&[]).unwrap();
    let ids = [0x66, 0xC3, 0x67]; // 'f', a lone lead byte, 'g'
    assert_eq!(tok.decode(&ids).unwrap(), "f\u{FFFD}g");
    assert_eq!(tok.decode_bytes(&ids).unwrap(), vec![0x66, 0xC3, 0x67]);
}

#[test]
fn byte_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let specials = vec!["<|endoftext|>".to_string(), "<pad>".into(), "<mask>".into()];
    let tok = ByteTokenizer::new(&specials).unwrap();
    let path = dir.path().join("byte.json");
    tok.save(&path).unwrap();
    let back = load(&path).unwrap();
    assert_eq!(back.kind(), "byte");
    assert_eq!(back.vocab_size(), 259);
    assert_eq!(back.special_ids().mask, Some(2));
    assert_eq!(back.special_ids().pad, Some(1));
    assert_eq!(
        back.encode("hi<mask>").unwrap(),
        tok.encode("hi<mask>").unwrap()
    );
}
