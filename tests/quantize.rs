//! `gguf-gate quantize` end to end. The quantizers are compared bit for bit with gguf-py's
//! `gguf.quants.quantize` (llama.cpp's Python mirror of ggml's reference quantizers) on
//! random rows and rounding edge cases; SmolLM2 quantized to Q8_0 must keep its norms F32,
//! be read by gguf-py, pass `check` with the probe and still say " Paris"; a tiny BitNet
//! b1.58 model quantized to TQ2_0 and I2_S keeps its norms F32, its ternary weights
//! exactly, and runs. Determinism, `--force`, OUT == IN, `--strict` and usage errors too.

mod common;

use common::text;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{f32_bytes, python_with_gguf, run, smollm2, tiny_llama, Rng};
use gguf_gate::gguf::{Array, GgmlType, GgufFile, GgufWriter, TensorSpec, Value};
use gguf_gate::quant::{quantize, to_f32};
use serde_json::Value as Json;

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}", text(o));
}

fn quantize_cmd(input: &Path, ty: &str, extra: &[&str]) -> Output {
    let mut args = vec!["quantize", input.to_str().unwrap(), "--type", ty];
    args.extend_from_slice(extra);
    run(&args)
}

fn values(file: &GgufFile, name: &str) -> Vec<f32> {
    let t = file.header.tensor(name).unwrap();
    to_f32(t.ty, file.tensor_data(t), t.elements as usize).unwrap()
}

/// Rows for the reference comparison: random values at several magnitudes, plus rows
/// that hit the rounding edges (ties at .5, an all-zero row, a negative extreme, tiny
/// and large values).
fn test_rows(cols: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rows: Vec<Vec<f32>> = [1.0f32, 0.02, 300.0, 1e-4]
        .iter()
        .flat_map(|&s| (0..3).map(move |k| (s, k)))
        .map(|(s, k)| rng.fill(cols, s, if k == 2 { 0.3 * s } else { 0.0 }))
        .collect();
    rows.push(vec![0.0; cols]);
    // Ties: with amax 127 (Q8_0 d = 1) and amax 1 (ternary), k + 0.5 and ±0.5 land exactly
    // on a half; with max -8 (Q4_0 d = 1), x + 8.5 lands on integers.
    let ties: Vec<f32> = (0..cols)
        .map(|i| match i % 8 {
            0 => 127.0,
            1 => -8.0,
            2 => 0.5,
            3 => -0.5,
            4 => 2.5,
            5 => -3.5,
            6 => 1.0,
            _ => -1.0,
        })
        .collect();
    rows.push(ties.clone());
    rows.push(ties.iter().map(|v| v / 127.0).collect());
    rows.push(ties.iter().map(|v| v.clamp(-1.0, 1.0)).collect());
    rows.push(
        (0..cols)
            .map(|i| {
                if i % 32 == 7 {
                    -8.0
                } else {
                    (i % 17) as f32 - 8.0
                }
            })
            .collect(),
    );
    rows
}

#[test]
fn quantizers_match_gguf_py_bit_for_bit() {
    let Some(py) = python_with_gguf() else {
        return;
    };
    let cols = 512;
    let rows = test_rows(cols);
    let flat: Vec<f32> = rows.concat();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.f32");
    std::fs::write(&input, f32_bytes(&flat)).unwrap();
    for (ty, name) in [
        (GgmlType::Q8_0, "Q8_0"),
        (GgmlType::Q4_0, "Q4_0"),
        (GgmlType::Tq1_0, "TQ1_0"),
        (GgmlType::Tq2_0, "TQ2_0"),
    ] {
        let out = tmp.path().join(format!("{name}.bin"));
        let script = format!(
            "import numpy as np, sys\nfrom gguf import quants, GGMLQuantizationType as T\n\
             x = np.fromfile(sys.argv[1], dtype='<f4').reshape(-1, {cols})\n\
             quants.quantize(x, T.{name}).tofile(sys.argv[2])\n"
        );
        let o = Command::new(py)
            .args(["-c", &script])
            .arg(&input)
            .arg(&out)
            .output()
            .unwrap();
        assert_ok(&o);
        let reference = std::fs::read(&out).unwrap();
        let ours = quantize(ty, &flat).unwrap();
        assert_eq!(ours.len(), reference.len(), "{name} size");
        let row_bytes = ours.len() / rows.len();
        for (r, (a, b)) in ours
            .chunks(row_bytes)
            .zip(reference.chunks(row_bytes))
            .enumerate()
        {
            let first = a.iter().zip(b).position(|(x, y)| x != y);
            assert_eq!(
                first, None,
                "{name}: row {r} differs from gguf-py at byte {first:?}"
            );
        }
    }
}

