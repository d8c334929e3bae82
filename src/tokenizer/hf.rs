//! The tokenizer.json backend: a Hugging Face tokenizer run by the pure-Rust
//! `tokenizers` crate (fancy-regex, no Oniguruma), wrapped so that it answers the same
//! questions as the GGUF tokenizer: special ids, end-of-generation set, the bytes of a
//! piece. Also the reading of BOS/EOS from `tokenizer_config.json`, the post-processor
//! template or special token names, shared with the tokenizer.json -> GGUF conversion.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use serde_json::Value as Json;

use super::vocab::{attr, SpecialIds, Vocab};
use super::{PieceStyle, TokenizerError};

/// Largest tokenizer.json or tokenizer_config.json read (real ones are tens of MB).
pub const MAX_JSON_BYTES: u64 = 512 << 20;
/// Largest token id accepted from a tokenizer.json (the largest real vocabularies are
/// a few hundred thousand tokens).
pub const MAX_TOKEN_ID: u32 = 1 << 24;

pub struct HfEngine {
    /// Splits added special tokens out of the text.
    with_special: tokenizers::Tokenizer,
    /// The same, with special tokens tokenized as plain text.
    without_special: tokenizers::Tokenizer,
    style: PieceStyle,
}

pub struct Loaded {
    pub vocab: Vocab,
    pub add_bos: bool,
    pub add_eos: bool,
    pub engine: HfEngine,
}

fn hf_err(message: impl ToString) -> TokenizerError {
    TokenizerError::Hf {
        message: message.to_string(),
    }
}

/// Run `f`, turning a panic inside the `tokenizers` crate into an error.
fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, TokenizerError>,
) -> Result<T, TokenizerError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(hf_err(format!("{what}: the tokenizers crate panicked"))))
}

/// A JSON file of bounded size: its bytes and its parse.
pub fn read_json(path: &Path) -> Result<(Vec<u8>, Json), TokenizerError> {
    let io = |message: String| TokenizerError::Io {
        path: path.display().to_string(),
        message,
    };
    let bytes = crate::input::read_bounded(path, MAX_JSON_BYTES, "JSON file")
        .map_err(|e| io(e.problem.to_string()))?;
    let json = serde_json::from_slice(&bytes).map_err(|e| io(format!("invalid JSON: {e}")))?;
    Ok((bytes, json))
}

pub fn load(path: &Path) -> Result<Loaded, TokenizerError> {
    let (bytes, json) = read_json(path)?;
    let config = path
        .parent()
        .map(|d| d.join("tokenizer_config.json"))
        .filter(|p| p.is_file())
        .map(|p| read_json(&p).map(|(_, j)| j))
        .transpose()?;
    let with_special = guarded("loading", || {
        tokenizers::Tokenizer::from_bytes(&bytes).map_err(hf_err)
    })?;
    let mut without_special = with_special.clone();
    without_special.set_encode_special_tokens(true);

    // Tokens by id, added tokens included.
    let mut by_id: Vec<String> = Vec::new();
    for (token, id) in with_special.get_vocab(true) {
        if id > MAX_TOKEN_ID {
            return Err(TokenizerError::Json {
                message: format!("token {token:?} has id {id}, above the limit of {MAX_TOKEN_ID}"),
            });
        }
        let i = id as usize;
        if by_id.len() <= i {
            by_id.resize(i + 1, String::new());
        }
        if let Some(slot) = by_id.get_mut(i) {
            *slot = token;
        }
    }
    let n = by_id.len();
    let mut attrs = vec![attr::NORMAL; n];
    if model_byte_fallback(&json) {
        for (a, t) in attrs.iter_mut().zip(&by_id) {
            if super::parse_byte_token(t).is_some() {
                *a = attr::BYTE;
            }
        }
    }
    let mut added = Vec::new();
    for (id, token) in with_special.get_added_tokens_decoder() {
        if let Some(a) = attrs.get_mut(id as usize) {
            *a = if token.special {
                attr::CONTROL
            } else {
                attr::USER_DEFINED
            };
        }
        added.push((id, token.content.clone(), token.special));
    }
    added.sort();
    // Gaps in the ids are unused.
    for (a, t) in attrs.iter_mut().zip(&by_id) {
        if t.is_empty() {
            *a = attr::UNUSED;
        }
    }

    let id_of = |t: &str| with_special.token_to_id(t);
    let sp = specials(&json, config.as_ref(), &id_of, &added);
    let unk = json
        .pointer("/model/unk_token")
        .and_then(Json::as_str)
        .and_then(id_of)
        .or(json
            .pointer("/model/unk_id")
            .and_then(Json::as_u64)
            .and_then(|i| u32::try_from(i).ok()));
    if let Some(a) = unk.and_then(|u| attrs.get_mut(u as usize)) {
        *a |= attr::UNKNOWN;
    }
    let special = SpecialIds {
        bos: sp.bos,
        eos: sp.eos,
        unk,
        pad: sp.pad,
        ..SpecialIds::default()
    };
    let vocab = Vocab::build(by_id, attrs, vec![], special)?;
    Ok(Loaded {
        vocab,
        add_bos: sp.add_bos.unwrap_or(false),
        add_eos: sp.add_eos.unwrap_or(false),
        engine: HfEngine {
            with_special,
            without_special,
            style: piece_style(&json),
        },
    })
}

