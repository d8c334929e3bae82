//! Conformance against the reference implementation, llama.cpp's `gguf` Python package:
//! (a) files our writer makes are read by `gguf.GGUFReader` with every key, type and
//! tensor byte equal; (b) files `gguf.GGUFWriter` makes are read by us, equal; (c) on
//! the real SmolLM2 model, `inspect --format json --full` agrees with GGUFReader.

mod common;

use std::path::Path;

use common::{python_with_gguf, reference, run, smollm2};
use gguf_gate::fingerprint::Fingerprint;
use gguf_gate::gguf::{Array, GgmlType, GgufFile, GgufWriter, TensorSpec, Value};
use serde_json::{json, Value as Json};

/// What gguf-gate reads from `path`, in the shape gguf_reference.py dumps.
fn our_view(path: &Path) -> Json {
    let out = run(&[
        "inspect",
        path.to_str().unwrap(),
        "--format",
        "json",
        "--full",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ours: Json = serde_json::from_slice(&out.stdout).unwrap();
    let file = GgufFile::open(path).unwrap();
    let tensors: Vec<Json> = file
        .header
        .tensors
        .iter()
        .zip(ours["tensors"].as_array().unwrap())
        .map(|(t, j)| {
            json!({
                "name": j["name"], "type": j["type"], "dims": j["dims"],
                "offset": j["offset"], "bytes": j["bytes"],
                "sha256": Fingerprint::of_bytes(file.tensor_data(t)).hex(),
            })
        })
        .collect();
    json!({
        "version": ours["version"].take(),
        "alignment": ours["alignment"].take(),
        "metadata": ours["metadata"].take(),
        "tensors": tensors,
    })
}

fn reference_view(path: &Path) -> Json {
    serde_json::from_slice(&reference("dump", path).stdout).unwrap()
}

/// Compare entry by entry so a failure names the key or tensor.
fn assert_same(ours: &Json, theirs: &Json) {
    assert_eq!(ours["version"], theirs["version"], "version");
    assert_eq!(ours["alignment"], theirs["alignment"], "alignment");
    for section in ["metadata", "tensors"] {
        let (a, b) = (
            ours[section].as_array().unwrap(),
            theirs[section].as_array().unwrap(),
        );
        assert_eq!(a.len(), b.len(), "{section} count");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x, y, "{section} entry differs (ours, then gguf-py)");
        }
    }
}

fn every_value_type() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.alignment", Value::U32(64)),
        ("t.u8", Value::U8(255)),
        ("t.i8", Value::I8(-128)),
        ("t.u16", Value::U16(65535)),
        ("t.i16", Value::I16(-32768)),
        ("t.u32", Value::U32(u32::MAX)),
        ("t.i32", Value::I32(i32::MIN)),
        ("t.f32", Value::F32(1e-5)),
        ("t.bool", Value::Bool(false)),
        (
            "t.string",
            Value::String("naïve café, 東京 🙂\n\ttab".into()),
        ),
        ("t.u64", Value::U64(u64::MAX)),
        ("t.i64", Value::I64(i64::MIN)),
        ("t.f64", Value::F64(-2.5e300)),
        ("t.arr.u8", Value::Array(Array::U8(vec![0, 1, 255]))),
        ("t.arr.i8", Value::Array(Array::I8(vec![-1, 1]))),
        ("t.arr.u16", Value::Array(Array::U16(vec![7, 65535]))),
        ("t.arr.i16", Value::Array(Array::I16(vec![-7]))),
        ("t.arr.u32", Value::Array(Array::U32(vec![1, 2, 3]))),
        ("t.arr.i32", Value::Array(Array::I32(vec![-3, 0, 3]))),
        (
            "t.arr.f32",
            Value::Array(Array::F32(vec![0.25, -1.0, 3.5e-7])),
        ),
        (
            "t.arr.bool",
            Value::Array(Array::Bool(vec![true, false, true])),
        ),
        (
            "t.arr.string",
            Value::Array(Array::String(vec![
                "Ġthe".into(),
                String::new(),
                "東".into(),
            ])),
        ),
        ("t.arr.u64", Value::Array(Array::U64(vec![u64::MAX]))),
        ("t.arr.i64", Value::Array(Array::I64(vec![i64::MIN, 5]))),
        ("t.arr.f64", Value::Array(Array::F64(vec![0.1, -0.2]))),
        ("t.arr.empty", Value::Array(Array::I32(vec![]))),
    ]
}

