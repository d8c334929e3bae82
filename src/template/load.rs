//! Templates from a file a user names, for `gguf-gate template`: a GGUF model (every
//! template it holds, its special tokens and vocabulary), a Hugging Face
//! `tokenizer_config.json` (`chat_template` as a string or as a list of named templates,
//! `bos_token`/`eos_token`), or a plain template file (`.jinja`). Reads are bounded.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::engine::SpecialTokens;
use super::find::{self, Found, Stored};
use crate::gguf::{GgufFile, Header};

/// Largest template or tokenizer_config.json read.
pub const MAX_TEMPLATE_FILE: u64 = 16 << 20;

/// What a file offers the template command.
pub struct Loaded {
    pub found: Found,
    pub tokens: SpecialTokens,
    pub adds_bos: bool,
    /// The GGUF header, when the file is a model.
    pub header: Option<Header>,
}

/// Whether `path` starts with the GGUF magic.
fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    crate::input::open_regular(path)
        .ok()
        .and_then(|(mut f, _)| f.read_exact(&mut magic).ok())
        .is_some()
        && &magic == b"GGUF"
}

/// Load the templates of `path`.
pub fn load(path: &Path) -> Result<Loaded> {
    if is_gguf(path) {
        let file = GgufFile::open(path)?;
        let header = file.header.clone();
        return Ok(Loaded {
            found: find::find(&header),
            tokens: super::special_tokens(&header),
            adds_bos: super::adds_bos(&header),
            header: Some(header),
        });
    }
    let text = crate::input::read_text_bounded(path, MAX_TEMPLATE_FILE, "template")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if path.extension().is_some_and(|e| e == "json") {
        return from_tokenizer_config(&text).with_context(|| path.display().to_string());
    }
    Ok(Loaded {
        found: Found {
            templates: vec![Stored {
                key: find::DEFAULT_KEY.into(),
                name: None,
                text,
                from_array: false,
            }],
            problems: Vec::new(),
        },
        tokens: placeholder_tokens(),
        adds_bos: false,
        header: None,
    })
}

/// The special tokens a bare template file is rendered with (it names none): the
/// SentencePiece spellings, so that templates concatenating `bos_token + ...` render.
pub fn placeholder_tokens() -> SpecialTokens {
    SpecialTokens {
        bos: Some("<s>".into()),
        eos: Some("</s>".into()),
        unk: None,
        pad: None,
    }
}

/// A `tokenizer_config.json`'s templates and special tokens.
fn from_tokenizer_config(text: &str) -> Result<Loaded> {
    let json: serde_json::Value = serde_json::from_str(text)?;
    let mut templates = Vec::new();
    match &json["chat_template"] {
        serde_json::Value::String(s) => templates.push(Stored {
            key: find::DEFAULT_KEY.into(),
            name: None,
            text: s.clone(),
            from_array: false,
        }),
        serde_json::Value::Array(list) => {
            for t in list {
                let (Some(name), Some(body)) = (t["name"].as_str(), t["template"].as_str()) else {
                    continue;
                };
                let default = name == "default";
                templates.push(Stored {
                    key: if default {
                        find::DEFAULT_KEY.into()
                    } else {
                        format!("{}.{name}", find::DEFAULT_KEY)
                    },
                    name: (!default).then(|| name.to_string()),
                    text: body.to_string(),
                    from_array: false,
                });
            }
        }
        _ => bail!("no `chat_template` in it"),
    }
    let token = |key: &str| match &json[key] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    };
    Ok(Loaded {
        found: Found {
            templates,
            problems: Vec::new(),
        },
        tokens: SpecialTokens {
            bos: token("bos_token"),
            eos: token("eos_token"),
            unk: token("unk_token"),
            pad: token("pad_token"),
        },
        adds_bos: json["add_bos_token"].as_bool().unwrap_or(false),
        header: None,
    })
}
