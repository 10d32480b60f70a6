//! Fuzzing the safetensors reader (`seqlab_tensor::read_header`, `seqlab_tensor::load`): every
//! input derived from the repository's golden checkpoints (header length overwritten, header
//! JSON mutated — shapes, dtypes, data offsets —, the file cut at every tensor boundary, bytes
//! flipped) loads or is one clean error; never a panic, never an allocation the file cannot
//! back. More cases: `SEQLAB_FUZZ_CASES=100000 cargo test -p seqlab-tensor --test tensor fuzz_`.

use seqlab_fuzz::{fuzz, Field, JsonPart, Seed, Target};
use seqlab_tensor::candle_core::Device;
use std::path::Path;

#[global_allocator]
static ALLOC: seqlab_fuzz::MeteredAlloc = seqlab_fuzz::MeteredAlloc;

/// Rebuilds a safetensors file around a new header: the 8-byte length, the header, then the
/// original file's data section.
fn rebuild(orig: &[u8], header: &[u8]) -> Vec<u8> {
    let old = u64::from_le_bytes(orig[..8].try_into().expect("8 bytes")) as usize;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&orig[8 + old..]);
    out
}

/// A seed from a safetensors file: the header length is its field; the header's end and every
/// tensor's data start and end are its boundaries; the header is its JSON part.
fn safetensors_seed(path: &Path) -> Seed {
    let seed = Seed::file(path);
    let n = u64::from_le_bytes(seed.bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&seed.bytes[8..8 + n]).unwrap();
    let mut boundaries = vec![8, 8 + n];
    for (name, entry) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        for off in entry["data_offsets"].as_array().unwrap() {
            boundaries.push(8 + n + off.as_u64().unwrap() as usize);
        }
    }
    seed.with_fields(vec![Field {
        offset: 0,
        width: 8,
    }])
    .with_boundaries(boundaries)
    .with_json_part(JsonPart {
        value: header,
        rebuild,
    })
}

#[test]
fn fuzz_safetensors_header_and_load() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden");
    let seeds = [
        "mamba-tiny/model.safetensors",
        "selective_scan/c13_len1.safetensors",
        "selective_scan/c14_odd_shapes.safetensors",
        "s4/s4d_lin_zoh.safetensors",
    ]
    .iter()
    .map(|f| safetensors_seed(&golden.join(f)))
    .collect();
    let mut target = Target::new("safetensors", seeds, 400);
    target.cut_stride = 4096;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let report = fuzz(&target, |input| {
        std::fs::write(&path, input.bytes).unwrap();
        let header = seqlab_tensor::read_header(&path);
        let loaded = seqlab_tensor::load(&path, &Device::Cpu);
        // The header reader and the full load agree on whether the file is readable.
        assert_eq!(
            header.is_ok(),
            loaded.is_ok(),
            "read_header {:?} vs load {:?}",
            header.as_ref().err().map(ToString::to_string),
            loaded.as_ref().err().map(ToString::to_string)
        );
        loaded.map(|_| ())
    });
    assert!(report.refused > 0 && report.accepted >= 4, "{report:?}");
}
