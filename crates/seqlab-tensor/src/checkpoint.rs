//! Checked safetensors I/O.
//!
//! A safetensors file is `u64 LE header length N` + `N bytes of JSON header` + the raw tensor
//! bytes, each tensor at the `data_offsets` its header entry gives. This module reads the header
//! on its own (cheap, no tensor data), checks it against what a model expects — names, shapes,
//! dtypes — and reports the first mismatch by name before any tensor is loaded. Writing streams
//! into a [`seqlab_io::AtomicFile`] (a temporary file in the destination's directory, flushed to
//! disk, then renamed over the destination), so a crash never leaves a half-written checkpoint.

use crate::error::{Result, TensorError};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype as StDtype, Metadata, TensorInfo};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Length of the little-endian `u64` that starts every safetensors file.
const LEN_PREFIX: usize = 8;
/// Largest header safetensors itself accepts (100 MB); bigger means "not a safetensors file".
const MAX_HEADER: u64 = 100_000_000;

/// What one tensor in a checkpoint must look like: its name, shape and dtype.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    /// Full tensor name, e.g. `backbone.layers.0.mixer.in_proj.weight`.
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
}

impl TensorSpec {
    /// A spec for tensor `name` with the given shape and dtype.
    pub fn new(name: impl Into<String>, shape: impl Into<Vec<usize>>, dtype: DType) -> Self {
        Self {
            name: name.into(),
            shape: shape.into(),
            dtype,
        }
    }

    /// The spec of an existing tensor (to build the expected list from a freshly built model).
    pub fn of(name: impl Into<String>, tensor: &Tensor) -> Self {
        Self::new(name, tensor.dims().to_vec(), tensor.dtype())
    }

    /// Number of elements, the product of the shape.
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }
}

impl fmt::Display for TensorSpec {
    /// `name: f32[2, 3]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, describe(self.dtype, &self.shape))
    }
}

/// `f32[2, 3]`.
fn describe(dtype: DType, shape: &[usize]) -> String {
    format!("{}{:?}", dtype.as_str(), shape)
}

/// How strict [`load_checked_with`] is beyond "every expected tensor is present and matches".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Fail with [`TensorError::UnexpectedTensor`] when the file holds tensors that are not in
    /// the expected list (default: ignore them and do not load them).
    pub reject_unexpected: bool,
    /// Accept a floating-point tensor stored in another floating-point dtype (e.g. bf16 on disk,
    /// f32 expected) and convert it on load, instead of failing with
    /// [`TensorError::DtypeMismatch`]. Shapes must still match exactly.
    pub cast_float: bool,
}

/// The header of a checkpoint: its tensors (sorted by name) and its `__metadata__` map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckpointHeader {
    /// Every tensor, sorted by name.
    pub tensors: Vec<TensorSpec>,
    /// The free-form string map stored under `__metadata__` (empty when absent).
    pub metadata: HashMap<String, String>,
}

/// One tensor entry of a parsed header, in the file's own terms.
#[derive(Debug)]
struct Entry {
    name: String,
    dtype: StDtype,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    start: u64,
    len: usize,
}

/// A parsed and validated header: entries sorted by file offset.
#[derive(Debug)]
struct RawHeader {
    entries: Vec<Entry>,
    metadata: HashMap<String, String>,
}

