//! [`GgufFile`]: a GGUF file (llama.cpp's model format, spec: ggml `docs/gguf.md`) opened,
//! memory-mapped and checked before any tensor is read.
//!
//! Layout of a GGUF file (all little-endian):
//!
//! ```text
//! "GGUF" | version u32 (1, 2, 3) | tensor count | metadata count      (counts u64; u32 in v1)
//! metadata: key string, value type u32, value            (strings: u64 length + UTF-8 bytes)
//! tensor infos: name, n_dims u32, dims (innermost first), ggml type u32, offset u64
//! padding to `general.alignment` (default 32)
//! tensor data: each tensor at data start + its offset, offsets multiples of the alignment
//! ```
//!
//! The header and metadata are parsed by candle's [`gguf_file::Content::read`] (which bounds
//! every length against the file size); this module adds what it leaves out, so that a corrupt
//! or truncated file yields one line naming the problem and never a panic or an out-of-bounds
//! read:
//! - the magic and version are checked first (`not a GGUF file`, `unsupported GGUF version`);
//! - a header or metadata cut short is reported as a truncated file;
//! - every tensor's data extent (element count / block size × block bytes, at data start +
//!   offset) is checked against the file length at open, so a truncated download is reported
//!   with the first tensor whose data runs past the end, before any weight is read;
//! - offsets must be multiples of the alignment (which also keeps candle's block casts aligned);
//! - a missing tensor or one of another shape is named when it is asked for.
//!
//! Dimensions are given outermost first, as candle and PyTorch write them (GGUF stores them
//! innermost first): a linear weight is (out, in).

use crate::error::{LmError, Result};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{ggml_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use memmap2::Mmap;
use seqlab_tensor::TensorError;
use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Where one tensor's data lies in the file, checked at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// ggml element / block type.
    pub dtype: GgmlDType,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// First byte of the data in the file.
    pub start: usize,
    /// Bytes of data: elements / block size × bytes per block.
    pub len: usize,
}

