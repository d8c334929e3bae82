//! The probe's tokenizers against llama.cpp: on SmolLM2 (GGUF vocabulary, and a
//! tokenizer.json built from it and run by the `tokenizers` crate) the ids must equal
//! the ones llama.cpp produced (tests/reference/smollm2-greedy.json); SentencePiece on
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
    Some(common::reference_json("smollm2-greedy.json"))
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
    // The bundled evaluation text (prose, numbers, code): 1164 tokens.
    let f = &reference["tokenize_file"];
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f["path"].as_str().unwrap());
    let text = std::fs::read_to_string(path).unwrap();
    let ours = tok.encode(&text, None, false).unwrap();
    assert_eq!(ours, ids(&f["ids"]), "{what}: the bundled text");
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

/// A tiny SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens, a
/// user-defined <tool>, and pieces scored so that "▁hello" and "▁world" form.
fn spm_entries(extra: &[(&str, Value)]) -> Vec<(String, Value)> {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0f32; 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    tokens.push("<tool>".into());
    types.push(4);
    scores.push(0.0);
    let pieces: &[(&str, f32)] = &[
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -3.0),
        ("l", -4.0),
        ("o", -5.0),
        ("w", -6.0),
        ("r", -7.0),
        ("d", -8.0),
        ("ll", -10.0),
        ("▁h", -11.0),
        ("▁he", -12.0),
        ("llo", -13.0),
        ("▁hello", -14.0),
        ("or", -20.0),
        ("▁w", -21.0),
        ("▁wor", -22.0),
        ("ld", -23.0),
        ("▁world", -24.0),
    ];
    for (p, s) in pieces {
        tokens.push(p.to_string());
        types.push(1);
        scores.push(*s);
    }
    let mut e = kv(&[
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.tokens", Value::Array(Array::String(tokens))),
        ("tokenizer.ggml.scores", Value::Array(Array::F32(scores))),
        ("tokenizer.ggml.token_type", Value::Array(Array::I32(types))),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
    ]);
    e.extend(kv(extra));
    e
}

/// The id of `piece` in the tiny SentencePiece vocabulary.
fn spm_id(tok: &Tokenizer, piece: &str) -> u32 {
    (0..tok.vocab_size() as u32)
        .find(|&i| tok.token_text(i) == Some(piece))
        .unwrap_or_else(|| panic!("{piece:?} not in the vocabulary"))
}

/// Known segmentations of the tiny SentencePiece vocabulary, checked on `tok`.
fn check_spm(tok: &Tokenizer) {
    let id = |p: &str| spm_id(tok, p);
    let byte = |b: u8| spm_id(tok, &format!("<0x{b:02X}>"));
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));
    assert!(tok.add_bos_default(), "SentencePiece adds BOS by default");
    assert_eq!(
        tok.encode("hello world", None, false).unwrap(),
        [1, id("▁hello"), id("▁world")]
    );
    assert_eq!(
        tok.encode("hello world", Some(false), false).unwrap(),
        [id("▁hello"), id("▁world")]
    );
    // "é" is no token: spelled as its UTF-8 bytes.
    let hello = tok.encode("héllo", Some(false), false).unwrap();
    assert_eq!(hello, [id("▁h"), byte(0xC3), byte(0xA9), id("llo")]);
    assert_eq!(tok.decode(&hello), " héllo");
    assert_eq!(tok.piece_bytes(byte(0xC3)), [0xC3]);
    // A control token is text unless parse_special; after it a space is prefixed again.
    assert_eq!(
        tok.encode("<s>hello", Some(false), true).unwrap(),
        [1, id("▁hello")]
    );
    assert_eq!(
        tok.encode("<s>hello", Some(false), false).unwrap(),
        [
            id("▁"),
            byte(b'<'),
            byte(b's'),
            byte(b'>'),
            id("h"),
            id("e"),
            id("llo")
        ]
    );
    // A user-defined token is always split out.
    assert_eq!(
        tok.encode("hello<tool>world", Some(false), false).unwrap(),
        [id("▁hello"), id("<tool>"), id("▁world")]
    );
    assert!(tok.is_end_of_generation(2) && !tok.is_end_of_generation(1));
}

