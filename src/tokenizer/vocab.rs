//! A vocabulary as llama.cpp sees it (`llama_vocab::impl::load`): token texts, scores
//! and attributes, the special token ids, the set of end-of-generation tokens and the
//! list of tokens split out of raw text before the model's tokenizer runs. Built from
//! GGUF `tokenizer.ggml.*` metadata or, for the tokenizer.json backend, from the
//! tokens the `tokenizers` crate reports.

use std::collections::{BTreeSet, HashMap};

use crate::gguf::{Array, Header, Value};

use super::TokenizerError;

/// Token attribute bits (`llama_token_attr`).
pub mod attr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;

    /// `tokenizer.ggml.token_type` (`llama_token_type`) to attributes.
    pub fn from_token_type(t: i64) -> u32 {
        match t {
            1 => NORMAL,
            2 => UNKNOWN,
            3 => CONTROL,
            4 => USER_DEFINED,
            5 => UNUSED,
            6 => BYTE,
            _ => UNDEFINED,
        }
    }
}

/// Which tokenizer the vocabulary feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// `tokenizer.ggml.model = "gpt2"`: byte-level BPE.
    Bpe,
    /// `tokenizer.ggml.model = "llama"`: SentencePiece BPE over scores.
    Spm,
}

/// Special token ids; `None` when the model has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub attrs: Vec<u32>,
    pub scores: Vec<f32>,
    pub token_to_id: HashMap<String, u32>,
    pub special: SpecialIds,
    pub eog: BTreeSet<u32>,
    /// Control, user-defined and unknown tokens, longest text first (ties by id), the
    /// order llama.cpp's `tokenizer_st_partition` tries them in.
    pub special_cache: Vec<u32>,
}

pub const KEY_MODEL: &str = "tokenizer.ggml.model";
pub const KEY_PRE: &str = "tokenizer.ggml.pre";
pub const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
pub const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const KEY_SCORES: &str = "tokenizer.ggml.scores";
pub const KEY_MERGES: &str = "tokenizer.ggml.merges";
pub const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
pub const KEY_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
pub const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// Keys of special token ids, in llama.cpp's order (the deprecated FIM keys last).
const SPECIAL_KEYS: &[&str] = &[
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.seperator_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.mask_token_id",
    "tokenizer.ggml.fim_pre_token_id",
    "tokenizer.ggml.fim_suf_token_id",
    "tokenizer.ggml.fim_mid_token_id",
    "tokenizer.ggml.fim_pad_token_id",
    "tokenizer.ggml.fim_rep_token_id",
    "tokenizer.ggml.fim_sep_token_id",
    "tokenizer.ggml.prefix_token_id",
    "tokenizer.ggml.suffix_token_id",
    "tokenizer.ggml.middle_token_id",
];

fn special_slot<'a>(s: &'a mut SpecialIds, key: &str) -> Option<&'a mut Option<u32>> {
    Some(match key.strip_prefix("tokenizer.ggml.")? {
        "bos_token_id" => &mut s.bos,
        "eos_token_id" => &mut s.eos,
        "eot_token_id" => &mut s.eot,
        "eom_token_id" => &mut s.eom,
        "unknown_token_id" => &mut s.unk,
        "seperator_token_id" => &mut s.sep,
        "padding_token_id" => &mut s.pad,
        "mask_token_id" => &mut s.mask,
        "fim_pre_token_id" | "prefix_token_id" => &mut s.fim_pre,
        "fim_suf_token_id" | "suffix_token_id" => &mut s.fim_suf,
        "fim_mid_token_id" | "middle_token_id" => &mut s.fim_mid,
        "fim_pad_token_id" => &mut s.fim_pad,
        "fim_rep_token_id" => &mut s.fim_rep,
        "fim_sep_token_id" => &mut s.fim_sep,
        _ => return None,
    })
}

pub fn get_str<'h>(header: &'h Header, key: &str) -> Result<Option<&'h str>, TokenizerError> {
    match header.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong_type(key, "string", v)),
    }
}

pub fn get_bool(header: &Header, key: &str) -> Result<Option<bool>, TokenizerError> {
    match header.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(key, "bool", v)),
    }
}

