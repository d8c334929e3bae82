//! SentencePiece `tokenizer.model` files (Gemma, Phi-3, Llama 2, Mistral checkpoints)
//! -> the `tokenizer.ggml.*` keys llama.cpp's converter writes for them
//! (`_create_vocab_sentencepiece`). The file is a protobuf `ModelProto`; this reads the
//! few fields that matter — the pieces (text, score, type) and the trainer's special
//! ids — with a small bounded wire-format reader instead of a protobuf dependency. Every
//! length and count is checked; a malformed file is an error naming the byte offset.

use serde_json::Value as Json;

use super::error::TokenizerError;
use super::hf::config_token;
use super::vocab;
use crate::gguf::{Array, Value};

/// Pieces beyond this are refused (real models have at most a few hundred thousand).
pub const MAX_PIECES: usize = 1 << 22;

/// A SentencePiece token type (sentencepiece_model.proto `SentencePiece.Type`), which
/// is also GGUF's token type number.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// One vocabulary entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub text: String,
    pub score: f32,
    /// 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte.
    pub kind: i32,
}

/// What gguf-gate reads from a `ModelProto`.
#[derive(Clone, Debug, PartialEq)]
pub struct SentencePieceModel {
    pub pieces: Vec<Piece>,
    pub unk_id: Option<u32>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub pad_id: Option<u32>,
}

fn malformed(offset: usize, what: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Json {
        message: format!("tokenizer.model: byte {offset}: {what}"),
    }
}

/// A protobuf wire-format reader over one message's bytes.
struct Wire<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Offset of `bytes` in the file, for messages.
    base: usize,
}

/// One field's value.
enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8], usize),
    Other,
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Result<u64, TokenizerError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| malformed(self.base + self.at, "truncated varint"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed(
            self.base + self.at,
            "varint longer than 10 bytes",
        ))
    }

    fn take(&mut self, n: u64) -> Result<(&'a [u8], usize), TokenizerError> {
        let start = self.at;
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                malformed(
                    self.base + start,
                    format!("a field of {n} bytes runs past the end of its message"),
                )
            })?;
        self.at = end;
        Ok((&self.bytes[start..end], self.base + start))
    }

    /// The next (field number, value), or `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, TokenizerError> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let at = self.base + self.at;
        let tag = self.varint()?;
        let value = match tag & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Other
            }
            2 => {
                let n = self.varint()?;
                let (b, off) = self.take(n)?;
                Field::Bytes(b, off)
            }
            5 => {
                let (b, _) = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err(malformed(at, format!("unsupported wire type {w}"))),
        };
        Ok(Some((tag >> 3, value)))
    }
}

fn message(bytes: &[u8], base: usize) -> Wire<'_> {
    Wire { bytes, at: 0, base }
}

/// A special id from TrainerSpec (negative = none).
fn special_id(v: u64) -> Option<u32> {
    u32::try_from(v as i64).ok()
}

/// Parse a `tokenizer.model` file's bytes.
pub fn parse(bytes: &[u8]) -> Result<SentencePieceModel, TokenizerError> {
    let mut m = SentencePieceModel {
        pieces: Vec::new(),
        unk_id: Some(0),
        bos_id: Some(1),
        eos_id: Some(2),
        pad_id: None,
    };
    let mut top = message(bytes, 0);
    while let Some((field, value)) = top.next()? {
        match (field, value) {
            (1, Field::Bytes(b, off)) => {
                if m.pieces.len() >= MAX_PIECES {
                    return Err(malformed(off, format!("more than {MAX_PIECES} pieces")));
                }
                m.pieces.push(piece(b, off)?);
            }
            (2, Field::Bytes(b, off)) => trainer_spec(&mut m, b, off)?,
            _ => {}
        }
    }
    if m.pieces.is_empty() {
        return Err(TokenizerError::EmptyVocab);
    }
    Ok(m)
}

fn piece(b: &[u8], off: usize) -> Result<Piece, TokenizerError> {
    let mut p = Piece {
        text: String::new(),
        score: 0.0,
        kind: NORMAL,
    };
    let mut w = message(b, off);
    while let Some((f, v)) = w.next()? {
        match (f, v) {
            (1, Field::Bytes(t, at)) => {
                p.text = std::str::from_utf8(t)
                    .map_err(|e| malformed(at, format!("a piece is not UTF-8: {e}")))?
                    .to_string();
            }
            (2, Field::Fixed32(bits)) => p.score = f32::from_bits(bits),
            (3, Field::Varint(k)) => {
                p.kind = i32::try_from(k)
                    .ok()
                    .filter(|k| (NORMAL..=BYTE).contains(k))
                    .ok_or_else(|| malformed(off, format!("piece type {k} is not 1..6")))?;
            }
            _ => {}
        }
    }
    Ok(p)
}

