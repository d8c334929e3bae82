//! Chat templates: the Jinja program inside a GGUF (`tokenizer.chat_template`) that every
//! chat runtime runs on the user's conversation — and the one GGUF field that has been
//! weaponised (code execution through unsandboxed renderers, hidden instructions that
//! fire on a trigger or a date, storage tricks that blind scanners). This module finds
//! every template in a file (`find`), renders it as transformers does, bounded (`engine`,
//! with `python` for Python's spelling of values and `clock` for the pinned date), walks
//! its syntax tree for what it would do in a Python runtime (`scan`), and reads its text
//! (`text`). It decides nothing: `rules::template` turns what it learns into findings,
//! and the `template` command prints a rendering.

pub mod clock;
pub mod engine;
pub mod find;
pub mod load;
pub mod python;
pub mod scan;
pub mod text;

use minijinja::machinery;

pub use engine::{
    standard_conversations, Conversation, Limits, RenderError, Renderer, SpecialTokens, LIMITS,
};
pub use find::{find, Found, Misstored, Stored};
pub use scan::{Observation, Scan};

use crate::gguf::{Array, Header, Value};

/// Parse `source` as the renderer does and run the static rules on it.
pub fn parse_and_scan(source: &str) -> Result<Scan, RenderError> {
    let prepared = engine::without_generation_tags(source);
    let syntax = engine::syntax().map_err(|e| RenderError::Failed {
        message: e.to_string(),
        line: None,
    })?;
    let tree =
        machinery::parse(&prepared, "chat_template", syntax).map_err(|e| RenderError::Syntax {
            message: e.detail().unwrap_or("invalid template").to_string(),
            offset: e.range().map(|r| r.start),
            line: e.line(),
        })?;
    Ok(scan::scan(&prepared, &tree))
}

/// The special tokens a runtime passes to the template, read from the vocabulary
/// (`tokenizer.ggml.bos_token_id` ... indexing `tokenizer.ggml.tokens`).
pub fn special_tokens(header: &Header) -> SpecialTokens {
    let tokens = match header.get("tokenizer.ggml.tokens") {
        Some(Value::Array(Array::String(t))) => t.as_slice(),
        _ => &[],
    };
    let token = |key: &str| {
        let id = header.get_u64(key)?;
        tokens.get(usize::try_from(id).ok()?).cloned()
    };
    SpecialTokens {
        bos: token("tokenizer.ggml.bos_token_id"),
        eos: token("tokenizer.ggml.eos_token_id"),
        unk: token("tokenizer.ggml.unknown_token_id"),
        pad: token("tokenizer.ggml.padding_token_id"),
    }
}

/// Whether the runtime adds BOS itself: `tokenizer.ggml.add_bos_token`, else llama.cpp's
/// default (SentencePiece `llama` vocabularies add it, BPE `gpt2` ones do not).
pub fn adds_bos(header: &Header) -> bool {
    match header
        .get("tokenizer.ggml.add_bos_token")
        .and_then(Value::as_bool)
    {
        Some(b) => b,
        None => header.get("tokenizer.ggml.model").and_then(Value::as_str) == Some("llama"),
    }
}

/// llama.cpp's token types.
pub const TOKEN_NORMAL: i32 = 1;
pub const TOKEN_CONTROL: i32 = 3;
pub const TOKEN_USER_DEFINED: i32 = 4;

/// How the vocabulary holds each of `markers`: `None` when the text is no token, else
/// its token type (`TOKEN_NORMAL` when the file has no types). `None` for the whole
/// answer when the file has no vocabulary.
pub fn marker_types(header: &Header, markers: &[&str]) -> Option<Vec<Option<i32>>> {
    let Some(Value::Array(Array::String(tokens))) = header.get("tokenizer.ggml.tokens") else {
        return None;
    };
    let types: &[i32] = match header.get("tokenizer.ggml.token_type") {
        Some(Value::Array(Array::I32(t))) => t,
        _ => &[],
    };
    let mut out = vec![None; markers.len()];
    for (id, tok) in tokens.iter().enumerate() {
        for (i, m) in markers.iter().enumerate() {
            if out[i].is_none() && tok == m {
                out[i] = Some(types.get(id).copied().unwrap_or(TOKEN_NORMAL));
            }
        }
    }
    Some(out)
}