/// An open, validated GGUF file: its metadata, its tensor table and a read-only memory map of
/// its bytes. Tensors are read on demand with [`GgufFile::qtensor`].
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    content: gguf_file::Content,
    tensors: HashMap<String, GgufTensorInfo>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("bytes", &self.map.len())
            .field("metadata", &self.content.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

/// The one-line error for something wrong in the file's header, metadata or tensor table.
pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> LmError {
    LmError::Gguf {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The one-line error for a file that ends before the data it announces.
fn truncated(path: &Path, detail: impl Into<String>) -> LmError {
    LmError::Tensor(TensorError::CheckpointTruncated {
        path: path.to_path_buf(),
        detail: detail.into(),
    })
}

/// The ggml type name as llama.cpp prints it (`Q4_1`, `F32`, ...).
pub fn dtype_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// Name of a metadata value's type, for error messages.
fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::U8(_) | Value::U16(_) | Value::U32(_) | Value::U64(_) => "an unsigned integer",
        Value::I8(_) | Value::I16(_) | Value::I32(_) | Value::I64(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::Bool(_) => "a bool",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
    }
}

/// A metadata integer of any width and sign as i128 (no value of any GGUF integer type is lost).
pub(crate) fn value_int(v: &Value) -> Option<i128> {
    Some(match *v {
        Value::U8(x) => x.into(),
        Value::U16(x) => x.into(),
        Value::U32(x) => x.into(),
        Value::U64(x) => x.into(),
        Value::I8(x) => x.into(),
        Value::I16(x) => x.into(),
        Value::I32(x) => x.into(),
        Value::I64(x) => x.into(),
        _ => return None,
    })
}

impl GgufFile {
    /// Opens `path`, memory-maps it and checks its header, metadata and tensor table (module
    /// docs): every later read of a listed tensor stays inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LmError::FileNotFound {
                    what: "GGUF model file".into(),
                    path: path.to_path_buf(),
                }
            } else {
                LmError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        // SAFETY: the map is read-only and private to this process, and every slice taken from
        // it is bounds-checked against its length. A file truncated by another program while
        // mapped would fault on access, the documented limit of memory-mapped I/O.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| LmError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (content, tensors) = parse(path, &map)?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
            content,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File size in bytes.
    pub fn file_len(&self) -> usize {
        self.map.len()
    }

    /// GGUF format version (1, 2 or 3).
    pub fn version(&self) -> u32 {
        match self.content.magic {
            gguf_file::VersionedMagic::GgufV1 => 1,
            gguf_file::VersionedMagic::GgufV2 => 2,
            gguf_file::VersionedMagic::GgufV3 => 3,
        }
    }

    /// All metadata, key → value.
    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    /// The candle view of the header (metadata, tensor infos, data offset).
    pub fn content(&self) -> &gguf_file::Content {
        &self.content
    }

    /// Metadata value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn wrong_type(&self, key: &str, want: &str, v: &Value) -> LmError {
        corrupt(
            &self.path,
            format!(
                "metadata key `{key}` must be {want}, found {}",
                value_kind(v)
            ),
        )
    }

    fn missing_key(&self, key: &str) -> LmError {
        corrupt(&self.path, format!("missing metadata key `{key}`"))
    }

    /// Non-negative integer `key` (any GGUF integer type) if present.
    pub fn get_usize_opt(&self, key: &str) -> Result<Option<usize>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let n = value_int(v).ok_or_else(|| self.wrong_type(key, "an integer", v))?;
        usize::try_from(n).map(Some).map_err(|_| {
            corrupt(
                &self.path,
                format!("metadata key `{key}` must be ≥ 0 and fit in memory, found {n}"),
            )
        })
    }

    /// Non-negative integer `key`; missing is an error naming it.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        self.get_usize_opt(key)?
            .ok_or_else(|| self.missing_key(key))
    }

    /// Number `key` (float or integer) if present.
    pub fn get_f64_opt(&self, key: &str) -> Result<Option<f64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match *v {
            Value::F32(x) => Ok(Some(x.into())),
            Value::F64(x) => Ok(Some(x)),
            _ => match value_int(v) {
                Some(n) => Ok(Some(n as f64)),
                None => Err(self.wrong_type(key, "a number", v)),
            },
        }
    }

    /// String `key` if present.
    pub fn get_str_opt(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// String `key`; missing is an error naming it.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get_str_opt(key)?.ok_or_else(|| self.missing_key(key))
    }

    /// Bool `key` if present.
    pub fn get_bool_opt(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "a bool", v)),
        }
    }

    /// Array `key` if present.
    pub fn get_array_opt(&self, key: &str) -> Result<Option<&[Value]>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.wrong_type(key, "an array", v)),
        }
    }

    /// Array of strings `key` if present; a non-string element is an error naming its index.
    pub fn get_str_array_opt(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(a) = self.get_array_opt(key)? else {
            return Ok(None);
        };
        a.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                v => Err(corrupt(
                    &self.path,
                    format!(
                        "metadata array `{key}` must hold strings, element {i} is {}",
                        value_kind(v)
                    ),
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// The tensor table, name → checked data extent.
    pub fn tensors(&self) -> &HashMap<String, GgufTensorInfo> {
        &self.tensors
    }

    /// The tensor `name`, if listed.
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.get(name)
    }

    /// Reads tensor `name`, checking that it is listed and has `shape` (outermost first); the
    /// error names the tensor. Quantized types stay quantized (for [`candle_core::quantized::QMatMul`]).
    pub fn qtensor(&self, name: &str, shape: &[usize]) -> Result<QTensor> {
        let info = self.tensors.get(name).ok_or_else(|| {
            LmError::Tensor(TensorError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
                expected: format!("shape {shape:?}"),
            })
        })?;
        if info.shape != shape {
            return Err(LmError::Tensor(TensorError::ShapeMismatch {
                path: self.path.clone(),
                name: name.to_string(),
                found: info.shape.clone(),
                expected: shape.to_vec(),
            }));
        }
        // The extent was checked against the file length at open; `get` keeps that a check.
        let bytes = self
            .map
            .get(info.start..info.start + info.len)
            .ok_or_else(|| truncated(&self.path, format!("tensor `{name}` is past the end")))?;
        ggml_file::qtensor_from_ggml(info.dtype, bytes, info.shape.clone(), &Device::Cpu).map_err(
            |e| {
                corrupt(
                    &self.path,
                    format!(
                        "tensor `{name}` ({} {:?}) cannot be read: {e}",
                        dtype_name(info.dtype),
                        info.shape
                    ),
                )
            },
        )
    }

    /// Tensor `name` (checked as in [`GgufFile::qtensor`]) dequantized to a dense f32 tensor on
    /// the CPU with candle's [`QTensor::dequantize`] (e.g. Q4_1: x = d·q + m per block).
    pub fn dequantized(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        Ok(self.qtensor(name, shape)?.dequantize(&Device::Cpu)?)
    }
}

