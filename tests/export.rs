//! `gguf-gate export` end to end. The real model: SmolLM2's GGUF is turned back into a
//! Hugging Face checkpoint (tests/py/hf_from_gguf.py: dequantized by gguf-py, Q/K
//! un-permuted, two safetensors shards, tokenizer files from our own converter), exported
//! again, and the F16 result — read by gguf-py — must equal numpy's F16 rounding of the
//! original's values element for element and pass `check`. Small checkpoints built here
//! (llama and BitNet with packed ternary weights) cover the mapping, types, metadata,
//! determinism, atomicity, `--force`, `--strict` and every kind of input error.

mod common;

use common::{export, text};

use std::path::{Path, PathBuf};
use std::process::Output;

use common::checkpoint::{
    f32_tensor, safetensors_bytes, tiny_config, tiny_llama_tensors, write_safetensors,
    write_sharded, write_tokenizer, FFN, HEADS, HIDDEN, KV_HEADS, LAYERS, T, VOCAB,
};
use common::{python_with_gguf, run, smollm2, Rng};
use gguf_gate::gguf::{Array, GgmlType, GgufFile, Value};
use gguf_gate::registry::{Family, Rule};
use serde_json::{json, Value as Json};

// ---- helpers ----

/// A checkpoint directory `root/name` with `config`, `tensors` in one file, a tokenizer.
fn checkpoint(root: &Path, name: &str, config: &Json, tensors: &[T]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(config).unwrap(),
    )
    .unwrap();
    write_safetensors(&dir.join("model.safetensors"), tensors);
    write_tokenizer(&dir);
    dir
}

fn assert_ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
}

/// Exit 2 with every `needles` in stderr, and nothing left in `out`.
fn assert_input_error(o: &Output, out: &Path, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    assert_no_files(out);
}

fn assert_no_files(out: &Path) {
    if out.exists() {
        let left: Vec<_> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "files left in {}: {left:?}", out.display());
    }
}

fn values(file: &GgufFile, name: &str) -> Vec<f32> {
    let t = file
        .header
        .tensor(name)
        .unwrap_or_else(|| panic!("no {name}"));
    let data = file.tensor_data(t);
    match t.ty {
        GgmlType::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        GgmlType::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        GgmlType::Bf16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        other => panic!("{name}: unexpected type {other}"),
    }
}

/// `check --format json`; the failing findings of the metadata, norm and tensor families.
fn gate_failures(model: &Path, extra: &[&str]) -> (Output, Json, Vec<String>) {
    let mut args = vec!["check", model.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    let report: Json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
    let failed = report["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["waived"].is_null() && f["severity"] == "error")
                .filter(|f| {
                    let rule = f["rule"].as_str().unwrap_or("");
                    rule.parse::<Rule>().is_ok_and(|r| {
                        [Family::Metadata, Family::Norms, Family::Tensors].contains(&r.family())
                    })
                })
                .map(|f| format!("{} {}: {}", f["rule"], f["subject"], f["message"]))
                .collect()
        })
        .unwrap_or_default();
    (out, report, failed)
}

fn key<'a>(file: &'a GgufFile, k: &str) -> &'a Value {
    file.header
        .get(k)
        .unwrap_or_else(|| panic!("key {k} missing"))
}

// ---- the real model ----