pub fn wrong_type(key: &str, expected: &'static str, v: &Value) -> TokenizerError {
    TokenizerError::WrongType {
        key: key.to_string(),
        expected,
        found: v.type_name(),
    }
}

/// The model kind named by `tokenizer.ggml.model`.
pub fn model_kind(header: &Header) -> Result<ModelKind, TokenizerError> {
    let model = get_str(header, KEY_MODEL)?.ok_or_else(|| TokenizerError::MissingKey {
        key: KEY_MODEL.to_string(),
    })?;
    match model {
        "gpt2" => Ok(ModelKind::Bpe),
        "llama" => Ok(ModelKind::Spm),
        other => Err(TokenizerError::UnknownModel {
            model: other.to_string(),
        }),
    }
}

fn string_array<'h>(header: &'h Header, key: &str) -> Result<Option<&'h [String]>, TokenizerError> {
    match header.get(key) {
        None => Ok(None),
        Some(Value::Array(Array::String(v))) => Ok(Some(v)),
        Some(v) => Err(wrong_type(key, "array[string]", v)),
    }
}

/// `tokenizer.ggml.tokens`, required.
pub fn tokens(header: &Header) -> Result<&[String], TokenizerError> {
    let tokens = string_array(header, KEY_TOKENS)?.ok_or_else(|| TokenizerError::MissingKey {
        key: KEY_TOKENS.to_string(),
    })?;
    if tokens.is_empty() {
        return Err(TokenizerError::EmptyVocab);
    }
    if u32::try_from(tokens.len()).is_err() {
        return Err(TokenizerError::VocabTooLarge {
            count: tokens.len(),
        });
    }
    Ok(tokens)
}

/// `tokenizer.ggml.merges`, if present.
pub fn merges(header: &Header) -> Result<Option<&[String]>, TokenizerError> {
    string_array(header, KEY_MERGES)
}

/// Split a merge line the way llama.cpp does: at the first space after the first byte.
pub fn split_merge(index: usize, merge: &str) -> Result<(&str, &str), TokenizerError> {
    // Byte search: a space is never part of a multi-byte character.
    merge
        .bytes()
        .skip(1)
        .position(|b| b == b' ')
        .and_then(|pos| {
            let pos = pos.checked_add(1)?;
            Some((merge.get(..pos)?, merge.get(pos.checked_add(1)?..)?))
        })
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| TokenizerError::MalformedMerge {
            index,
            merge: merge.to_string(),
        })
}

impl Vocab {
    /// Read tokens, types, scores and special ids from GGUF metadata.
    pub fn from_gguf(header: &Header, kind: ModelKind) -> Result<Vocab, TokenizerError> {
        let tokens = tokens(header)?;
        let n = tokens.len();

        let scores: Vec<f32> = match header.get(KEY_SCORES) {
            None => vec![0.0; n],
            Some(Value::Array(Array::F32(v))) => v.clone(),
            Some(Value::Array(Array::I32(v))) => v.iter().map(|&s| s as f32).collect(),
            Some(v) => return Err(wrong_type(KEY_SCORES, "array[f32] or array[i32]", v)),
        };
        if scores.len() < n {
            return Err(TokenizerError::LengthMismatch {
                key: KEY_SCORES.to_string(),
                found: scores.len(),
                expected: n,
            });
        }
        let attrs: Vec<u32> = match header.get(KEY_TOKEN_TYPE) {
            None => vec![attr::NORMAL; n],
            Some(Value::Array(Array::I32(v))) => {
                if v.len() < n {
                    return Err(TokenizerError::LengthMismatch {
                        key: KEY_TOKEN_TYPE.to_string(),
                        found: v.len(),
                        expected: n,
                    });
                }
                v.iter().map(|&t| attr::from_token_type(t.into())).collect()
            }
            Some(v) => return Err(wrong_type(KEY_TOKEN_TYPE, "array[i32]", v)),
        };

        // llama.cpp's defaults, kept only where they name a real token. BPE models get
        // none: llama.cpp's default of 11 is an artefact, not a token anyone chose.
        let mut special = SpecialIds::default();
        if kind == ModelKind::Spm {
            special.bos = Some(1).filter(|&i| (i as usize) < n);
            special.eos = Some(2).filter(|&i| (i as usize) < n);
            special.unk = Some(0);
        }
        for key in SPECIAL_KEYS {
            let Some(v) = header.get(key) else { continue };
            let id = v
                .as_u64()
                .ok_or_else(|| wrong_type(key, "unsigned integer", v))?;
            let id32 = u32::try_from(id)
                .ok()
                .filter(|&i| (i as usize) < n)
                .ok_or_else(|| TokenizerError::SpecialIdOutOfRange {
                    key: key.to_string(),
                    id,
                    vocab_size: n,
                })?;
            if let Some(slot) = special_slot(&mut special, key) {
                *slot = Some(id32);
            }
        }
        Vocab::build(tokens.to_vec(), attrs, scores, special)
    }

