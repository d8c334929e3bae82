//! The bounded GGUF reader. It parses the header (metadata and tensor infos) from a
//! byte slice — in practice a memory map, so only the header pages are ever touched —
//! and proves every tensor's data lies inside the file, aligned and without overlap.
//!
//! Discipline (after huggingface/safetensors and candle's gguf_file.rs, minus their
//! gaps): every count is checked against the bytes that remain *before* anything is
//! allocated, every size is computed with checked arithmetic, slices are taken with
//! `.get()`, strings must be valid UTF-8, and keys and tensors keep file order.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::error::GgufError;
use super::types::{GgmlType, TypeLookup};
use super::value::{Array, Value, ValueType};

/// "GGUF" as the first four bytes.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: u32 = 4;
/// ggml's `GGML_MAX_NAME` is 64 including the terminating NUL; llama.cpp rejects longer names.
pub const MAX_TENSOR_NAME_BYTES: u64 = 63;
/// Upper bound on a single string (key or value); far above any real vocabulary entry or template.
pub const MAX_STRING_BYTES: u64 = 256 << 20;
/// Upper bound on metadata entries and on tensors; real models have hundreds to a few thousand.
pub const MAX_ENTRIES: u64 = 1 << 24;
/// Initial capacity cap: vectors grow with what is actually parsed, never with a claimed count.
const PREALLOCATE_AT_MOST: u64 = 4096;

/// One metadata key with its value, as stored in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct MetadataEntry {
    pub key: String,
    pub value: Value,
    /// Absolute offset of the key's length prefix.
    pub offset: u64,
}

/// One tensor's description from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ty: GgmlType,
    /// Dimensions in ggml order: `dims[0]` is `ne[0]`, the contiguous (row) dimension.
    pub dims: Vec<u64>,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
    /// Number of elements (product of dims).
    pub elements: u64,
    /// Absolute offset of this tensor's info record in the header.
    pub info_offset: u64,
}

/// A parsed and validated GGUF header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub version: u32,
    pub metadata: Vec<MetadataEntry>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the data section (end of header, padded to the alignment).
    pub data_offset: u64,
    /// Length of the file the header was validated against.
    pub file_len: u64,
    key_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
}

impl Header {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|e| &e.value)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// `general.architecture`, when present.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// Absolute file byte range of a tensor's data (validated at parse time).
    pub fn data_range(&self, tensor: &TensorInfo) -> Range<u64> {
        let start = self.data_offset + tensor.offset;
        start..start + tensor.size
    }
}

/// A GGUF file opened through a read-only memory map.
pub struct GgufFile {
    path: PathBuf,
    map: Option<Mmap>,
    /// Every page is mapped for the forward pass ([`GgufFile::make_resident`]); `release`
    /// leaves them.
    resident: bool,
    pub header: Header,
}

/// Whether `bytes` is at most half of `MemAvailable` in `/proc/meminfo` (Linux only).
fn memory_to_spare(bytes: usize) -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else {
        return false;
    };
    let available_kib = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        });
    available_kib.is_some_and(|kib| (bytes as u64) <= kib.saturating_mul(1024) / 2)
}

/// Opening a file: I/O or format problems, always naming the file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    // The cause is part of the message (not a `source`), so it is printed exactly once.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Format { path: PathBuf, error: GgufError },
}

impl OpenError {
    /// The format error, if this is one.
    pub fn format_error(&self) -> Option<&GgufError> {
        match self {
            OpenError::Format { error, .. } => Some(error),
            OpenError::Io { .. } => None,
        }
    }
}