#[test]
fn smollm2_round_trip_through_a_hugging_face_checkpoint() {
    let Some(model) = smollm2() else { return };
    let Some(py) = python_with_gguf() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("SmolLM2-135M-Instruct");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/hf_from_gguf.py");
    let built = std::process::Command::new(py)
        .arg(&script)
        .args(["build", model.to_str().unwrap(), dir.to_str().unwrap()])
        .args(["--shards", "2"])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built));
    let config: Json =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config,
        json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
               "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
               "num_key_value_heads": 3, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
               "max_position_embeddings": 8192, "vocab_size": 49152, "tie_word_embeddings": true,
               "torch_dtype": "float32"})
    );
    // The tokenizer files, from the GGUF vocabulary by our own converter.
    let original = GgufFile::open(&model).unwrap();
    let tok = gguf_gate::tokenizer::tokenizer_json_from_gguf(&original.header).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let tok_config = gguf_gate::tokenizer::tokenizer_config_from_gguf(&original.header).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), tok_config.to_string()).unwrap();

    let out = tmp.path().join("dist");
    let o = export(&dir, &out, &[]);
    assert_ok(&o);
    let gguf = out.join("SmolLM2-135M-Instruct-f16.gguf");
    assert!(gguf.is_file());

    // gguf-py reads it; every tensor is the original's value rounded to F16 (or exact).
    let cmp = std::process::Command::new(py)
        .arg(&script)
        .args(["compare", model.to_str().unwrap(), gguf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(cmp.status.success(), "{}", text(&cmp));
    let r: Json = serde_json::from_slice(&cmp.stdout).unwrap();
    eprintln!(
        "round trip: {} tensors, max abs diff {} ({}), max rel diff {}, elements off numpy's rounding: {}",
        r["tensors"], r["max_abs_diff"], r["worst"], r["max_rel_diff"], r["not_rounding"]
    );
    assert_eq!(r["tensors"], 272);
    assert_eq!(r["missing"], json!([]));
    assert_eq!(r["extra"], json!([]));
    assert_eq!(r["shape_mismatch"], json!([]));
    assert_eq!(
        r["not_rounding"], 0,
        "every element is the F16 rounding of the original"
    );
    // F16 has an 11-bit significand: rounding moves a value by at most 2^-11 of it.
    assert!(
        r["max_rel_diff"].as_f64().unwrap() <= 1.0 / 2048.0 + 1e-9,
        "{r}"
    );
    // SmolLM2's weights are all below 8 in magnitude, where half an F16 step is 2^-9.
    assert!(r["max_abs_diff"].as_f64().unwrap() <= 1.0 / 512.0, "{r}");
    for (name, ty) in r["types"].as_object().unwrap() {
        let want = if name.ends_with("_norm.weight") {
            "F32"
        } else {
            "F16"
        };
        assert_eq!(ty, want, "{name}");
    }
    assert_eq!(r["meta"]["general.architecture"], "llama");
    assert_eq!(r["meta"]["general.file_type"], 1);
    assert_eq!(r["meta"]["general.name"], "SmolLM2-135M-Instruct");
    // Every llama.* and tokenizer key the original has, with its type and value — except
    // what tokenizer.json cannot carry (gpt2 vocabularies have no space-prefix flag; the
    // unknown token of a byte-level BPE is not a tokenizer.json concept).
    let diff: Vec<&str> = r["meta_diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .filter(|d| {
            !d.starts_with("tokenizer.ggml.add_space_prefix")
                && !d.starts_with("tokenizer.ggml.unknown_token_id")
        })
        .collect();
    assert!(diff.is_empty(), "metadata differs: {diff:?}");

    // It passes the gate with the default policy, probe included.
    let c = run(&["check", gguf.to_str().unwrap(), "--format", "json"]);
    assert_eq!(c.status.code(), Some(0), "{}", text(&c));
    let report: Json = serde_json::from_slice(&c.stdout).unwrap();
    assert_eq!(report["probe"]["ran"], true, "{}", report["probe"]);

    // And it still knows the capital of France (greedy, as llama.cpp runs the original).
    let g = run(&[
        "run",
        gguf.to_str().unwrap(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "8",
        "--format",
        "json",
    ]);
    assert_ok(&g);
    let generated: Json = serde_json::from_slice(&g.stdout).unwrap();
    let continuation = generated["text"].as_str().unwrap();
    eprintln!("greedy continuation: {continuation:?}");
    assert!(continuation.starts_with(" Paris."), "{continuation:?}");

    // The sidecars.
    let fp = std::fs::read_to_string(out.join("SmolLM2-135M-Instruct-f16.fingerprint")).unwrap();
    let actual = gguf_gate::fingerprint::fingerprint_file(&gguf, &gguf_gate::progress::Quiet)
        .unwrap()
        .to_string();
    assert_eq!(fp.trim(), actual);
    let meta: Json = serde_json::from_slice(
        &std::fs::read(out.join("SmolLM2-135M-Instruct-f16.meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["output"]["fingerprint"], actual.as_str());
    assert_eq!(meta["output"]["outtype"], "f16");
    assert_eq!(meta["converter"]["name"], "gguf-gate export");
    let files: Vec<&str> = meta["source"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"
        ]
    );
    let shard_sha = gguf_gate::fingerprint::fingerprint_file(
        &dir.join("model-00002-of-00002.safetensors"),
        &gguf_gate::progress::Quiet,
    )
    .unwrap()
    .to_string();
    assert_eq!(meta["source"]["files"][3]["sha256"], shard_sha.as_str());
    assert_eq!(meta["norms_kept_f32"].as_array().unwrap().len(), 61);
    assert_eq!(meta["tokenizer"]["file"], "tokenizer.json");
    assert_eq!(meta["tokenizer"]["config"]["file"], "tokenizer_config.json");
    assert!(
        !String::from_utf8_lossy(
            &std::fs::read(out.join("SmolLM2-135M-Instruct-f16.meta.json")).unwrap()
        )
        .contains(tmp.path().to_str().unwrap()),
        "meta.json must not record absolute paths"
    );

    // Killed midway (SIGKILL as soon as the temporary file appears): nothing under the
    // output names. Only the temporary file can remain, and it is never a `.gguf`.
    let out3 = tmp.path().join("killed");
    std::fs::create_dir_all(&out3).unwrap();
    let mut child = common::gguf_gate()
        .args([
            "export",
            dir.to_str().unwrap(),
            "--out",
            out3.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let temp = std::fs::read_dir(&out3)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-"));
        if temp || started.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<String> = std::fs::read_dir(&out3)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.len() == 1 && left[0].starts_with(".SmolLM2-135M-Instruct-f16.gguf.tmp-"),
        "a killed export left {left:?}"
    );

    // Byte-identical on a second run, single-threaded or not.
    let out2 = tmp.path().join("dist2");
    let o = common::gguf_gate()
        .args([
            "export",
            dir.to_str().unwrap(),
            "--out",
            out2.to_str().unwrap(),
        ])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(
        std::fs::read(&gguf).unwrap(),
        std::fs::read(out2.join("SmolLM2-135M-Instruct-f16.gguf")).unwrap()
    );
    for f in ["fingerprint", "meta.json"] {
        assert_eq!(
            std::fs::read(out.join(format!("SmolLM2-135M-Instruct-f16.{f}"))).unwrap(),
            std::fs::read(out2.join(format!("SmolLM2-135M-Instruct-f16.{f}"))).unwrap(),
            "{f}"
        );
    }
}

// ---- small llama checkpoints ----

#[test]
fn tiny_llama_exports_with_names_types_permutation_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let tensors = tiny_llama_tensors(false);
    let dir = checkpoint(tmp.path(), "tiny", &tiny_config("llama"), &tensors);
    let out = tmp.path().join("out");
    let o = export(&dir, &out, &[]);
    assert_ok(&o);
    let file = GgufFile::open(&out.join("tiny-f16.gguf")).unwrap();
    let h = &file.header;
    // 1 + 9 per layer + 1 tensors, no output.weight (tied), in llama.cpp's order.
    let names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 2 + 9 * LAYERS);
    assert_eq!(names[0], "token_embd.weight");
    assert_eq!(
        &names[1..10],
        [
            "blk.0.attn_norm.weight",
            "blk.0.attn_q.weight",
            "blk.0.attn_k.weight",
            "blk.0.attn_v.weight",
            "blk.0.attn_output.weight",
            "blk.0.ffn_norm.weight",
            "blk.0.ffn_gate.weight",
            "blk.0.ffn_up.weight",
            "blk.0.ffn_down.weight"
        ]
    );
    assert_eq!(names.last(), Some(&"output_norm.weight"));
    for t in &h.tensors {
        let want = if t.dims.len() == 1 {
            GgmlType::F32
        } else {
            GgmlType::F16
        };
        assert_eq!(t.ty, want, "{}", t.name);
    }
    // Dims reversed into ggml order.
    assert_eq!(
        h.tensor("token_embd.weight").unwrap().dims,
        [HIDDEN as u64, VOCAB as u64]
    );
    assert_eq!(
        h.tensor("blk.0.attn_k.weight").unwrap().dims,
        [HIDDEN as u64, 32]
    );
    assert_eq!(
        h.tensor("blk.1.ffn_down.weight").unwrap().dims,
        [FFN as u64, HIDDEN as u64]
    );
    // Values: a norm exact, V rounded to F16, Q and K permuted by their head counts.
    let src = |name: &str| -> Vec<f32> {
        let t = tensors.iter().find(|t| t.name == name).unwrap();
        t.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    assert_eq!(
        values(&file, "blk.1.attn_norm.weight"),
        src("model.layers.1.input_layernorm.weight")
    );
    let f16 = |v: Vec<f32>| -> Vec<f32> {
        v.into_iter()
            .map(|x| half::f16::from_f32(x).to_f32())
            .collect()
    };
    assert_eq!(
        values(&file, "blk.0.attn_v.weight"),
        f16(src("model.layers.0.self_attn.v_proj.weight"))
    );
    for (gguf, hf, rows, heads) in [
        (
            "blk.0.attn_q.weight",
            "model.layers.0.self_attn.q_proj.weight",
            HIDDEN,
            HEADS,
        ),
        (
            "blk.1.attn_k.weight",
            "model.layers.1.self_attn.k_proj.weight",
            32,
            KV_HEADS,
        ),
    ] {
        let got = values(&file, gguf);
        let want = f16(src(hf));
        let half_rows = rows / heads / 2;
        for d in 0..rows {
            // convert_hf_to_gguf.py: reshape(heads, 2, half, cols).swapaxes(1, 2).
            let (h, i, j) = (d / (2 * half_rows), (d % (2 * half_rows)) / 2, d % 2);
            let s = h * 2 * half_rows + j * half_rows + i;
            assert_eq!(
                got[d * HIDDEN..(d + 1) * HIDDEN],
                want[s * HIDDEN..(s + 1) * HIDDEN],
                "{gguf} row {d}"
            );
        }
        assert_ne!(got, want, "{gguf} must be permuted");
    }
    // Metadata with llama.cpp's types.
    assert_eq!(
        key(&file, "general.architecture"),
        &Value::String("llama".into())
    );
    assert_eq!(key(&file, "general.name"), &Value::String("tiny".into()));
    assert_eq!(key(&file, "general.file_type"), &Value::U32(1));
    for (k, v) in [
        ("llama.context_length", 256),
        ("llama.embedding_length", HIDDEN as u32),
        ("llama.feed_forward_length", FFN as u32),
        ("llama.block_count", LAYERS as u32),
        ("llama.attention.head_count", HEADS as u32),
        ("llama.attention.head_count_kv", KV_HEADS as u32),
        ("llama.vocab_size", VOCAB as u32),
        ("llama.rope.dimension_count", (HIDDEN / HEADS) as u32),
    ] {
        assert_eq!(key(&file, k), &Value::U32(v), "{k}");
    }
    assert_eq!(key(&file, "llama.rope.freq_base"), &Value::F32(10000.0));
    assert_eq!(
        key(&file, "llama.attention.layer_norm_rms_epsilon"),
        &Value::F32(1e-5)
    );
    // The tokenizer: 30 tokens padded to the 32 embedding rows, BOS/EOS from the config.
    match key(&file, "tokenizer.ggml.tokens") {
        Value::Array(Array::String(t)) => {
            assert_eq!(t.len(), VOCAB);
            assert_eq!((t[29].as_str(), t[30].as_str()), ("\u{120}a", "[PAD30]"));
        }
        other => panic!("{other:?}"),
    }
    match key(&file, "tokenizer.ggml.token_type") {
        Value::Array(Array::I32(t)) => assert_eq!((t[0], t[1], t[31]), (3, 1, 5)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        key(&file, "tokenizer.ggml.model"),
        &Value::String("gpt2".into())
    );
    assert_eq!(
        key(&file, "tokenizer.ggml.pre"),
        &Value::String("gpt-2".into())
    );
    assert_eq!(key(&file, "tokenizer.ggml.bos_token_id"), &Value::U32(0));
    assert_eq!(
        key(&file, "tokenizer.ggml.add_bos_token"),
        &Value::Bool(false)
    );
    assert_eq!(
        key(&file, "tokenizer.chat_template"),
        &Value::String("{{ messages }}".into())
    );
    // It passes the llama preset's metadata, norm and tensor rules.
    let (_, report, failed) = gate_failures(&out.join("tiny-f16.gguf"), &["--strict"]);
    assert_eq!(report["preset"], "llama");
    assert!(failed.is_empty(), "{failed:?}");
    // gguf-gate's engine loads it and runs it.
    let g = run(&[
        "run",
        out.join("tiny-f16.gguf").to_str().unwrap(),
        "--prompt",
        "ab c",
        "--max-tokens",
        "3",
    ]);
    assert_ok(&g);
    // The output lines name the files and the fingerprint.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("tiny-f16.gguf") && stdout.contains("sha256-"),
        "{stdout}"
    );
}

#[test]
fn outtypes_sources_and_untied_heads() {
    let tmp = tempfile::tempdir().unwrap();
    // BF16 and F16 sources; an lm_head of its own.
    let mut tensors = tiny_llama_tensors(false);
    let mut rng = Rng(7);
    let head = rng.fill(VOCAB * HIDDEN, 0.2, 0.0);
    tensors.push(f32_tensor("lm_head.weight", &[VOCAB, HIDDEN], &head));
    for t in tensors.iter_mut() {
        let vals: Vec<f32> = t
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if t.name.contains("mlp") {
            t.dtype = "BF16";
            t.data = vals
                .iter()
                .flat_map(|&x| half::bf16::from_f32(x).to_bits().to_le_bytes())
                .collect();
        } else if t.name.contains("self_attn") {
            t.dtype = "F16";
            t.data = vals
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes())
                .collect();
        }
    }
    let mut config = tiny_config("mistral");
    config["tie_word_embeddings"] = json!(false);
    let dir = checkpoint(tmp.path(), "m", &config, &tensors);
    for (outtype, ty, file_type) in [
        ("f32", GgmlType::F32, 0),
        ("bf16", GgmlType::Bf16, 32),
        ("f16", GgmlType::F16, 1),
    ] {
        let out = tmp.path().join(outtype);
        assert_ok(&export(&dir, &out, &["--outtype", outtype, "--name", "x"]));
        let file = GgufFile::open(&out.join(format!("x-{outtype}.gguf"))).unwrap();
        assert_eq!(key(&file, "general.file_type"), &Value::U32(file_type));
        assert_eq!(
            key(&file, "general.architecture"),
            &Value::String("llama".into())
        );
        assert_eq!(file.header.tensor("output.weight").unwrap().ty, ty);
        assert_eq!(
            file.header.tensor("blk.0.ffn_norm.weight").unwrap().ty,
            GgmlType::F32
        );
        // BF16 sources are exact in F32 and BF16.
        let up = tensors
            .iter()
            .find(|t| t.name == "model.layers.1.mlp.up_proj.weight")
            .unwrap();
        let want: Vec<f32> = up
            .data
            .chunks_exact(2)
            .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect();
        if outtype != "f16" {
            assert_eq!(values(&file, "blk.1.ffn_up.weight"), want);
            assert_eq!(
                values(&file, "output.weight"),
                if outtype == "f32" {
                    head.clone()
                } else {
                    head.iter()
                        .map(|&x| half::bf16::from_f32(x).to_f32())
                        .collect()
                }
            );
        }
    }
    // An lm_head identical to the embedding is dropped even when the config says untied.
    let mut tensors = tiny_llama_tensors(false);
    let embd = tensors
        .iter()
        .find(|t| t.name == "model.embed_tokens.weight")
        .unwrap()
        .clone();
    tensors.push(T {
        name: "lm_head.weight".into(),
        ..embd
    });
    let dir = checkpoint(tmp.path(), "same", &config, &tensors);
    let out = tmp.path().join("same-out");
    let o = export(&dir, &out, &[]);
    assert_ok(&o);
    let file = GgufFile::open(&out.join("same-f16.gguf")).unwrap();
    assert!(file.header.tensor("output.weight").is_none());
    assert!(String::from_utf8_lossy(&o.stdout).contains("skipped lm_head.weight"));
}

#[test]
fn same_bytes_every_run_and_every_shard_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let tensors = tiny_llama_tensors(false);
    let single = checkpoint(tmp.path(), "tiny", &tiny_config("llama"), &tensors);
    let sharded = tmp.path().join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    std::fs::copy(single.join("config.json"), sharded.join("config.json")).unwrap();
    write_sharded(&sharded, &tensors, 3);
    let tok = single.join("tokenizer.json");
    let mut outputs = Vec::new();
    for (i, dir) in [&single, &single, &sharded].iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        assert_ok(&export(
            dir,
            &out,
            &["--tokenizer", tok.to_str().unwrap(), "--name", "tiny"],
        ));
        outputs.push(std::fs::read(out.join("tiny-f16.gguf")).unwrap());
    }
    assert_eq!(outputs[0], outputs[1], "two runs");
    assert_eq!(outputs[0], outputs[2], "one file or three shards");
}