#[test]
fn round_trip_error_is_bounded() {
    let x: Vec<f32> = test_rows(512).concat();
    // (type, block, steps between -amax and +amax). Q4_0's codes are -8..=7 times
    // d = max / -8: the side opposite the extreme clamps at 7, a whole step (amax / 8)
    // short, so its bound is counted as 8 steps.
    for (ty, block, steps) in [
        (GgmlType::Q8_0, 32, 254.0f32),
        (GgmlType::Q4_0, 32, 8.0),
        (GgmlType::Tq1_0, 256, 2.0),
        (GgmlType::Tq2_0, 256, 2.0),
    ] {
        let y = to_f32(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
        for (xs, ys) in x.chunks(block).zip(y.chunks(block)) {
            let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Half a step, plus the f16 rounding of the scale: 2^-11 relative, or up to
            // 2^-25 absolute when the scale is subnormal in f16, times the largest code.
            let bound = amax / steps * (1.0 + 1e-3)
                + amax * 2f32.powi(-10)
                + (steps / 2.0 + 1.0) * 2f32.powi(-25);
            for (a, b) in xs.iter().zip(ys) {
                assert!((a - b).abs() <= bound, "{ty}: {a} -> {b} (bound {bound})");
            }
        }
    }
}

#[test]
fn i2_s_layout_in_the_written_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_llama(tmp.path(), "t.gguf", |_, tensors| {
        // blk.0.attn_q.weight: 64 x 64 -> make row 0 hand-built, the rest zero.
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "blk.0.attn_q.weight")
            .unwrap();
        let mut v = vec![0f32; 64 * 64];
        v[0] = 0.25;
        v[1] = -0.25;
        v[33] = 0.25;
        t.1 = GgmlType::F32;
        t.2 = vec![128, 32];
        t.3 = f32_bytes(&v);
    });
    let out = tmp.path().join("t-i2_s.gguf");
    assert_ok(&quantize_cmd(&model, "i2_s", &[]));
    let file = GgufFile::open(&out).unwrap();
    let t = file.header.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(t.ty, GgmlType::I2S);
    let data = file.tensor_data(t);
    assert_eq!(data.len(), 64 * 64 / 4 + 32);
    // Element j of a 128-block: byte j % 32, shift 6 - 2 * (j / 32); code = value + 1.
    assert_eq!(data[0], 0b10_01_01_01); // j=0: +1
    assert_eq!(data[1], 0b00_10_01_01); // j=1: -1, j=33: +1
    assert!(data[2..1024].iter().all(|&b| b == 0x55));
    assert_eq!(&data[1024..1028], &0.25f32.to_le_bytes());
    assert!(data[1028..].iter().all(|&b| b == 0));
    assert_eq!(
        file.header.get_u64("general.file_type"),
        Some(40),
        "bitnet.cpp's LLAMA_FTYPE_MOSTLY_I2_S"
    );
    // Rows of 64 are not a multiple of I2_S's 128: those matrices stay as they were.
    let k = file.header.tensor("blk.0.attn_k.weight").unwrap();
    assert_eq!(k.ty, GgmlType::F32);
    let meta: Json =
        serde_json::from_slice(&std::fs::read(tmp.path().join("t-i2_s.meta.json")).unwrap())
            .unwrap();
    let kept = meta["kept"].as_array().unwrap();
    assert!(kept.iter().any(|k| k["tensor"] == "blk.0.attn_k.weight"
        && k["reason"].as_str().unwrap().contains("not a multiple")));
}

