//! Between GGUF tokenizer metadata and Hugging Face tokenizer files, for `export` and
//! for round-trip tests: GGUF -> tokenizer.json (+ tokenizer_config.json), and
//! tokenizer.json (+ config) -> `tokenizer.ggml.*` keys. A tokenizer.json carries the
//! pre-tokenizer regexes but not llama.cpp's name for them; the name is inferred by
//! matching the regex list (docs/tokenizer.md, "Choosing tokenizer.ggml.pre").

use std::collections::HashMap;

use serde_json::{json, Map, Value as Json};

use crate::gguf::{Array, Header, Value};

use super::hf::{self, MAX_TOKEN_ID};
use super::pretok::{self, RegexList};
use super::vocab::{self, attr, ModelKind, Vocab};
use super::TokenizerError;

fn json_err(message: impl Into<String>) -> TokenizerError {
    TokenizerError::Json {
        message: message.into(),
    }
}

fn unsupported(what: impl Into<String>) -> TokenizerError {
    TokenizerError::Unsupported { what: what.into() }
}

/// The added-token entries for every control, unknown and user-defined token. A normal
/// token the loader marked control because of its text (`</s>` in Qwen's vocabulary, as
/// llama.cpp's end-of-generation detection does) stays a normal token.
fn added_tokens(v: &Vocab) -> Vec<Json> {
    (0u32..)
        .zip(&v.tokens)
        .filter_map(|(id, t)| {
            let a = v.attr(id);
            if a & attr::NORMAL != 0 {
                return None;
            }
            let special = a & (attr::CONTROL | attr::UNKNOWN) != 0;
            (special || a & attr::USER_DEFINED != 0).then(|| {
                json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": special})
            })
        })
        .collect()
}

fn template_processor(v: &Vocab, add_bos: bool) -> Json {
    match v
        .special
        .bos
        .filter(|_| add_bos)
        .and_then(|b| Some((b, v.text(b)?)))
    {
        Some((id, text)) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": text, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {text: {"id": text, "ids": [id], "tokens": [text]}}
        }),
        None => Json::Null,
    }
}

/// A Hugging Face tokenizer.json for the vocabulary in `header`: for `gpt2`, a BPE
/// model with the vocabulary and merges, the llama.cpp regex list as `Split`
/// pre-tokenizers followed by `ByteLevel`, a `ByteLevel` decoder; for `llama`
/// (SentencePiece), a byte-fallback BPE whose merges are ordered by the score of the
/// token they make, as Hugging Face's own Llama converter does. Control and
/// user-defined tokens become added tokens; a BOS the model adds becomes a template.
pub fn tokenizer_json_from_gguf(header: &Header) -> Result<Json, TokenizerError> {
    let kind = vocab::model_kind(header)?;
    let gguf_bool = |key| vocab::get_bool(header, key);
    let (v, model, pre_tokenizer, normalizer, decoder, add_bos) = match kind {
        ModelKind::Bpe => {
            let name = vocab::get_str(header, vocab::KEY_PRE)?.ok_or(TokenizerError::MissingPre)?;
            let pre = pretok::lookup(name)?;
            let v = Vocab::from_gguf(header, kind)?;
            let lines = vocab::merges(header)?.ok_or_else(|| TokenizerError::MissingKey {
                key: vocab::KEY_MERGES.to_string(),
            })?;
            // Validates every merge against the vocabulary.
            super::bpe::Merges::parse(lines, &v)?;
            let mut merges = Vec::with_capacity(lines.len());
            for (i, line) in lines.iter().enumerate() {
                let (a, b) = vocab::split_merge(i, line)?;
                merges.push(json!([a, b]));
            }
            let mut splits: Vec<Json> = pre
                .list
                .patterns()
                .iter()
                .map(|p| json!({"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": false}))
                .collect();
            splits.push(json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}));
            let model = json!({
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": pre.ignore_merges, "vocab": vocab_map(&v), "merges": merges,
            });
            let add_bos = gguf_bool(vocab::KEY_ADD_BOS)?.unwrap_or(pre.add_bos);
            (
                v,
                model,
                json!({"type": "Sequence", "pretokenizers": splits}),
                Json::Null,
                json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}),
                add_bos,
            )
        }
        ModelKind::Spm => {
            let v = Vocab::from_gguf(header, kind)?;
            let add_space_prefix = gguf_bool(vocab::KEY_ADD_SPACE_PREFIX)?.unwrap_or(true);
            let model = json!({
                "type": "BPE", "dropout": null,
                "unk_token": v.special.unk.and_then(|u| v.text(u)),
                "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
                "byte_fallback": true, "ignore_merges": false, "vocab": vocab_map(&v),
                "merges": spm_merges(&v),
            });
            let mut norm = Vec::new();
            if add_space_prefix {
                norm.push(json!({"type": "Prepend", "prepend": "\u{2581}"}));
            }
            norm.push(
                json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}),
            );
            let decoder = json!({"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}
            ]});
            let add_bos = gguf_bool(vocab::KEY_ADD_BOS)?.unwrap_or(true);
            (
                v,
                model,
                Json::Null,
                json!({"type": "Sequence", "normalizers": norm}),
                decoder,
                add_bos,
            )
        }
    };
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens(&v),
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": template_processor(&v, add_bos),
        "decoder": decoder,
        "model": model,
    }))
}