impl HfEngine {
    pub fn encode(
        &self,
        text: &str,
        parse_special: bool,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let tok = if parse_special {
            &self.with_special
        } else {
            &self.without_special
        };
        let enc = guarded("encoding", || tok.encode(text, false).map_err(hf_err))?;
        out.extend_from_slice(enc.get_ids());
        Ok(())
    }

    pub fn piece_style(&self) -> PieceStyle {
        self.style
    }
}

pub fn model_byte_fallback(json: &Json) -> bool {
    json.pointer("/model/byte_fallback").and_then(Json::as_bool) == Some(true)
}

/// Every `"type"` in a JSON subtree (a `Sequence` lists its parts).
pub fn types_in(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::Object(m) => {
            if let Some(t) = m.get("type").and_then(Json::as_str) {
                out.push(t.to_string());
            }
            for x in m.values() {
                types_in(x, out);
            }
        }
        Json::Array(a) => a.iter().for_each(|x| types_in(x, out)),
        _ => {}
    }
}

fn piece_style(json: &Json) -> PieceStyle {
    let mut types = Vec::new();
    match json.get("decoder").filter(|d| !d.is_null()) {
        Some(d) => types_in(d, &mut types),
        None => types_in(json.get("pre_tokenizer").unwrap_or(&Json::Null), &mut types),
    }
    if types.iter().any(|t| t == "ByteLevel") {
        PieceStyle::ByteLevel
    } else if types.iter().any(|t| t == "Metaspace")
        || json
            .get("decoder")
            .map(|d| d.to_string().contains('\u{2581}'))
            .unwrap_or(false)
    {
        PieceStyle::Metaspace
    } else {
        PieceStyle::Raw
    }
}

/// BOS/EOS/PAD and the add flags of a Hugging Face tokenizer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HfSpecials {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
}

/// A `tokenizer_config.json` token entry: `"<s>"` or `{"content": "<s>", ...}`.
pub(super) fn config_token<'a>(config: Option<&'a Json>, key: &str) -> Option<&'a str> {
    let v = config?.get(key)?;
    v.as_str()
        .or_else(|| v.get("content").and_then(Json::as_str))
}

/// The post-processor's template for one sequence: special tokens before and after `$A`.
fn template(json: &Json, id_of: &dyn Fn(&str) -> Option<u32>) -> (Option<u32>, Option<u32>) {
    fn find(v: &Json) -> Option<&Json> {
        match v.get("type").and_then(Json::as_str) {
            Some("TemplateProcessing") => Some(v),
            Some("Sequence") => v.get("processors")?.as_array()?.iter().find_map(find),
            _ => None,
        }
    }
    let Some(t) = json.get("post_processor").and_then(find) else {
        return (None, None);
    };
    let Some(single) = t.get("single").and_then(Json::as_array) else {
        return (None, None);
    };
    let special_id = |p: &Json| -> Option<u32> {
        let name = p.pointer("/SpecialToken/id")?.as_str()?;
        let listed = t
            .get("special_tokens")
            .and_then(|s| s.get(name))
            .and_then(|s| s.get("ids"))
            .and_then(Json::as_array)
            .and_then(|ids| ids.first())
            .and_then(Json::as_u64)
            .and_then(|i| u32::try_from(i).ok());
        listed.or_else(|| id_of(name))
    };
    let seq = single.iter().position(|p| p.get("Sequence").is_some());
    let (before, after) = match seq {
        Some(i) => (
            single.get(..i).unwrap_or(&[]),
            single.get(i + 1..).unwrap_or(&[]),
        ),
        None => (&[][..], &[][..]),
    };
    (
        before.first().and_then(special_id),
        after.last().and_then(special_id),
    )
}

const BOS_NAMES: &[&str] = &[
    "<s>",
    "<|begin_of_text|>",
    "<bos>",
    "<|startoftext|>",
    "<｜begin▁of▁sentence｜>",
];
const EOS_NAMES: &[&str] = &[
    "</s>",
    "<|end_of_text|>",
    "<eos>",
    "<|endoftext|>",
    "<｜end▁of▁sentence｜>",
];

/// BOS/EOS as gguf-py's `SpecialVocab` finds them: `tokenizer_config.json` first, then
/// the post-processor template; then, as a last resort, well-known names among the
/// special added tokens.
pub fn specials(
    json: &Json,
    config: Option<&Json>,
    id_of: &dyn Fn(&str) -> Option<u32>,
    added: &[(u32, String, bool)],
) -> HfSpecials {
    let (t_bos, t_eos) = template(json, id_of);
    let by_name = |names: &[&str]| {
        names.iter().find_map(|n| {
            added
                .iter()
                .find(|(_, c, special)| *special && c == n)
                .map(|(id, _, _)| *id)
        })
    };
    let from_config = |key| config_token(config, key).and_then(id_of);
    let flag = |key: &str| config.and_then(|c| c.get(key)).and_then(Json::as_bool);
    HfSpecials {
        bos: from_config("bos_token")
            .or(t_bos)
            .or_else(|| by_name(BOS_NAMES)),
        eos: from_config("eos_token")
            .or(t_eos)
            .or_else(|| by_name(EOS_NAMES)),
        pad: from_config("pad_token"),
        add_bos: flag("add_bos_token").or(t_bos.map(|_| true)),
        add_eos: flag("add_eos_token").or(t_eos.map(|_| true)),
    }
}