    /// Index the tokens, detect end-of-generation and special tokens by text as
    /// llama.cpp does, and build the partition order.
    pub fn build(
        mut tokens: Vec<String>,
        mut attrs: Vec<u32>,
        mut scores: Vec<f32>,
        mut special: SpecialIds,
    ) -> Result<Vocab, TokenizerError> {
        let n = tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        attrs.resize(n, attr::NORMAL);
        scores.resize(n, 0.0);
        let token_to_id = index_tokens(&mut tokens)?;
        detect_specials(&mut special, &token_to_id, &mut attrs);
        let eog = end_of_generation(&special, &token_to_id, &mut attrs);
        let special_cache = partition_order(&tokens, &attrs);
        Ok(Vocab {
            tokens,
            attrs,
            scores,
            token_to_id,
            special,
            eog,
            special_cache,
        })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn attr(&self, id: u32) -> u32 {
        self.attrs
            .get(id as usize)
            .copied()
            .unwrap_or(attr::UNDEFINED)
    }

    pub fn text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }
}

/// Text -> id; empty tokens get a unique name first, and a duplicate text is an error.
fn index_tokens(tokens: &mut [String]) -> Result<HashMap<String, u32>, TokenizerError> {
    let n = tokens.len();
    let mut token_to_id = HashMap::with_capacity(n);
    for (i, t) in tokens.iter_mut().enumerate() {
        let id = u32::try_from(i).map_err(|_| TokenizerError::VocabTooLarge { count: n })?;
        if t.is_empty() {
            // llama.cpp names empty tokens so that they cannot collide or match.
            *t = format!("[EMPTY_{i}]");
        }
        if let Some(&first) = token_to_id.get(t.as_str()) {
            return Err(TokenizerError::DuplicateToken {
                token: t.clone(),
                first,
                second: id,
            });
        }
        token_to_id.insert(t.clone(), id);
    }
    Ok(token_to_id)
}

fn set_control(attrs: &mut [u32], id: u32) {
    if let Some(a) = attrs.get_mut(id as usize) {
        *a |= attr::CONTROL;
    }
}

/// Fills the end-of-turn, end-of-message and fill-in-the-middle ids the metadata left
/// unset by text, marking each token found as a control token. The lowest id wins where
/// llama.cpp's hash order would.
fn detect_specials(
    special: &mut SpecialIds,
    token_to_id: &HashMap<String, u32>,
    attrs: &mut [u32],
) {
    let find = |names: &[&str]| -> Option<u32> {
        names
            .iter()
            .filter_map(|n| token_to_id.get(*n).copied())
            .min()
    };
    let detect: [(&mut Option<u32>, &[&str]); 7] = [
        (&mut special.eot, EOT_TEXTS),
        (&mut special.eom, &["<|eom_id|>"]),
        (&mut special.fim_pre, FIM_PRE_TEXTS),
        (&mut special.fim_suf, FIM_SUF_TEXTS),
        (&mut special.fim_mid, FIM_MID_TEXTS),
        (
            &mut special.fim_pad,
            &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
        ),
        (
            &mut special.fim_rep,
            &[
                "<|fim_repo|>",
                "<|repo_name|>",
                "<fim-repo>",
                "<REPO>",
                "<reponame>",
            ],
        ),
    ];
    for (slot, names) in detect {
        if slot.is_none() {
            *slot = find(names);
            slot.inspect(|&id| set_control(attrs, id));
        }
    }
    if special.fim_sep.is_none() {
        special.fim_sep = find(&["<|file_sep|>"]);
        special.fim_sep.inspect(|&id| set_control(attrs, id));
    }
}