impl GgufFile {
    /// Map `path` read-only and parse its header. The data is never copied.
    pub fn open(path: &Path) -> Result<GgufFile, OpenError> {
        let io_err = |error| OpenError::Io {
            path: path.to_path_buf(),
            error,
        };
        let (file, len) =
            crate::input::open_regular(path).map_err(|e| io_err(e.problem.into_io()))?;
        // An empty file cannot be mapped; it is simply too short to be GGUF.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only. If another process truncates the file while
            // we hold it, reads may fault (SIGBUS); that is the documented limit of
            // zero-copy access and no worse than any mmap-based reader (llama.cpp's included).
            let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
            // Where the kernel and file system allow it (Linux; ext4 and tmpfs hold large
            // folios), the page cache reads this file into 2 MiB pages and maps them
            // whole: the forward pass reads every weight once per token, and through
            // 4 KiB pages that is a TLB miss every 4 KiB. Pages already cached keep their
            // size. A hint: failure changes nothing.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            Some(map)
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let header = parse_header(bytes).map_err(|error| OpenError::Format {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            resident: false,
            header,
        })
    }

    /// Map every page of the file now (Linux `MADV_POPULATE_READ`), before the forward
    /// pass reads it: its first token otherwise takes a page fault every page, and the
    /// pages are kept mapped afterwards ([`GgufFile::release`] does nothing). Nothing is
    /// copied: the pages are the page cache's, in 2 MiB pages where [`GgufFile::open`]'s
    /// hint took (`docs/performance.md`).
    ///
    /// Only when the file takes at most half of the memory the kernel reports available
    /// (a model that does not fit stays streamed through the map as before).
    pub fn make_resident(&mut self) {
        let Some(map) = &self.map else { return };
        if self.resident || !memory_to_spare(map.len()) {
            return;
        }
        #[cfg(target_os = "linux")]
        if map.advise(memmap2::Advice::PopulateRead).is_ok() {
            self.resident = true;
        }
    }

    /// Whether [`GgufFile::make_resident`] mapped the file.
    pub fn is_resident(&self) -> bool {
        self.resident
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Tell the kernel we are done with a byte range for now: its pages leave this
    /// process's resident set (they stay in the page cache and are re-read on access).
    /// Keeps memory bounded while streaming over a model far larger than RAM.
    pub fn release(&self, range: Range<u64>) {
        if self.resident {
            // Kept mapped for the forward pass.
            return;
        }
        let (Some(map), Ok(start), Ok(end)) = (
            self.map.as_ref(),
            usize::try_from(range.start),
            usize::try_from(range.end),
        ) else {
            return;
        };
        if start < end && end <= map.len() {
            // SAFETY: the map is read-only and file-backed; after MADV_DONTNEED a later
            // access re-reads the same file bytes, so no reference observes a change.
            #[cfg(unix)]
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }

    /// A tensor's data, zero copy. Its range was proven in bounds when the header was parsed.
    pub fn tensor_data(&self, tensor: &TensorInfo) -> &[u8] {
        let range = self.header.data_range(tensor);
        let (Ok(start), Ok(end)) = (usize::try_from(range.start), usize::try_from(range.end))
        else {
            return &[];
        };
        self.bytes().get(start..end).unwrap_or(&[])
    }
}

/// Parse and validate a GGUF header from the bytes of a whole file.
pub fn parse_header(bytes: &[u8]) -> Result<Header, GgufError> {
    let mut cur = Cursor { buf: bytes, pos: 0 };

    let version = read_magic_and_version(&mut cur)?;

    let n_tensors_offset = cur.offset();
    let n_tensors = cur.u64(|| "the tensor count".into())?;
    let n_kv_offset = cur.offset();
    let n_kv = cur.u64(|| "the metadata count".into())?;
    // Each key/value takes at least 8 (key length) + 4 (type) + 1 (a u8 value) bytes;
    // each tensor info at least 8 (name length) + 4 (dims) + 4 (type) + 8 (offset).
    cur.check_count(n_kv_offset, n_kv, 13, MAX_ENTRIES, || {
        "the metadata count".into()
    })?;
    cur.check_count(n_tensors_offset, n_tensors, 24, MAX_ENTRIES, || {
        "the tensor count".into()
    })?;

    let (metadata, key_index) = read_metadata(&mut cur, n_kv)?;
    let alignment = match key_index
        .get("general.alignment")
        .and_then(|&i| metadata.get(i))
    {
        None => DEFAULT_ALIGNMENT,
        Some(entry) => validate_alignment(entry)?,
    };
    let (tensors, tensor_index) = read_tensor_infos(&mut cur, n_tensors, alignment)?;

    let header_end = cur.offset();
    let data_offset = align_up(header_end, alignment).ok_or_else(|| GgufError::Overflow {
        offset: header_end,
        what: "padding the header to the alignment".into(),
    })?;
    let file_len = bytes.len() as u64;
    check_tensor_layout(&tensors, data_offset, file_len)?;

    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
        file_len,
        key_index,
        tensor_index,
    })
}