#[test]
fn existing_outputs_are_kept_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = checkpoint(
        tmp.path(),
        "tiny",
        &tiny_config("llama"),
        &tiny_llama_tensors(false),
    );
    let out = tmp.path().join("out");
    assert_ok(&export(&dir, &out, &[]));
    let gguf = out.join("tiny-f16.gguf");
    let before = std::fs::read(&gguf).unwrap();
    std::fs::write(&gguf, b"precious").unwrap();
    let o = export(&dir, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read(&gguf).unwrap(), b"precious");
    // Any one existing sidecar is enough to refuse.
    std::fs::remove_file(&gguf).unwrap();
    let o = export(&dir, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!gguf.exists());
    assert_ok(&export(&dir, &out, &["--force"]));
    assert_eq!(std::fs::read(&gguf).unwrap(), before);
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn inputs_are_never_outputs_or_modified() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = checkpoint(
        tmp.path(),
        "tiny",
        &tiny_config("llama"),
        &tiny_llama_tensors(false),
    );
    // A tokenizer whose name is an output name, in the output directory.
    std::fs::copy(dir.join("tokenizer.json"), dir.join("x-f16.meta.json")).unwrap();
    let before: Vec<Vec<u8>> = ["config.json", "model.safetensors", "x-f16.meta.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let o = export(
        &dir,
        &dir,
        &[
            "--name",
            "x",
            "--force",
            "--tokenizer",
            dir.join("x-f16.meta.json").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("would overwrite the input"),
        "{}",
        text(&o)
    );
    let after: Vec<Vec<u8>> = ["config.json", "model.safetensors", "x-f16.meta.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
    assert!(!dir.join("x-f16.gguf").exists());
    // Exporting into the checkpoint directory itself is fine when names do not collide.
    assert_ok(&export(&dir, &dir, &["--name", "y"]));
    assert!(dir.join("y-f16.gguf").is_file());
}

#[test]
fn a_failure_midway_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tensors = tiny_llama_tensors(false);
    // blk.0.attn_q (the third tensor written) holds a value F16 cannot represent: the
    // export fails after token_embd and blk.0.attn_norm are already in the temp file.
    let q = tensors
        .iter_mut()
        .find(|t| t.name == "model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    q.data[400..404].copy_from_slice(&1.0e6f32.to_le_bytes());
    let dir = checkpoint(tmp.path(), "tiny", &tiny_config("llama"), &tensors);
    let out = tmp.path().join("out");
    let o = export(&dir, &out, &[]);
    assert_input_error(
        &o,
        &out,
        &[
            "model.layers.0.self_attn.q_proj.weight",
            "element 100",
            "1000000",
            "--outtype bf16",
        ],
    );
    // The same checkpoint exports in F32.
    assert_ok(&export(&dir, &out, &["--outtype", "f32"]));
}

#[test]
fn strict_gates_before_the_rename() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = checkpoint(
        tmp.path(),
        "tiny",
        &tiny_config("llama"),
        &tiny_llama_tensors(false),
    );
    let out = tmp.path().join("ok");
    assert_ok(&export(&dir, &out, &["--strict"]));
    assert!(out.join("tiny-f16.gguf").is_file());

    // A norm scaled by 1000 (a classic conversion bug) fails norm-rms: nothing written.
    let mut tensors = tiny_llama_tensors(false);
    let norm = tensors
        .iter_mut()
        .find(|t| t.name == "model.layers.1.post_attention_layernorm.weight")
        .unwrap();
    let scaled: Vec<f32> = norm
        .data
        .chunks_exact(4)
        .map(|c| 1000.0 * f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    *norm = f32_tensor(&norm.name.clone(), &[HIDDEN], &scaled);
    let dir = checkpoint(tmp.path(), "bad", &tiny_config("llama"), &tensors);
    let out = tmp.path().join("bad-out");
    let o = export(&dir, &out, &["--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("norm-rms blk.1.ffn_norm.weight"),
        "{stdout}"
    );
    assert!(stdout.contains("no file was written"), "{stdout}");
    assert_no_files(&out);
    // Without --strict it is written (and `check` finds the same problem).
    assert_ok(&export(&dir, &out, &[]));
    let (_, _, failed) = gate_failures(&out.join("bad-f16.gguf"), &[]);
    assert!(failed.iter().any(|f| f.contains("norm-rms")), "{failed:?}");
}

// ---- input errors ----

fn error_case(config: &Json, tensors: &[T], extra: &[&str], needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = checkpoint(tmp.path(), "tiny", config, tensors);
    let out = tmp.path().join("out");
    let o = export(&dir, &out, extra);
    assert_input_error(&o, &out, needles);
}

#[test]
fn missing_config_field_names_field_and_key() {
    for (field, key) in [
        ("num_attention_heads", "llama.attention.head_count"),
        ("rms_norm_eps", "llama.attention.layer_norm_rms_epsilon"),
        ("max_position_embeddings", "llama.context_length"),
    ] {
        let mut config = tiny_config("llama");
        config.as_object_mut().unwrap().remove(field);
        error_case(
            &config,
            &tiny_llama_tensors(false),
            &[],
            &["config.json", field, key],
        );
    }
    let mut config = tiny_config("bitnet");
    config.as_object_mut().unwrap().remove("vocab_size");
    error_case(
        &config,
        &tiny_llama_tensors(false),
        &[],
        &["vocab_size", "bitnet-b1.58.vocab_size"],
    );
}

#[test]
fn unsupported_model_type() {
    error_case(
        &tiny_config("gpt_neox"),
        &tiny_llama_tensors(false),
        &[],
        &[
            "model_type \"gpt_neox\" is not supported",
            "llama, mistral, bitnet, qwen2, qwen3, gemma3_text, phi3",
        ],
    );
}

#[test]
fn unmapped_tensors_fail_unless_allowed() {
    let mut tensors = tiny_llama_tensors(false);
    tensors.push(f32_tensor(
        "model.layers.0.self_attn.q_proj.bias",
        &[HIDDEN],
        &[0.5; HIDDEN],
    ));
    tensors.push(f32_tensor(
        "model.layers.1.self_attn.rotary_emb.inv_freq",
        &[8],
        &[1.0; 8],
    ));
    error_case(
        &tiny_config("llama"),
        &tensors,
        &[],
        &["model.layers.0.self_attn.q_proj.bias", "--allow-unmapped"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = checkpoint(tmp.path(), "tiny", &tiny_config("llama"), &tensors);
    let out = tmp.path().join("out");
    let o = export(&dir, &out, &["--allow-unmapped"]);
    assert_ok(&o);
    let meta: Json =
        serde_json::from_slice(&std::fs::read(out.join("tiny-f16.meta.json")).unwrap()).unwrap();
    let skipped: Vec<&str> = meta["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tensor"].as_str().unwrap())
        .collect();
    assert!(
        skipped.contains(&"model.layers.0.self_attn.q_proj.bias"),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&"model.layers.1.self_attn.rotary_emb.inv_freq"),
        "{skipped:?}"
    );
    // A layer beyond num_hidden_layers is unmapped too.
    let mut tensors = tiny_llama_tensors(false);
    tensors.push(f32_tensor(
        "model.layers.2.input_layernorm.weight",
        &[HIDDEN],
        &[0.5; HIDDEN],
    ));
    error_case(
        &tiny_config("llama"),
        &tensors,
        &[],
        &["model.layers.2.input_layernorm.weight"],
    );
}

#[test]
fn missing_tensor_and_shape_mismatch() {
    let tensors: Vec<T> = tiny_llama_tensors(false)
        .into_iter()
        .filter(|t| t.name != "model.layers.1.mlp.up_proj.weight")
        .collect();
    error_case(
        &tiny_config("llama"),
        &tensors,
        &[],
        &[
            "model.layers.1.mlp.up_proj.weight",
            "blk.1.ffn_up.weight",
            "missing",
        ],
    );
    let mut tensors = tiny_llama_tensors(false);
    let k = tensors
        .iter_mut()
        .find(|t| t.name == "model.layers.0.self_attn.k_proj.weight")
        .unwrap();
    *k = f32_tensor(&k.name.clone(), &[HIDDEN, HIDDEN], &[0.1; HIDDEN * HIDDEN]);
    error_case(
        &tiny_config("llama"),
        &tensors,
        &[],
        &[
            "model.layers.0.self_attn.k_proj.weight",
            "[64, 64]",
            "expected [32, 64]",
            "num_key_value_heads",
        ],
    );
    // An untied model without lm_head.
    let mut config = tiny_config("llama");
    config["tie_word_embeddings"] = json!(false);
    error_case(
        &config,
        &tiny_llama_tensors(false),
        &[],
        &["lm_head.weight", "output.weight"],
    );
    // An integer dtype.
    let mut tensors = tiny_llama_tensors(false);
    let n = tensors
        .iter_mut()
        .find(|t| t.name == "model.norm.weight")
        .unwrap();
    n.dtype = "I32";
    error_case(
        &tiny_config("llama"),
        &tensors,
        &[],
        &["model.norm.weight", "I32", "F32, F16 or BF16"],
    );
}

#[test]
fn malformed_safetensors() {
    let good = safetensors_bytes(&tiny_llama_tensors(false));
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "too short"),
        ("short", vec![1, 2, 3], "too short"),
        (
            "huge header",
            u64::MAX.to_le_bytes().to_vec(),
            "header claims",
        ),
        (
            "header past the end",
            {
                let mut b = good.clone();
                b.truncate(8 + header_len / 2);
                b
            },
            "header claims",
        ),
        (
            "truncated data",
            good[..good.len() - 10].to_vec(),
            "malformed safetensors",
        ),
        (
            "not json",
            {
                let mut b = 8u64.to_le_bytes().to_vec();
                b.extend_from_slice(b"{{{{{{{{");
                b
            },
            "malformed safetensors",
        ),
    ];
    // Overlapping offsets: the second tensor claims the first one's bytes.
    let mut overlap = good.clone();
    let text = String::from_utf8(overlap[8..8 + header_len].to_vec()).unwrap();
    let fixed = text.replacen("\"data_offsets\":[0,", "\"data_offsets\":[4,", 1);
    overlap[8..8 + header_len].copy_from_slice(fixed.as_bytes());
    cases.push(("bad offsets", overlap, "malformed safetensors"));
    for (what, bytes, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = checkpoint(tmp.path(), "tiny", &tiny_config("llama"), &[]);
        std::fs::write(dir.join("model.safetensors"), &bytes).unwrap();
        let out = tmp.path().join("out");
        let o = export(&dir, &out, &[]);
        assert_input_error(&o, &out, &["model.safetensors", needle]);
        eprintln!("{what}: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    // A truncated shard of a sharded checkpoint, and an index naming a path outside.
    let tmp = tempfile::tempdir().unwrap();
    let dir = checkpoint(tmp.path(), "tiny", &tiny_config("llama"), &[]);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    write_sharded(&dir, &tiny_llama_tensors(false), 2);
    let shard = dir.join("model-00002-of-00002.safetensors");
    let len = std::fs::metadata(&shard).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let out = tmp.path().join("out");
    assert_input_error(
        &export(&dir, &out, &[]),
        &out,
        &["model-00002-of-00002.safetensors"],
    );
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        json!({"weight_map": {"model.norm.weight": "../escape.safetensors"}}).to_string(),
    )
    .unwrap();
    assert_input_error(&export(&dir, &out, &[]), &out, &["plain file names"]);
    // No checkpoint at all; no config.
    std::fs::remove_file(dir.join("model.safetensors.index.json")).unwrap();
    assert_input_error(&export(&dir, &out, &[]), &out, &["model.safetensors"]);
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert_input_error(&export(&dir, &out, &[]), &out, &["config.json"]);
}

#[test]
fn tokenizer_problems_are_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = checkpoint(
        tmp.path(),
        "tiny",
        &tiny_config("llama"),
        &tiny_llama_tensors(false),
    );
    let out = tmp.path().join("out");
    assert_input_error(
        &export(&dir, &out, &["--tokenizer", "/nonexistent/tokenizer.json"]),
        &out,
        &["/nonexistent/tokenizer.json"],
    );
    std::fs::write(
        dir.join("tokenizer.json"),
        b"{\"model\": {\"type\": \"Unigram\"}}",
    )
    .unwrap();
    assert_input_error(
        &export(&dir, &out, &[]),
        &out,
        &["tokenizer.json", "Unigram"],
    );
    // Hostile sizes in config.json are refused quickly, without allocating for them.
    for (field, value, needle) in [
        (
            "num_hidden_layers",
            json!(4_000_000_000u64),
            "num_hidden_layers",
        ),
        (
            "vocab_size",
            json!(4_000_000_000u64),
            "model.embed_tokens.weight",
        ),
    ] {
        let mut config = tiny_config("llama");
        config[field] = value;
        let dir = checkpoint(
            tmp.path(),
            &format!("huge-{field}"),
            &config,
            &tiny_llama_tensors(false),
        );
        let start = std::time::Instant::now();
        assert_input_error(&export(&dir, &out, &[]), &out, &[needle]);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{field}"
        );
    }
    // A config that contradicts the checkpoint is caught before the tokenizer is read.
    let mut config = tiny_config("llama");
    config["vocab_size"] = json!(16);
    let dir = checkpoint(tmp.path(), "small", &config, &tiny_llama_tensors(false));
    assert_input_error(
        &export(&dir, &out, &[]),
        &out,
        &["model.embed_tokens.weight", "expected [16, 64]"],
    );
    // More tokens than embedding rows (config and checkpoint agree on 16 rows).
    let mut tensors = tiny_llama_tensors(false);
    let embd = tensors
        .iter_mut()
        .find(|t| t.name == "model.embed_tokens.weight")
        .unwrap();
    *embd = f32_tensor(&embd.name.clone(), &[16, HIDDEN], &vec![0.1; 16 * HIDDEN]);
    let dir = checkpoint(tmp.path(), "small16", &config, &tensors);
    assert_input_error(
        &export(&dir, &out, &[]),
        &out,
        &["30 tokens", "vocab_size is 16"],
    );
}

