//! Checked safetensors I/O: round trips, the first-mismatch-by-name reports, and one clear error
//! for each kind of broken file (missing, truncated, garbage, trailing bytes, bad offsets).

use seqlab_tensor::candle_core::{DType, Device, Tensor};
use seqlab_tensor::{
    check_file, load, load_checked, load_checked_with, read_header, read_specs, save_atomic,
    save_atomic_with_metadata, CheckOptions, TensorError, TensorSpec,
};
use std::collections::HashMap;
use std::path::Path;

fn tensors() -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let emb: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    let mut m = HashMap::new();
    m.insert(
        "emb.weight".to_string(),
        Tensor::from_vec(emb, (4, 3), &dev).unwrap(),
    );
    m.insert(
        "norm.weight".to_string(),
        Tensor::new(&[1.0f32, 0.5, -2.0], &dev)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap(),
    );
    m.insert(
        "ids".to_string(),
        Tensor::new(&[7u32, 0, 3, 9, 1], &dev).unwrap(),
    );
    m.insert("scale".to_string(), Tensor::new(0.125f64, &dev).unwrap());
    m
}

fn specs() -> Vec<TensorSpec> {
    let mut v: Vec<TensorSpec> = tensors()
        .iter()
        .map(|(n, t)| TensorSpec::of(n.clone(), t))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn saved(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("model.safetensors");
    save_atomic(&p, &tensors()).unwrap();
    p
}

#[test]
fn round_trip_preserves_values_dtypes_shapes_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ck.safetensors");
    let meta: HashMap<String, String> = [("step".to_string(), "1200".to_string())].into();
    save_atomic_with_metadata(&p, &tensors(), &meta).unwrap();

    let loaded = load(&p, &Device::Cpu).unwrap();
    assert_eq!(loaded.len(), 4);
    for (name, t) in tensors() {
        let l = &loaded[&name];
        assert_eq!(l.dtype(), t.dtype(), "{name}");
        assert_eq!(l.dims(), t.dims(), "{name}");
        assert_eq!(as_f64(l), as_f64(&t), "{name}");
    }
    let header = read_header(&p).unwrap();
    assert_eq!(header.metadata, meta);
    assert_eq!(header.tensors, specs());
    assert_eq!(read_specs(&p).unwrap(), specs());
    assert_eq!(
        read_specs(&p).unwrap()[0].to_string(),
        "emb.weight: f32[4, 3]"
    );
}

#[test]
fn interoperates_with_candles_own_safetensors_io() {
    let dir = tempfile::tempdir().unwrap();
    // Written by candle, read (checked) by us.
    let a = dir.path().join("candle.safetensors");
    seqlab_tensor::candle_core::safetensors::save(&tensors(), &a).unwrap();
    let got = load_checked(&a, &specs(), &Device::Cpu).unwrap();
    assert_eq!(as_f64(&got["emb.weight"]), as_f64(&tensors()["emb.weight"]));
    // Written by us, read by candle.
    let b = saved(dir.path());
    let got = seqlab_tensor::candle_core::safetensors::load(&b, &Device::Cpu).unwrap();
    assert_eq!(as_f64(&got["norm.weight"]), vec![1.0, 0.5, -2.0]);
}

#[test]
fn load_checked_returns_only_expected_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(dir.path());
    let want = vec![TensorSpec::new("emb.weight", vec![4, 3], DType::F32)];
    let got = load_checked(&p, &want, &Device::Cpu).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got["emb.weight"].dims(), &[4, 3]);
    check_file(&p, &specs(), CheckOptions::default()).unwrap();
}

fn err_of(p: &Path, want: &[TensorSpec], opts: CheckOptions) -> TensorError {
    let e = load_checked_with(p, want, &Device::Cpu, opts).unwrap_err();
    // The cheap header-only check reports the very same thing.
    let e2 = check_file(p, want, opts).unwrap_err();
    assert_eq!(e.to_string(), e2.to_string());
    assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    e
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(dir.path());
    let mut want = specs();
    want.push(TensorSpec::new("lm_head.weight", vec![3, 4], DType::F32));
    let e = err_of(&p, &want, CheckOptions::default());
    assert!(matches!(e, TensorError::MissingTensor { ref name, .. } if name == "lm_head.weight"));
    let msg = e.to_string();
    assert!(msg.contains("missing tensor `lm_head.weight`"), "{msg}");
    assert!(msg.contains("f32[3, 4]"), "{msg}");
}