/// The magic, then a version this reader supports (2 or 3); a byte-swapped version
/// means a big-endian file.
fn read_magic_and_version(cur: &mut Cursor<'_>) -> Result<u32, GgufError> {
    let magic = cur.take(4, || "the magic".into())?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic {
            found: describe_magic(magic),
        });
    }
    let version = cur.u32(|| "the version".into())?;
    match version {
        2 | 3 => Ok(version),
        1 => Err(GgufError::UnsupportedVersion {
            version,
            reason: "GGUF v1 (32-bit counts) is obsolete; only v2 and v3 are read",
        }),
        v if v & 0xffff == 0 && (1..=3).contains(&v.swap_bytes()) => Err(GgufError::BigEndian {
            version: v.swap_bytes(),
        }),
        _ => Err(GgufError::UnsupportedVersion {
            version,
            reason: "only v2 and v3 are read",
        }),
    }
}

/// `n_kv` metadata entries in file order, and key -> index; keys must be non-empty and
/// unique.
fn read_metadata(
    cur: &mut Cursor<'_>,
    n_kv: u64,
) -> Result<(Vec<MetadataEntry>, HashMap<String, usize>), GgufError> {
    let mut metadata: Vec<MetadataEntry> = Vec::with_capacity(prealloc(n_kv));
    let mut key_index: HashMap<String, usize> = HashMap::with_capacity(prealloc(n_kv));
    for i in 0..n_kv {
        let offset = cur.offset();
        let key = cur.string(|| format!("metadata key #{i}"))?;
        if key.is_empty() {
            return Err(GgufError::EmptyKey { offset });
        }
        if let Some(&first) = key_index.get(&key) {
            let first_offset = metadata.get(first).map_or(0, |e| e.offset);
            return Err(GgufError::DuplicateKey {
                offset,
                key,
                first_offset,
            });
        }
        let value = read_value(cur, &key)?;
        key_index.insert(key.clone(), metadata.len());
        metadata.push(MetadataEntry { key, value, offset });
    }
    Ok((metadata, key_index))
}

/// `n_tensors` tensor infos in file order, and name -> index; each data offset must be
/// a multiple of `alignment` and names unique.
fn read_tensor_infos(
    cur: &mut Cursor<'_>,
    n_tensors: u64,
    alignment: u64,
) -> Result<(Vec<TensorInfo>, HashMap<String, usize>), GgufError> {
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(prealloc(n_tensors));
    let mut tensor_index: HashMap<String, usize> = HashMap::with_capacity(prealloc(n_tensors));
    for i in 0..n_tensors {
        let info = read_tensor_info(cur, i)?;
        if info.offset % alignment != 0 {
            return Err(GgufError::Misaligned {
                offset: info.info_offset,
                name: info.name,
                data_offset: info.offset,
                alignment,
            });
        }
        if tensor_index.contains_key(&info.name) {
            return Err(GgufError::DuplicateTensor {
                offset: info.info_offset,
                name: info.name,
            });
        }
        tensor_index.insert(info.name.clone(), tensors.len());
        tensors.push(info);
    }
    Ok((tensors, tensor_index))
}

