//! The GGUF v3 writer: deterministic bytes (same inputs, same file), alignment padding
//! after every tensor as llama.cpp and gguf-py write it, and tensor data pulled from a
//! callback one tensor at a time so a model never has to sit in memory.
//!
//! The writer validates what it is given with the same rules the reader enforces, so
//! anything it writes our reader (and llama.cpp's) accepts.

use std::collections::HashSet;
use std::io::{self, Write};

use super::reader::{align_up, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_TENSOR_NAME_BYTES};
use super::types::GgmlType;
use super::value::{Array, Value};

/// The version this writer produces.
pub const WRITE_VERSION: u32 = 3;

/// A tensor to be written: its description; the data comes later from the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub ty: GgmlType,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, ty: GgmlType, dims: &[u64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            ty,
            dims: dims.to_vec(),
        }
    }

    pub fn elements(&self) -> Option<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Data size in bytes, if the shape is valid for the type.
    pub fn size(&self) -> Option<u64> {
        let elements = self.elements()?;
        if elements > i64::MAX as u64 {
            return None;
        }
        let ne0 = self.dims.first().copied().unwrap_or(1);
        if self.ty != GgmlType::I2S && ne0 % self.ty.block_size() != 0 {
            return None;
        }
        self.ty.tensor_bytes(elements)
    }
}

