//! Hostile and malformed GGUF input: every error kind the reader distinguishes, the
//! historical llama.cpp GGUF CVE shapes, and a truncation at every byte of a valid
//! file. Each must give the expected error variant — never a panic — and the binary
//! must exit 2 quickly under a small memory limit.

mod common;

use std::time::{Duration, Instant};

use common::{gguf_gate, Raw};
use gguf_gate::gguf::{parse_header, GgmlType, GgufWriter, TensorSpec, Value};

/// A small valid file: two keys, two tensors.
fn valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add("general.architecture", Value::String("llama".into()))
        .unwrap();
    w.add(
        "tokenizer.ggml.tokens",
        Value::Array(gguf_gate::gguf::Array::String(vec![
            "a".into(),
            "bc".into(),
        ])),
    )
    .unwrap();
    w.add_tensor(TensorSpec::new(
        "blk.0.attn_norm.weight",
        GgmlType::F32,
        &[4],
    ))
    .unwrap();
    w.add_tensor(TensorSpec::new(
        "blk.0.attn_q.weight",
        GgmlType::Q8_0,
        &[32, 2],
    ))
    .unwrap();
    w.to_bytes(&[vec![0; 16], vec![0; 68]]).unwrap()
}

/// A file with one tensor record appended after `kv` metadata records.
fn with_tensor(name: &str, dims: &[u64], ty: u32, offset: u64, data: usize) -> Vec<u8> {
    let mut r = Raw::header(3, 1, 0);
    r.tensor(name, dims, ty, offset).pad(32).zeros(data);
    r.build()
}

/// Every malformed case: (what, bytes, expected error kind).
fn cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut c: Vec<(&'static str, Vec<u8>, &'static str)> = Vec::new();
    let mut push = |what, bytes: Vec<u8>, kind| c.push((what, bytes, kind));

    push("empty file", vec![], "truncated");
    push("bad magic", b"GGML\x03\0\0\0".to_vec(), "bad-magic");
    push(
        "big-endian v3",
        Raw::header(3u32.swap_bytes(), 0, 0).build(),
        "big-endian",
    );
    push("v1", Raw::header(1, 0, 0).build(), "unsupported-version");
    push("v4", Raw::header(4, 0, 0).build(), "unsupported-version");
    push(
        "header cut in the counts",
        b"GGUF\x03\0\0\0\0\0".to_vec(),
        "truncated",
    );

    // Counts that cannot fit in what remains (CVE-2024-21825/21836 shapes).
    push(
        "n_kv near 2^60",
        Raw::header(3, 0, 1 << 60).build(),
        "limit-exceeded",
    );
    push(
        "n_tensors near 2^60",
        Raw::header(3, 1 << 60, 0).build(),
        "limit-exceeded",
    );
    push(
        "n_kv 1M in a tiny file",
        Raw::header(3, 0, 1 << 20).build(),
        "count-too-large",
    );
    push(
        "n_tensors 1M in a tiny file",
        Raw::header(3, 1 << 20, 0).build(),
        "count-too-large",
    );
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(8).u64(1 << 62);
    push("string length near 2^62", r.build(), "limit-exceeded");
    let mut r = Raw::header(3, 0, 1);
    r.u64(u64::MAX - 3).bytes(b"k").zeros(16);
    push("key length near 2^64", r.build(), "limit-exceeded");
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(9).u32(4).u64(1 << 62);
    push("u32 array length near 2^62", r.build(), "count-too-large");
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(9).u32(8).u64(1 << 40).zeros(64);
    push("array of 2^40 strings", r.build(), "count-too-large");
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(9).u32(8).u64(2).str(b"a").u64(1000);
    push("string in array past EOF", r.build(), "truncated");

    // Metadata structure.
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("a", 1).kv_u32("a", 2);
    push("duplicate key", r.build(), "duplicate-key");
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("", 1);
    push("empty key", r.build(), "empty-key");
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k\xff").u32(4).u32(1);
    push("invalid UTF-8 key", r.build(), "invalid-utf8");
    let mut r = Raw::header(3, 0, 1);
    r.kv_str("k", b"caf\xc3");
    push("invalid UTF-8 value", r.build(), "invalid-utf8");
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(13).u32(0);
    push("unknown value type", r.build(), "unknown-value-type");
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(9).u32(13).u64(1).u32(0);
    push(
        "unknown array element type",
        r.build(),
        "unknown-value-type",
    );
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(9).u32(9).u64(1).u32(4).u64(1).u32(0);
    push("nested array", r.build(), "nested-array");
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(7).bytes(&[2]);
    push("bool byte 2", r.build(), "invalid-bool");
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("general.alignment", 0);
    push("alignment 0", r.build(), "bad-alignment");
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("general.alignment", 3);
    push("alignment 3", r.build(), "bad-alignment");
    let mut r = Raw::header(3, 0, 1);
    r.str(b"general.alignment").u32(10).u64(32);
    push("alignment of type u64", r.build(), "bad-alignment");

    // Tensor infos.
    push(
        "n_dims 5",
        with_tensor("t", &[1, 1, 1, 1, 1], 0, 0, 4),
        "too-many-dims",
    );
    let mut r = Raw::header(3, 1, 0);
    r.str(b"t").u32(u32::MAX).zeros(64);
    push("n_dims 2^32-1", r.build(), "too-many-dims");
    push(
        "type id 1000",
        with_tensor("t", &[4], 1000, 0, 16),
        "unknown-tensor-type",
    );
    push(
        "type id 43",
        with_tensor("t", &[4], 43, 0, 16),
        "unknown-tensor-type",
    );
    push(
        "removed type Q4_2",
        with_tensor("t", &[32], 4, 0, 32),
        "removed-tensor-type",
    );
    push(
        "removed type Q4_0_4_4",
        with_tensor("t", &[32], 31, 0, 32),
        "removed-tensor-type",
    );
    push(
        "ne = (INT64_MAX, 2)",
        with_tensor("t", &[i64::MAX as u64, 2], 0, 0, 0),
        "overflow",
    );
    push(
        "ne[0] > INT64_MAX",
        with_tensor("t", &[u64::MAX, 1], 0, 0, 0),
        "bad-dim",
    );
    push(
        "dims whose product wraps",
        with_tensor("t", &[1 << 32, 1 << 32], 0, 0, 0),
        "overflow",
    );
    push(
        "elements x type size overflows",
        with_tensor("t", &[1 << 62], 0, 0, 0),
        "bad-shape",
    );
    push(
        "ne[0] not a block multiple",
        with_tensor("t", &[33], 8, 0, 64),
        "bad-shape",
    );
    push(
        "I2_S with n % 4 != 0",
        with_tensor("t", &[6], 36, 0, 64),
        "bad-shape",
    );
    push(
        "tensor name of 64 bytes",
        with_tensor(&"n".repeat(64), &[4], 0, 0, 16),
        "name-too-long",
    );
    let mut r = Raw::header(3, 1, 0);
    r.str(b"t\xc0")
        .u32(1)
        .u64(4)
        .u32(0)
        .u64(0)
        .pad(32)
        .zeros(16);
    push("invalid UTF-8 tensor name", r.build(), "invalid-utf8");
    let mut r = Raw::header(3, 2, 0);
    r.tensor("t", &[4], 0, 0)
        .tensor("t", &[4], 0, 32)
        .pad(32)
        .zeros(64);
    push("duplicate tensor name", r.build(), "duplicate-tensor");
    push(
        "offset not aligned",
        with_tensor("t", &[4], 0, 8, 64),
        "misaligned",
    );
    push(
        "offset past EOF",
        with_tensor("t", &[4], 0, 1 << 20, 16),
        "out-of-bounds",
    );
    push(
        "data running past EOF",
        with_tensor("t", &[64], 0, 0, 100),
        "out-of-bounds",
    );
    push(
        "offset + size overflows",
        with_tensor("t", &[4], 0, u64::MAX - 31, 16),
        "overflow",
    );
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[16], 0, 0)
        .tensor("b", &[16], 0, 32)
        .pad(32)
        .zeros(128);
    push("tensors overlapping", r.build(), "overlap");
    c
}