#[test]
fn sentencepiece_segmentation_byte_fallback_and_bos() {
    let tok = Tokenizer::from_gguf(&header_of(spm_entries(&[]))).unwrap();
    check_spm(&tok);

    let no_prefix = Tokenizer::from_gguf(&header_of(spm_entries(&[(
        "tokenizer.ggml.add_space_prefix",
        Value::Bool(false),
    )])))
    .unwrap();
    let id = |p: &str| spm_id(&no_prefix, p);
    assert_eq!(
        no_prefix.encode("hello", Some(false), false).unwrap(),
        [id("h"), id("e"), id("llo")]
    );
    assert_eq!(
        no_prefix.encode(" hello", Some(false), false).unwrap(),
        [id("▁hello")]
    );

    let no_bos = Tokenizer::from_gguf(&header_of(spm_entries(&[(
        "tokenizer.ggml.add_bos_token",
        Value::Bool(false),
    )])))
    .unwrap();
    assert!(!no_bos.add_bos_default());
    assert_eq!(
        no_bos.encode("hello", None, false).unwrap(),
        [spm_id(&no_bos, "▁hello")]
    );
    assert_eq!(
        no_bos.encode("hello", Some(true), false).unwrap().first(),
        Some(&1)
    );

    let with_eos = Tokenizer::from_gguf(&header_of(spm_entries(&[(
        "tokenizer.ggml.add_eos_token",
        Value::Bool(true),
    )])))
    .unwrap();
    assert_eq!(
        with_eos.encode("hello", None, false).unwrap().last(),
        Some(&2)
    );
    assert_eq!(
        with_eos.encode("hello", Some(true), false).unwrap().last(),
        Some(&spm_id(&with_eos, "▁hello"))
    );
}

#[test]
fn sentencepiece_round_trips_through_tokenizer_json() {
    let header = header_of(spm_entries(&[]));
    let dir = tempfile::tempdir().unwrap();
    let json = tokenizer_json_from_gguf(&header).unwrap();
    let path = write_json(dir.path(), "tokenizer.json", &json);
    write_json(
        dir.path(),
        "tokenizer_config.json",
        &tokenizer_config_from_gguf(&header).unwrap(),
    );
    check_spm(&Tokenizer::from_json_file(&path).unwrap());

    let config = tokenizer_config_from_gguf(&header).unwrap();
    let meta = gguf_metadata_from_tokenizer_files(&json, Some(&config)).unwrap();
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("tokenizer.ggml.model"),
        Some(Value::String("llama".into()))
    );
    assert_eq!(
        get("tokenizer.ggml.token_type").as_ref(),
        header.get("tokenizer.ggml.token_type")
    );
    assert_eq!(
        get("tokenizer.ggml.add_space_prefix"),
        Some(Value::Bool(true))
    );
    check_spm(&Tokenizer::from_gguf(&header_of(meta)).unwrap());
}

fn bpe_entries(tokens: &[&str], merges: &[&str], pre: Option<&str>) -> Vec<(String, Value)> {
    let mut e = kv(&[
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(Array::String(
                tokens.iter().map(|s| s.to_string()).collect(),
            )),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(Array::String(
                merges.iter().map(|s| s.to_string()).collect(),
            )),
        ),
    ]);
    if let Some(p) = pre {
        e.push(("tokenizer.ggml.pre".into(), Value::String(p.into())));
    }
    e
}