/// Something the writer refuses to write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("duplicate metadata key {0:?}")]
    DuplicateKey(String),
    #[error("empty metadata key")]
    EmptyKey,
    #[error("metadata key {key:?}: {problem}")]
    BadValue { key: String, problem: String },
    #[error("duplicate tensor name {0:?}")]
    DuplicateTensor(String),
    #[error("tensor {name:?}: {problem}")]
    BadTensor { name: String, problem: String },
    #[error("tensor {name:?}: the data source wrote {written} bytes, expected {expected}")]
    WrongDataSize {
        name: String,
        written: u64,
        expected: u64,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Collects metadata and tensor descriptions, then writes the file in one pass.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<TensorSpec>,
    names: HashSet<String>,
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Append a key (file order is insertion order).
    pub fn add(&mut self, key: impl Into<String>, value: Value) -> Result<&mut Self, WriteError> {
        let key = key.into();
        if key.is_empty() {
            return Err(WriteError::EmptyKey);
        }
        if key == "general.alignment" {
            match value {
                Value::U32(a) if a.is_power_of_two() => {}
                _ => {
                    return Err(WriteError::BadValue {
                        key,
                        problem: "must be a u32 non-zero power of two".into(),
                    })
                }
            }
        }
        if !self.keys.insert(key.clone()) {
            return Err(WriteError::DuplicateKey(key));
        }
        self.metadata.push((key, value));
        Ok(self)
    }

    /// Append a tensor description (data order is insertion order).
    pub fn add_tensor(&mut self, spec: TensorSpec) -> Result<&mut Self, WriteError> {
        let bad = |problem: String| WriteError::BadTensor {
            name: spec.name.clone(),
            problem,
        };
        if spec.name.len() as u64 > MAX_TENSOR_NAME_BYTES {
            return Err(bad(format!(
                "name is {} bytes; ggml allows at most {MAX_TENSOR_NAME_BYTES}",
                spec.name.len()
            )));
        }
        if spec.dims.len() > MAX_DIMS as usize {
            return Err(bad(format!("{} dimensions; at most 4", spec.dims.len())));
        }
        if spec.size().is_none() {
            return Err(bad(format!(
                "shape {:?} is not a whole number of {} blocks (or is too large)",
                spec.dims, spec.ty
            )));
        }
        if !self.names.insert(spec.name.clone()) {
            return Err(WriteError::DuplicateTensor(spec.name));
        }
        self.tensors.push(spec);
        Ok(self)
    }

    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// Data offsets (relative to the data section) of every tensor, and the section's size.
    fn layout(&self) -> (Vec<u64>, u64) {
        let alignment = self.alignment();
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut next = 0u64;
        for t in &self.tensors {
            offsets.push(next);
            // Sizes were validated in add_tensor; a model that overflows u64 cannot exist.
            let end = next.saturating_add(t.size().unwrap_or(0));
            next = align_up(end, alignment).unwrap_or(u64::MAX);
        }
        (offsets, next)
    }

    /// The header bytes, padded to the alignment: everything before the first tensor byte.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&WRITE_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut out, key);
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut out, value);
        }
        let (offsets, _) = self.layout();
        for (t, offset) in self.tensors.iter().zip(offsets) {
            put_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let padded = align_up(out.len() as u64, self.alignment()).unwrap_or(out.len() as u64);
        out.resize(padded as usize, 0);
        out
    }

    /// Total bytes the file will have.
    pub fn file_size(&self) -> u64 {
        self.header_bytes().len() as u64 + self.layout().1
    }

    /// Write the file. `data(i, spec, out)` must write exactly the bytes of tensor `i`.
    pub fn write<W, F>(&self, out: &mut W, mut data: F) -> Result<u64, WriteError>
    where
        W: Write,
        F: FnMut(usize, &TensorSpec, &mut dyn Write) -> io::Result<()>,
    {
        let header = self.header_bytes();
        out.write_all(&header)?;
        let mut total = header.len() as u64;
        let alignment = self.alignment();
        for (i, spec) in self.tensors.iter().enumerate() {
            let expected = spec.size().unwrap_or(0);
            let mut counter = CountingWriter {
                inner: &mut *out,
                written: 0,
            };
            data(i, spec, &mut counter)?;
            if counter.written != expected {
                return Err(WriteError::WrongDataSize {
                    name: spec.name.clone(),
                    written: counter.written,
                    expected,
                });
            }
            let padded = align_up(expected, alignment).unwrap_or(expected);
            write_zeros(out, padded - expected)?;
            total += padded;
        }
        Ok(total)
    }

    /// Write a file whose tensor data is given in memory (tests, fixtures, small files).
    pub fn write_with_data<W: Write>(
        &self,
        out: &mut W,
        data: &[Vec<u8>],
    ) -> Result<u64, WriteError> {
        self.write(out, |i, _, w| match data.get(i) {
            Some(bytes) => w.write_all(bytes),
            None => Ok(()),
        })
    }

    /// The whole file in memory.
    pub fn to_bytes(&self, data: &[Vec<u8>]) -> Result<Vec<u8>, WriteError> {
        let mut out = Vec::new();
        self.write_with_data(&mut out, data)?;
        Ok(out)
    }
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_zeros<W: Write>(out: &mut W, mut n: u64) -> io::Result<()> {
    const ZEROS: [u8; 256] = [0; 256];
    while n > 0 {
        let chunk = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..chunk])?;
        n -= chunk as u64;
    }
    Ok(())
}

/// A value's bytes as a GGUF file stores them (without the type tag): the canonical
/// encoding, so two values are equal exactly when their types and encodings are (floats
/// compare bit for bit), and a digest of it identifies a value.
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    put_value(&mut out, value);
    out
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => put_string(out, s),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Array(a) => {
            out.extend_from_slice(&a.element_type().id().to_le_bytes());
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            put_array(out, a);
        }
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    fn each<T: Copy, const N: usize>(out: &mut Vec<u8>, v: &[T], enc: fn(T) -> [u8; N]) {
        for x in v {
            out.extend_from_slice(&enc(*x));
        }
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each(out, v, i8::to_le_bytes),
        Array::U16(v) => each(out, v, u16::to_le_bytes),
        Array::I16(v) => each(out, v, i16::to_le_bytes),
        Array::U32(v) => each(out, v, u32::to_le_bytes),
        Array::I32(v) => each(out, v, i32::to_le_bytes),
        Array::F32(v) => each(out, v, f32::to_le_bytes),
        Array::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| put_string(out, s)),
        Array::U64(v) => each(out, v, u64::to_le_bytes),
        Array::I64(v) => each(out, v, i64::to_le_bytes),
        Array::F64(v) => each(out, v, f64::to_le_bytes),
    }
}