fn prealloc(count: u64) -> usize {
    count.min(PREALLOCATE_AT_MOST) as usize
}

fn describe_magic(magic: &[u8]) -> String {
    if magic.iter().all(|b| b.is_ascii_graphic()) {
        format!("{:?}", String::from_utf8_lossy(magic))
    } else {
        let hex: Vec<String> = magic.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

/// Round `value` up to a multiple of `alignment` (a power of two, non-zero).
pub fn align_up(value: u64, alignment: u64) -> Option<u64> {
    let rem = value % alignment;
    if rem == 0 {
        Some(value)
    } else {
        value.checked_add(alignment - rem)
    }
}

fn validate_alignment(entry: &MetadataEntry) -> Result<u64, GgufError> {
    let problem = match entry.value {
        Value::U32(0) => "is 0; it must be a non-zero power of two".to_string(),
        Value::U32(a) if !a.is_power_of_two() => {
            format!("is {a}; it must be a power of two")
        }
        Value::U32(a) => return Ok(a.into()),
        ref other => format!("has type {}; it must be u32", other.type_name()),
    };
    Err(GgufError::BadAlignment {
        offset: entry.offset,
        problem,
    })
}

fn read_value(cur: &mut Cursor<'_>, key: &str) -> Result<Value, GgufError> {
    let type_offset = cur.offset();
    let type_id = cur.u32(|| format!("the value type of key {key:?}"))?;
    let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
        offset: type_offset,
        key: key.into(),
        type_id,
    })?;
    if ty != ValueType::Array {
        return read_scalar(cur, ty, key);
    }
    let elem_offset = cur.offset();
    let elem_id = cur.u32(|| format!("the element type of array {key:?}"))?;
    let elem = ValueType::from_id(elem_id).ok_or_else(|| GgufError::UnknownValueType {
        offset: elem_offset,
        key: key.into(),
        type_id: elem_id,
    })?;
    if elem == ValueType::Array {
        return Err(GgufError::NestedArray {
            offset: elem_offset,
            key: key.into(),
        });
    }
    let len_offset = cur.offset();
    let len = cur.u64(|| format!("the length of array {key:?}"))?;
    cur.check_count(len_offset, len, elem.min_encoded_size(), u64::MAX, || {
        format!("the length of array {key:?}")
    })?;
    read_array(cur, elem, len, key).map(Value::Array)
}

/// Read `len` fixed-width little-endian numbers (the count was already checked against
/// the remaining bytes, so the byte total cannot overflow).
fn read_numbers<T, const N: usize>(
    cur: &mut Cursor<'_>,
    len: u64,
    key: &str,
    decode: fn([u8; N]) -> T,
) -> Result<Vec<T>, GgufError> {
    let bytes = cur.take(len * N as u64, || format!("the elements of array {key:?}"))?;
    Ok(bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut raw = [0u8; N];
            raw.copy_from_slice(chunk);
            decode(raw)
        })
        .collect())
}