// ---- BitNet ----

/// A projection of the BitNet fixture: GGUF name, ternary values, weight_scale.
type Ternary = (String, Vec<i8>, f32);

/// Pack a ternary matrix (rows x cols, values -1/0/1) as transformers' `pack_weights`.
fn pack_ternary(w: &[i8], rows: usize, cols: usize) -> Vec<u8> {
    let p = rows / 4;
    let mut out = vec![0u8; p * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[(r % p) * cols + c] |= ((w[r * cols + c] + 1) as u8) << (2 * (r / p));
        }
    }
    out
}

/// A tiny BitNet b1.58 checkpoint: packed U8 projections with BF16 weight_scale (as
/// microsoft/bitnet-b1.58-2B-4T stores them), F32 norms including the sub-norms.
/// Returns the tensors and each projection's ternary values.
fn tiny_bitnet_tensors() -> (Vec<T>, Vec<Ternary>) {
    let mut rng = Rng(0xB17_5EED);
    let mut t = Vec::new();
    let mut ternary = Vec::new();
    let norm = |t: &mut Vec<T>, rng: &mut Rng, name: String, n: usize| {
        t.push(f32_tensor(&name, &[n], &rng.fill(n, 0.1, 0.5)));
    };
    t.push(f32_tensor(
        "model.embed_tokens.weight",
        &[VOCAB, HIDDEN],
        &rng.fill(VOCAB * HIDDEN, 0.5, 0.0),
    ));
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        norm(
            &mut t,
            &mut rng,
            format!("{p}.input_layernorm.weight"),
            HIDDEN,
        );
        norm(
            &mut t,
            &mut rng,
            format!("{p}.post_attention_layernorm.weight"),
            HIDDEN,
        );
        norm(
            &mut t,
            &mut rng,
            format!("{p}.self_attn.attn_sub_norm.weight"),
            HIDDEN,
        );
        norm(
            &mut t,
            &mut rng,
            format!("{p}.mlp.ffn_sub_norm.weight"),
            FFN,
        );
        for (name, rows, cols) in [
            ("self_attn.q_proj", HIDDEN, HIDDEN),
            ("self_attn.k_proj", 32, HIDDEN),
            ("self_attn.v_proj", 32, HIDDEN),
            ("self_attn.o_proj", HIDDEN, HIDDEN),
            ("mlp.gate_proj", FFN, HIDDEN),
            ("mlp.up_proj", FFN, HIDDEN),
            ("mlp.down_proj", HIDDEN, FFN),
        ] {
            let w: Vec<i8> = (0..rows * cols)
                .map(|_| ((rng.next() + 1.0) * 1.5).floor().clamp(0.0, 2.0) as i8 - 1)
                .collect();
            let scale = 2.0 + l as f32; // exact in BF16
            t.push(T {
                name: format!("{p}.{name}.weight"),
                dtype: "U8",
                shape: vec![rows / 4, cols],
                data: pack_ternary(&w, rows, cols),
            });
            t.push(T {
                name: format!("{p}.{name}.weight_scale"),
                dtype: "BF16",
                shape: vec![1],
                data: half::bf16::from_f32(scale).to_bits().to_le_bytes().to_vec(),
            });
            ternary.push((format!("blk.{l}.{}", gguf_name(name)), w, scale));
        }
    }
    norm(&mut t, &mut rng, "model.norm.weight".into(), HIDDEN);
    (t, ternary)
}

