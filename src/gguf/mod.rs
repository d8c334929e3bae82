//! The GGUF file format and nothing else: value types, the ggml dtype table, the
//! bounded reader and the deterministic writer. Nothing here knows about models,
//! policies or reports.

mod error;
mod reader;
mod types;
mod value;
mod writer;

pub use error::GgufError;
pub use reader::{
    align_up, parse_header, GgufFile, Header, MetadataEntry, OpenError, TensorInfo,
    DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_ENTRIES, MAX_STRING_BYTES, MAX_TENSOR_NAME_BYTES,
};
pub use types::{file_type_name, GgmlType, TypeLookup, I2S_TAIL_BYTES};
pub use value::{Array, Value, ValueType};
pub use writer::{encode_value, GgufWriter, TensorSpec, WriteError, WRITE_VERSION};