#[test]
fn every_malformed_case_gives_its_error() {
    for (what, bytes, kind) in cases() {
        match parse_header(&bytes) {
            Ok(_) => panic!("{what}: parsed without error"),
            Err(e) => assert_eq!(e.kind(), kind, "{what}: got {e}"),
        }
    }
}

#[test]
fn every_error_kind_is_covered() {
    let covered: std::collections::BTreeSet<&str> = cases().iter().map(|c| c.2).collect();
    // Every kind `GgufError::kind` can return — read from its source, whose match the
    // compiler keeps exhaustive, so a new variant needs a new case here.
    let source = include_str!("../src/gguf/error.rs");
    let body = source
        .split("pub fn kind(&self)")
        .nth(1)
        .expect("GgufError::kind in src/gguf/error.rs");
    let body = &body[..body.find("\n    }\n").expect("end of kind()")];
    let all: Vec<&str> = body
        .lines()
        .filter(|l| l.contains("=>"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(
        all.len() >= 24,
        "read {} kinds from kind(): {all:?}",
        all.len()
    );
    for kind in all {
        assert!(covered.contains(kind), "no test case for {kind}");
    }
}

#[test]
fn errors_name_the_offset_and_subject() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("a", 1).kv_u32("a", 2);
    let msg = parse_header(&r.build()).unwrap_err().to_string();
    assert!(
        msg.contains("\"a\"") && msg.contains("offset 41") && msg.contains("offset 24"),
        "{msg}"
    );
    let msg = parse_header(&with_tensor("blk.0.x", &[4], 0, 8, 64))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("blk.0.x") && msg.contains("alignment 32"),
        "{msg}"
    );
}