fn gguf_name(hf: &str) -> &'static str {
    match hf {
        "self_attn.q_proj" => "attn_q.weight",
        "self_attn.k_proj" => "attn_k.weight",
        "self_attn.v_proj" => "attn_v.weight",
        "self_attn.o_proj" => "attn_output.weight",
        "mlp.gate_proj" => "ffn_gate.weight",
        "mlp.up_proj" => "ffn_up.weight",
        _ => "ffn_down.weight",
    }
}

fn bitnet_config() -> Json {
    let mut c = tiny_config("bitnet");
    c["quantization_config"] = json!({"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"});
    c["hidden_act"] = json!("relu2");
    c
}

#[test]
fn tiny_bitnet_exports_unpacked_with_sub_norms_and_strict_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let (tensors, ternary) = tiny_bitnet_tensors();
    let dir = checkpoint(tmp.path(), "bitnet", &bitnet_config(), &tensors);
    let out = tmp.path().join("out");
    let o = export(&dir, &out, &["--strict"]);
    assert_ok(&o);
    let path = out.join("bitnet-f16.gguf");
    let file = GgufFile::open(&path).unwrap();
    let h = &file.header;
    assert_eq!(
        key(&file, "general.architecture"),
        &Value::String("bitnet-b1.58".into())
    );
    for (k, v) in [
        ("bitnet.hidden_size", HIDDEN),
        ("bitnet.num_layers", LAYERS),
        ("bitnet.num_heads", HEADS),
        ("bitnet.vocab_size", VOCAB),
        ("bitnet.context_length", 256),
        ("bitnet-b1.58.block_count", LAYERS),
        ("bitnet-b1.58.attention.head_count_kv", KV_HEADS),
    ] {
        assert_eq!(key(&file, k), &Value::U32(v as u32), "{k}");
    }
    assert_eq!(
        key(&file, "bitnet-b1.58.attention.layer_norm_rms_epsilon"),
        &Value::F32(1e-5)
    );
    assert_eq!(key(&file, "general.file_type"), &Value::U32(1));
    // Sub-norms mapped, every norm F32; 11 tensors per layer, no weight_scale tensors.
    assert_eq!(h.tensors.len(), 2 + 11 * LAYERS);
    for l in 0..LAYERS {
        for n in ["attn_norm", "ffn_norm", "attn_sub_norm", "ffn_sub_norm"] {
            let t = h.tensor(&format!("blk.{l}.{n}.weight")).unwrap();
            assert_eq!(t.ty, GgmlType::F32, "{}", t.name);
        }
    }
    assert_eq!(
        h.tensor("blk.1.ffn_sub_norm.weight").unwrap().dims,
        [FFN as u64]
    );
    assert!(h.tensors.iter().all(|t| !t.name.contains("scale")));
    // Projections: the ternary values divided by weight_scale (BitLinear), unpermuted.
    for (name, w, scale) in &ternary {
        let t = h.tensor(name).unwrap();
        assert_eq!(t.ty, GgmlType::F16, "{name}");
        let want: Vec<f32> = w.iter().map(|&v| f32::from(v) / scale).collect();
        let want: Vec<f32> = want
            .iter()
            .map(|&x| half::f16::from_f32(x).to_f32())
            .collect();
        assert_eq!(values(&file, name), want, "{name}");
    }
    assert_eq!(
        h.tensor("blk.0.attn_k.weight").unwrap().dims,
        [HIDDEN as u64, 32],
        "unpacked rows = 4 x packed rows"
    );
    // The bitnet-b1.58 preset: metadata, norm and tensor rules pass.
    let (_, report, failed) = gate_failures(&path, &["--strict"]);
    assert_eq!(report["preset"], "bitnet-b1.58");
    assert!(failed.is_empty(), "{failed:?}");
    // gguf-gate's engine loads it as a bitnet-b1.58 model and runs it.
    let g = run(&[
        "run",
        path.to_str().unwrap(),
        "--prompt",
        "ab c",
        "--max-tokens",
        "3",
    ]);
    assert_ok(&g);
    let meta: Json =
        serde_json::from_slice(&std::fs::read(out.join("bitnet-f16.meta.json")).unwrap()).unwrap();
    assert_eq!(
        meta["norms_kept_f32"].as_array().unwrap().len(),
        1 + 4 * LAYERS
    );
    assert_eq!(meta["output"]["architecture"], "bitnet-b1.58");

    // AutoBitLinear multiplies by the scale instead.
    let mut config = bitnet_config();
    config["quantization_config"]["linear_class"] = json!("autobitlinear");
    let dir = checkpoint(tmp.path(), "auto", &config, &tensors);
    let out = tmp.path().join("auto-out");
    assert_ok(&export(&dir, &out, &["--outtype", "f32"]));
    let file = GgufFile::open(&out.join("auto-f32.gguf")).unwrap();
    let (name, w, scale) = &ternary[0];
    let want: Vec<f32> = w.iter().map(|&v| f32::from(v) * scale).collect();
    assert_eq!(values(&file, name), want);
}

