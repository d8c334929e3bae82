//! Why an export failed: one variant per kind of problem, each naming the file, the
//! config field, the tensor or the GGUF key involved and what was expected. The
//! checkpoint, config.json and tokenizer files are untrusted input, so every malformation
//! ends here (exit 2), never in a panic.

use std::path::PathBuf;

use thiserror::Error;

use crate::convert::OutputError;
use crate::tokenizer::TokenizerError;

/// An export that could not be completed. No file is left under the output names.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },

    #[error("{path}: {bytes} bytes is more than the {limit} bytes a {what} may have")]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        bytes: u64,
        limit: u64,
    },

    #[error("{path}: invalid JSON: {message}")]
    Json { path: PathBuf, message: String },

    #[error("{path}: missing field `{field}` (it gives the GGUF key `{key}`)")]
    ConfigMissing {
        path: PathBuf,
        field: String,
        key: String,
    },

    #[error("{path}: field `{field}` is {found}, expected {expected}")]
    ConfigInvalid {
        path: PathBuf,
        field: String,
        expected: String,
        found: String,
    },

    #[error(
        "{path}: model_type {model_type:?} is not supported (supported: llama, mistral, bitnet, qwen2, qwen3, gemma3_text, phi3)"
    )]
    UnsupportedModelType { path: PathBuf, model_type: String },

    #[error(
        "{dir}: no checkpoint: none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json exists"
    )]
    NoCheckpoint { dir: PathBuf },

    #[error("{path}: {message}")]
    Index { path: PathBuf, message: String },

    #[error("{path}: malformed safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },

    #[error("{path}: not a torch.save zip archive we can read: {message}")]
    Zip { path: PathBuf, message: String },

    #[error("{path}: a legacy PyTorch (< 1.6) pickle, not a zip archive; it is not read because only Python could unpickle it, running whatever it names: re-save it with a recent torch.save or convert it to safetensors")]
    LegacyPickle { path: PathBuf },

    #[error("{path}: data.pkl byte {offset}: {message}")]
    Pickle {
        path: PathBuf,
        offset: u64,
        message: String,
    },

    #[error("{path}: tensor {tensor:?} has dtype {dtype}, expected {expected}")]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
        expected: &'static str,
    },

    #[error("tensor {tensor:?} is in both {first} and {second}")]
    DuplicateTensor {
        tensor: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("tensor {tensor:?} (GGUF {gguf}) is missing from the checkpoint")]
    MissingTensor { tensor: String, gguf: String },

    #[error("tensor {tensor:?} has shape {found:?}, expected {expected:?} ({why})")]
    ShapeMismatch {
        tensor: String,
        expected: Vec<u64>,
        found: Vec<u64>,
        why: String,
    },

    #[error("{} tensor(s) have no GGUF name: {} (pass --allow-unmapped to skip them)", tensors.len(), tensors.join(", "))]
    Unmapped { tensors: Vec<String> },

    #[error("tensor {tensor:?}: its data is shorter than its shape says")]
    ShortData { tensor: String },

    #[error("tensor {tensor:?}: {problem}")]
    Bitnet { tensor: String, problem: String },

    #[error("tensor {tensor:?}: element {index} = {value} does not fit in {outtype} (use --outtype {suggest})")]
    Overflow {
        tensor: String,
        index: u64,
        value: f32,
        outtype: &'static str,
        suggest: &'static str,
    },

    #[error("{path}: {source}")]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: TokenizerError,
    },

    #[error("{path}: the tokenizer has {tokens} tokens but vocab_size is {vocab} (the embedding has {vocab} rows)")]
    VocabMismatch {
        path: PathBuf,
        tokens: usize,
        vocab: u32,
    },

    #[error("--name {name:?}: {problem}")]
    BadName { name: String, problem: &'static str },

    #[error(transparent)]
    Output(#[from] OutputError),
}

impl From<crate::input::InputError> for ExportError {
    fn from(e: crate::input::InputError) -> ExportError {
        match e.problem {
            crate::input::Problem::TooLarge { what, bytes, limit } => ExportError::TooLarge {
                path: e.path,
                what,
                bytes,
                limit,
            },
            problem => ExportError::Io {
                path: e.path,
                message: problem.to_string(),
            },
        }
    }
}

impl ExportError {
    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> ExportError {
        ExportError::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}