/// Checks the magic and version, runs candle's header parser, then checks every tensor's
/// extent (module docs).
fn parse(
    path: &Path,
    bytes: &[u8],
) -> Result<(gguf_file::Content, HashMap<String, GgufTensorInfo>)> {
    let len = bytes.len();
    if len < 4 {
        return Err(truncated(
            path,
            format!("the file has {len} bytes, fewer than the 4-byte GGUF magic"),
        ));
    }
    if &bytes[..4] != GGUF_MAGIC {
        let shown: String = bytes[..4]
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        return Err(corrupt(
            path,
            format!(
                "not a GGUF file: it starts with bytes {:02x} {:02x} {:02x} {:02x} (\"{shown}\"), \
                 expected \"GGUF\"",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let Some(version) = bytes.get(4..8) else {
        return Err(truncated(
            path,
            format!("the file has {len} bytes and ends inside the GGUF version field"),
        ));
    };
    let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
    let header_len = match version {
        1 => 16,
        2 | 3 => 24,
        v => {
            return Err(corrupt(
                path,
                format!("unsupported GGUF version {v} (versions 1, 2 and 3 are read)"),
            ))
        }
    };
    if len < header_len {
        return Err(truncated(
            path,
            format!(
                "the file has {len} bytes, fewer than the {header_len}-byte GGUF v{version} header"
            ),
        ));
    }

    // candle 0.11.1 divides by `general.alignment` unchecked (a 0 panics); keep any such panic
    // inside this call and report it as a corrupt header.
    let read = std::panic::catch_unwind(|| gguf_file::Content::read(&mut Cursor::new(bytes)));
    let content = match read {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let msg = e.to_string();
            let msg = msg.lines().next().unwrap_or("").trim().to_string();
            return Err(
                if msg.contains("remaining") || msg.contains("fill whole buffer") {
                    truncated(
                        path,
                        format!("the header/metadata ends before its last entry ({msg})"),
                    )
                } else {
                    corrupt(path, format!("cannot read the GGUF header/metadata: {msg}"))
                },
            );
        }
        Err(_) => {
            return Err(corrupt(
                path,
                "cannot read the GGUF header/metadata: the reader failed on an invalid value \
                 (e.g. `general.alignment` = 0)",
            ))
        }
    };

    let alignment = match content.metadata.get("general.alignment") {
        None => gguf_file::DEFAULT_ALIGNMENT as i128,
        Some(v) => value_int(v).unwrap_or(-1),
    };
    if alignment <= 0 || alignment % 8 != 0 {
        return Err(corrupt(
            path,
            "metadata key `general.alignment` must be a positive multiple of 8",
        ));
    }
    let alignment = alignment as u64;
    let data_start = content.tensor_data_offset;
    if !content.tensor_infos.is_empty() && data_start > len as u64 {
        return Err(truncated(
            path,
            format!("tensor data should start at byte {data_start}, but the file has {len} bytes"),
        ));
    }

    // Check tensors in file order, so a truncation names the first tensor it cuts.
    let mut infos: Vec<(&String, &gguf_file::TensorInfo)> = content.tensor_infos.iter().collect();
    infos.sort_by_key(|(name, t)| (t.offset, (*name).clone()));
    let mut tensors = HashMap::with_capacity(infos.len());
    for (name, t) in infos {
        let shape = t.shape.dims().to_vec();
        let dtype = t.ggml_dtype;
        let what = || format!("tensor `{name}` ({} {shape:?})", dtype_name(dtype));
        let elems = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| corrupt(path, format!("{}: too many elements", what())))?;
        let block = dtype.block_size();
        if elems % block != 0 {
            return Err(corrupt(
                path,
                format!(
                    "{}: {elems} elements are not a whole number of {}-element blocks",
                    what(),
                    block
                ),
            ));
        }
        let nbytes = (elems / block)
            .checked_mul(dtype.type_size())
            .ok_or_else(|| corrupt(path, format!("{}: too many bytes", what())))?;
        if t.offset % alignment != 0 {
            return Err(corrupt(
                path,
                format!(
                    "{}: data offset {} is not a multiple of the alignment {alignment}",
                    what(),
                    t.offset
                ),
            ));
        }
        let start = data_start.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(nbytes as u64));
        match (start, end) {
            (Some(s), Some(e)) if e <= len as u64 => {
                tensors.insert(
                    name.clone(),
                    GgufTensorInfo {
                        name: name.clone(),
                        dtype,
                        shape,
                        start: s as usize,
                        len: nbytes,
                    },
                );
            }
            _ => {
                return Err(truncated(
                    path,
                    format!(
                    "{} needs {nbytes} bytes at byte {}, past the end of the file ({len} bytes)",
                    what(),
                    data_start.saturating_add(t.offset)
                ),
                ))
            }
        }
    }
    Ok((content, tensors))
}