/// The vocabulary, without the `[PADi]` rows a converter added to fill the embedding
/// (unused tokens named after their id): they are not the tokenizer's, and a converter
/// adds them again.
fn vocab_map(v: &Vocab) -> Json {
    Json::Object(
        (0u32..)
            .zip(&v.tokens)
            .filter(|(id, t)| !(v.attr(*id) == attr::UNUSED && **t == format!("[PAD{id}]")))
            .map(|(id, t)| (t.clone(), Json::from(id)))
            .collect::<Map<_, _>>(),
    )
}

/// SentencePiece scores as BPE merges: every split of a token into two tokens, the
/// token with the highest score first, ties by the ids of the halves.
fn spm_merges(v: &Vocab) -> Vec<Json> {
    let mut merges: Vec<(f32, u32, u32, &str, &str)> = Vec::new();
    for (id, t) in (0u32..).zip(&v.tokens) {
        if v.attr(id) & attr::NORMAL == 0 {
            continue;
        }
        let score = v.scores.get(id as usize).copied().unwrap_or(0.0);
        for (k, _) in t.char_indices().skip(1) {
            let (Some(a), Some(b)) = (t.get(..k), t.get(k..)) else {
                continue;
            };
            if let (Some(ia), Some(ib)) = (v.id(a), v.id(b)) {
                merges.push((score, ia, ib, a, b));
            }
        }
    }
    merges.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
    merges
        .into_iter()
        .map(|(_, _, _, a, b)| json!([a, b]))
        .collect()
}

/// A `tokenizer_config.json` with what GGUF knows: BOS/EOS/UNK/PAD texts, the add flags
/// and the chat template, so that [`gguf_metadata_from_tokenizer_files`] and
/// `Tokenizer::from_json_file` recover the same special ids.
pub fn tokenizer_config_from_gguf(header: &Header) -> Result<Json, TokenizerError> {
    let kind = vocab::model_kind(header)?;
    let default_add_bos = match kind {
        ModelKind::Bpe => {
            let name = vocab::get_str(header, vocab::KEY_PRE)?.ok_or(TokenizerError::MissingPre)?;
            let pre = pretok::lookup(name)?;
            pre.add_bos
        }
        ModelKind::Spm => true,
    };
    let v = Vocab::from_gguf(header, kind)?;
    let text = |id: Option<u32>| id.and_then(|i| v.text(i)).map_or(Json::Null, Json::from);
    let mut c = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": vocab::get_bool(header, vocab::KEY_ADD_BOS)?.unwrap_or(default_add_bos),
        "add_eos_token": vocab::get_bool(header, vocab::KEY_ADD_EOS)?.unwrap_or(false),
        "bos_token": text(v.special.bos),
        "eos_token": text(v.special.eos),
        "unk_token": text(v.special.unk),
        "pad_token": text(v.special.pad),
        "clean_up_tokenization_spaces": false,
    });
    if let (Some(t), Some(obj)) = (
        vocab::get_str(header, "tokenizer.chat_template")?,
        c.as_object_mut(),
    ) {
        obj.insert("chat_template".into(), Json::from(t));
    }
    Ok(c)
}

/// [`gguf_metadata_from_tokenizer_files`] without a tokenizer_config.json: BOS/EOS come
/// from the post-processor template or well-known special token names only.
pub fn gguf_metadata_from_tokenizer_json(
    json: &Json,
) -> Result<Vec<(String, Value)>, TokenizerError> {
    gguf_metadata_from_tokenizer_files(json, None)
}

