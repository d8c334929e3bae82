//! `gguf-gate export` of PyTorch `.bin` checkpoints, which are read without executing
//! them (src/convert/export/pickle.rs). tests/py/torch_bin.py writes the exact zip +
//! pickle bytes `torch.save` writes, without torch: a tiny llama checkpoint saved as
//! `.bin` (F32, F16, sharded with `pytorch_model.bin.index.json`) must export to the
//! same GGUF bytes as its safetensors twin, and hostile or malformed files (code-running
//! globals, truncated archives, storages larger than their entries, legacy pickles,
//! non-contiguous strides, other storage types, compressed entries) must each be refused
//! with exit 2, a message naming the problem, nothing written and nothing executed.

mod common;

use common::{export, text};

use std::path::{Path, PathBuf};
use std::process::Command;

use common::checkpoint::{safetensors_bytes, tiny_config, tiny_llama_tensors, write_tokenizer, T};
use common::Rng;
use serde_json::{json, Value as Json};

// ---- a tiny llama checkpoint (tests/common/checkpoint.rs) ----

/// `root/name` with config.json and the tokenizer, and no weights yet.
fn skeleton(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), tiny_config("llama").to_string()).unwrap();
    write_tokenizer(&dir);
    dir
}

fn torch_bin(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/torch_bin.py");
    let o = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(o.status.success(), "torch_bin.py {args:?}: {}", text(&o));
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

// ---- same bytes as safetensors ----

#[test]
fn bin_exports_the_same_gguf_as_its_safetensors_twin() {
    let tmp = tempfile::tempdir().unwrap();
    for (f16, shards, one_storage) in [
        (false, 1, false),
        (true, 1, false),
        (false, 3, false),
        (true, 2, false),
        (true, 1, true),
        (false, 2, true),
    ] {
        let tag = format!(
            "{}-{shards}{}",
            if f16 { "f16" } else { "f32" },
            if one_storage { "-shared" } else { "" }
        );
        let st = skeleton(tmp.path(), &format!("st-{tag}"));
        let bytes = safetensors_bytes(&tiny_llama_tensors(f16));
        std::fs::write(st.join("model.safetensors"), &bytes).unwrap();
        let bin = skeleton(tmp.path(), &format!("bin-{tag}"));
        let src = st.join("model.safetensors");
        let shard_arg = shards.to_string();
        let mut args = vec![
            "convert",
            src.to_str().unwrap(),
            bin.to_str().unwrap(),
            "--shards",
            &shard_arg,
        ];
        if one_storage {
            args.push("--one-storage");
        }
        torch_bin(&args);
        if shards == 1 {
            assert!(bin.join("pytorch_model.bin").is_file());
        } else {
            assert!(bin.join("pytorch_model.bin.index.json").is_file());
            assert!(!bin.join("pytorch_model.bin").exists());
        }
        let (out_st, out_bin) = (
            tmp.path().join(format!("out-st-{tag}")),
            tmp.path().join(format!("out-bin-{tag}")),
        );
        let o = export(&st, &out_st, &["--name", "tiny"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let o = export(&bin, &out_bin, &["--name", "tiny", "--strict"]);
        assert_eq!(o.status.code(), Some(0), "{tag}: {}", text(&o));
        let a = std::fs::read(out_st.join("tiny-f16.gguf")).unwrap();
        let b = std::fs::read(out_bin.join("tiny-f16.gguf")).unwrap();
        assert!(
            a == b,
            "{tag}: the .bin export differs from the safetensors one"
        );
        assert_eq!(
            std::fs::read(out_st.join("tiny-f16.fingerprint")).unwrap(),
            std::fs::read(out_bin.join("tiny-f16.fingerprint")).unwrap()
        );
        // The provenance record names the .bin files.
        let meta: Json =
            serde_json::from_slice(&std::fs::read(out_bin.join("tiny-f16.meta.json")).unwrap())
                .unwrap();
        let files: Vec<&str> = meta["source"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["file"].as_str().unwrap())
            .collect();
        if shards == 1 {
            assert_eq!(files, ["config.json", "pytorch_model.bin"], "{tag}");
        } else {
            assert_eq!(files.len(), 2 + shards, "{files:?}");
            assert_eq!(files[1], "pytorch_model.bin.index.json");
            assert!(files[2].starts_with("pytorch_model-00001-of-"), "{files:?}");
        }
    }
}

#[test]
fn safetensors_wins_when_both_exist_and_bin_index_names_are_plain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = skeleton(tmp.path(), "both");
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors_bytes(&tiny_llama_tensors(false)),
    )
    .unwrap();
    // A hostile .bin beside it is never opened.
    let bin = dir.join("pytorch_model.bin");
    torch_bin(&["hostile", "os_system", bin.to_str().unwrap()]);
    let out = tmp.path().join("out");
    let o = export(&dir, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // The .bin index: shard names must be plain file names.
    let dir = skeleton(tmp.path(), "escape");
    std::fs::write(
        dir.join("pytorch_model.bin.index.json"),
        json!({"weight_map": {"model.norm.weight": "../pytorch_model.bin"}}).to_string(),
    )
    .unwrap();
    let out = tmp.path().join("out-escape");
    let o = export(&dir, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("plain file names"),
        "{}",
        text(&o)
    );
    assert_no_files(&out);
}

// ---- hostile and malformed files ----

#[test]
fn hostile_bins_are_refused_without_running_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let canary = tmp.path().join("canary");
    let cases: &[(&str, &[&str])] = &[
        (
            "os_system",
            &[
                "data.pkl byte 2",
                "global os.system is refused",
                "not executed",
            ],
        ),
        (
            "builtins_eval",
            &["data.pkl byte 41", "global __builtin__.eval is refused"],
        ),
        ("truncated", &["not a torch.save zip archive", "truncated"]),
        (
            "oversized_storage",
            &[
                "model.norm.weight",
                "claims 1000 elements of 4 bytes but the entry holds 16 bytes",
            ],
        ),
        (
            "legacy",
            &["legacy PyTorch (< 1.6) pickle", "convert it to safetensors"],
        ),
        (
            "strided",
            &[
                "q_proj.weight",
                "stride [1, 2] is not contiguous (row-major)",
            ],
        ),
        (
            "long_storage",
            &["torch.LongStorage is not accepted", "F32, F16 or BF16"],
        ),
        ("compressed", &["is compressed (method 8)"]),
    ];
    for (kind, needles) in cases {
        let dir = skeleton(tmp.path(), kind);
        let bin = dir.join("pytorch_model.bin");
        torch_bin(&[
            "hostile",
            kind,
            bin.to_str().unwrap(),
            canary.to_str().unwrap(),
        ]);
        let out = tmp.path().join(format!("out-{kind}"));
        let o = export(&dir, &out, &[]);
        assert_eq!(o.status.code(), Some(2), "{kind}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("pytorch_model.bin"), "{kind}: {err}");
        for n in *needles {
            assert!(err.contains(n), "{kind}: expected {n:?} in: {err}");
        }
        assert!(!err.contains("panicked"), "{kind}: {err}");
        assert_no_files(&out);
        assert!(!canary.exists(), "{kind}: the payload ran");
    }
}

#[test]
fn mutated_bins_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let st = skeleton(tmp.path(), "src");
    let tensors: Vec<T> = tiny_llama_tensors(false).into_iter().take(3).collect();
    std::fs::write(st.join("model.safetensors"), safetensors_bytes(&tensors)).unwrap();
    let dir = skeleton(tmp.path(), "m");
    torch_bin(&[
        "convert",
        st.join("model.safetensors").to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    let good = std::fs::read(dir.join("pytorch_model.bin")).unwrap();
    let mut rng = Rng(0xDEAD_BEEF_1234_5678);
    let out = tmp.path().join("out");
    for i in 0..40 {
        let mut b = good.clone();
        // Mutate bytes of data.pkl and the central directory: the start and the end.
        for _ in 0..1 + i % 4 {
            let r = ((rng.next() + 1.0) / 2.0 * 300.0) as usize % 300;
            let at = if i % 2 == 0 {
                r.min(b.len() - 1)
            } else {
                b.len() - 1 - r.min(b.len() - 1)
            };
            b[at] = (rng.next() * 127.0) as i8 as u8;
        }
        std::fs::write(dir.join("pytorch_model.bin"), &b).unwrap();
        let o = export(&dir, &out, &["--force"]);
        assert_ne!(
            o.status.code(),
            Some(101),
            "mutation {i} panicked: {}",
            text(&o)
        );
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("panicked"),
            "{}",
            text(&o)
        );
        assert!(
            matches!(o.status.code(), Some(0 | 2)),
            "mutation {i}: {}",
            text(&o)
        );
    }
}