#[test]
fn smollm2_q8_0_keeps_norms_passes_the_gate_and_still_says_paris() {
    let Some(model) = smollm2() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("smol.gguf");
    std::fs::copy(&model, &input).unwrap();
    let o = quantize_cmd(&input, "q8_0", &[]);
    assert_ok(&o);
    let out = tmp.path().join("smol-q8_0.gguf");
    assert!(String::from_utf8_lossy(&o.stdout).contains("smol-q8_0.gguf"));
    let src = GgufFile::open(&input).unwrap();
    let file = GgufFile::open(&out).unwrap();
    assert_eq!(file.header.tensors.len(), src.header.tensors.len());
    let mut norms = 0;
    for t in &file.header.tensors {
        if t.name.ends_with("_norm.weight") {
            norms += 1;
            assert_eq!(t.ty, GgmlType::F32, "{}", t.name);
            assert_eq!(values(&file, &t.name), values(&src, &t.name), "{}", t.name);
        } else {
            assert_eq!(t.dims.len(), 2, "{}", t.name);
            assert_eq!(t.ty, GgmlType::Q8_0, "{}", t.name);
        }
    }
    assert_eq!(norms, 61);
    assert_eq!(file.header.get_u64("general.file_type"), Some(7));
    // The keys are the input's (file_type aside), in the same order.
    let keys =
        |f: &GgufFile| -> Vec<String> { f.header.metadata.iter().map(|e| e.key.clone()).collect() };
    assert_eq!(keys(&file), keys(&src));
    // Q8_0 of Q4_1 values: every element within half a Q8_0 step of the original.
    let (a, b) = (
        values(&src, "blk.3.ffn_down.weight"),
        values(&file, "blk.3.ffn_down.weight"),
    );
    for (xs, ys) in a.chunks(32).zip(b.chunks(32)) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (x, y) in xs.iter().zip(ys) {
            assert!((x - y).abs() <= amax / 254.0 * 1.01 + amax * 1e-3);
        }
    }
    // The source is untouched; the sidecars name it.
    assert_eq!(
        gguf_gate::fingerprint::fingerprint_file(&input, &gguf_gate::progress::Quiet)
            .unwrap()
            .to_string(),
        format!("sha256-{}", common::SMOLLM2_SHA256)
    );
    let meta: Json =
        serde_json::from_slice(&std::fs::read(tmp.path().join("smol-q8_0.meta.json")).unwrap())
            .unwrap();
    assert_eq!(
        meta["source"]["sha256"],
        format!("sha256-{}", common::SMOLLM2_SHA256)
    );
    assert_eq!(meta["output"]["general.file_type"], 7);
    assert_eq!(meta["quantized"].as_array().unwrap().len(), 211);
    let fp = std::fs::read_to_string(tmp.path().join("smol-q8_0.fingerprint")).unwrap();
    assert_eq!(fp.trim(), meta["output"]["fingerprint"]);

    // gguf-py reads it: every tensor, norms F32, the rest Q8_0.
    if let Some(py) = python_with_gguf() {
        let o = Command::new(py)
            .args([
                "-c",
                "import sys, gguf\nr = gguf.GGUFReader(sys.argv[1])\n\
                 print(len(r.tensors), sorted({t.tensor_type.name for t in r.tensors if t.name.endswith('_norm.weight')}), \
                 sorted({t.tensor_type.name for t in r.tensors if not t.name.endswith('_norm.weight')}), \
                 int(r.fields['general.file_type'].parts[-1][0]))",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert_ok(&o);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "272 ['F32'] ['Q8_0'] 7"
        );
    }

    // The gate passes with the default policy and the probe; the model still knows Paris.
    let o = run(&["check", out.to_str().unwrap()]);
    assert_ok(&o);
    let o = run(&[
        "run",
        out.to_str().unwrap(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "3",
    ]);
    assert_ok(&o);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.starts_with("The capital of France is Paris"), "{said}");

    // Deterministic: the same bytes with one thread.
    let again = tmp.path().join("again.gguf");
    let o = common::gguf_gate()
        .env("RAYON_NUM_THREADS", "1")
        .args([
            "quantize",
            input.to_str().unwrap(),
            "--type",
            "q8_0",
            "--out",
        ])
        .arg(&again)
        .output()
        .unwrap();
    assert_ok(&o);
    assert!(std::fs::read(&again).unwrap() == std::fs::read(&out).unwrap());
}