impl RawHeader {
    fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

fn open(path: &Path) -> Result<File> {
    seqlab_io::open(path).map_err(|e| {
        if e.is_not_found() {
            TensorError::CheckpointNotFound {
                path: path.to_path_buf(),
            }
        } else {
            let (_, _, source) = e.into_parts();
            TensorError::CheckpointRead {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn read_err(path: &Path) -> impl Fn(std::io::Error) -> TensorError + '_ {
    move |source| TensorError::CheckpointRead {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and validates the header of the open file `file` (at `path`), leaving the data alone.
fn parse_header(file: &mut File, path: &Path) -> Result<RawHeader> {
    let truncated = |detail: String| TensorError::CheckpointTruncated {
        path: path.to_path_buf(),
        detail,
    };
    let corrupt = |reason: String| TensorError::CheckpointCorrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file_len = file.metadata().map_err(read_err(path))?.len();
    if file_len < LEN_PREFIX as u64 {
        return Err(truncated(format!(
            "the file has {file_len} bytes, fewer than the {LEN_PREFIX}-byte header-length prefix"
        )));
    }
    let mut prefix = [0u8; LEN_PREFIX];
    file.read_exact(&mut prefix).map_err(read_err(path))?;
    let n = u64::from_le_bytes(prefix);
    if n > MAX_HEADER {
        return Err(corrupt(format!(
            "its first 8 bytes announce a {n}-byte header (the limit is {MAX_HEADER})"
        )));
    }
    if LEN_PREFIX as u64 + n > file_len {
        return Err(truncated(format!(
            "the header alone needs {} bytes but the file has {file_len}",
            LEN_PREFIX as u64 + n
        )));
    }
    // n <= MAX_HEADER, so it fits in usize.
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(read_err(path))?;
    let text = std::str::from_utf8(&header)
        .map_err(|e| corrupt(format!("the header is not UTF-8 text ({e})")))?;
    let meta: Metadata = serde_json::from_str(text).map_err(|e| {
        corrupt(format!(
            "the header is not a valid safetensors header ({e})"
        ))
    })?;

    let data_start = LEN_PREFIX as u64 + n;
    let expected_len = data_start + meta.data_len() as u64;
    if file_len < expected_len {
        return Err(truncated(format!(
            "its header describes {expected_len} bytes but the file has only {file_len}"
        )));
    }
    if file_len > expected_len {
        return Err(corrupt(format!(
            "{} unexpected bytes follow the last tensor",
            file_len - expected_len
        )));
    }

    let mut entries: Vec<Entry> = meta
        .tensors()
        .into_iter()
        .map(|(name, info): (String, &TensorInfo)| Entry {
            name,
            dtype: info.dtype,
            shape: info.shape.clone(),
            start: data_start + info.data_offsets.0 as u64,
            len: info.data_offsets.1 - info.data_offsets.0,
        })
        .collect();
    entries.sort_by_key(|e| e.start);
    Ok(RawHeader {
        entries,
        metadata: meta.metadata().clone().unwrap_or_default(),
    })
}

/// The candle dtype of a stored tensor, or the "cannot load" error naming it.
fn candle_dtype(path: &Path, e: &Entry) -> Result<DType> {
    DType::try_from(e.dtype).map_err(|_| TensorError::UnsupportedCheckpointDtype {
        path: path.to_path_buf(),
        name: e.name.clone(),
        dtype: format!("{:?}", e.dtype),
    })
}

/// Human name of a stored dtype: candle's short name when candle knows it, else safetensors'.
fn st_dtype_name(d: StDtype) -> String {
    DType::try_from(d)
        .map(|d| d.as_str().to_string())
        .unwrap_or_else(|_| format!("{d:?}"))
}

/// Checks `header` against `expected`, in the order of `expected`; returns the first mismatch.
fn check(
    path: &Path,
    header: &RawHeader,
    expected: &[TensorSpec],
    opts: CheckOptions,
) -> Result<()> {
    for spec in expected {
        let Some(entry) = header.find(&spec.name) else {
            return Err(TensorError::MissingTensor {
                path: path.to_path_buf(),
                name: spec.name.clone(),
                expected: describe(spec.dtype, &spec.shape),
            });
        };
        if entry.shape != spec.shape {
            return Err(TensorError::ShapeMismatch {
                path: path.to_path_buf(),
                name: spec.name.clone(),
                found: entry.shape.clone(),
                expected: spec.shape.clone(),
            });
        }
        let dtype_ok = match DType::try_from(entry.dtype) {
            Ok(d) if d == spec.dtype => true,
            Ok(d) => {
                opts.cast_float
                    && crate::dtype::is_compute_dtype(d)
                    && crate::dtype::is_compute_dtype(spec.dtype)
            }
            Err(_) => false,
        };
        if !dtype_ok {
            return Err(TensorError::DtypeMismatch {
                path: path.to_path_buf(),
                name: spec.name.clone(),
                found: st_dtype_name(entry.dtype),
                expected: spec.dtype.as_str().to_string(),
            });
        }
    }
    if opts.reject_unexpected {
        let wanted: HashSet<&str> = expected.iter().map(|s| s.name.as_str()).collect();
        let mut extra: Vec<&str> = header
            .entries
            .iter()
            .map(|e| e.name.as_str())
            .filter(|n| !wanted.contains(n))
            .collect();
        extra.sort_unstable();
        if let Some(first) = extra.first() {
            return Err(TensorError::UnexpectedTensor {
                path: path.to_path_buf(),
                first: first.to_string(),
                count: extra.len(),
            });
        }
    }
    Ok(())
}

/// Reads the bytes of `entry` from `file` and makes a tensor on `device`.
fn load_entry(file: &mut File, path: &Path, entry: &Entry, device: &Device) -> Result<Tensor> {
    let dtype = candle_dtype(path, entry)?;
    let mut buf = vec![0u8; entry.len];
    file.seek(SeekFrom::Start(entry.start))
        .map_err(read_err(path))?;
    file.read_exact(&mut buf).map_err(read_err(path))?;
    Ok(Tensor::from_raw_buffer(&buf, dtype, &entry.shape, device)?)
}

/// Reads only the header of the checkpoint at `path`: every tensor's name, shape and dtype
/// (sorted by name) and the `__metadata__` map. Costs one small read, whatever the file size;
/// still detects a truncated file (the header says how long the file must be).
pub fn read_header(path: impl AsRef<Path>) -> Result<CheckpointHeader> {
    let path = path.as_ref();
    let mut file = open(path)?;
    let raw = parse_header(&mut file, path)?;
    let mut tensors = raw
        .entries
        .iter()
        .map(|e| {
            Ok(TensorSpec {
                name: e.name.clone(),
                shape: e.shape.clone(),
                dtype: candle_dtype(path, e)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(CheckpointHeader {
        tensors,
        metadata: raw.metadata,
    })
}

/// The specs (name, shape, dtype) of every tensor in the checkpoint, sorted by name; header only.
pub fn read_specs(path: impl AsRef<Path>) -> Result<Vec<TensorSpec>> {
    Ok(read_header(path)?.tensors)
}

/// Checks the checkpoint's header against `expected` without loading any tensor data; the
/// first mismatch (in the order of `expected`) is the error.
pub fn check_file(
    path: impl AsRef<Path>,
    expected: &[TensorSpec],
    opts: CheckOptions,
) -> Result<()> {
    let path = path.as_ref();
    let mut file = open(path)?;
    let raw = parse_header(&mut file, path)?;
    check(path, &raw, expected, opts)
}

/// Loads every tensor of the checkpoint at `path` onto `device`.
pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<HashMap<String, Tensor>> {
    let path = path.as_ref();
    let mut file = open(path)?;
    let raw = parse_header(&mut file, path)?;
    let mut out = HashMap::with_capacity(raw.entries.len());
    for entry in &raw.entries {
        out.insert(
            entry.name.clone(),
            load_entry(&mut file, path, entry, device)?,
        );
    }
    Ok(out)
}

/// Loads the tensors listed in `expected` after checking that each is present with exactly the
/// given shape and dtype; the first mismatch, in the order of `expected`, is the error
/// ("missing tensor X", "tensor X has shape [..] but expected [..]", "... dtype ...").
/// Tensors in the file that are not expected are ignored and not loaded.
pub fn load_checked(
    path: impl AsRef<Path>,
    expected: &[TensorSpec],
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    load_checked_with(path, expected, device, CheckOptions::default())
}

/// [`load_checked`] with options: reject unexpected extra tensors, or convert float dtypes.
/// Nothing is loaded unless the whole header passes the check.
pub fn load_checked_with(
    path: impl AsRef<Path>,
    expected: &[TensorSpec],
    device: &Device,
    opts: CheckOptions,
) -> Result<HashMap<String, Tensor>> {
    let path = path.as_ref();
    let mut file = open(path)?;
    let raw = parse_header(&mut file, path)?;
    check(path, &raw, expected, opts)?;
    let mut wanted: Vec<(&Entry, &TensorSpec)> = expected
        .iter()
        .filter_map(|spec| raw.find(&spec.name).map(|e| (e, spec)))
        .collect();
    // Read in file order: one forward sweep over the file.
    wanted.sort_by_key(|(e, _)| e.start);
    let mut out = HashMap::with_capacity(wanted.len());
    for (entry, spec) in wanted {
        let t = load_entry(&mut file, path, entry, device)?;
        let t = crate::dtype::to_compute_dtype(&t, spec.dtype)?;
        out.insert(spec.name.clone(), t);
    }
    Ok(out)
}

/// Writes `tensors` to `path` as safetensors, atomically: see [`save_atomic_with_metadata`].
pub fn save_atomic(path: impl AsRef<Path>, tensors: &HashMap<String, Tensor>) -> Result<()> {
    save_atomic_with_metadata(path, tensors, &HashMap::new())
}

/// Writes `tensors` and the string map `metadata` (stored as `__metadata__`) to `path` as
/// safetensors. The bytes are streamed into a [`seqlab_io::AtomicFile`]: a temporary file in the
/// same directory, flushed to disk (`fsync`) and then renamed over `path`, so readers see either
/// the old file or the complete new one, never a partial write. On any error the temporary file
/// is removed and `path` is left as it was. Tensors may live on any device; they are copied to
/// the host one at a time.
pub fn save_atomic_with_metadata(
    path: impl AsRef<Path>,
    tensors: &HashMap<String, Tensor>,
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let write_err = |reason: String| TensorError::CheckpointWrite {
        path: path.to_path_buf(),
        reason,
    };
    if path.file_name().is_none() {
        return Err(write_err("the path does not name a file".into()));
    }

    // Header: safetensors' own layout (descending dtype alignment, then name), so that
    // memory-mapped readers find every tensor aligned.
    let mut items: Vec<(&String, &Tensor, StDtype)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if name == "__metadata__" {
            return Err(write_err(
                "`__metadata__` is reserved and cannot name a tensor".into(),
            ));
        }
        let st = storable_dtype(t.dtype()).ok_or_else(|| {
            write_err(format!(
                "tensor `{name}` has dtype {}, which cannot be saved",
                t.dtype().as_str()
            ))
        })?;
        items.push((name, t, st));
    }
    items.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(b.0)));
    let mut infos = Vec::with_capacity(items.len());
    let mut offset = 0usize;
    for (name, t, st) in &items {
        let len = t.elem_count() * t.dtype().size_in_bytes();
        infos.push((
            (*name).clone(),
            TensorInfo {
                dtype: *st,
                shape: t.dims().to_vec(),
                data_offsets: (offset, offset + len),
            },
        ));
        offset += len;
    }
    let meta = if metadata.is_empty() {
        None
    } else {
        Some(metadata.clone())
    };
    let meta = Metadata::new(meta, infos).map_err(|e| write_err(e.to_string()))?;
    let mut header = serde_json::to_string(&meta)
        .map_err(|e| write_err(e.to_string()))?
        .into_bytes();
    header.resize(header.len().next_multiple_of(LEN_PREFIX), b' ');

    let io = |e: seqlab_io::IoError| {
        write_err(match e.action() {
            seqlab_io::Action::Create => format!(
                "cannot create a temporary file in {}: {}",
                seqlab_io::parent_dir(path).display(),
                e.io_error()
            ),
            _ => e.io_error().to_string(),
        })
    };
    // Dropping `file` on any error below removes the temporary file.
    let mut file = seqlab_io::AtomicFile::create(path).map_err(io)?;
    file.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    file.write_all(&header).map_err(io)?;
    for (_, t, _) in &items {
        file.write_all(&tensor_bytes(t)?).map_err(io)?;
    }
    file.commit().map_err(io)
}

/// The safetensors dtype for a candle dtype that can be written, or `None` (candle's
/// placeholder sub-byte dtypes, and fp8, which seqlab does not write).
fn storable_dtype(d: DType) -> Option<StDtype> {
    match d {
        DType::U8 => Some(StDtype::U8),
        DType::U32 => Some(StDtype::U32),
        DType::I16 => Some(StDtype::I16),
        DType::I32 => Some(StDtype::I32),
        DType::I64 => Some(StDtype::I64),
        DType::BF16 => Some(StDtype::BF16),
        DType::F16 => Some(StDtype::F16),
        DType::F32 => Some(StDtype::F32),
        DType::F64 => Some(StDtype::F64),
        _ => None,
    }
}

/// Little-endian bytes of `t` in row-major order (copied to the host when on a GPU).
fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
    fn le<T, const N: usize>(v: Vec<T>, f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.into_iter().flat_map(f).collect()
    }
    let flat = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::U8 => flat.to_vec1::<u8>()?,
        DType::U32 => le(flat.to_vec1::<u32>()?, u32::to_le_bytes),
        DType::I16 => le(flat.to_vec1::<i16>()?, i16::to_le_bytes),
        DType::I32 => le(flat.to_vec1::<i32>()?, i32::to_le_bytes),
        DType::I64 => le(flat.to_vec1::<i64>()?, i64::to_le_bytes),
        DType::BF16 => le(flat.to_vec1::<half::bf16>()?, half::bf16::to_le_bytes),
        DType::F16 => le(flat.to_vec1::<half::f16>()?, half::f16::to_le_bytes),
        DType::F32 => le(flat.to_vec1::<f32>()?, f32::to_le_bytes),
        DType::F64 => le(flat.to_vec1::<f64>()?, f64::to_le_bytes),
        // `storable_dtype` filtered the rest out before anything was written.
        other => unreachable!("dtype {} was checked to be storable", other.as_str()),
    })
}
