//! The checkpoint manifest (docs/training.md#checkpoints): `manifest.json`, written last into
//! every checkpoint seqlab's trainers write, lists each file of the checkpoint with its size in
//! bytes and its CRC-32 (IEEE 802.3 polynomial, the checksum of gzip and PNG), and the step the
//! checkpoint holds. [`verify_manifest`] recomputes them before a checkpoint is loaded or
//! resumed, so a flipped bit, a truncated file or a file swapped in from another checkpoint is
//! an error naming the file instead of a silently different model.
//!
//! CRC-32 detects every error burst up to 32 bits long (every single flipped bit among them)
//! and misses a random corruption with probability 2⁻³²; it guards against accidents, not
//! against tampering. It runs at memory speed (crc32fast uses the CPU's carry-less multiply),
//! so verifying costs about as much as reading the files.
//!
//! A directory without a manifest (a checkpoint written before manifests existed, a bundled or
//! Hugging Face model) is read as before, unverified.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Manifest file name inside a checkpoint directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// The checksum (`"crc32"`).
    pub checksum: String,
    /// The trainer step the checkpoint holds.
    pub step: u64,
    /// Every file of the checkpoint but the manifest, by name.
    pub files: BTreeMap<String, FileSum>,
}

/// One file's size and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSum {
    /// Size in bytes.
    pub bytes: u64,
    /// CRC-32 (IEEE), as 8 lowercase hex digits in the file.
    #[serde(with = "hex32")]
    pub crc32: u32,
}

/// `u32` ⇄ 8 hex digits.
mod hex32 {
    pub fn serialize<S: serde::Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:08x}"))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        if text.len() != 8 {
            return Err(serde::de::Error::custom(format!(
                "crc32 `{text}` is not 8 hex digits"
            )));
        }
        u32::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

/// Size and CRC-32 of the file at `path`, read in 1 MiB chunks.
pub fn file_sum(path: &Path) -> Result<FileSum> {
    let mut f = std::fs::File::open(path).map_err(|e| TrainError::file("read", path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| TrainError::file("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileSum {
        bytes,
        crc32: hasher.finalize(),
    })
}

/// Writes `dir/manifest.json` (atomically) over every regular file of `dir` but itself,
/// recording `step`. Call it after every other file of the checkpoint is written.
pub fn write_manifest(dir: &Path, step: u64) -> Result<()> {
    let mut files = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| TrainError::file("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::file("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry
            .file_type()
            .map_err(|e| TrainError::file("stat", entry.path(), e))?
            .is_file();
        if is_file && name != MANIFEST_FILE {
            files.insert(name, file_sum(&entry.path())?);
        }
    }
    let manifest = Manifest {
        version: 1,
        checksum: "crc32".into(),
        step,
        files,
    };
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    seqlab_io::write_atomic(dir.join(MANIFEST_FILE), json.as_bytes())?;
    Ok(())
}

/// Checks every file `dir/manifest.json` lists against its size and CRC-32 and returns the
/// manifest; `None` for a directory without a manifest (read unverified, see the module docs).
/// A missing or different file is [`TrainError::CorruptCheckpoint`] naming it; a manifest that
/// does not parse is one too.
pub fn verify_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|e| TrainError::file("read", &path, e))?;
    let corrupt = |file: &Path, reason: String| TrainError::CorruptCheckpoint {
        path: file.to_path_buf(),
        manifest: path.clone(),
        reason,
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(&path, format!("the manifest does not parse: {e}")))?;
    if manifest.version != 1 || manifest.checksum != "crc32" {
        return Err(corrupt(
            &path,
            format!(
                "unknown manifest version {} / checksum `{}` (this seqlab writes 1 / crc32)",
                manifest.version, manifest.checksum
            ),
        ));
    }
    for (name, want) in &manifest.files {
        if name.contains(['/', '\\']) || name == ".." {
            return Err(corrupt(
                &path,
                format!("the file name `{name}` is not plain"),
            ));
        }
        let file = dir.join(name);
        if !file.is_file() {
            return Err(corrupt(&file, "the file is missing".into()));
        }
        let got = file_sum(&file)?;
        if got.bytes != want.bytes {
            return Err(corrupt(
                &file,
                format!("{} bytes, the manifest says {}", got.bytes, want.bytes),
            ));
        }
        if got.crc32 != want.crc32 {
            return Err(corrupt(
                &file,
                format!(
                    "its CRC-32 is {:08x}, the manifest says {:08x} (a changed byte in the file or the manifest)",
                    got.crc32, want.crc32
                ),
            ));
        }
    }
    Ok(Some(manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_round_trips_and_catches_every_single_bit_flip_truncation_and_loss() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(verify_manifest(d).unwrap(), None);
        std::fs::write(d.join("a.bin"), [1u8, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        std::fs::write(d.join("b.json"), "{}").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        write_manifest(d, 7).unwrap();
        let m = verify_manifest(d).unwrap().unwrap();
        assert_eq!(m.step, 7);
        assert_eq!(m.files.keys().collect::<Vec<_>>(), vec!["a.bin", "b.json"]);
        // Streaming in chunks gives the one-call checksum.
        assert_eq!(m.files["b.json"].bytes, 2);
        assert_eq!(m.files["b.json"].crc32, crc32fast::hash(b"{}"));
        let good = std::fs::read(d.join("a.bin")).unwrap();
        for byte in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[byte] ^= 1 << bit;
                std::fs::write(d.join("a.bin"), &bad).unwrap();
                let e = verify_manifest(d).unwrap_err().to_string();
                assert!(e.contains("a.bin") && e.contains("CRC-32"), "{e}");
            }
        }
        std::fs::write(d.join("a.bin"), &good[..7]).unwrap();
        let e = verify_manifest(d).unwrap_err().to_string();
        assert!(e.contains("7 bytes, the manifest says 8"), "{e}");
        std::fs::remove_file(d.join("a.bin")).unwrap();
        let e = verify_manifest(d).unwrap_err().to_string();
        assert!(e.contains("a.bin") && e.contains("missing"), "{e}");
        std::fs::write(d.join("a.bin"), &good).unwrap();
        verify_manifest(d).unwrap();
        std::fs::write(d.join(MANIFEST_FILE), "{\"version\": 1").unwrap();
        let e = verify_manifest(d).unwrap_err().to_string();
        assert!(e.contains("does not parse"), "{e}");
    }

    #[test]
    fn crc32_is_the_ieee_checksum() {
        // The check value of CRC-32/ISO-HDLC (the catalogue's "123456789" test vector).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, "123456789").unwrap();
        let s = file_sum(&p).unwrap();
        assert_eq!((s.bytes, s.crc32), (9, 0xcbf4_3926));
    }
}