/// The `tokenizer.ggml.*` keys for a Hugging Face tokenizer: `model` ("gpt2" for a
/// byte-level BPE, "llama" for a byte-fallback BPE over `▁`), `pre` (inferred from
/// the pre-tokenizer regexes), `tokens`, `token_type` (i32), `merges` or `scores`
/// (f32), the special ids (u32) and `add_bos_token`.
pub fn gguf_metadata_from_tokenizer_files(
    json: &Json,
    config: Option<&Json>,
) -> Result<Vec<(String, Value)>, TokenizerError> {
    let model = json.get("model").ok_or_else(|| json_err("no \"model\""))?;
    let model_type = model.get("type").and_then(Json::as_str).unwrap_or("BPE");
    if model_type != "BPE" {
        return Err(unsupported(format!(
            "tokenizer.json model type {model_type:?}: only BPE models map to llama.cpp's gpt2/llama tokenizers"
        )));
    }

    let table = TokensById::read(json, model)?;
    let ids: HashMap<&str, u32> = (0u32..)
        .zip(&table.by_id)
        .filter_map(|(i, t)| Some((t.as_deref()?, i)))
        .collect();
    let id_of = |t: &str| ids.get(t).copied();

    let merges = parse_merges(model.get("merges"))?;
    check_merges_known(&merges, &id_of)?;

    let byte_level = is_byte_level(json);
    let byte_fallback = hf::model_byte_fallback(json);
    let unk = model
        .get("unk_token")
        .and_then(Json::as_str)
        .and_then(id_of);
    let (tokens, types) = table.texts_and_types(unk, byte_level, byte_fallback);

    let mut out = if byte_level {
        byte_level_keys(json, model, tokens, types, &merges)?
    } else if byte_fallback || json.to_string().contains('\u{2581}') {
        spm_keys(json, tokens, types, &merges, &id_of)
    } else {
        return Err(unsupported(
            "a BPE tokenizer.json that is neither byte-level (ByteLevel pre-tokenizer/decoder) nor SentencePiece-style (byte_fallback, ▁)",
        ));
    };
    out.extend(special_keys(json, config, &id_of, &table.added, unk));
    Ok(out)
}

/// A tokenizer.json's tokens by id: the model vocabulary, then the added tokens, with
/// `None` for the gaps; and the added tokens as (id, content, special).
struct TokensById {
    by_id: Vec<Option<String>>,
    added: Vec<(u32, String, bool)>,
}

impl TokensById {
    fn read(json: &Json, model: &Json) -> Result<Self, TokenizerError> {
        let mut table = TokensById {
            by_id: Vec::new(),
            added: Vec::new(),
        };
        let vocab_obj = model
            .get("vocab")
            .and_then(Json::as_object)
            .ok_or_else(|| json_err("model.vocab is not an object of token -> id"))?;
        for (token, id) in vocab_obj {
            let id = id
                .as_u64()
                .ok_or_else(|| json_err(format!("model.vocab[{token:?}] is not an id")))?;
            table.place(token, id)?;
        }
        for t in json
            .get("added_tokens")
            .and_then(Json::as_array)
            .map_or(&[][..], Vec::as_slice)
        {
            let content = t
                .get("content")
                .and_then(Json::as_str)
                .ok_or_else(|| json_err("an added token has no \"content\""))?;
            let id = t
                .get("id")
                .and_then(Json::as_u64)
                .ok_or_else(|| json_err(format!("added token {content:?} has no \"id\"")))?;
            table.place(content, id)?;
            let special = t.get("special").and_then(Json::as_bool).unwrap_or(false);
            table.added.push((
                u32::try_from(id).unwrap_or(u32::MAX),
                content.to_string(),
                special,
            ));
        }
        if table.by_id.is_empty() {
            return Err(TokenizerError::EmptyVocab);
        }
        Ok(table)
    }