/// A tiny BitNet b1.58 model: ternary F16 projections (±s, 0), F32 norms including the
/// sub-norms, an F16 embedding, and the byte-level vocabulary of `tiny_llama`.
fn tiny_bitnet(dir: &Path) -> PathBuf {
    let (dim, ffn, heads, kv_heads, layers) = (256u64, 512u64, 4u64, 2u64, 2u32);
    let a = "bitnet-b1.58";
    let vocab_src = tiny_llama(dir, "vocab.gguf", |_, _| {});
    let vocab = GgufFile::open(&vocab_src).unwrap();
    let mut w = GgufWriter::new();
    let mut keys: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        ("general.name".into(), Value::String("tiny-bitnet".into())),
        (format!("{a}.block_count"), Value::U32(layers)),
        (format!("{a}.context_length"), Value::U32(64)),
        (format!("{a}.embedding_length"), Value::U32(dim as u32)),
        (format!("{a}.feed_forward_length"), Value::U32(ffn as u32)),
        (
            format!("{a}.attention.head_count"),
            Value::U32(heads as u32),
        ),
        (
            format!("{a}.attention.head_count_kv"),
            Value::U32(kv_heads as u32),
        ),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-5),
        ),
        (format!("{a}.rope.freq_base"), Value::F32(10000.0)),
        (
            format!("{a}.rope.dimension_count"),
            Value::U32((dim / heads) as u32),
        ),
        ("general.file_type".into(), Value::U32(1)),
    ];
    for e in &vocab.header.metadata {
        if e.key.starts_with("tokenizer.") {
            keys.push((e.key.clone(), e.value.clone()));
        }
    }
    let n_vocab = match vocab.header.get("tokenizer.ggml.tokens") {
        Some(Value::Array(Array::String(t))) => t.len() as u64,
        _ => panic!("tokens"),
    };
    for (k, v) in keys {
        w.add(k, v).unwrap();
    }
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let f16 = |v: &[f32]| -> Vec<u8> {
        v.iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect()
    };
    let mut data: Vec<Vec<u8>> = Vec::new();
    let mut add = |w: &mut GgufWriter, name: String, ty, dims: Vec<u64>, bytes: Vec<u8>| {
        w.add_tensor(TensorSpec::new(name, ty, &dims)).unwrap();
        data.push(bytes);
    };
    let emb = rng.fill((dim * n_vocab) as usize, 1.0, 0.0);
    add(
        &mut w,
        "token_embd.weight".into(),
        GgmlType::F16,
        vec![dim, n_vocab],
        f16(&emb),
    );
    let kv = dim / heads * kv_heads;
    for l in 0..layers {
        let mut norm = |w: &mut GgufWriter, name: &str, n: u64, rng: &mut Rng| {
            let v = rng.fill(n as usize, 0.2, 1.0);
            add(
                w,
                format!("blk.{l}.{name}.weight"),
                GgmlType::F32,
                vec![n],
                f32_bytes(&v),
            );
        };
        norm(&mut w, "attn_norm", dim, &mut rng);
        norm(&mut w, "attn_sub_norm", dim, &mut rng);
        norm(&mut w, "ffn_norm", dim, &mut rng);
        norm(&mut w, "ffn_sub_norm", ffn, &mut rng);
        for (name, cols, rows) in [
            ("attn_q", dim, dim),
            ("attn_k", dim, kv),
            ("attn_v", dim, kv),
            ("attn_output", dim, dim),
            ("ffn_gate", dim, ffn),
            ("ffn_up", dim, ffn),
            ("ffn_down", ffn, dim),
        ] {
            let s = 0.0625f32;
            let v: Vec<f32> = rng
                .fill((cols * rows) as usize, 1.0, 0.0)
                .iter()
                .map(|x| {
                    if *x > 0.4 {
                        s
                    } else if *x < -0.4 {
                        -s
                    } else {
                        0.0
                    }
                })
                .collect();
            add(
                &mut w,
                format!("blk.{l}.{name}.weight"),
                GgmlType::F16,
                vec![cols, rows],
                f16(&v),
            );
        }
    }
    let v = rng.fill(dim as usize, 0.2, 1.0);
    add(
        &mut w,
        "output_norm.weight".into(),
        GgmlType::F32,
        vec![dim],
        f32_bytes(&v),
    );
    let path = dir.join("bitnet.gguf");
    std::fs::write(&path, w.to_bytes(&data).unwrap()).unwrap();
    path
}