#[test]
fn every_truncation_of_a_valid_file_is_an_error() {
    let bytes = valid_file();
    let header = parse_header(&bytes).expect("the valid file parses");
    assert_eq!(header.tensors.len(), 2);
    // Cutting only the padding after the last tensor leaves a valid file.
    let data_end = header
        .tensors
        .iter()
        .map(|t| header.data_range(t).end)
        .max()
        .unwrap();
    assert!(parse_header(&bytes[..data_end as usize]).is_ok());
    for len in 0..data_end as usize {
        let prefix = &bytes[..len];
        match parse_header(prefix) {
            Ok(_) => panic!("prefix of {len} bytes parsed"),
            Err(e) => {
                let kind = e.kind();
                let expected = if (len as u64) < header.data_offset {
                    ["truncated", "count-too-large"].contains(&kind)
                        || (kind == "out-of-bounds" && len as u64 >= header.data_offset - 32)
                } else {
                    kind == "out-of-bounds"
                };
                assert!(expected, "prefix {len}: unexpected {e}");
            }
        }
    }
}

#[test]
fn valid_edge_cases_parse() {
    // No tensors, no keys; v2; a zero-sized tensor; 0-dim tensor; custom alignment.
    assert!(parse_header(&Raw::header(3, 0, 0).build()).is_ok());
    assert!(parse_header(&Raw::header(2, 0, 0).build()).is_ok());
    assert!(parse_header(&with_tensor("z", &[0, 4], 0, 0, 0)).is_ok());
    let h = parse_header(&with_tensor("s", &[], 0, 0, 4)).unwrap();
    assert_eq!(h.tensors[0].elements, 1);
    let mut r = Raw::header(3, 1, 1);
    r.kv_u32("general.alignment", 256)
        .tensor("t", &[4], 0, 0)
        .pad(256)
        .zeros(16);
    let h = parse_header(&r.build()).unwrap();
    assert_eq!((h.alignment, h.data_offset % 256), (256, 0));
    let name63 = "n".repeat(63);
    assert!(parse_header(&with_tensor(&name63, &[4], 0, 0, 16)).is_ok());
}

/// The binary: exit code 2, a message on stderr, fast, within a small address space.
#[test]
fn binary_exits_2_quickly_within_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![("valid control", valid_file(), "")];
    all.extend(cases());
    for (i, (what, bytes, kind)) in all.into_iter().enumerate() {
        let path = dir.path().join(format!("case{i}.gguf"));
        std::fs::write(&path, &bytes).unwrap();
        let start = Instant::now();
        // ulimit -v bounds the whole address space (binary, stack, heap, maps) to 64 MiB.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 65536 && exec \"$0\" inspect \"$1\"")
            .arg(env!("CARGO_BIN_EXE_gguf-gate"))
            .arg(&path)
            .output()
            .unwrap();
        let elapsed = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if kind.is_empty() {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what} must pass under the limit: {stderr}"
            );
            continue;
        }
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && !stderr.contains("panicked"),
            "{what}: {stderr}"
        );
        assert!(
            stderr.contains(path.to_str().unwrap()),
            "{what}: error names the file: {stderr}"
        );
        assert!(elapsed < Duration::from_secs(2), "{what}: took {elapsed:?}");
    }
}

#[test]
fn random_bytes_never_panic() {
    // A small deterministic fuzz pass (the real fuzzer lives in fuzz/): mutate a valid
    // file byte by byte and at random, and parse every mutant.
    let base = valid_file();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut bytes = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % bytes.len();
            bytes[i] = next() as u8;
        }
        let _ = parse_header(&bytes);
    }
    let _ = gguf_gate();
}

/// `make_resident` maps every page of the file up front (the mapping's resident size in
/// `/proc/self/smaps` goes from nothing to the whole file), the bytes are the file's, and
/// `release` (which the streaming passes call) leaves the pages mapped.
#[test]
fn a_resident_file_is_mapped_whole_and_kept_through_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let mut bytes = valid_file();
    // Padding after the last tensor: 8 MiB for the mapping to show (parsing the header
    // maps the first page, up to 2 MiB where the map has huge pages).
    bytes.resize(bytes.len() + (8 << 20), 7);
    std::fs::write(&path, &bytes).unwrap();
    let mut file = gguf_gate::gguf::GgufFile::open(&path).unwrap();
    let before = mapped_kib(&path);
    file.make_resident();
    assert_eq!(file.is_resident(), cfg!(target_os = "linux"));
    if cfg!(target_os = "linux") {
        let after = mapped_kib(&path);
        assert!(
            before <= 2048 + 4 && after >= (bytes.len() as u64 >> 10),
            "resident KiB of the mapping: {before} before, {after} after ({} KiB file)",
            bytes.len() >> 10
        );
    }
    assert_eq!(file.bytes(), &bytes[..]);
    file.release(0..bytes.len() as u64);
    if cfg!(target_os = "linux") {
        assert!(
            mapped_kib(&path) >= (bytes.len() as u64 >> 10),
            "release unmapped pages"
        );
    }
    assert_eq!(file.bytes(), &bytes[..]);
}

/// The `Rss` of this process's mappings of `path`, KiB (0 where `/proc` is absent).
fn mapped_kib(path: &std::path::Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let name = path.to_string_lossy();
    let mut inside = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            inside = line.ends_with(&*name);
        } else if inside {
            if let Some(v) = line.strip_prefix("Rss:") {
                kib += v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
    }
    kib
}