#[test]
fn shape_mismatch_names_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(dir.path());
    let want = vec![TensorSpec::new("emb.weight", vec![3, 4], DType::F32)];
    let msg = err_of(&p, &want, CheckOptions::default()).to_string();
    assert!(
        msg.contains("tensor `emb.weight` has shape [4, 3] but expected [3, 4]"),
        "{msg}"
    );
}

#[test]
fn dtype_mismatch_names_tensor_and_both_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(dir.path());
    let want = vec![TensorSpec::new("norm.weight", vec![3], DType::F32)];
    let msg = err_of(&p, &want, CheckOptions::default()).to_string();
    assert!(
        msg.contains("tensor `norm.weight` has dtype bf16 but expected f32"),
        "{msg}"
    );
}

#[test]
fn first_mismatch_in_expected_order_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(dir.path());
    let want = vec![
        TensorSpec::new("ids", vec![5], DType::U32),       // fine
        TensorSpec::new("scale", vec![1], DType::F64),     // wrong shape: reported
        TensorSpec::new("a.missing", vec![1], DType::F32), // also wrong, later
    ];
    let e = err_of(&p, &want, CheckOptions::default());
    assert!(
        matches!(e, TensorError::ShapeMismatch { ref name, .. } if name == "scale"),
        "{e}"
    );
}

#[test]
fn unexpected_tensors_rejected_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(dir.path());
    let want = vec![TensorSpec::new("ids", vec![5], DType::U32)];
    assert!(load_checked(&p, &want, &Device::Cpu).is_ok());
    let opts = CheckOptions {
        reject_unexpected: true,
        ..Default::default()
    };
    let e = err_of(&p, &want, opts);
    let msg = e.to_string();
    assert!(
        msg.contains("3 unexpected tensor(s), first `emb.weight`"),
        "{msg}"
    );
    assert!(load_checked_with(&p, &specs(), &Device::Cpu, opts).is_ok());
}

#[test]
fn cast_float_converts_float_dtypes_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(dir.path());
    let opts = CheckOptions {
        cast_float: true,
        ..Default::default()
    };
    let want = vec![TensorSpec::new("norm.weight", vec![3], DType::F32)];
    let got = load_checked_with(&p, &want, &Device::Cpu, opts).unwrap();
    assert_eq!(got["norm.weight"].dtype(), DType::F32);
    assert_eq!(as_f64(&got["norm.weight"]), vec![1.0, 0.5, -2.0]);
    // Integers are never silently turned into floats.
    let want = vec![TensorSpec::new("ids", vec![5], DType::F32)];
    let e = err_of(&p, &want, opts);
    assert!(matches!(e, TensorError::DtypeMismatch { .. }), "{e}");
}

/// Every reader gives the same error for a broken file.
fn all_readers_fail(p: &Path) -> Vec<TensorError> {
    let want = specs();
    vec![
        load(p, &Device::Cpu).unwrap_err(),
        load_checked(p, &want, &Device::Cpu).unwrap_err(),
        read_specs(p).unwrap_err(),
        read_header(p).unwrap_err(),
        check_file(p, &want, CheckOptions::default()).unwrap_err(),
    ]
}

#[test]
fn missing_file_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope.safetensors");
    for e in all_readers_fail(&p) {
        assert!(matches!(e, TensorError::CheckpointNotFound { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("nope.safetensors") && msg.contains("does not exist"),
            "{msg}"
        );
    }
}

#[test]
fn truncated_copies_are_reported_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(dir.path());
    let bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    // Cut in the data, just before the end, inside the header, inside the length prefix, empty.
    for cut in [n - 1, n - 20, n / 2, 12, 3, 0] {
        let t = dir.path().join(format!("cut{cut}.safetensors"));
        std::fs::write(&t, &bytes[..cut]).unwrap();
        for e in all_readers_fail(&t) {
            assert!(
                matches!(e, TensorError::CheckpointTruncated { .. }),
                "cut {cut}: {e}"
            );
            let msg = e.to_string();
            assert!(msg.contains(&format!("cut{cut}.safetensors")), "{msg}");
            assert!(msg.contains("truncated"), "{msg}");
        }
    }
}