/// The end-of-generation set: the FIM pad/repo/separator ids, every token whose text
/// llama.cpp treats as an end (made a control token), and EOS/EOT/EOM; then the
/// model-specific exceptions taken out again.
fn end_of_generation(
    special: &SpecialIds,
    token_to_id: &HashMap<String, u32>,
    attrs: &mut [u32],
) -> BTreeSet<u32> {
    let mut eog = BTreeSet::new();
    eog.extend(special.fim_pad);
    eog.extend(special.fim_rep);
    eog.extend(special.fim_sep);
    for name in EOG_TEXTS {
        if let Some(&id) = token_to_id.get(*name) {
            eog.insert(id);
            set_control(attrs, id);
        }
    }
    eog.extend(special.eos);
    eog.extend(special.eot);
    eog.extend(special.eom);
    // gpt-oss / solar-open: "<|end|>" ends a message, not the generation.
    // Gemma 4 / PaddleOCR: "</s>" is not an end of generation there.
    let has = |t: &str| token_to_id.get(t).is_some_and(|id| eog.contains(id));
    let end_is_message_end = ((has("<|return|>") && has("<|call|>"))
        || (has("<|calls|>") && has("<|flush|>")))
        && has("<|end|>");
    let s_is_text = has("<|tool_response>") && has("</s>");
    let demote = [
        (end_is_message_end, "<|end|>", attr::USER_DEFINED),
        (s_is_text, "</s>", attr::NORMAL),
    ];
    for (apply, text, new_attr) in demote {
        if let Some(&id) = token_to_id.get(text).filter(|_| apply) {
            eog.remove(&id);
            if let Some(a) = attrs.get_mut(id as usize) {
                *a = new_attr;
            }
        }
    }
    eog
}

/// Control, user-defined and unknown tokens, longest text first (ties by id): the order
/// llama.cpp's `tokenizer_st_partition` tries them in.
fn partition_order(tokens: &[String], attrs: &[u32]) -> Vec<u32> {
    let mut special_cache: Vec<u32> = (0u32..)
        .zip(attrs.iter())
        .filter(|(_, &a)| a & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0)
        .map(|(id, _)| id)
        .collect();
    special_cache
        .sort_by_key(|&id| std::cmp::Reverse(tokens.get(id as usize).map_or(0, String::len)));
    special_cache
}

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
/// Texts llama.cpp treats as end of generation wherever they appear.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_lines_split_at_the_first_inner_space() {
        assert_eq!(split_merge(0, "Ġ t").unwrap(), ("Ġ", "t"));
        assert_eq!(split_merge(0, "a b c").unwrap(), ("a", "b c"));
        assert_eq!(split_merge(0, "é ü").unwrap(), ("é", "ü"));
        for bad in ["", "ab", " ab", "a ", "é"] {
            assert!(
                matches!(
                    split_merge(7, bad),
                    Err(TokenizerError::MalformedMerge { index: 7, .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn eog_by_text_and_partition_order() {
        let toks = ["a", "<|im_end|>", "<reponame>", "<x>", "<|endoftext|>", "b"];
        let mut attrs = vec![attr::NORMAL; toks.len()];
        attrs[3] = attr::USER_DEFINED;
        let v = Vocab::build(
            toks.iter().map(|s| s.to_string()).collect(),
            attrs,
            vec![],
            SpecialIds::default(),
        )
        .unwrap();
        assert_eq!(v.eog.iter().copied().collect::<Vec<_>>(), [1, 2, 4]);
        assert_eq!(v.special_cache, [4, 1, 2, 3]);
        assert!(v.attr(1) & attr::CONTROL != 0);
    }

    #[test]
    fn duplicates_and_empties() {
        let e = Vocab::build(
            vec!["a".into(), "b".into(), "a".into()],
            vec![],
            vec![],
            SpecialIds::default(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            TokenizerError::DuplicateToken {
                token: "a".into(),
                first: 0,
                second: 2
            }
        );
        let v = Vocab::build(
            vec!["".into(), "x".into()],
            vec![],
            vec![],
            SpecialIds::default(),
        )
        .unwrap();
        assert_eq!(v.text(0), Some("[EMPTY_0]"));
    }
}
