//! `export` for every family the engine runs, checked the way issue #18 asks: a GGUF of
//! the family is turned back into a Hugging Face checkpoint by tests/py/hf_from_gguf.py
//! (gguf-py + numpy: the inverse of convert_hf_to_gguf.py — names back, no permutation
//! outside llama, Gemma's norms minus 1, Phi-3's projections left fused; a SentencePiece
//! `tokenizer.model` written as protobuf and checked by the `sentencepiece` package),
//! exported by gguf-gate, and compared tensor by tensor and key by key with the original
//! (gguf-py reads both), then run. The real model is Qwen2.5-Coder-1.5B (qwen2, biases);
//! the others are the seeded tiny models of scripts/tiny-models.py. A Llama-3-style
//! config gets `rope_freqs.weight`, which must equal the converter's computation (the
//! script mirrors its float32 steps) and change what the model computes.

mod common;

use common::text;

use std::path::{Path, PathBuf};

use common::{python_with_gguf, run};
use gguf_gate::gguf::{GgufFile, Value};
use gguf_gate::infer::{argmax, Logits, Model};
use gguf_gate::tokenizer::Tokenizer;
use serde_json::{json, Value as Json};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/hf_from_gguf.py")
}

/// Run hf_from_gguf.py with `args`; its stdout as JSON.
fn py(args: &[&str]) -> Json {
    let o = std::process::Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "hf_from_gguf.py {args:?}: {}", text(&o));
    let last = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    serde_json::from_str(&last).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)))
}