#[test]
fn garbage_files_are_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(saved(dir.path())).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text",
            b"this is a text file, not a checkpoint at all\n".repeat(20),
            "header",
        ),
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            "header",
        ),
    ];
    // A plausible length prefix followed by non-JSON.
    let mut bad_json = 16u64.to_le_bytes().to_vec();
    bad_json.extend_from_slice(b"{not json here!}");
    cases.push(("badjson", bad_json, "not a valid safetensors header"));
    // Offsets that overlap.
    let hdr = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    let mut overlap = (hdr.len() as u64).to_le_bytes().to_vec();
    overlap.extend_from_slice(hdr);
    overlap.extend_from_slice(&[0u8; 8]);
    cases.push(("overlap", overlap, "not a valid safetensors header"));
    // A good file with junk appended.
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    cases.push((
        "trailing",
        trailing,
        "4 unexpected bytes follow the last tensor",
    ));

    for (name, bytes, needle) in cases {
        let p = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&p, &bytes).unwrap();
        for e in all_readers_fail(&p) {
            assert!(
                matches!(e, TensorError::CheckpointCorrupt { .. }),
                "{name}: {e}"
            );
            let msg = e.to_string();
            assert!(msg.contains(&format!("{name}.safetensors")), "{msg}");
            assert!(msg.contains("not a valid safetensors file"), "{msg}");
            assert!(msg.contains(needle), "{name}: {msg}");
        }
    }
}

#[test]
fn unloadable_dtype_is_named_and_skippable() {
    // Hand-written file: a BOOL tensor (candle cannot hold it) next to an f32 one.
    let hdr = br#"{"flag":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]},"w":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}}"#;
    let mut bytes = (hdr.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(hdr);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&1.5f32.to_le_bytes());
    bytes.extend_from_slice(&(-2.0f32).to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bool.safetensors");
    std::fs::write(&p, &bytes).unwrap();

    let msg = read_specs(&p).unwrap_err().to_string();
    assert!(
        msg.contains("tensor `flag` has dtype BOOL, which seqlab cannot load"),
        "{msg}"
    );
    assert!(load(&p, &Device::Cpu).is_err());
    // Not needed by the model: ignored, and the rest loads.
    let want = vec![TensorSpec::new("w", vec![2], DType::F32)];
    let got = load_checked(&p, &want, &Device::Cpu).unwrap();
    assert_eq!(as_f64(&got["w"]), vec![1.5, -2.0]);
    // Needed: a dtype mismatch that names it.
    let want = vec![TensorSpec::new("flag", vec![2], DType::U8)];
    let msg = load_checked(&p, &want, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`flag` has dtype BOOL but expected u8"),
        "{msg}"
    );
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn save_atomic_overwrites_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(dir.path());
    let mut next = tensors();
    next.insert(
        "extra".into(),
        Tensor::new(&[1.0f32], &Device::Cpu).unwrap(),
    );
    save_atomic(&p, &next).unwrap();
    assert_eq!(dir_names(dir.path()), vec!["model.safetensors"]);
    assert_eq!(read_specs(&p).unwrap().len(), 5);
}

#[test]
fn failed_save_keeps_the_destination_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    // The destination is a non-empty directory: the final rename fails after the data was
    // written to the temporary file.
    let target = dir.path().join("model.safetensors");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), b"x").unwrap();
    let e = save_atomic(&target, &tensors()).unwrap_err();
    assert!(matches!(e, TensorError::CheckpointWrite { .. }), "{e}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    assert_eq!(dir_names(dir.path()), vec!["model.safetensors"]);
    assert_eq!(dir_names(&target), vec!["keep.txt"]);

    // A directory that does not exist.
    let p = dir.path().join("no/such/dir/m.safetensors");
    let msg = save_atomic(&p, &tensors()).unwrap_err().to_string();
    assert!(
        msg.contains("cannot write checkpoint") && msg.contains("no/such/dir"),
        "{msg}"
    );

    // A reserved name is refused before anything is written.
    let mut bad = tensors();
    bad.insert(
        "__metadata__".into(),
        Tensor::new(&[1.0f32], &Device::Cpu).unwrap(),
    );
    let p = dir.path().join("r.safetensors");
    assert!(save_atomic(&p, &bad)
        .unwrap_err()
        .to_string()
        .contains("reserved"));
    assert!(!p.exists());
}