#[test]
fn tiny_bitnet_to_tq2_0_and_i2_s_keeps_norms_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_bitnet(tmp.path());
    let src = GgufFile::open(&model).unwrap();
    // The F16 original runs.
    let prompt = ["--prompt", "ab c", "--max-tokens", "4"];
    let o = run(&[&["run", model.to_str().unwrap()][..], &prompt].concat());
    assert_ok(&o);
    for (ty, ggml, ftype) in [
        ("tq2_0", GgmlType::Tq2_0, 37),
        ("i2_s", GgmlType::I2S, 40),
        ("tq1_0", GgmlType::Tq1_0, 36),
    ] {
        assert_ok(&quantize_cmd(&model, ty, &[]));
        let out = tmp.path().join(format!("bitnet-{ty}.gguf"));
        let file = GgufFile::open(&out).unwrap();
        assert_eq!(file.header.get_u64("general.file_type"), Some(ftype));
        for t in &file.header.tensors {
            let expect = if t.dims.len() == 1 {
                GgmlType::F32
            } else if t.name == "token_embd.weight" {
                GgmlType::Q8_0
            } else {
                ggml
            };
            assert_eq!(t.ty, expect, "{ty}: {}", t.name);
            if t.name.contains("_norm") || t.ty == ggml {
                // Norms untouched; ternary weights exactly.
                assert_eq!(
                    values(&file, &t.name),
                    values(&src, &t.name),
                    "{ty}: {}",
                    t.name
                );
            }
        }
        let o = run(&[&["run", out.to_str().unwrap()][..], &prompt].concat());
        assert_ok(&o);
    }
}

#[test]
fn same_bytes_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_llama(tmp.path(), "t.gguf", |_, _| {});
    for ty in ["q8_0", "q4_0"] {
        let a = tmp.path().join(format!("a-{ty}.gguf"));
        let b = tmp.path().join(format!("b-{ty}.gguf"));
        assert_ok(&quantize_cmd(&model, ty, &["--out", a.to_str().unwrap()]));
        assert_ok(&quantize_cmd(&model, ty, &["--out", b.to_str().unwrap()]));
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{ty}"
        );
        // The meta records differ only in the output file name.
        let meta = |p: &Path| -> Json {
            let mut m: Json =
                serde_json::from_slice(&std::fs::read(p.with_extension("meta.json")).unwrap())
                    .unwrap();
            m["output"]["file"] = Json::Null;
            m
        };
        assert_eq!(meta(&a), meta(&b));
    }
}