fn trainer_spec(m: &mut SentencePieceModel, b: &[u8], off: usize) -> Result<(), TokenizerError> {
    let mut w = message(b, off);
    while let Some((f, v)) = w.next()? {
        if let Field::Varint(x) = v {
            match f {
                40 => m.unk_id = special_id(x),
                41 => m.bos_id = special_id(x),
                42 => m.eos_id = special_id(x),
                43 => m.pad_id = special_id(x),
                _ => {}
            }
        }
    }
    Ok(())
}

/// convert_hf_to_gguf.py's `does_token_look_special`: names it treats as control
/// tokens even when `added_tokens_decoder` does not mark them special.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>") && t.len() >= 4)
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || t.starts_with("<unused") && t.ends_with('>')
}

/// The `tokenizer.ggml.*` keys for a SentencePiece model as convert_hf_to_gguf.py's
/// `_set_vocab_sentencepiece` writes them: model "llama", pre "default"; `vocab_size`
/// entries — every piece with its score and type (user-defined pieces count as normal),
/// the rest `[PADi]`, unused, score -10000; `added_tokens.json` entries user-defined and
/// `added_tokens_decoder` entries control (special, or named like one) or user-defined,
/// score -1000. BOS/EOS/UNK/PAD come from tokenizer_config.json's token strings, else
/// the trainer's ids; add-BOS/EOS from the config (default BOS yes, EOS no). The
/// space-prefix flag is the caller's: the converter sets it per family.
pub fn gguf_metadata_from_sentencepiece(
    bytes: &[u8],
    config: Option<&Json>,
    added_tokens: Option<&Json>,
    vocab_size: usize,
) -> Result<Vec<(String, Value)>, TokenizerError> {
    let m = parse(bytes)?;
    if m.pieces.len() > vocab_size {
        return Err(TokenizerError::Json {
            message: format!(
                "tokenizer.model has {} pieces, more than vocab_size ({vocab_size})",
                m.pieces.len()
            ),
        });
    }
    let mut tokens: Vec<String> = (0..vocab_size).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000.0f32; vocab_size];
    let mut types = vec![UNUSED; vocab_size];
    for (i, p) in m.pieces.iter().enumerate() {
        tokens[i] = p.text.clone();
        scores[i] = p.score;
        types[i] = match p.kind {
            USER_DEFINED => NORMAL,
            k => k,
        };
    }
    let mut set = |i: usize, text: String, kind: i32| {
        if i < vocab_size {
            tokens[i] = text;
            scores[i] = -1000.0;
            types[i] = kind;
        }
    };
    for (content, id) in added_tokens.and_then(Json::as_object).into_iter().flatten() {
        if let Some(i) = id.as_u64().and_then(|i| usize::try_from(i).ok()) {
            set(i, content.clone(), USER_DEFINED);
        }
    }
    let decoder = config
        .and_then(|c| c.get("added_tokens_decoder"))
        .and_then(Json::as_object);
    for (id, entry) in decoder.into_iter().flatten() {
        let (Ok(i), Some(content)) = (
            id.parse::<usize>(),
            entry.get("content").and_then(Json::as_str),
        ) else {
            continue;
        };
        if entry.get("special").and_then(Json::as_bool) == Some(true) || looks_special(content) {
            set(i, content.to_string(), CONTROL);
        } else {
            set(i, content.replace('\u{2581}', " "), USER_DEFINED);
        }
    }
    let id_of = |text: &str| {
        tokens
            .iter()
            .position(|t| t == text)
            .and_then(|i| u32::try_from(i).ok())
    };
    let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < m.pieces.len());
    let flag = |key: &str| config.and_then(|c| c.get(key)).and_then(Json::as_bool);
    let mut specials = Vec::new();
    for (key, config_key, fallback) in [
        ("tokenizer.ggml.bos_token_id", "bos_token", m.bos_id),
        ("tokenizer.ggml.eos_token_id", "eos_token", m.eos_id),
        ("tokenizer.ggml.unknown_token_id", "unk_token", m.unk_id),
        ("tokenizer.ggml.padding_token_id", "pad_token", m.pad_id),
    ] {
        let id = config_token(config, config_key)
            .and_then(id_of)
            .or(in_range(fallback));
        if let Some(id) = id {
            specials.push((key.to_string(), Value::U32(id)));
        }
    }
    let mut out = vec![
        (vocab::KEY_MODEL.to_string(), Value::String("llama".into())),
        (vocab::KEY_PRE.to_string(), Value::String("default".into())),
        (
            vocab::KEY_TOKENS.to_string(),
            Value::Array(Array::String(tokens)),
        ),
        (
            vocab::KEY_SCORES.to_string(),
            Value::Array(Array::F32(scores)),
        ),
        (
            vocab::KEY_TOKEN_TYPE.to_string(),
            Value::Array(Array::I32(types)),
        ),
    ];
    out.extend(specials);
    out.push((
        vocab::KEY_ADD_BOS.to_string(),
        Value::Bool(flag("add_bos_token").unwrap_or(true)),
    ));
    out.push((
        vocab::KEY_ADD_EOS.to_string(),
        Value::Bool(flag("add_eos_token").unwrap_or(false)),
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field_bytes(field: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn model(pieces: &[(&str, f32, u64)], dummy_prefix: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for (text, score, kind) in pieces {
            let mut p = Vec::new();
            field_bytes(1, text.as_bytes(), &mut p);
            varint(2 << 3 | 5, &mut p);
            p.extend_from_slice(&score.to_le_bytes());
            varint(3 << 3, &mut p);
            varint(*kind, &mut p);
            field_bytes(1, &p, &mut out);
        }
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(2, &mut trainer);
        varint(35 << 3, &mut trainer);
        varint(1, &mut trainer);
        varint(43 << 3, &mut trainer);
        varint(u64::MAX, &mut trainer); // pad_id -1
        field_bytes(2, &trainer, &mut out);
        let mut normalizer = Vec::new();
        varint(3 << 3, &mut normalizer);
        varint(u64::from(dummy_prefix), &mut normalizer);
        field_bytes(3, &normalizer, &mut out);
        out
    }

    #[test]
    fn reads_pieces_and_specs() {
        let bytes = model(
            &[
                ("<unk>", 0.0, 2),
                ("<s>", 0.0, 3),
                ("</s>", 0.0, 3),
                ("▁a", -1.5, 1),
                ("<0x41>", 0.0, 6),
            ],
            false,
        );
        let m = parse(&bytes).unwrap();
        assert_eq!(m.pieces.len(), 5);
        assert_eq!(
            m.pieces[3],
            Piece {
                text: "▁a".into(),
                score: -1.5,
                kind: 1
            }
        );
        assert_eq!(
            (m.unk_id, m.bos_id, m.eos_id, m.pad_id),
            (Some(0), Some(1), Some(2), None)
        );
        let keys = gguf_metadata_from_sentencepiece(&bytes, None, None, 7).unwrap();
        let get = |k: &str| {
            keys.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("tokenizer.ggml.model"),
            Some(Value::String("llama".into()))
        );
        assert_eq!(get("tokenizer.ggml.bos_token_id"), Some(Value::U32(1)));
        assert_eq!(get("tokenizer.ggml.padding_token_id"), None);
        assert_eq!(
            get("tokenizer.ggml.token_type"),
            Some(Value::Array(Array::I32(vec![2, 3, 3, 1, 6, 5, 5])))
        );
        match get("tokenizer.ggml.tokens") {
            Some(Value::Array(Array::String(t))) => assert_eq!(t[5..], ["[PAD5]", "[PAD6]"]),
            other => panic!("{other:?}"),
        }
        assert!(gguf_metadata_from_sentencepiece(&bytes, None, None, 4).is_err());
    }

    #[test]
    fn config_specials_and_added_tokens() {
        let bytes = model(
            &[
                ("<unk>", 0.0, 2),
                ("<s>", 0.0, 3),
                ("</s>", 0.0, 3),
                ("x", 0.0, 1),
                ("u", 0.0, 4),
            ],
            true,
        );
        let config = serde_json::json!({
            "eos_token": {"content": "<end>"}, "add_bos_token": false,
            "added_tokens_decoder": {
                "3": {"content": "<end>", "special": true},
                "5": {"content": "<|im_start|>"},
                "6": {"content": "a▁b"},
                "99": {"content": "far"}
            }
        });
        let added = serde_json::json!({"<extra>": 7});
        let keys =
            gguf_metadata_from_sentencepiece(&bytes, Some(&config), Some(&added), 8).unwrap();
        let get = |k: &str| {
            keys.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("tokenizer.ggml.eos_token_id"), Some(Value::U32(3)));
        assert_eq!(
            get("tokenizer.ggml.add_bos_token"),
            Some(Value::Bool(false))
        );
        assert_eq!(
            get("tokenizer.ggml.scores"),
            Some(Value::Array(Array::F32(vec![
                0.0, 0.0, 0.0, -1000.0, 0.0, -1000.0, -1000.0, -1000.0
            ])))
        );
        assert_eq!(
            get("tokenizer.ggml.token_type"),
            Some(Value::Array(Array::I32(vec![2, 3, 3, 3, 1, 3, 4, 4])))
        );
        match get("tokenizer.ggml.tokens") {
            Some(Value::Array(Array::String(t))) => {
                assert_eq!(t[5..], ["<|im_start|>", "a b", "<extra>"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let good = model(&[("a", 0.0, 1)], true);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        for bad in [
            &[0x0a, 0xff][..],
            &[0x0a, 0x05, 0x01],
            &[0x0b],
            &[0x08; 12],
            &[],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let mut bad_kind = Vec::new();
        let mut p = Vec::new();
        field_bytes(1, b"a", &mut p);
        varint(3 << 3, &mut p);
        varint(9, &mut p);
        field_bytes(1, &p, &mut bad_kind);
        assert!(parse(&bad_kind)
            .unwrap_err()
            .to_string()
            .contains("piece type 9"));
    }
}
