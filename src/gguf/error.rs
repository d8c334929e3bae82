//! Every way a GGUF file can be malformed, one variant each, with the byte offset and
//! the key or tensor involved, so that a user (and a test) can tell exactly what is wrong.

use thiserror::Error;

/// A structural problem in GGUF bytes. Offsets are absolute byte offsets in the file.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GgufError {
    #[error("not a GGUF file: the magic at offset 0 is {found}, expected \"GGUF\"")]
    BadMagic { found: String },

    #[error(
        "big-endian GGUF (the version at offset 4 reads {version} when byte-swapped) is not supported: only little-endian files are"
    )]
    BigEndian { version: u32 },

    #[error("GGUF version {version} at offset 4 is not supported: {reason}")]
    UnsupportedVersion { version: u32, reason: &'static str },

    #[error(
        "truncated at offset {offset}: {what} needs {needed} bytes, but only {remaining} remain"
    )]
    Truncated {
        offset: u64,
        what: String,
        needed: u64,
        remaining: u64,
    },

    #[error(
        "{what} at offset {offset} is {count}, which cannot fit in the {remaining} bytes that remain (each needs at least {min_size})"
    )]
    CountTooLarge {
        offset: u64,
        what: String,
        count: u64,
        remaining: u64,
        min_size: u64,
    },

    #[error("{what} at offset {offset} is {value}, above the limit of {limit}")]
    LimitExceeded {
        offset: u64,
        what: String,
        value: u64,
        limit: u64,
    },

    #[error("arithmetic overflow at offset {offset}: {what}")]
    Overflow { offset: u64, what: String },

    #[error("duplicate key {key:?} at offset {offset} (first defined at offset {first_offset})")]
    DuplicateKey {
        offset: u64,
        key: String,
        first_offset: u64,
    },

    #[error("empty key at offset {offset}")]
    EmptyKey { offset: u64 },

    #[error("invalid UTF-8 in {what} at offset {offset}")]
    InvalidUtf8 { offset: u64, what: String },

    #[error("key {key:?}: unknown value type {type_id} at offset {offset} (known: 0..=12)")]
    UnknownValueType {
        offset: u64,
        key: String,
        type_id: u32,
    },

    #[error("key {key:?}: nested array at offset {offset}; arrays of arrays are not allowed")]
    NestedArray { offset: u64, key: String },

    #[error("key {key:?}: bool byte {byte} at offset {offset}, expected 0 or 1")]
    InvalidBool { offset: u64, key: String, byte: u8 },

    #[error("general.alignment at offset {offset}: {problem}")]
    BadAlignment { offset: u64, problem: String },

    #[error(
        "tensor name {name:?} at offset {offset} is {len} bytes; ggml allows at most {max} (GGML_MAX_NAME - 1)"
    )]
    NameTooLong {
        offset: u64,
        name: String,
        len: u64,
        max: u64,
    },

    #[error("duplicate tensor name {name:?} at offset {offset}")]
    DuplicateTensor { offset: u64, name: String },

    #[error("tensor {name:?}: unknown type id {type_id} at offset {offset}")]
    UnknownTensorType {
        offset: u64,
        name: String,
        type_id: u32,
    },

    #[error(
        "tensor {name:?}: type id {type_id} at offset {offset} is {old}, which ggml has removed; re-quantize the model with a current llama.cpp"
    )]
    RemovedTensorType {
        offset: u64,
        name: String,
        type_id: u32,
        old: &'static str,
    },

    #[error("tensor {name:?}: {n_dims} dimensions at offset {offset}; at most 4 are allowed")]
    TooManyDims {
        offset: u64,
        name: String,
        n_dims: u32,
    },

    #[error(
        "tensor {name:?}: ne[{index}] = {value} at offset {offset} is out of range (0..=2^63-1)"
    )]
    BadDim {
        offset: u64,
        name: String,
        index: usize,
        value: u64,
    },

    #[error("tensor {name:?}: {detail} (tensor info at offset {offset})")]
    BadShape {
        offset: u64,
        name: String,
        detail: String,
    },

    #[error(
        "tensor {name:?}: data offset {data_offset} is not a multiple of the alignment {alignment} (tensor info at offset {offset})"
    )]
    Misaligned {
        offset: u64,
        name: String,
        data_offset: u64,
        alignment: u64,
    },

    #[error(
        "tensor {name:?}: data at file bytes [{start}, {end}) lies outside the file ({file_len} bytes)"
    )]
    OutOfBounds {
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    #[error(
        "tensors {first:?} (file bytes [{first_start}, {first_end})) and {second:?} (starting at {second_start}) overlap"
    )]
    Overlap {
        first: String,
        first_start: u64,
        first_end: u64,
        second: String,
        second_start: u64,
    },
}

impl GgufError {
    /// A stable kebab-case name for the kind of problem, for JSON output and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            GgufError::BadMagic { .. } => "bad-magic",
            GgufError::BigEndian { .. } => "big-endian",
            GgufError::UnsupportedVersion { .. } => "unsupported-version",
            GgufError::Truncated { .. } => "truncated",
            GgufError::CountTooLarge { .. } => "count-too-large",
            GgufError::LimitExceeded { .. } => "limit-exceeded",
            GgufError::Overflow { .. } => "overflow",
            GgufError::DuplicateKey { .. } => "duplicate-key",
            GgufError::EmptyKey { .. } => "empty-key",
            GgufError::InvalidUtf8 { .. } => "invalid-utf8",
            GgufError::UnknownValueType { .. } => "unknown-value-type",
            GgufError::NestedArray { .. } => "nested-array",
            GgufError::InvalidBool { .. } => "invalid-bool",
            GgufError::BadAlignment { .. } => "bad-alignment",
            GgufError::NameTooLong { .. } => "name-too-long",
            GgufError::DuplicateTensor { .. } => "duplicate-tensor",
            GgufError::UnknownTensorType { .. } => "unknown-tensor-type",
            GgufError::RemovedTensorType { .. } => "removed-tensor-type",
            GgufError::TooManyDims { .. } => "too-many-dims",
            GgufError::BadDim { .. } => "bad-dim",
            GgufError::BadShape { .. } => "bad-shape",
            GgufError::Misaligned { .. } => "misaligned",
            GgufError::OutOfBounds { .. } => "out-of-bounds",
            GgufError::Overlap { .. } => "overlap",
        }
    }
}