fn read_array(
    cur: &mut Cursor<'_>,
    elem: ValueType,
    len: u64,
    key: &str,
) -> Result<Array, GgufError> {
    Ok(match elem {
        ValueType::U8 => Array::U8(read_numbers(cur, len, key, u8::from_le_bytes)?),
        ValueType::I8 => Array::I8(read_numbers(cur, len, key, i8::from_le_bytes)?),
        ValueType::U16 => Array::U16(read_numbers(cur, len, key, u16::from_le_bytes)?),
        ValueType::I16 => Array::I16(read_numbers(cur, len, key, i16::from_le_bytes)?),
        ValueType::U32 => Array::U32(read_numbers(cur, len, key, u32::from_le_bytes)?),
        ValueType::I32 => Array::I32(read_numbers(cur, len, key, i32::from_le_bytes)?),
        ValueType::F32 => Array::F32(read_numbers(cur, len, key, f32::from_le_bytes)?),
        ValueType::U64 => Array::U64(read_numbers(cur, len, key, u64::from_le_bytes)?),
        ValueType::I64 => Array::I64(read_numbers(cur, len, key, i64::from_le_bytes)?),
        ValueType::F64 => Array::F64(read_numbers(cur, len, key, f64::from_le_bytes)?),
        ValueType::Bool => {
            let start = cur.offset();
            let bytes = cur.take(len, || format!("the elements of array {key:?}"))?;
            let mut out = Vec::with_capacity(bytes.len());
            for (i, &b) in bytes.iter().enumerate() {
                out.push(decode_bool(b, start + i as u64, key)?);
            }
            Array::Bool(out)
        }
        ValueType::String => {
            let mut out = Vec::with_capacity(prealloc(len));
            for i in 0..len {
                out.push(cur.string(|| format!("element {i} of array {key:?}"))?);
            }
            Array::String(out)
        }
        ValueType::Array => {
            return Err(GgufError::NestedArray {
                offset: cur.offset(),
                key: key.into(),
            })
        }
    })
}

fn decode_bool(byte: u8, offset: u64, key: &str) -> Result<bool, GgufError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(GgufError::InvalidBool {
            offset,
            key: key.into(),
            byte,
        }),
    }
}