    /// Puts `token` at `id`; an id above the limit, or one already holding another
    /// token, is an error.
    fn place(&mut self, token: &str, id: u64) -> Result<(), TokenizerError> {
        let id32 = u32::try_from(id)
            .ok()
            .filter(|&i| i <= MAX_TOKEN_ID)
            .ok_or_else(|| {
                json_err(format!(
                    "token {token:?} has id {id}, above the limit of {MAX_TOKEN_ID}"
                ))
            })?;
        let i = id32 as usize;
        if self.by_id.len() <= i {
            self.by_id.resize(i + 1, None);
        }
        if let Some(slot) = self.by_id.get_mut(i) {
            if slot.as_deref().is_some_and(|old| old != token) {
                return Err(json_err(format!(
                    "id {id} is both {:?} and {token:?}",
                    slot.as_deref().unwrap_or("")
                )));
            }
            *slot = Some(token.to_string());
        }
        Ok(())
    }

    /// Token texts and types by convert_hf_to_gguf's rules; gaps in the ids are unused
    /// padding.
    fn texts_and_types(
        &self,
        unk: Option<u32>,
        byte_level: bool,
        byte_fallback: bool,
    ) -> (Vec<String>, Vec<i32>) {
        let mut types = Vec::with_capacity(self.by_id.len());
        let mut tokens = Vec::with_capacity(self.by_id.len());
        // id -> special?, built once (a linear search per id would be quadratic).
        let mut added_special: HashMap<u32, bool> = HashMap::new();
        for (i, _, special) in &self.added {
            added_special.entry(*i).or_insert(*special);
        }
        for (id, t) in (0u32..).zip(&self.by_id) {
            let (text, ty) = match t {
                None => (format!("[PAD{id}]"), 5),
                Some(t) => {
                    let ty = match added_special.get(&id) {
                        _ if Some(id) == unk => 2,
                        Some(true) => 3,
                        Some(false) => 4,
                        None if !byte_level
                            && byte_fallback
                            && super::parse_byte_token(t).is_some() =>
                        {
                            6
                        }
                        None => 1,
                    };
                    (t.clone(), ty)
                }
            };
            tokens.push(text);
            types.push(ty);
        }
        (tokens, types)
    }
}

/// Every merge's two parts and their concatenation must be tokens.
fn check_merges_known(
    merges: &[(String, String)],
    id_of: &dyn Fn(&str) -> Option<u32>,
) -> Result<(), TokenizerError> {
    for (i, (a, b)) in merges.iter().enumerate() {
        for t in [a.clone(), b.clone(), format!("{a}{b}")] {
            if id_of(&t).is_none() {
                return Err(TokenizerError::MergeUnknownToken {
                    index: i,
                    merge: format!("{a} {b}"),
                    token: t,
                });
            }
        }
    }
    Ok(())
}

/// A `ByteLevel` pre-tokenizer or decoder anywhere makes the BPE byte-level.
fn is_byte_level(json: &Json) -> bool {
    let mut types = Vec::new();
    hf::types_in(json.get("pre_tokenizer").unwrap_or(&Json::Null), &mut types);
    hf::types_in(json.get("decoder").unwrap_or(&Json::Null), &mut types);
    types.iter().any(|t| t == "ByteLevel")
}

fn kv(key: &str, value: Value) -> (String, Value) {
    (key.to_string(), value)
}

/// The keys of a byte-level BPE ("gpt2"): `pre` named after the pre-tokenizer regexes,
/// tokens, types and merges.
fn byte_level_keys(
    json: &Json,
    model: &Json,
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: &[(String, String)],
) -> Result<Vec<(String, Value)>, TokenizerError> {
    let normalizer = json.get("normalizer").filter(|n| !n.is_null());
    if let Some(n) = normalizer {
        if n.get("type").and_then(Json::as_str) != Some("NFC") {
            return Err(unsupported(format!(
                "normalizer {n} on a byte-level BPE (llama.cpp applies none; only NFC is tolerated)"
            )));
        }
    }
    let list = infer_regex_list(json.get("pre_tokenizer").unwrap_or(&Json::Null))?;
    let ignore_merges = model
        .get("ignore_merges")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    Ok(vec![
        kv(vocab::KEY_MODEL, Value::String("gpt2".into())),
        kv(
            vocab::KEY_PRE,
            Value::String(list.canonical_name(ignore_merges).into()),
        ),
        kv(vocab::KEY_TOKENS, Value::Array(Array::String(tokens))),
        kv(vocab::KEY_TOKEN_TYPE, Value::Array(Array::I32(types))),
        kv(
            vocab::KEY_MERGES,
            Value::Array(Array::String(
                merges.iter().map(|(a, b)| format!("{a} {b}")).collect(),
            )),
        ),
    ])
}

