//! Tokenizers for the probe: text to token ids and back, for the model being gated.
//! Two sources: the vocabulary embedded in GGUF metadata (`tokenizer.ggml.*`), read and
//! run the way llama.cpp's `llama-vocab.cpp` does so that the probe feeds the model the
//! ids llama.cpp would; and a Hugging Face tokenizer.json, run by the pure-Rust
//! `tokenizers` crate. `convert` maps between the two representations for `export`.
//! See docs/tokenizer.md for the supported models, pre-tokenizers and limits.

mod bpe;
mod bytes;
mod convert;
mod error;
mod hf;
mod pretok;
mod spm;
mod spm_model;
mod vocab;

use std::collections::BTreeSet;
use std::path::Path;

use crate::gguf::Header;

pub use convert::{
    gguf_metadata_from_tokenizer_files, gguf_metadata_from_tokenizer_json,
    tokenizer_config_from_gguf, tokenizer_json_from_gguf,
};
pub use error::TokenizerError;
pub use pretok::NAMES as PRE_TOKENIZER_NAMES;
pub use spm_model::gguf_metadata_from_sentencepiece;

use vocab::{attr, ModelKind, Vocab};

/// A tokenizer for one model. Cheap to share across threads (`Send + Sync`).
pub struct Tokenizer {
    vocab: Vocab,
    add_bos: bool,
    add_eos: bool,
    engine: Engine,
}

enum Engine {
    /// Byte-level BPE from GGUF metadata.
    Bpe {
        pre: pretok::PreTokenizer,
        merges: bpe::Merges,
        ignore_merges: bool,
    },
    /// SentencePiece from GGUF metadata.
    Spm { add_space_prefix: bool },
    /// A tokenizer.json run by the `tokenizers` crate.
    Hf(Box<hf::HfEngine>),
}

/// How a normal token's text maps to the bytes it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceStyle {
    /// GPT-2 byte characters.
    ByteLevel,
    /// `▁` stands for a space.
    Metaspace,
    /// The text is the bytes.
    Raw,
}

/// A piece of input: raw text still to be tokenized, or a special token split out.
#[derive(Debug, PartialEq, Eq)]
enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

