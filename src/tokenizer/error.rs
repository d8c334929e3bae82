//! Why a tokenizer could not be built or could not encode: one variant per kind of
//! problem, each naming the metadata key, token or file involved. GGUF metadata and
//! tokenizer.json are untrusted input, so every malformation ends here, never in a panic.

use thiserror::Error;

/// A problem with tokenizer metadata, a tokenizer.json file, or one encode call.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TokenizerError {
    #[error("tokenizer metadata: required key {key:?} is missing")]
    MissingKey { key: String },

    #[error("tokenizer metadata: key {key:?} has type {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },

    #[error(
        "tokenizer metadata: {key:?} has {found} entries but the vocabulary has {expected} tokens"
    )]
    LengthMismatch {
        key: String,
        found: usize,
        expected: usize,
    },

    #[error("unknown tokenizer model {model:?} in tokenizer.ggml.model (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece)")]
    UnknownModel { model: String },

    #[error("unknown pre-tokenizer {pre:?} in tokenizer.ggml.pre (supported: {supported})")]
    UnknownPre { pre: String, supported: String },

    #[error("tokenizer.ggml.pre is missing: a \"gpt2\" vocabulary needs a pre-tokenizer name; llama.cpp falls back to \"default\" and warns that generation quality will be degraded, gguf-gate refuses to guess")]
    MissingPre,

    #[error("the vocabulary (tokenizer.ggml.tokens) is empty")]
    EmptyVocab,

    #[error("the vocabulary has {count} tokens, more than token ids (u32) can address")]
    VocabTooLarge { count: usize },

    #[error("duplicate token {token:?} in the vocabulary: ids {first} and {second}")]
    DuplicateToken {
        token: String,
        first: u32,
        second: u32,
    },

    #[error("merge {index} ({merge:?}) is not two tokens separated by a space")]
    MalformedMerge { index: usize, merge: String },

    #[error("merge {index} ({merge:?}) names {token:?}, which is not in the vocabulary")]
    MergeUnknownToken {
        index: usize,
        merge: String,
        token: String,
    },

    #[error("{key} = {id} is outside the vocabulary of {vocab_size} tokens")]
    SpecialIdOutOfRange {
        key: String,
        id: u64,
        vocab_size: usize,
    },

    #[error("pre-tokenizer {pre:?}: regex {pattern:?} failed: {message}")]
    Regex {
        pre: String,
        pattern: String,
        message: String,
    },

    #[error("no token for byte 0x{byte:02X}: the vocabulary has neither <0x{byte:02X}> nor the byte itself, and no unknown token")]
    NoByteToken { byte: u8 },

    #[error("a BOS token was requested but the model defines none (tokenizer.ggml.bos_token_id)")]
    NoBos,

    #[error("an EOS token is required by add_eos_token but the model defines none (tokenizer.ggml.eos_token_id)")]
    NoEos,

    #[error("{path}: {message}")]
    Io { path: String, message: String },

    #[error("tokenizer.json: {message}")]
    Json { message: String },

    #[error("tokenizers: {message}")]
    Hf { message: String },

    #[error("not supported: {what}")]
    Unsupported { what: String },
}