/// The keys of a SentencePiece-style BPE ("llama"): a token's score is minus the rank of
/// the first merge that makes it, so that llama.cpp's highest-score-first order is the
/// merge order.
fn spm_keys(
    json: &Json,
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: &[(String, String)],
    id_of: &dyn Fn(&str) -> Option<u32>,
) -> Vec<(String, Value)> {
    let mut scores = vec![0.0f32; tokens.len()];
    let floor = -(merges.len() as f32) - 1.0;
    for (id, s) in scores.iter_mut().enumerate() {
        if types.get(id) == Some(&1) && tokens.get(id).is_some_and(|t| t.chars().count() > 1) {
            *s = floor;
        }
    }
    for (rank, (a, b)) in merges.iter().enumerate().rev() {
        if let Some(s) = id_of(&format!("{a}{b}")).and_then(|i| scores.get_mut(i as usize)) {
            *s = -(rank as f32);
        }
    }
    vec![
        kv(vocab::KEY_MODEL, Value::String("llama".into())),
        kv(vocab::KEY_TOKENS, Value::Array(Array::String(tokens))),
        kv(vocab::KEY_SCORES, Value::Array(Array::F32(scores))),
        kv(vocab::KEY_TOKEN_TYPE, Value::Array(Array::I32(types))),
        kv(
            vocab::KEY_ADD_SPACE_PREFIX,
            Value::Bool(spm_adds_space_prefix(json)),
        ),
    ]
}

/// The special token ids that are known and the add-BOS/EOS flags.
fn special_keys(
    json: &Json,
    config: Option<&Json>,
    id_of: &dyn Fn(&str) -> Option<u32>,
    added: &[(u32, String, bool)],
    unk: Option<u32>,
) -> Vec<(String, Value)> {
    let sp = hf::specials(json, config, id_of, added);
    let mut out = Vec::new();
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", sp.bos),
        ("tokenizer.ggml.eos_token_id", sp.eos),
        ("tokenizer.ggml.unknown_token_id", unk),
        ("tokenizer.ggml.padding_token_id", sp.pad),
    ] {
        if let Some(id) = id {
            out.push(kv(key, Value::U32(id)));
        }
    }
    out.push(kv(
        vocab::KEY_ADD_BOS,
        Value::Bool(sp.add_bos.unwrap_or(false)),
    ));
    if let Some(e) = sp.add_eos {
        out.push(kv(vocab::KEY_ADD_EOS, Value::Bool(e)));
    }
    out
}

/// `"a b"` strings or `["a", "b"]` pairs.
fn parse_merges(v: Option<&Json>) -> Result<Vec<(String, String)>, TokenizerError> {
    let Some(list) = v else { return Ok(Vec::new()) };
    let list = list
        .as_array()
        .ok_or_else(|| json_err("model.merges is not an array"))?;
    list.iter()
        .enumerate()
        .map(|(i, m)| match m {
            Json::String(s) => {
                vocab::split_merge(i, s).map(|(a, b)| (a.to_string(), b.to_string()))
            }
            Json::Array(pair) => match pair.as_slice() {
                [Json::String(a), Json::String(b)] => Ok((a.clone(), b.clone())),
                _ => Err(TokenizerError::MalformedMerge {
                    index: i,
                    merge: m.to_string(),
                }),
            },
            _ => Err(TokenizerError::MalformedMerge {
                index: i,
                merge: m.to_string(),
            }),
        })
        .collect()
}

fn spm_adds_space_prefix(json: &Json) -> bool {
    let norm = json
        .get("normalizer")
        .map(Json::to_string)
        .unwrap_or_default();
    if norm.contains("\"Prepend\"") {
        return true;
    }
    let mut found = false;
    let mut visit = |p: &Json| {
        if p.get("type").and_then(Json::as_str) == Some("Metaspace") {
            let scheme = p.get("prepend_scheme").and_then(Json::as_str);
            let legacy = p.get("add_prefix_space").and_then(Json::as_bool);
            found |= scheme.map_or(legacy.unwrap_or(true), |s| s != "never");
        }
    };
    match json.get("pre_tokenizer") {
        Some(p) if p.get("type").and_then(Json::as_str) == Some("Sequence") => {
            if let Some(a) = p.get("pretokenizers").and_then(Json::as_array) {
                a.iter().for_each(&mut visit);
            }
        }
        Some(p) => visit(p),
        None => {}
    }
    found
}