fn error_of(entries: Vec<(String, Value)>) -> TokenizerError {
    match Tokenizer::from_gguf(&header_of(entries)) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn replace(mut e: Vec<(String, Value)>, key: &str, v: Option<Value>) -> Vec<(String, Value)> {
    e.retain(|(k, _)| k != key);
    if let Some(v) = v {
        e.push((key.to_string(), v));
    }
    e
}

#[test]
fn malformed_metadata_is_a_clear_error() {
    let ok = bpe_entries(&["a", "b", "ab", "Ġ"], &["a b"], Some("gpt-2"));
    let tok = Tokenizer::from_gguf(&header_of(ok.clone())).unwrap();
    assert_eq!(tok.encode("ab a", None, false).unwrap(), [2, 3, 0]);
    assert_eq!((tok.bos(), tok.eos()), (None, None));

    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.model",
        Some(Value::String("wordpiece".into())),
    ));
    assert_eq!(
        e,
        TokenizerError::UnknownModel {
            model: "wordpiece".into()
        }
    );
    assert!(e.to_string().contains("\"wordpiece\""));

    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.pre",
        Some(Value::String("mystery".into())),
    ));
    assert!(
        matches!(&e, TokenizerError::UnknownPre { pre, .. } if pre == "mystery"),
        "{e}"
    );
    assert!(e.to_string().contains("smollm"), "{e}");

    assert_eq!(
        error_of(replace(ok.clone(), "tokenizer.ggml.pre", None)),
        TokenizerError::MissingPre
    );

    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.merges",
        Some(Value::Array(Array::String(vec![
            "a b".into(),
            "b c".into(),
        ]))),
    ));
    assert_eq!(
        e,
        TokenizerError::MergeUnknownToken {
            index: 1,
            merge: "b c".into(),
            token: "c".into()
        }
    );
    assert!(e.to_string().contains("merge 1"), "{e}");

    let e = error_of(replace(ok.clone(), "tokenizer.ggml.tokens", None));
    assert_eq!(
        e,
        TokenizerError::MissingKey {
            key: "tokenizer.ggml.tokens".into()
        }
    );

    let e = error_of(replace(ok.clone(), "tokenizer.ggml.model", None));
    assert_eq!(
        e,
        TokenizerError::MissingKey {
            key: "tokenizer.ggml.model".into()
        }
    );

    let e = error_of(replace(ok.clone(), "tokenizer.ggml.merges", None));
    assert_eq!(
        e,
        TokenizerError::MissingKey {
            key: "tokenizer.ggml.merges".into()
        }
    );

    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.tokens",
        Some(Value::Array(Array::I32(vec![1]))),
    ));
    assert!(
        matches!(e, TokenizerError::WrongType { ref key, .. } if key == "tokenizer.ggml.tokens"),
        "{e}"
    );

    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.tokens",
        Some(Value::Array(Array::String(vec![]))),
    ));
    assert_eq!(e, TokenizerError::EmptyVocab);

    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.tokens",
        Some(Value::Array(Array::String(vec![
            "a".into(),
            "b".into(),
            "ab".into(),
            "a".into(),
        ]))),
    ));
    assert_eq!(
        e,
        TokenizerError::DuplicateToken {
            token: "a".into(),
            first: 0,
            second: 3
        }
    );

    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.token_type",
        Some(Value::Array(Array::I32(vec![1, 1]))),
    ));
    assert!(
        matches!(
            e,
            TokenizerError::LengthMismatch {
                found: 2,
                expected: 4,
                ..
            }
        ),
        "{e}"
    );

    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.eos_token_id",
        Some(Value::U32(4)),
    ));
    assert_eq!(
        e,
        TokenizerError::SpecialIdOutOfRange {
            key: "tokenizer.ggml.eos_token_id".into(),
            id: 4,
            vocab_size: 4
        }
    );

    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.merges",
        Some(Value::Array(Array::String(vec!["ab".into()]))),
    ));
    assert!(
        matches!(e, TokenizerError::MalformedMerge { index: 0, .. }),
        "{e}"
    );

    // Asked to add a BOS it does not have.
    let e = error_of(replace(
        ok.clone(),
        "tokenizer.ggml.add_bos_token",
        Some(Value::Bool(true)),
    ));
    assert_eq!(e, TokenizerError::NoBos);
    assert_eq!(
        tok.encode("a", Some(true), false).unwrap_err(),
        TokenizerError::NoBos
    );
}

