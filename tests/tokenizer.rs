//! The probe's tokenizers against llama.cpp: on SmolLM2 (GGUF vocabulary, and a
//! tokenizer.json built from it and run by the `tokenizers` crate) the ids must equal
//! the ones llama.cpp produced (shared/reference/smollm2-greedy.json); SentencePiece on
//! a tiny hand-built vocabulary; and every malformed input a clear error.

mod common;

use std::path::{Path, PathBuf};

use gguf_gate::gguf::{parse_header, Array, GgufFile, GgufWriter, Header, Value};
use gguf_gate::tokenizer::{
    gguf_metadata_from_tokenizer_files, gguf_metadata_from_tokenizer_json,
    tokenizer_config_from_gguf, tokenizer_json_from_gguf, Tokenizer, TokenizerError,
};
use serde_json::Value as Json;

fn reference() -> Option<Json> {
    let candidates = [
        std::env::var_os("GGUF_GATE_SHARED")
            .map(|d| PathBuf::from(d).join("reference/smollm2-greedy.json")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/smollm2-greedy.json")),
        Some(PathBuf::from("/work/shared/reference/smollm2-greedy.json")),
    ];
    for p in candidates.into_iter().flatten() {
        if let Ok(bytes) = std::fs::read(&p) {
            return Some(serde_json::from_slice(&bytes).expect("reference JSON"));
        }
    }
    common::skip("shared/reference/smollm2-greedy.json not found (set GGUF_GATE_SHARED)");
    None
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

fn smollm2_header() -> Option<Header> {
    let path = common::smollm2()?;
    Some(GgufFile::open(&path).unwrap().header)
}

/// Every reference string and the greedy prompt, through `tok`, equal to llama.cpp.
fn check_against_llama_cpp(tok: &Tokenizer, reference: &Json, what: &str) {
    let mut checked = 0;
    for (text, want) in reference["tokenize"].as_object().unwrap() {
        assert_eq!(
            tok.encode(text, None, false).unwrap(),
            ids(want),
            "{what}: {text:?}"
        );
        checked += 1;
    }
    for case in reference["greedy"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        assert_eq!(
            tok.encode(prompt, None, false).unwrap(),
            ids(&case["prompt_tokens"]),
            "{what}: prompt {prompt:?}"
        );
        assert_eq!(
            tok.decode(&ids(&case["tokens"])),
            case["text"].as_str().unwrap(),
            "{what}: decode"
        );
        checked += 1;
    }
    assert_eq!(checked, 9, "{what}: 8 strings and 1 prompt");
}

#[test]
fn smollm2_gguf_vocabulary_matches_llama_cpp() {
    let (Some(header), Some(reference)) = (smollm2_header(), reference()) else {
        return;
    };
    let tok = Tokenizer::from_gguf(&header).unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!((tok.bos(), tok.eos()), (Some(1), Some(2)));
    assert!(!tok.add_bos_default());
    check_against_llama_cpp(&tok, &reference, "gguf");
}