#[test]
fn our_files_are_read_by_gguf_py() {
    if python_with_gguf().is_none() {
        return;
    }
    let mut w = GgufWriter::new();
    for (k, v) in every_value_type() {
        w.add(k, v).unwrap();
    }
    let shapes: &[(&str, GgmlType, &[u64])] = &[
        ("token_embd.weight", GgmlType::Q8_0, &[64, 8]),
        ("blk.0.attn_norm.weight", GgmlType::F32, &[64]),
        ("blk.0.attn_q.weight", GgmlType::Q4_1, &[64, 64]),
        ("blk.0.ffn_up.weight", GgmlType::Q4K, &[256, 4]),
        ("blk.0.ffn_down.weight", GgmlType::Q6K, &[256, 2]),
        ("blk.0.attn_k.weight", GgmlType::F16, &[64, 3]),
        ("blk.0.attn_v.weight", GgmlType::Bf16, &[32, 2, 2]),
        ("blk.0.ffn_gate.weight", GgmlType::Tq2_0, &[256, 2]),
        ("output.weight", GgmlType::Q5_0, &[32, 1, 1, 3]),
    ];
    let mut data = Vec::new();
    for (i, (name, ty, dims)) in shapes.iter().enumerate() {
        let spec = TensorSpec::new(*name, *ty, dims);
        let size = spec.size().unwrap() as usize;
        // Deterministic, distinct bytes per tensor (whatever they decode to).
        data.push(
            (0..size)
                .map(|j| (j * 31 + i * 7) as u8)
                .collect::<Vec<u8>>(),
        );
        w.add_tensor(spec).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ours.gguf");
    std::fs::write(&path, w.to_bytes(&data).unwrap()).unwrap();
    assert_same(&our_view(&path), &reference_view(&path));
}

#[test]
fn gguf_py_files_are_read_by_us() {
    if python_with_gguf().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reference.gguf");
    reference("write", &path);
    let ours = our_view(&path);
    assert_eq!(ours["alignment"], 64);
    assert_eq!(ours["tensors"].as_array().unwrap().len(), 7);
    assert_same(&ours, &reference_view(&path));
}

#[test]
fn smollm2_inspect_agrees_with_gguf_py() {
    let Some(model) = smollm2() else { return };
    if python_with_gguf().is_none() {
        return;
    }
    let ours = our_view(&model);
    assert_eq!(ours["metadata"].as_array().unwrap().len(), 33);
    assert_eq!(ours["tensors"].as_array().unwrap().len(), 272);
    assert_same(&ours, &reference_view(&model));
}

#[test]
fn writer_is_deterministic_and_round_trips() {
    let build = || {
        let mut w = GgufWriter::new();
        for (k, v) in every_value_type() {
            w.add(k, v).unwrap();
        }
        w.add_tensor(TensorSpec::new("a", GgmlType::F32, &[3]))
            .unwrap();
        w.add_tensor(TensorSpec::new("b", GgmlType::Q8_0, &[32, 2]))
            .unwrap();
        w.to_bytes(&[vec![1; 12], vec![2; 68]]).unwrap()
    };
    let (first, second) = (build(), build());
    assert_eq!(first, second);
    let header = gguf_gate::gguf::parse_header(&first).unwrap();
    assert_eq!(header.version, 3);
    assert_eq!(header.alignment, 64);
    let keys: Vec<&str> = header.metadata.iter().map(|e| e.key.as_str()).collect();
    let want: Vec<&str> = every_value_type().iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, want, "file order kept");
    for (entry, (_, value)) in header.metadata.iter().zip(every_value_type()) {
        assert_eq!(entry.value, value, "{}", entry.key);
    }
    assert_eq!(header.data_offset % 64, 0);
    assert_eq!(header.tensor("b").unwrap().offset, 64);
    assert_eq!(
        first.len() as u64,
        header.data_offset + 64 + 128,
        "each tensor padded to 64"
    );
}
