//! The probe on the most common kind of GGUF published today, a Qwen model: Qwen2.5-Coder-
//! 1.5B-Instruct Q4_K_M (qwen2: Q/K/V biases, NeoX RoPE, a 151,936-token gpt2 vocabulary
//! with the `qwen2` pre-tokenizer, Q4_K/Q6_K weights, its own output matrix). Against
//! llama.cpp (`tests/reference/qwen2.5-coder-1.5b-greedy.json`, llama-cpp-python 0.3.36):
//! token ids of the reference strings and of the bundled text, and 32 greedy tokens (equal,
//! or first different where llama.cpp's own top-2 margin is a near-tie); and the gate
//! passes it out of the box with the `qwen2` preset and the probe.

mod common;

use gguf_gate::gguf::GgufFile;
use gguf_gate::tokenizer::Tokenizer;
use serde_json::Value as Json;

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn qwen_tokenizes_as_llama_cpp() {
    let Some(model) = common::qwen() else { return };
    let reference = common::reference_json("qwen2.5-coder-1.5b-greedy.json");
    let file = GgufFile::open(&model).unwrap();
    let tok = Tokenizer::from_gguf(&file.header).unwrap();
    for (text, want) in reference["tokenize"].as_object().unwrap() {
        assert_eq!(
            tok.encode(text, None, false).unwrap(),
            ids(want),
            "{text:?}"
        );
    }
    let f = &reference["tokenize_file"];
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f["path"].as_str().unwrap());
    let text = std::fs::read_to_string(path).unwrap();
    let ours = tok.encode(&text, None, false).unwrap();
    assert_eq!(ours.len(), f["ids"].as_array().unwrap().len());
    assert_eq!(ours, ids(&f["ids"]), "the bundled text");
    assert_eq!(tok.decode(&ours), text);
}

#[test]
fn qwen_greedy_tokens_match_llama_cpp_up_to_a_near_tie() {
    let Some(model) = common::qwen() else { return };
    let reference = common::reference_json("qwen2.5-coder-1.5b-greedy.json");
    let greedy = &reference["greedy"][0];
    let out = common::run(&[
        "run",
        model.to_str().unwrap(),
        "--prompt",
        greedy["prompt"].as_str().unwrap(),
        "--max-tokens",
        "32",
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["prompt_tokens"], greedy["prompt_tokens"]);
    let (ours, theirs) = (ids(&j["tokens"]), ids(&greedy["tokens"]));
    if let Some(at) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
        let margin = greedy["margins"][at].as_f64().unwrap();
        assert!(
            margin < 0.25,
            "token {at}: ours {}, llama.cpp's {} with a margin of {margin} (no near-tie)",
            ours[at],
            theirs[at]
        );
    } else {
        assert_eq!(ours, theirs);
    }
}

#[test]
fn qwen_passes_the_default_gate_with_the_qwen2_preset_and_the_probe() {
    let Some(model) = common::qwen() else { return };
    let out = common::run(&["check", model.to_str().unwrap(), "--format", "json"]);
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["preset"], "qwen2");
    assert_eq!(report["probe"]["ran"], true);
    let first = &report["probe"]["prompts"][0];
    assert!(
        first["text"].as_str().unwrap().contains("Paris"),
        "{first:#}"
    );
}