/// The pre-tokenizer as a list of split regexes, matched against llama.cpp's lists.
/// `Split` (Isolated) gives its regex, `Digits` `\p{N}` or `\p{N}+`, a `ByteLevel` that
/// uses its regex the GPT-2 pattern; `(?i:'s|...)` is read as llama.cpp's spelled-out
/// group and GPT-2's trailing `|\s+` is dropped (both split the same way).
fn infer_regex_list(pre: &Json) -> Result<RegexList, TokenizerError> {
    let parts: Vec<&Json> = match pre.get("type").and_then(Json::as_str) {
        Some("Sequence") => pre
            .get("pretokenizers")
            .and_then(Json::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(_) => vec![pre],
        None => return Err(unsupported("a byte-level BPE without a pre-tokenizer")),
    };
    let gpt2_hf = format!(r"{}|\s+", pretok::GPT2);
    let mut regexes: Vec<String> = Vec::new();
    for p in parts {
        let ty = p.get("type").and_then(Json::as_str).unwrap_or("");
        match ty {
            "Split" => {
                let re = p
                    .pointer("/pattern/Regex")
                    .and_then(Json::as_str)
                    .ok_or_else(|| unsupported(format!("Split with a non-regex pattern: {p}")))?;
                let behavior = p.get("behavior").and_then(Json::as_str).unwrap_or("");
                let invert = p.get("invert").and_then(Json::as_bool).unwrap_or(false);
                if behavior != "Isolated" || invert {
                    return Err(unsupported(format!(
                        "Split with behavior {behavior:?}, invert {invert}"
                    )));
                }
                let re = re.replace(pretok::CONTRACTIONS_HF, pretok::CONTRACTIONS_LLAMA);
                regexes.push(if re == gpt2_hf {
                    pretok::GPT2.to_string()
                } else {
                    re
                });
            }
            "Digits" => {
                let single = p
                    .get("individual_digits")
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
                regexes.push(if single { r"\p{N}" } else { r"\p{N}+" }.to_string());
            }
            "ByteLevel" => {
                if p.get("add_prefix_space").and_then(Json::as_bool) == Some(true) {
                    return Err(unsupported(
                        "ByteLevel with add_prefix_space: llama.cpp never adds a prefix space to byte-level BPE",
                    ));
                }
                if p.get("use_regex").and_then(Json::as_bool).unwrap_or(true) {
                    regexes.push(pretok::GPT2.to_string());
                }
            }
            other => return Err(unsupported(format!("pre-tokenizer {other:?}"))),
        }
    }
    RegexList::ALL
        .into_iter()
        .find(|l| l.patterns().iter().copied().eq(regexes.iter().map(String::as_str)))
        .ok_or_else(|| {
            unsupported(format!(
                "pre-tokenizer regexes {regexes:?} match none of llama.cpp's lists (docs/tokenizer.md)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_lists_from_common_hf_pre_tokenizers() {
        let smollm = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]});
        assert_eq!(infer_regex_list(&smollm).unwrap(), RegexList::Starcoder);
        let gpt2 = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true});
        assert_eq!(infer_regex_list(&gpt2).unwrap(), RegexList::Gpt2);
        let llama3 = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
             "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]});
        assert_eq!(infer_regex_list(&llama3).unwrap(), RegexList::Llama3);
        let odd = json!({"type": "Whitespace"});
        assert!(matches!(
            infer_regex_list(&odd),
            Err(TokenizerError::Unsupported { .. })
        ));
        let prefix = json!({"type": "ByteLevel", "add_prefix_space": true});
        assert!(matches!(
            infer_regex_list(&prefix),
            Err(TokenizerError::Unsupported { .. })
        ));
    }

    #[test]
    fn merges_in_both_spellings() {
        let m = parse_merges(Some(&json!(["a b", ["c", "d e"]]))).unwrap();
        assert_eq!(m, [("a".into(), "b".into()), ("c".into(), "d e".into())]);
        assert!(matches!(
            parse_merges(Some(&json!([["a"]]))),
            Err(TokenizerError::MalformedMerge { index: 0, .. })
        ));
        assert!(matches!(
            parse_merges(Some(&json!(["ab"]))),
            Err(TokenizerError::MalformedMerge { index: 0, .. })
        ));
    }
}