/// Export `dir` as `exported`; the GGUF written.
fn export(dir: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["--name", "exported"];
    args.extend_from_slice(extra);
    let o = common::export(dir, out, &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let outtype = extra
        .windows(2)
        .find(|w| w[0] == "--outtype")
        .map_or("f16", |w| w[1]);
    out.join(format!("exported-{outtype}.gguf"))
}

/// The metadata keys that differ, except those listed.
fn meta_diff(r: &Json, allowed: &[&str]) -> Vec<String> {
    r["meta_diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .filter(|d| !allowed.iter().any(|a| d.starts_with(a)))
        .collect()
}

/// Logits after every token of `prompt`, batched.
fn logits(path: &Path, prompt: &[u32]) -> Vec<f32> {
    let file = GgufFile::open(path).unwrap();
    let model = Model::load(&file).unwrap();
    let mut s = model.new_session(prompt.len());
    model.forward_batch(&mut s, prompt, 0, Logits::All).unwrap();
    s.logit_rows().to_vec()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn tokens(path: &Path, text: &str) -> Vec<u32> {
    let file = GgufFile::open(path).unwrap();
    Tokenizer::from_gguf(&file.header)
        .unwrap()
        .encode(text, None, false)
        .unwrap()
}

/// transformers' `AutoConfig` reads the rebuilt config.json as the model type it names
/// (the check that the rebuild is a checkpoint transformers knows, not just one we read).
fn transformers_reads(dir: &Path) {
    let code = "import json, sys\n\
                from transformers import AutoConfig\n\
                c = AutoConfig.from_pretrained(sys.argv[1])\n\
                print(json.dumps({'model_type': c.model_type, 'layers': c.num_hidden_layers}))";
    let o = std::process::Command::new("python3")
        .args(["-c", code, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "transformers: {}", text(&o));
    let got: Json = serde_json::from_slice(o.stdout.trim_ascii()).unwrap();
    let config: Json =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(got["model_type"], config["model_type"], "{got}");
    assert_eq!(got["layers"], config["num_hidden_layers"], "{got}");
}

/// Rebuild the tiny `arch` model as an F32 checkpoint with a tokenizer.model, export it
/// as F32, and check the result against the original. Returns (original, exported).
fn tiny_round_trip(
    arch: &str,
    extra_build: &[&str],
) -> Option<(PathBuf, PathBuf, tempfile::TempDir)> {
    let original = common::tiny_models_dir()?.join(format!("tiny-{arch}.gguf"));
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join(format!("hf-{arch}"));
    let mut args = vec![
        "build",
        original.to_str().unwrap(),
        ckpt.to_str().unwrap(),
        "--tokenizer-model",
    ];
    args.extend_from_slice(extra_build);
    py(&args);
    transformers_reads(&ckpt);
    assert!(ckpt.join("tokenizer.model").is_file());
    assert!(!ckpt.join("tokenizer.json").exists());
    // The sentencepiece package reads our tokenizer.model as the GGUF's vocabulary.
    let spm = py(&[
        "check-spm",
        ckpt.join("tokenizer.model").to_str().unwrap(),
        original.to_str().unwrap(),
    ]);
    assert_eq!(spm["mismatches"], json!([]), "{arch}: {spm}");
    let exported = export(&ckpt, &tmp.path().join("out"), &["--outtype", "f32"]);
    Some((original, exported, tmp))
}

/// What every tiny family must satisfy: the same tensors with the same values, the
/// same keys, the same tokenization and the same logits.
fn check_tiny(arch: &str, expected_arch: &str) {
    let Some((original, exported, _tmp)) = tiny_round_trip(arch, &[]) else {
        return;
    };
    let r = py(&[
        "compare",
        original.to_str().unwrap(),
        exported.to_str().unwrap(),
    ]);
    eprintln!("{arch}: {r}");
    assert_eq!(r["missing"], json!([]), "{arch}");
    assert_eq!(r["extra"], json!([]), "{arch}");
    assert_eq!(r["shape_mismatch"], json!([]), "{arch}");
    assert_eq!(
        r["not_rounding"], 0,
        "{arch}: F32 in, F32 out: every value exact"
    );
    assert_eq!(r["meta"]["general.architecture"], expected_arch);
    let diff = meta_diff(&r, &[]);
    assert!(diff.is_empty(), "{arch}: metadata differs: {diff:?}");

    let prompt_text = "the time of one and two is not all that we have";
    let ids = tokens(&original, prompt_text);
    if arch == "gemma3" {
        // Gemma 3's converter writes add_space_prefix = false (the tiny model does not
        // say, so llama.cpp adds one): the same text without the leading "▁".
        let file = GgufFile::open(&exported).unwrap();
        assert_eq!(
            file.header.get("tokenizer.ggml.add_space_prefix"),
            Some(&Value::Bool(false))
        );
        let mut without = tokens(&exported, prompt_text);
        assert_eq!(without.remove(0), ids[0], "BOS");
        assert!(ids[1..].ends_with(&without), "{ids:?} vs {without:?}");
    } else {
        assert_eq!(tokens(&exported, prompt_text), ids, "{arch}: tokenization");
    }
    let (a, b) = (logits(&original, &ids), logits(&exported, &ids));
    let d = max_abs_diff(&a, &b);
    eprintln!("{arch}: max |logit diff| original vs exported {d}");
    // Bit-identical weights give bit-identical logits; Gemma's norms went through
    // w - 1 + 1 in float32 (one rounding each), which moves logits by float noise.
    let bound = if arch == "gemma3" { 1e-4 } else { 0.0 };
    assert!(d <= bound, "{arch}: logits differ by {d}");
    let n = a.len() / ids.len();
    assert_eq!(argmax(&a[a.len() - n..]), argmax(&b[b.len() - n..]));
}

#[test]
fn tiny_qwen2_exports_with_its_biases() {
    check_tiny("qwen2", "qwen2");
}

#[test]
fn tiny_qwen3_exports_with_its_qk_norms() {
    check_tiny("qwen3", "qwen3");
}

#[test]
fn tiny_gemma3_exports_with_its_norms_plus_one() {
    check_tiny("gemma3", "gemma3");
}

#[test]
fn tiny_phi3_exports_fused() {
    check_tiny("phi3", "phi3");
}

#[test]
fn llama3_rope_scaling_becomes_rope_freqs() {
    let Some((original, exported, tmp)) = tiny_round_trip("llama", &["--llama3-rope"]) else {
        return;
    };
    let r = py(&[
        "compare",
        original.to_str().unwrap(),
        exported.to_str().unwrap(),
    ]);
    assert_eq!(r["missing"], json!([]));
    assert_eq!(r["extra"], json!(["rope_freqs.weight"]));
    assert_eq!(r["not_rounding"], 0);
    assert!(meta_diff(&r, &[]).is_empty(), "{r}");
    // The factors equal what convert_hf_to_gguf.py computes for this config.
    let want = py(&[
        "rope-freqs",
        tmp.path().join("hf-llama/config.json").to_str().unwrap(),
    ]);
    let want: Vec<f32> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let file = GgufFile::open(&exported).unwrap();
    let info = file.header.tensor("rope_freqs.weight").unwrap();
    let got: Vec<f32> = file
        .tensor_data(info)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    eprintln!("rope_freqs: {got:?}");
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        // The converter's pow is torch's float32 pow; ours is Rust's: at most an ulp apart.
        assert!((g - w).abs() <= w.abs() * 2e-7, "pair {i}: {g} vs {w}");
    }
    assert!(want.first() == Some(&1.0) && want.iter().any(|&f| f > 1.0));
    // The converter writes no rope.scaling.* key for llama3 scaling: the tensor is all.
    assert!(
        file.header
            .metadata
            .iter()
            .all(|e| !e.key.contains("rope.scaling")),
        "a rope.scaling key was written"
    );
    // The engine applies them: the same weights without the factors compute otherwise.
    let ids = tokens(&original, "the time of one and two is not all that we have");
    let d = max_abs_diff(&logits(&original, &ids), &logits(&exported, &ids));
    eprintln!("llama3 rope: max |logit diff| vs no factors {d}");
    assert!(d > 1e-4, "rope_freqs.weight changed nothing ({d})");
}

fn ties_embeddings(path: &Path) -> bool {
    GgufFile::open(path)
        .unwrap()
        .header
        .tensor("output.weight")
        .is_none()
}

#[test]
fn qwen2_5_round_trip_through_a_hugging_face_checkpoint() {
    let Some(model) = common::qwen() else { return };
    if python_with_gguf().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qwen");
    let built = py(&[
        "build",
        model.to_str().unwrap(),
        dir.to_str().unwrap(),
        "--dtype",
        "f16",
    ]);
    eprintln!("rebuilt: {built}");
    let config: Json =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "qwen2");
    transformers_reads(&dir);
    // This GGUF carries its own output.weight (quantized apart from the embedding).
    assert_eq!(
        config["tie_word_embeddings"],
        ties_embeddings(&model),
        "{config}"
    );
    let original = GgufFile::open(&model).unwrap();
    let tok = gguf_gate::tokenizer::tokenizer_json_from_gguf(&original.header).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let tok_config = gguf_gate::tokenizer::tokenizer_config_from_gguf(&original.header).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), tok_config.to_string()).unwrap();

    let exported = export(&dir, &tmp.path().join("out"), &[]);
    // The 3 GB checkpoint is no longer needed.
    std::fs::remove_dir_all(&dir).unwrap();
    let r = py(&[
        "compare",
        model.to_str().unwrap(),
        exported.to_str().unwrap(),
    ]);
    eprintln!(
        "qwen2.5: {} tensors, max abs diff {} ({}), max rel diff {}, off numpy's F16 rounding: {}",
        r["tensors"], r["max_abs_diff"], r["worst"], r["max_rel_diff"], r["not_rounding"]
    );
    assert_eq!(r["tensors"], original.header.tensors.len());
    assert_eq!(r["missing"], json!([]));
    assert_eq!(r["extra"], json!([]));
    assert_eq!(r["shape_mismatch"], json!([]));
    assert_eq!(
        r["not_rounding"], 0,
        "every element is the F16 rounding of the original"
    );
    for (name, ty) in r["types"].as_object().unwrap() {
        let want = if name.ends_with("_norm.weight") || name.ends_with(".bias") {
            "F32"
        } else {
            "F16"
        };
        assert_eq!(ty, want, "{name}");
    }
    assert_eq!(r["meta"]["general.architecture"], "qwen2");
    // What tokenizer.json cannot carry: a gpt2 vocabulary's space-prefix flag and
    // unknown token.
    let diff = meta_diff(
        &r,
        &[
            "tokenizer.ggml.add_space_prefix",
            "tokenizer.ggml.unknown_token_id",
        ],
    );
    assert!(diff.is_empty(), "metadata differs: {diff:?}");

    // It passes the gate, probe included, and answers as the original does.
    let c = run(&["check", exported.to_str().unwrap(), "--format", "json"]);
    assert_eq!(c.status.code(), Some(0), "{}", text(&c));
    let report: Json = serde_json::from_slice(&c.stdout).unwrap();
    assert_eq!(report["probe"]["ran"], true, "{}", report["probe"]);
    let greedy = |path: &Path| {
        let g = run(&[
            "run",
            path.to_str().unwrap(),
            "--prompt",
            "The capital of France is",
            "--max-tokens",
            "6",
            "--format",
            "json",
        ]);
        assert_eq!(g.status.code(), Some(0), "{}", text(&g));
        let v: Json = serde_json::from_slice(&g.stdout).unwrap();
        v["text"].as_str().unwrap().to_string()
    };
    let ours = greedy(&exported);
    eprintln!("exported F16 continues with {ours:?}");
    assert!(ours.contains("Paris"), "{ours:?}");
}
