//! Fuzzing the GGUF loader (`seqlab_lm::gguf::load_gguf`: the reader, the Llama config, the
//! embedded tokenizer, the weights) with the tiny GGUF the `gguf` tests write. The mutations know
//! the file's layout: every count and length field (tensor and key counts, string and array
//! lengths, dimensions, tensor offsets, value types) is overwritten with huge, zero and
//! off-by-one values, and the file is cut at each field boundary. Every input loads or is one
//! clean error; never a panic, never an allocation the file cannot back.
//! More cases: `SEQLAB_FUZZ_CASES=20000 cargo test -p seqlab-lm --test lm fuzz_gguf::`.

use crate::gguf::{write_tiny, Tiny};
use seqlab_fuzz::{fuzz, Field, Seed, Target};

/// Reads GGUF fields in order, recording each integer field and each boundary.
struct Walker<'a> {
    b: &'a [u8],
    at: usize,
    fields: Vec<Field>,
    boundaries: Vec<usize>,
}

impl Walker<'_> {
    fn int(&mut self, width: usize) -> u64 {
        let mut v = [0u8; 8];
        v[..width].copy_from_slice(&self.b[self.at..self.at + width]);
        self.fields.push(Field {
            offset: self.at,
            width,
        });
        self.at += width;
        self.boundaries.push(self.at);
        u64::from_le_bytes(v)
    }

    fn string(&mut self) {
        let n = self.int(8) as usize;
        self.at += n;
        self.boundaries.push(self.at);
    }

    fn value(&mut self, ty: u32) {
        match ty {
            0 | 1 | 7 => self.at += 1,
            2 | 3 => self.at += 2,
            4..=6 => self.at += 4,
            10..=12 => self.at += 8,
            8 => self.string(),
            9 => {
                let elem = self.int(4) as u32;
                let n = self.int(8);
                for _ in 0..n {
                    self.value(elem);
                }
            }
            other => panic!("GGUF value type {other} in the seed"),
        }
    }
}

/// The tiny GGUF as a seed: its integer fields and field boundaries (GGUF v2/v3 layout:
/// magic, version, tensor count, key count, keys, tensor infos, aligned data).
fn gguf_seed(bytes: Vec<u8>) -> Seed {
    let mut w = Walker {
        b: &bytes,
        at: 4,
        fields: Vec::new(),
        boundaries: vec![4],
    };
    w.int(4);
    let n_tensors = w.int(8);
    let n_kv = w.int(8);
    for _ in 0..n_kv {
        w.string();
        let ty = w.int(4) as u32;
        w.value(ty);
    }
    for _ in 0..n_tensors {
        w.string();
        let dims = w.int(4);
        for _ in 0..dims {
            w.int(8);
        }
        w.int(4);
        w.int(8);
    }
    let (fields, boundaries) = (w.fields, w.boundaries);
    Seed::bytes("tiny.gguf", bytes)
        .with_fields(fields)
        .with_boundaries(boundaries)
}

#[test]
fn fuzz_gguf_loader() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = [
        Tiny::default(),
        Tiny {
            untied: true,
            ..Tiny::default()
        },
    ]
    .iter()
    .enumerate()
    .map(|(i, opts)| {
        let path = write_tiny(dir.path(), &format!("seed{i}.gguf"), opts);
        gguf_seed(std::fs::read(path).unwrap())
    })
    .collect();
    let mut target = Target::new("gguf", seeds, 300);
    target.cut_stride = 4096;
    let path = dir.path().join("input.gguf");
    let report = fuzz(&target, |input| {
        std::fs::write(&path, input.bytes).unwrap();
        seqlab_lm::gguf::load_gguf(&path).map(|_| ())
    });
    assert!(report.refused > 0 && report.accepted >= 2, "{report:?}");
}