#[test]
fn bitnet_packing_errors() {
    let (tensors, _) = tiny_bitnet_tensors();
    // A 2-bit code 3 in the second layer's gate projection.
    let mut bad = tensors.clone();
    let g = bad
        .iter_mut()
        .find(|t| t.name == "model.layers.1.mlp.gate_proj.weight")
        .unwrap();
    g.data[5] |= 0b1100_0000;
    error_case(
        &bitnet_config(),
        &bad,
        &[],
        &["model.layers.1.mlp.gate_proj.weight", "code 3"],
    );
    // A packed weight without its scale.
    let missing: Vec<T> = tensors
        .iter()
        .filter(|t| t.name != "model.layers.0.self_attn.v_proj.weight_scale")
        .cloned()
        .collect();
    error_case(
        &bitnet_config(),
        &missing,
        &[],
        &["model.layers.0.self_attn.v_proj.weight", "weight_scale"],
    );
    // A zero scale.
    let mut zero = tensors.clone();
    let s = zero
        .iter_mut()
        .find(|t| t.name == "model.layers.0.mlp.up_proj.weight_scale")
        .unwrap();
    s.data = vec![0, 0];
    error_case(
        &bitnet_config(),
        &zero,
        &[],
        &["model.layers.0.mlp.up_proj.weight_scale", "non-zero"],
    );
    // A packed shape that does not unpack to the config's.
    let mut shape = tensors.clone();
    let k = shape
        .iter_mut()
        .find(|t| t.name == "model.layers.0.self_attn.k_proj.weight")
        .unwrap();
    k.shape = vec![4, HIDDEN * 2];
    error_case(
        &bitnet_config(),
        &shape,
        &[],
        &["model.layers.0.self_attn.k_proj.weight", "[16, 128]"],
    );
    // Packed weights in a llama checkpoint are not ternary BitNet weights.
    error_case(&tiny_config("llama"), &tensors, &[], &["weight_scale"]);
}