impl Tokenizer {
    /// The tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(header: &Header) -> Result<Tokenizer, TokenizerError> {
        let kind = vocab::model_kind(header)?;
        match kind {
            ModelKind::Bpe => {
                let pre_name =
                    vocab::get_str(header, vocab::KEY_PRE)?.ok_or(TokenizerError::MissingPre)?;
                let pre_kind = pretok::lookup(pre_name)?;
                let vocab = Vocab::from_gguf(header, kind)?;
                let merge_lines =
                    vocab::merges(header)?.ok_or_else(|| TokenizerError::MissingKey {
                        key: vocab::KEY_MERGES.to_string(),
                    })?;
                let merges = bpe::Merges::parse(merge_lines, &vocab)?;
                let pre = pretok::PreTokenizer::new(pre_name, pre_kind.list.patterns())?;
                let add_bos =
                    vocab::get_bool(header, vocab::KEY_ADD_BOS)?.unwrap_or(pre_kind.add_bos);
                let add_eos = vocab::get_bool(header, vocab::KEY_ADD_EOS)?.unwrap_or(false);
                Tokenizer::new(
                    vocab,
                    add_bos,
                    add_eos,
                    Engine::Bpe {
                        pre,
                        merges,
                        ignore_merges: pre_kind.ignore_merges,
                    },
                )
            }
            ModelKind::Spm => {
                let vocab = Vocab::from_gguf(header, kind)?;
                let add_bos = vocab::get_bool(header, vocab::KEY_ADD_BOS)?.unwrap_or(true);
                let add_eos = vocab::get_bool(header, vocab::KEY_ADD_EOS)?.unwrap_or(false);
                let add_space_prefix =
                    vocab::get_bool(header, vocab::KEY_ADD_SPACE_PREFIX)?.unwrap_or(true);
                Tokenizer::new(vocab, add_bos, add_eos, Engine::Spm { add_space_prefix })
            }
        }
    }

    /// A Hugging Face tokenizer.json, run by the `tokenizers` crate. BOS/EOS and their
    /// add flags come from a `tokenizer_config.json` beside it when there is one, else
    /// from the post-processor template, else from well-known special token names.
    pub fn from_json_file(path: &Path) -> Result<Tokenizer, TokenizerError> {
        let loaded = hf::load(path)?;
        Tokenizer::new(
            loaded.vocab,
            loaded.add_bos,
            loaded.add_eos,
            Engine::Hf(Box::new(loaded.engine)),
        )
    }

    fn new(
        vocab: Vocab,
        add_bos: bool,
        add_eos: bool,
        engine: Engine,
    ) -> Result<Tokenizer, TokenizerError> {
        if add_bos && vocab.special.bos.is_none() {
            return Err(TokenizerError::NoBos);
        }
        if add_eos && vocab.special.eos.is_none() {
            return Err(TokenizerError::NoEos);
        }
        Ok(Tokenizer {
            vocab,
            add_bos,
            add_eos,
            engine,
        })
    }

    /// Token ids for `text`. `add_bos`: `None` adds what the model adds by default
    /// (llama.cpp's `add_special = true`: BOS, and EOS where the model asks for it);
    /// `Some(b)` adds a BOS exactly when `b`, and never an EOS. `parse_special`: control
    /// tokens written in the text (`<|im_end|>`) become their ids; user-defined tokens
    /// are always split out, as in llama.cpp.
    pub fn encode(
        &self,
        text: &str,
        add_bos: Option<bool>,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let (bos, eos) = match add_bos {
            None => (self.add_bos, self.add_eos),
            Some(b) => (b, false),
        };
        let mut out = Vec::new();
        if bos {
            out.push(self.vocab.special.bos.ok_or(TokenizerError::NoBos)?);
        }
        match &self.engine {
            Engine::Hf(engine) => engine.encode(text, parse_special, &mut out)?,
            Engine::Bpe {
                pre,
                merges,
                ignore_merges,
            } => {
                for fragment in self.partition(text, parse_special) {
                    match fragment {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(t) => {
                            for word in pre.split(t)? {
                                let word = bytes::encode(word);
                                bpe::encode_word(
                                    &word,
                                    &self.vocab,
                                    merges,
                                    *ignore_merges,
                                    &mut out,
                                );
                            }
                        }
                    }
                }
            }
            Engine::Spm { add_space_prefix } => {
                let mut prev_special = true;
                for fragment in self.partition(text, parse_special) {
                    match fragment {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(t) => {
                            let mut s = String::with_capacity(t.len() + 3);
                            if *add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(t);
                            spm::encode(&s.replace(' ', "\u{2581}"), &self.vocab, &mut out)?;
                            prev_special = false;
                        }
                    }
                }
            }
        }
        if eos {
            out.push(self.vocab.special.eos.ok_or(TokenizerError::NoEos)?);
        }
        Ok(out)
    }

    /// Split special tokens out of `text` (llama.cpp `tokenizer_st_partition`): longest
    /// token text first, each occurrence left to right, in every remaining text piece.
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut fragments = Vec::new();
        if text.is_empty() {
            return fragments;
        }
        fragments.push(Fragment::Text(text));
        for &id in &self.vocab.special_cache {
            let a = self.vocab.attr(id);
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let Some(special) = self.vocab.text(id).filter(|t| !t.is_empty()) else {
                continue;
            };
            if !fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(special)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(pos) = rest.find(special) {
                    if let Some(left) = rest.get(..pos).filter(|l| !l.is_empty()) {
                        next.push(Fragment::Text(left));
                    }
                    next.push(Fragment::Token(id));
                    rest = rest.get(pos.saturating_add(special.len())..).unwrap_or("");
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// The text of `ids`: their pieces concatenated byte for byte, with invalid UTF-8
    /// replaced (U+FFFD) only once, at the end. Nothing is stripped or cleaned up.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.piece_bytes(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The raw bytes token `id` stands for. Control, unknown and user-defined tokens
    /// give their text (llama.cpp's `token_to_piece(.., special = true)`); unused and
    /// undefined tokens, and ids outside the vocabulary, give nothing.
    pub fn piece_bytes(&self, id: u32) -> Vec<u8> {
        let Some(text) = self.vocab.text(id) else {
            return Vec::new();
        };
        let a = self.vocab.attr(id);
        if a & (attr::CONTROL | attr::UNKNOWN | attr::USER_DEFINED) != 0 {
            text.as_bytes().to_vec()
        } else if a & attr::NORMAL != 0 {
            match self.piece_style() {
                PieceStyle::ByteLevel => bytes::decode(text),
                PieceStyle::Metaspace => text.replace('\u{2581}', " ").into_bytes(),
                PieceStyle::Raw => text.as_bytes().to_vec(),
            }
        } else if a & attr::BYTE != 0 {
            parse_byte_token(text).map_or_else(|| text.as_bytes().to_vec(), |b| vec![b])
        } else {
            Vec::new()
        }
    }

    fn piece_style(&self) -> PieceStyle {
        match &self.engine {
            Engine::Bpe { .. } => PieceStyle::ByteLevel,
            Engine::Spm { .. } => PieceStyle::Metaspace,
            Engine::Hf(e) => e.piece_style(),
        }
    }

    pub fn bos(&self) -> Option<u32> {
        self.vocab.special.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.vocab.special.eos
    }

    /// Whether generating `id` ends the generation: EOS, EOT, EOM, FIM pad/repo/sep and
    /// the control tokens llama.cpp recognises by text (`<|im_end|>`, `<|eot_id|>`, ...),
    /// as `llama_vocab::is_eog`.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.vocab.eog.contains(&id)
    }

    /// The end-of-generation set, smallest id first.
    pub fn end_of_generation_ids(&self) -> &BTreeSet<u32> {
        &self.vocab.eog
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Whether `encode(.., None, ..)` adds a BOS.
    pub fn add_bos_default(&self) -> bool {
        self.add_bos
    }

    /// The text of token `id` as stored in the vocabulary (byte characters and all).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.text(id)
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = match &self.engine {
            Engine::Bpe { .. } => "gguf byte-level BPE",
            Engine::Spm { .. } => "gguf SentencePiece",
            Engine::Hf(_) => "tokenizer.json",
        };
        f.debug_struct("Tokenizer")
            .field("engine", &engine)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos())
            .field("eos", &self.eos())
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish()
    }
}

/// `<0xAB>` -> 0xAB.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xff>"), Some(255));
        for bad in ["<0x>", "<0x123>", "0x0A", "<0xZZ>", "<0x+1>"] {
            assert_eq!(parse_byte_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokenizer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Tokenizer>();
    }
}