#[test]
fn existing_outputs_and_the_input_are_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_llama(tmp.path(), "t.gguf", |_, _| {});
    let before = std::fs::read(&model).unwrap();
    assert_ok(&quantize_cmd(&model, "q8_0", &[]));
    let out = tmp.path().join("t-q8_0.gguf");
    let first = std::fs::read(&out).unwrap();
    std::fs::write(&out, b"precious").unwrap();
    let o = quantize_cmd(&model, "q8_0", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists (use --force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // A sidecar alone also blocks.
    std::fs::remove_file(&out).unwrap();
    let o = quantize_cmd(&model, "q8_0", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("t-q8_0.fingerprint"));
    assert_ok(&quantize_cmd(&model, "q8_0", &["--force"]));
    assert_eq!(std::fs::read(&out).unwrap(), first);
    // OUT == IN is refused even with --force, spelled differently too.
    for spelled in [model.clone(), tmp.path().join(".").join("t.gguf")] {
        let o = quantize_cmd(
            &model,
            "q4_0",
            &["--out", spelled.to_str().unwrap(), "--force"],
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("would overwrite the input"));
    }
    assert_eq!(std::fs::read(&model).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn strict_gates_before_the_rename() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_llama(tmp.path(), "t.gguf", |_, _| {});
    assert_ok(&quantize_cmd(&model, "q8_0", &["--strict"]));
    // A norm scaled by 1000 fails norm-rms: exit 1 and nothing written.
    let bad = tiny_llama(tmp.path(), "bad.gguf", |_, tensors| {
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "blk.1.ffn_norm.weight")
            .unwrap();
        let v: Vec<f32> = common::f32_values(&t.3)
            .iter()
            .map(|x| x * 1000.0)
            .collect();
        t.3 = f32_bytes(&v);
    });
    let o = quantize_cmd(&bad, "q8_0", &["--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("norm-rms blk.1.ffn_norm.weight"),
        "{stdout}"
    );
    assert!(stdout.contains("quantize --strict: the gate failed; no file was written"));
    for name in [
        "bad-q8_0.gguf",
        "bad-q8_0.fingerprint",
        "bad-q8_0.meta.json",
    ] {
        assert!(!tmp.path().join(name).exists(), "{name}");
    }
    // Without --strict it is written.
    assert_ok(&quantize_cmd(&bad, "q8_0", &[]));
}

#[test]
fn usage_and_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_llama(tmp.path(), "t.gguf", |_, _| {});
    let o = quantize_cmd(&model, "q5_k", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("q5_k") && err.contains("q8_0") && err.contains("i2_s"),
        "{err}"
    );
    // Not a GGUF: the reader's error, naming the file.
    let junk = tmp.path().join("junk.gguf");
    std::fs::write(&junk, b"not a gguf").unwrap();
    let o = quantize_cmd(&junk, "q8_0", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("junk.gguf"));
    // A non-finite weight: the error names the tensor and the element; nothing written.
    let nan = tiny_llama(tmp.path(), "nan.gguf", |_, tensors| {
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "blk.0.ffn_up.weight")
            .unwrap();
        t.3[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let o = quantize_cmd(&nan, "q4_0", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("blk.0.ffn_up.weight") && err.contains("element 10"),
        "{err}"
    );
    assert!(!tmp.path().join("nan-q4_0.gguf").exists());
}

#[test]
fn help_documents_quantize() {
    let o = run(&["quantize", "--help"]);
    assert_ok(&o);
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "--type",
        "q8_0",
        "tq1_0",
        "i2_s",
        "--force",
        "--strict",
        "Examples:",
        "never",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    let o = run(&["--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("quantize"));
}
