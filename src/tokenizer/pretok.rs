//! Byte-level BPE pre-tokenizers: the regex lists llama.cpp's `llm_tokenizer_bpe` picks
//! for each `tokenizer.ggml.pre` name, and the split they perform. Each regex of a list
//! is applied in turn to every piece the previous one produced; both the matches and
//! the unmatched text between them become pieces (llama.cpp `unicode_regex_split`, the
//! same as Hugging Face `Split` with behaviour `Isolated`). A regex only ever sees one
//! piece, so look-aheads such as `\s+(?!\S)` stop at the piece's end.

use fancy_regex::Regex;

use super::TokenizerError;

/// GPT-2's pattern as llama.cpp writes it (without the final `|\s+`: the whitespace it
/// would match is emitted anyway, as unmatched text).
pub const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's pattern with `(?i:...)` spelled out, as llama.cpp adapts it.
pub const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's pattern: Llama 3's with single digits.
pub const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The case-insensitive group as Hugging Face tokenizer.json files write it.
pub const CONTRACTIONS_HF: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)";
/// The same group as llama.cpp writes it (std::regex has no inline flags).
pub const CONTRACTIONS_LLAMA: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

const DIGIT: &str = r"\p{N}";
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// One regex list of llama.cpp's `llm_tokenizer_bpe` constructor; several
/// `tokenizer.ggml.pre` names share each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegexList {
    Default,
    Llama3,
    Gpt2,
    Starcoder,
    Qwen2,
    Falcon,
    DeepseekCoder,
    Poro,
    Viking,
    Tekken,
    Gpt4o,
}

impl RegexList {
    pub const ALL: [RegexList; 11] = [
        RegexList::Default,
        RegexList::Llama3,
        RegexList::Gpt2,
        RegexList::Starcoder,
        RegexList::Qwen2,
        RegexList::Falcon,
        RegexList::DeepseekCoder,
        RegexList::Poro,
        RegexList::Viking,
        RegexList::Tekken,
        RegexList::Gpt4o,
    ];

    /// The regexes, applied in order.
    pub fn patterns(self) -> &'static [&'static str] {
        match self {
            RegexList::Default => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
            RegexList::Llama3 => &[LLAMA3],
            RegexList::Gpt2 => &[GPT2],
            RegexList::Starcoder => &[DIGIT, GPT2],
            RegexList::Qwen2 => &[QWEN2],
            RegexList::Falcon => &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
            RegexList::DeepseekCoder => &[
                "[\r\n]",
                r"\s?\p{L}+",
                r"\s?\p{P}+",
                "[一-龥ࠀ-一가-퟿]+",
                DIGIT,
            ],
            RegexList::Poro => &[" ?[^(\\s|.,!?…。，、।۔،)]+"],
            RegexList::Viking => &[" ?[^(\\s|.,!?…。，、।۔،)]+", DIGIT],
            RegexList::Tekken => &[TEKKEN],
            RegexList::Gpt4o => &[GPT4O],
        }
    }

    /// The `tokenizer.ggml.pre` name written for this list when converting from a
    /// tokenizer.json, which carries the regexes but no name (see docs/tokenizer.md).
    pub fn canonical_name(self, ignore_merges: bool) -> &'static str {
        match self {
            RegexList::Default => "default",
            RegexList::Llama3 if ignore_merges => "llama-bpe",
            RegexList::Llama3 => "dbrx",
            RegexList::Gpt2 => "gpt-2",
            RegexList::Starcoder => "smollm",
            RegexList::Qwen2 => "qwen2",
            RegexList::Falcon => "falcon",
            RegexList::DeepseekCoder => "deepseek-coder",
            RegexList::Poro => "poro-chat",
            RegexList::Viking => "viking",
            RegexList::Tekken => "tekken",
            RegexList::Gpt4o => "gpt-4o",
        }
    }
}

/// What a `tokenizer.ggml.pre` name means to llama.cpp (`llama_vocab::impl::load`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreKind {
    pub list: RegexList,
    /// A word that is itself a token is emitted whole, without merges.
    pub ignore_merges: bool,
    /// `add_bos` before `tokenizer.ggml.add_bos_token` is read.
    pub add_bos: bool,
}