#[test]
fn malformed_tokenizer_json_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Tokenizer::from_json_file(&dir.path().join("absent.json"))
        .err()
        .unwrap();
    assert!(matches!(missing, TokenizerError::Io { .. }), "{missing}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"model\": 3").unwrap();
    assert!(matches!(
        Tokenizer::from_json_file(&bad).err().unwrap(),
        TokenizerError::Io { .. }
    ));
    let odd = write_json(
        dir.path(),
        "odd.json",
        &serde_json::json!({"model": {"type": "Nope"}}),
    );
    assert!(matches!(
        Tokenizer::from_json_file(&odd).err().unwrap(),
        TokenizerError::Hf { .. }
    ));

    let unigram = serde_json::json!({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}});
    assert!(matches!(
        gguf_metadata_from_tokenizer_json(&unigram),
        Err(TokenizerError::Unsupported { .. })
    ));
    let bad_merge = serde_json::json!({
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}
    });
    assert!(matches!(
        gguf_metadata_from_tokenizer_json(&bad_merge),
        Err(TokenizerError::MergeUnknownToken { ref token, .. }) if token == "ab"
    ));
    let huge_id = serde_json::json!({"model": {"type": "BPE", "vocab": {"a": 4_000_000_000u64}, "merges": []}});
    assert!(matches!(
        gguf_metadata_from_tokenizer_json(&huge_id),
        Err(TokenizerError::Json { .. })
    ));
}

/// A deterministic pseudo-random text from pieces that stress the pre-tokenizer:
/// contractions, digit runs, whitespace runs, punctuation, non-Latin scripts, emoji and
/// fragments of special tokens.
fn random_text(seed: &mut u64, len: usize) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "the",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\n\n ",
        "'s",
        "'LL",
        "'",
        "0",
        "42",
        "1234567",
        "3.14",
        ",",
        ".",
        "!?",
        "(x)",
        "#",
        "::",
        "é",
        "ß",
        "東京",
        "Ж",
        "🙂",
        "👍🏽",
        "\u{a0}",
        "\u{3000}",
        "<|im_end|>",
        "<|im_start|>",
        "<|im",
        "end|>",
        "<reponame>",
        "\u{0}",
        "\u{7f}",
        "ﬁ",
        "Ⅷ",
        "٣",
    ];
    let mut s = String::new();
    for _ in 0..len {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (*seed >> 33) as usize % PIECES.len();
        s.push_str(PIECES[i]);
    }
    s
}

/// Two independent implementations of the same tokenizer (ours over GGUF metadata, the
/// `tokenizers` crate over the tokenizer.json built from it) agree on random text.
#[test]
fn smollm2_gguf_and_tokenizers_crate_agree_on_random_text() {
    let Some(header) = smollm2_header() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write_json(
        dir.path(),
        "tokenizer.json",
        &tokenizer_json_from_gguf(&header).unwrap(),
    );
    let ours = Tokenizer::from_gguf(&header).unwrap();
    let theirs = Tokenizer::from_json_file(&path).unwrap();
    let mut seed = 7;
    for round in 0..300 {
        let text = random_text(&mut seed, 1 + round % 40);
        for parse_special in [false, true] {
            let a = ours.encode(&text, Some(false), parse_special).unwrap();
            let b = theirs.encode(&text, Some(false), parse_special).unwrap();
            assert_eq!(a, b, "{text:?} parse_special={parse_special}");
            assert_eq!(ours.decode(&a), text, "decode is lossless: {text:?}");
        }
    }
}

#[test]
fn pathological_inputs_do_not_panic() {
    let mut tokenizers = vec![Tokenizer::from_gguf(&header_of(spm_entries(&[]))).unwrap()];
    if let Some(h) = smollm2_header() {
        tokenizers.push(Tokenizer::from_gguf(&h).unwrap());
    }
    let long = [
        " ".repeat(100_000),
        "a".repeat(100_000),
        "1".repeat(50_000),
        "\n \t".repeat(20_000),
        "🙂".repeat(20_000),
        "<|im_end|>".repeat(5_000),
        "\u{0}\u{1}\u{2}".repeat(10_000),
    ];
    for tok in &tokenizers {
        for text in &long {
            for parse_special in [false, true] {
                let ids = tok.encode(text, Some(false), parse_special).unwrap();
                assert!(!ids.is_empty());
                // SentencePiece's space prefix comes back as a leading space.
                let decoded = tok.decode(&ids);
                assert!(
                    decoded == *text || decoded == format!(" {text}"),
                    "{}",
                    text.len()
                );
            }
        }
        let mut seed = 11;
        for _ in 0..50 {
            let text = random_text(&mut seed, 30);
            let ids = tok.encode(&text, None, true).unwrap();
            let _ = tok.decode(&ids);
        }
        assert_eq!(tok.decode(&[u32::MAX, 0x7fff_ffff]), "");
    }
}