fn read_scalar(cur: &mut Cursor<'_>, ty: ValueType, key: &str) -> Result<Value, GgufError> {
    let what = || format!("the value of key {key:?}");
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.array::<1>(what)?[0]),
        ValueType::I8 => Value::I8(i8::from_le_bytes(cur.array::<1>(what)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array(what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array(what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(cur.array(what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.array(what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.array(what)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(cur.array(what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array(what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array(what)?)),
        ValueType::Bool => {
            let offset = cur.offset();
            Value::Bool(decode_bool(cur.array::<1>(what)?[0], offset, key)?)
        }
        ValueType::String => Value::String(cur.string(what)?),
        ValueType::Array => {
            return Err(GgufError::NestedArray {
                offset: cur.offset(),
                key: key.into(),
            })
        }
    })
}

fn read_tensor_info(cur: &mut Cursor<'_>, index: u64) -> Result<TensorInfo, GgufError> {
    let info_offset = cur.offset();
    let name = cur.string(|| format!("the name of tensor #{index}"))?;
    if name.len() as u64 > MAX_TENSOR_NAME_BYTES {
        return Err(GgufError::NameTooLong {
            offset: info_offset,
            len: name.len() as u64,
            name,
            max: MAX_TENSOR_NAME_BYTES,
        });
    }
    let dims_offset = cur.offset();
    let n_dims = cur.u32(|| format!("the dimension count of tensor {name:?}"))?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            offset: dims_offset,
            name,
            n_dims,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    let mut elements: u64 = 1;
    for index in 0..n_dims as usize {
        let offset = cur.offset();
        let value = cur.u64(|| format!("dimension {index} of tensor {name:?}"))?;
        if value > i64::MAX as u64 {
            return Err(GgufError::BadDim {
                offset,
                name,
                index,
                value,
            });
        }
        elements = match elements.checked_mul(value) {
            Some(e) if e <= i64::MAX as u64 => e,
            _ => {
                return Err(GgufError::Overflow {
                    offset,
                    what: format!("the element count of tensor {name:?} exceeds 2^63-1"),
                })
            }
        };
        dims.push(value);
    }
    let type_offset = cur.offset();
    let type_id = cur.u32(|| format!("the type of tensor {name:?}"))?;
    let ty = match GgmlType::lookup(type_id) {
        TypeLookup::Known(ty) => ty,
        TypeLookup::Removed(old) => {
            return Err(GgufError::RemovedTensorType {
                offset: type_offset,
                name,
                type_id,
                old,
            })
        }
        TypeLookup::Unknown => {
            return Err(GgufError::UnknownTensorType {
                offset: type_offset,
                name,
                type_id,
            })
        }
    };
    let ne0 = dims.first().copied().unwrap_or(1);
    if ty != GgmlType::I2S && ne0 % ty.block_size() != 0 {
        return Err(GgufError::BadShape {
            offset: info_offset,
            detail: format!(
                "ne[0] = {ne0} is not a multiple of {ty}'s block size {}",
                ty.block_size()
            ),
            name,
        });
    }
    let size = ty
        .tensor_bytes(elements)
        .ok_or_else(|| GgufError::BadShape {
            offset: info_offset,
            detail: format!("{elements} elements do not make a whole {ty} tensor"),
            name: name.clone(),
        })?;
    let offset = cur.u64(|| format!("the data offset of tensor {name:?}"))?;
    Ok(TensorInfo {
        name,
        ty,
        dims,
        offset,
        size,
        elements,
        info_offset,
    })
}

/// Every tensor's data must lie inside the file, and no two may overlap.
fn check_tensor_layout(
    tensors: &[TensorInfo],
    data_offset: u64,
    file_len: u64,
) -> Result<(), GgufError> {
    let mut ranges: Vec<(u64, u64, usize)> = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.size));
        let (Some(start), Some(end)) = (start, end) else {
            return Err(GgufError::Overflow {
                offset: t.info_offset,
                what: format!("the data range of tensor {:?} overflows u64", t.name),
            });
        };
        if end > file_len {
            return Err(GgufError::OutOfBounds {
                name: t.name.clone(),
                start,
                end,
                file_len,
            });
        }
        if t.size > 0 {
            ranges.push((start, end, i));
        }
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.0 < a.1 {
            let name = |i: usize| tensors.get(i).map(|t| t.name.clone()).unwrap_or_default();
            return Err(GgufError::Overlap {
                first: name(a.2),
                first_start: a.0,
                first_end: a.1,
                second: name(b.2),
                second_start: b.0,
            });
        }
    }
    Ok(())
}

/// A position in the header bytes; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos.min(self.buf.len())) as u64
    }

    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], GgufError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(GgufError::Truncated {
                offset: self.offset(),
                what: what(),
                needed: n,
                remaining,
            });
        }
        // n <= remaining <= usize::MAX, so these conversions and additions cannot fail.
        let end = self.pos + n as usize;
        let slice = self.buf.get(self.pos..end).unwrap_or(&[]);
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(
        &mut self,
        what: impl FnOnce() -> String,
    ) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string.
    fn string(&mut self, what: impl Fn() -> String) -> Result<String, GgufError> {
        let len_offset = self.offset();
        let len = self.u64(|| format!("the length of {}", what()))?;
        if len > MAX_STRING_BYTES {
            return Err(GgufError::LimitExceeded {
                offset: len_offset,
                what: format!("the length of {}", what()),
                value: len,
                limit: MAX_STRING_BYTES,
            });
        }
        let start = self.offset();
        let bytes = self.take(len, &what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(GgufError::InvalidUtf8 {
                offset: start + e.valid_up_to() as u64,
                what: what(),
            }),
        }
    }

    /// Reject a claimed count that the remaining bytes cannot hold, before allocating.
    fn check_count(
        &self,
        offset: u64,
        count: u64,
        min_size: u64,
        limit: u64,
        what: impl Fn() -> String,
    ) -> Result<(), GgufError> {
        if count > limit {
            return Err(GgufError::LimitExceeded {
                offset,
                what: what(),
                value: count,
                limit,
            });
        }
        let remaining = self.remaining();
        match count.checked_mul(min_size) {
            Some(total) if total <= remaining => Ok(()),
            _ => Err(GgufError::CountTooLarge {
                offset,
                what: what(),
                count,
                remaining,
                min_size,
            }),
        }
    }
}