/// Every supported name, grouped by regex list, for error messages and docs.
pub const NAMES: &[(&str, RegexList)] = &[
    ("default", RegexList::Default),
    ("llama3", RegexList::Llama3),
    ("llama-v3", RegexList::Llama3),
    ("llama-bpe", RegexList::Llama3),
    ("falcon3", RegexList::Llama3),
    ("falcon-h1", RegexList::Llama3),
    ("pixtral", RegexList::Llama3),
    ("midm-2.0", RegexList::Llama3),
    ("lfm2", RegexList::Llama3),
    ("dbrx", RegexList::Llama3),
    ("smaug-bpe", RegexList::Llama3),
    ("chatglm-bpe", RegexList::Llama3),
    ("glm4", RegexList::Llama3),
    ("gpt-2", RegexList::Gpt2),
    ("phi-2", RegexList::Gpt2),
    ("jina-es", RegexList::Gpt2),
    ("jina-de", RegexList::Gpt2),
    ("gigachat", RegexList::Gpt2),
    ("jina-v2-es", RegexList::Gpt2),
    ("jina-v2-de", RegexList::Gpt2),
    ("a.x-4.0", RegexList::Gpt2),
    ("mellum", RegexList::Gpt2),
    ("mpt", RegexList::Gpt2),
    ("olmo", RegexList::Gpt2),
    ("jais", RegexList::Gpt2),
    ("trillion", RegexList::Gpt2),
    ("granite-docling", RegexList::Gpt2),
    ("exaone4", RegexList::Gpt2),
    ("starcoder", RegexList::Starcoder),
    ("refact", RegexList::Starcoder),
    ("command-r", RegexList::Starcoder),
    ("smollm", RegexList::Starcoder),
    ("codeshell", RegexList::Starcoder),
    ("exaone", RegexList::Starcoder),
    ("minerva-7b", RegexList::Starcoder),
    ("qwen2", RegexList::Qwen2),
    ("deepseek-r1-qwen", RegexList::Qwen2),
    ("stablelm2", RegexList::Qwen2),
    ("megrez", RegexList::Qwen2),
    ("hunyuan", RegexList::Qwen2),
    ("falcon", RegexList::Falcon),
    ("deepseek-coder", RegexList::DeepseekCoder),
    ("poro-chat", RegexList::Poro),
    ("bloom", RegexList::Poro),
    ("gpt3-finnish", RegexList::Poro),
    ("viking", RegexList::Viking),
    ("tekken", RegexList::Tekken),
    ("gpt-4o", RegexList::Gpt4o),
    ("llama4", RegexList::Gpt4o),
];

/// The meaning of a `tokenizer.ggml.pre` name, or an error naming the supported ones.
pub fn lookup(name: &str) -> Result<PreKind, TokenizerError> {
    let list = NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, l)| l)
        .ok_or_else(|| TokenizerError::UnknownPre {
            pre: name.to_string(),
            supported: NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        })?;
    let llama3_proper = matches!(
        name,
        "llama3"
            | "llama-v3"
            | "llama-bpe"
            | "falcon3"
            | "falcon-h1"
            | "pixtral"
            | "midm-2.0"
            | "lfm2"
    );
    Ok(PreKind {
        list,
        ignore_merges: llama3_proper || name == "tekken",
        add_bos: llama3_proper || name == "tekken",
    })
}

/// A compiled regex list.
#[derive(Debug)]
pub struct PreTokenizer {
    name: String,
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    pub fn new(name: &str, patterns: &[&str]) -> Result<PreTokenizer, TokenizerError> {
        let regexes = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| TokenizerError::Regex {
                    pre: name.to_string(),
                    pattern: p.to_string(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(PreTokenizer {
            name: name.to_string(),
            regexes,
        })
    }

    /// `text` cut into words; their concatenation is `text`.
    pub fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, TokenizerError> {
        let mut pieces = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len());
            for piece in pieces {
                let mut last = 0;
                for m in re.find_iter(piece) {
                    let m = m.map_err(|e| TokenizerError::Regex {
                        pre: self.name.clone(),
                        pattern: re.as_str().to_string(),
                        message: e.to_string(),
                    })?;
                    if m.start() > last {
                        next.extend(piece.get(last..m.start()));
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    last = m.end();
                }
                if last < piece.len() {
                    next.extend(piece.get(last..));
                }
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(list: RegexList, text: &str) -> Vec<String> {
        let pre = PreTokenizer::new("t", list.patterns()).unwrap();
        pre.split(text)
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn every_list_compiles_and_names_resolve() {
        for list in RegexList::ALL {
            PreTokenizer::new("t", list.patterns()).unwrap();
            assert_eq!(lookup(list.canonical_name(false)).unwrap().list, list);
            assert_eq!(lookup(list.canonical_name(true)).unwrap().list, list);
        }
        for (name, list) in NAMES {
            assert_eq!(lookup(name).unwrap().list, *list);
        }
        assert!(matches!(
            lookup("no-such-pre"),
            Err(TokenizerError::UnknownPre { .. })
        ));
    }

    #[test]
    fn gpt2_keeps_a_space_with_the_next_word() {
        assert_eq!(
            split(RegexList::Gpt2, "Hello  world's 123!"),
            ["Hello", " ", " world", "'s", " 123", "!"]
        );
        // A lone tab before a word is not matched by the regex: it stays a piece.
        assert_eq!(split(RegexList::Gpt2, "a\tb"), ["a", "\t", "b"]);
    }

    #[test]
    fn starcoder_splits_digits_first() {
        assert_eq!(
            split(RegexList::Starcoder, "x 1234"),
            ["x", " ", "1", "2", "3", "4"]
        );
    }

    #[test]
    fn llama3_groups_three_digits_and_newlines() {
        assert_eq!(
            split(RegexList::Llama3, "1234567 I'M\n\n ok"),
            ["123", "456", "7", " I", "'M", "\n\n", " ok"]
        );
        assert_eq!(split(RegexList::Qwen2, "123"), ["1", "2", "3"]);
    }

    #[test]
    fn default_splits_punctuation_and_digit_triples() {
        assert_eq!(
            split(RegexList::Default, "a, 12345"),
            ["a", ",", " ", "123", "45"]
        );
    }
}