#[test]
fn help_documents_export() {
    let o = run(&["export", "--help"]);
    assert_ok(&o);
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "--tokenizer",
        "--out",
        "--outtype",
        "--strict",
        "--force",
        "--allow-unmapped",
        "Examples:",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    let o = run(&["--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("export"));
}

#[test]
fn mutated_safetensors_headers_never_panic() {
    use gguf_gate::convert::export::{export, ExportOptions, OutType};
    let tmp = tempfile::tempdir().unwrap();
    let dir = checkpoint(
        tmp.path(),
        "tiny",
        &tiny_config("llama"),
        &tiny_llama_tensors(false),
    );
    let good = std::fs::read(dir.join("model.safetensors")).unwrap();
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let out = tmp.path().join("out");
    let options = ExportOptions {
        dir: &dir,
        tokenizer: None,
        out_dir: &out,
        outtype: OutType::F16,
        name: None,
        force: true,
        gate: None::<gguf_gate::convert::Gate<'_, ()>>,
        allow_unmapped: false,
        progress: &gguf_gate::progress::Quiet,
    };
    let mut rng = Rng(0xF0CC_AC1A);
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..400 {
        let mut bytes = good.clone();
        for _ in 0..1 + (rng.next().abs() * 3.0) as usize {
            let at = ((rng.next().abs() * header_end as f32) as usize).min(header_end - 1);
            bytes[at] = (rng.next().abs() * 255.0) as u8;
        }
        std::fs::write(dir.join("model.safetensors"), &bytes).unwrap();
        match export(&options) {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    eprintln!("{ok} mutated headers still exported, {failed} refused");
    assert!(failed > 0);
}
