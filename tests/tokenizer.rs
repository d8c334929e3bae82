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

fn write_json(dir: &Path, name: &str, v: &Json) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

/// A header holding only `entries`.
fn header_of(entries: Vec<(String, Value)>) -> Header {
    let mut w = GgufWriter::new();
    for (k, v) in entries {
        w.add(k, v).unwrap();
    }
    parse_header(&w.to_bytes(&[]).unwrap()).unwrap()
}

fn kv(entries: &[(&str, Value)]) -> Vec<(String, Value)> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn smollm2_special_tokens_and_end_of_generation() {
    let Some(header) = smollm2_header() else {
        return;
    };
    let tok = Tokenizer::from_gguf(&header).unwrap();
    let chat = "<|im_start|>user\nHi<|im_end|>";
    let parsed = tok.encode(chat, None, true).unwrap();
    assert_eq!(parsed.first(), Some(&1));
    assert_eq!(parsed.last(), Some(&2));
    let literal = tok.encode(chat, None, false).unwrap();
    assert!(
        !literal.contains(&1) && !literal.contains(&2),
        "{literal:?}"
    );
    assert_eq!(tok.decode(&literal), chat);
    assert_eq!(tok.decode(&parsed), chat);
    // llama.cpp's EOG set for SmolLM2: <|endoftext|>, <|im_end|> (eos) and <reponame> (FIM repo).
    let eog: Vec<u32> = tok.end_of_generation_ids().iter().copied().collect();
    assert_eq!(eog, [0, 2, 4]);
    assert!(
        tok.is_end_of_generation(2)
            && !tok.is_end_of_generation(1)
            && !tok.is_end_of_generation(504)
    );
    assert_eq!(tok.piece_bytes(216), b" ");
    assert_eq!(tok.piece_bytes(u32::MAX), b"");
    assert_eq!(tok.encode("", None, true).unwrap(), Vec::<u32>::new());
    assert_eq!(
        tok.encode("Hi", Some(true), false).unwrap().first(),
        Some(&1)
    );
}

#[test]
fn smollm2_tokenizer_json_built_from_gguf_matches_llama_cpp() {
    let (Some(header), Some(reference)) = (smollm2_header(), reference()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = tokenizer_json_from_gguf(&header).unwrap();
    let path = write_json(dir.path(), "tokenizer.json", &json);

    // Alone: no config, no template, so no BOS is added and none is named.
    let tok = Tokenizer::from_json_file(&path).unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    assert!(!tok.add_bos_default());
    check_against_llama_cpp(&tok, &reference, "tokenizer.json");

    // With the tokenizer_config.json written beside it: the same special ids as GGUF.
    write_json(
        dir.path(),
        "tokenizer_config.json",
        &tokenizer_config_from_gguf(&header).unwrap(),
    );
    let tok = Tokenizer::from_json_file(&path).unwrap();
    let gguf = Tokenizer::from_gguf(&header).unwrap();
    assert_eq!((tok.bos(), tok.eos()), (Some(1), Some(2)));
    assert_eq!(tok.end_of_generation_ids(), gguf.end_of_generation_ids());
    let chat = "<|im_start|>user\nWhat's 2+2?<|im_end|>\n";
    for parse_special in [false, true] {
        assert_eq!(
            tok.encode(chat, None, parse_special).unwrap(),
            gguf.encode(chat, None, parse_special).unwrap(),
            "parse_special = {parse_special}"
        );
    }
    check_against_llama_cpp(&tok, &reference, "tokenizer.json + config");
}

#[test]
fn smollm2_round_trip_gguf_json_metadata() {
    let (Some(header), Some(reference)) = (smollm2_header(), reference()) else {
        return;
    };
    let json = tokenizer_json_from_gguf(&header).unwrap();
    let config = tokenizer_config_from_gguf(&header).unwrap();
    let meta = gguf_metadata_from_tokenizer_files(&json, Some(&config)).unwrap();
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("tokenizer.ggml.model"),
        Some(Value::String("gpt2".into()))
    );
    assert_eq!(
        get("tokenizer.ggml.pre"),
        Some(Value::String("smollm".into()))
    );
    for key in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
    ] {
        assert_eq!(get(key).as_ref(), header.get(key), "{key}");
    }
    assert_eq!(get("tokenizer.ggml.bos_token_id"), Some(Value::U32(1)));
    assert_eq!(get("tokenizer.ggml.eos_token_id"), Some(Value::U32(2)));
    assert_eq!(get("tokenizer.ggml.padding_token_id"), Some(Value::U32(2)));
    assert_eq!(
        get("tokenizer.ggml.add_bos_token"),
        Some(Value::Bool(false))
    );
    let rebuilt = Tokenizer::from_gguf(&header_of(meta)).unwrap();
    check_against_llama_cpp(&rebuilt, &reference, "gguf -> json -> gguf");

    // Without the config the token data still round-trips.
    let bare = gguf_metadata_from_tokenizer_json(&json).unwrap();
    let rebuilt = Tokenizer::from_gguf(&header_of(bare)).unwrap();
    check_against_llama_cpp(&rebuilt, &reference, "gguf -> json (no config) -> gguf");
}
