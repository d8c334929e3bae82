//! `gguf-gate diff` and the drift gate on real files: SmolLM2 against itself (identical,
//! exit 0), against its Q8_0 quantization (every Q4_1 matrix changed dtype by the Q8_0
//! rounding error, norms identical; relative changes agree with gguf-py + numpy), and
//! against a copy with exactly one key, one tensor and the template edited (exactly those
//! reported, in order of importance); the vocabulary and tensor-set changes; `--filter`;
//! recorded summaries as either side; escaping in text and Markdown; determinism; errors
//! exit 2; and every `baseline-*` rule passing and failing through `check`.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{python_with_gguf, rewrite, run, smollm2};
use gguf_gate::gguf::{Array, Value};
use serde_json::Value as Json;

fn diff(old: &Path, new: &Path, extra: &[&str]) -> (Output, Json) {
    let mut args = vec![
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
    (out, json)
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tensor<'a>(report: &'a Json, name: &str) -> &'a Json {
    report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

fn changed_tensors(report: &Json) -> Vec<String> {
    report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["change"] != "unchanged")
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn changed_keys(report: &Json) -> Vec<(String, String)> {
    report["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_string(),
                k["change"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `blk.3.attn_q.weight` scaled by 2: every Q4_1 block's f16 `d` and `m` doubled, which
/// doubles every dequantized value exactly.
fn double_q4_1(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for block in out.chunks_exact_mut(20) {
        for at in [0, 2] {
            let x = half::f16::from_le_bytes([block[at], block[at + 1]]);
            let y = half::f16::from_f32(x.to_f32() * 2.0);
            block[at..at + 2].copy_from_slice(&y.to_le_bytes());
        }
    }
    out
}

const SCALED: &str = "blk.3.attn_q.weight";

/// SmolLM2 with exactly one key, one tensor and the chat template edited.
fn edited(src: &Path, dir: &Path) -> PathBuf {
    let dst = dir.join("edited.gguf");
    rewrite(
        src,
        &dst,
        |keys| {
            for (k, v) in keys.iter_mut() {
                match k.as_str() {
                    "general.name" => *v = Value::String("SmolLM2 edited".into()),
                    "tokenizer.chat_template" => {
                        let Value::String(t) = v else {
                            panic!("template")
                        };
                        *t = t.replace("helpful AI assistant", "helpful assistant");
                    }
                    _ => {}
                }
            }
        },
        |t, data| (t.name == SCALED).then(|| (t.ty, double_q4_1(data))),
    );
    dst
}

fn quantized_q8_0(src: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("smollm2-q8_0.gguf");
    let o = run(&[
        "quantize",
        src.to_str().unwrap(),
        "--type",
        "q8_0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// gguf-py + numpy: per tensor, RMS of each side, of the difference, and the relative change.
fn numpy_relchange(old: &Path, new: &Path, names: &[&str]) -> Json {
    let mut args: Vec<&OsStr> = vec!["relchange".as_ref(), old.as_os_str(), new.as_os_str()];
    args.extend(names.iter().map(OsStr::new));
    let out = common::python_script("tests/py/gguf_reference.py", &args);
    serde_json::from_slice(&out).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()) + 1e-15
}

#[test]
fn smollm2_against_itself_is_identical() {
    let Some(model) = smollm2() else { return };
    let (out, report) = diff(&model, &model, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["identical"], true);
    let tensors = report["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 272);
    assert!(tensors.iter().all(|t| t["byte_identical"] == true
        && t["relative_change"] == 0.0
        && t["old"]["sha256"] == t["new"]["sha256"]));
    assert_eq!(report["summary"]["keys"]["unchanged"], 32);
    assert_eq!(report["summary"]["templates"]["unchanged"], 1);
    assert!(report["summary"]["changes"].as_array().unwrap().is_empty());
    for format in ["text", "markdown"] {
        let out = run(&[
            "diff",
            model.to_str().unwrap(),
            model.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out).contains("identical: 32 keys, 1 template(s), 272 tensors"));
    }
}

#[test]
fn smollm2_against_its_q8_0_quantization() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let q8 = quantized_q8_0(&model, dir.path());
    let (out, report) = diff(&model, &q8, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report["identical"], false);
    // The file type is the only key that changes; the template is the same.
    assert_eq!(
        changed_keys(&report),
        [("general.file_type".to_string(), "changed".to_string())]
    );
    assert_eq!(report["summary"]["templates"]["unchanged"], 1);
    let mut rels = Vec::new();
    for t in report["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        match t["old"]["type"].as_str().unwrap() {
            // Every Q4_1 matrix became Q8_0, its values moved by Q8_0's rounding error:
            // |x - q| <= d/2 with d = max|x|/127 per block of 32.
            "Q4_1" => {
                assert_eq!(t["new"]["type"], "Q8_0", "{name}");
                assert_eq!(t["dtype_changed"], true);
                let rel = t["relative_change"].as_f64().unwrap();
                assert!((0.003..0.01).contains(&rel), "{name}: {rel}");
                let (a, b) = (
                    t["old"]["rms"].as_f64().unwrap(),
                    t["new"]["rms"].as_f64().unwrap(),
                );
                assert!(close(a, b, 1e-3), "{name}: RMS {a} vs {b}");
                rels.push(rel);
            }
            // Norms and 1-D tensors are never quantized: byte-identical; token_embd was
            // Q8_0 already and re-quantizes to the same bytes.
            "F32" | "Q8_0" => {
                assert_eq!(t["change"], "unchanged", "{name}");
                assert_eq!(t["byte_identical"], true, "{name}");
                assert_eq!(t["relative_change"], 0.0);
            }
            other => panic!("{name}: unexpected type {other}"),
        }
    }
    assert_eq!(rels.len(), 210);
    let (lo, hi) = rels
        .iter()
        .fold((f64::MAX, 0f64), |(l, h), &r| (l.min(r), h.max(r)));
    eprintln!("SmolLM2 Q4_1 -> Q8_0: relative change {lo:.5} .. {hi:.5} over 210 matrices");
    // The ranked summary puts the largest change first.
    let first = &report["summary"]["changes"][0];
    assert_eq!(first["tier"], "weights");
    assert!(close(first["magnitude"].as_f64().unwrap(), hi, 1e-12));

    // An independent computation: gguf-py's dequantization and numpy in float64.
    if python_with_gguf().is_none() {
        return;
    }
    let names = [
        "blk.0.attn_q.weight",
        "blk.3.ffn_down.weight",
        "blk.29.ffn_up.weight",
        "blk.12.attn_k.weight",
    ];
    let reference = numpy_relchange(&model, &q8, &names);
    for r in reference["tensors"].as_array().unwrap() {
        let ours = tensor(&report, r["name"].as_str().unwrap());
        for (a, b) in [
            ("old_rms", &ours["old"]["rms"]),
            ("new_rms", &ours["new"]["rms"]),
            ("rms_diff", &ours["rms_diff"]),
            ("relative_change", &ours["relative_change"]),
        ] {
            let (x, y) = (r[a].as_f64().unwrap(), b.as_f64().unwrap());
            assert!(close(x, y, 1e-9), "{}: {a} numpy {x} vs {y}", r["name"]);
        }
    }
}

#[test]
fn exactly_the_edited_key_tensor_and_template_are_reported() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = edited(&model, dir.path());
    let (out, report) = diff(&model, &copy, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        changed_keys(&report),
        [("general.name".to_string(), "changed".to_string())]
    );
    assert_eq!(changed_tensors(&report), [SCALED]);
    let templates = report["templates"].as_array().unwrap();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0]["key"], "tokenizer.chat_template");
    let hunk = templates[0]["diff"].as_str().unwrap();
    assert!(hunk.starts_with("@@ -1,5 +1,5 @@\n"), "{hunk}");
    assert!(
        hunk.contains("\n-You are a helpful AI assistant named SmolLM"),
        "{hunk}"
    );
    assert!(
        hunk.contains("\n+You are a helpful assistant named SmolLM"),
        "{hunk}"
    );
    assert_eq!(
        hunk.lines().filter(|l| l.starts_with(['+', '-'])).count(),
        2,
        "{hunk}"
    );
    let first = &templates[0]["first_difference"];
    assert!(first["old"]
        .as_str()
        .unwrap()
        .contains("helpful AI assistant"));
    assert!(first["new"].as_str().unwrap().contains("helpful assistant"));
    let t = tensor(&report, SCALED);
    // Every value doubled: ‖2x − x‖ / ‖x‖ = 1, RMS doubled.
    assert!(
        close(t["relative_change"].as_f64().unwrap(), 1.0, 1e-12),
        "{t}"
    );
    assert!(close(t["rms_change"].as_f64().unwrap(), 1.0, 1e-12), "{t}");
    assert_eq!(t["dtype_changed"], false);
    assert_ne!(t["old"]["sha256"], t["new"]["sha256"]);
    // Most important first: the template, then the weights, then descriptive metadata.
    let order: Vec<(&str, &str)> = report["summary"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["tier"].as_str().unwrap(), c["subject"].as_str().unwrap()))
        .collect();
    assert_eq!(
        order,
        [
            ("template", "tokenizer.chat_template"),
            ("weights", SCALED),
            ("metadata", "general.name")
        ]
    );
    // The text report says the same, with the template's unified diff.
    let out = run(&["diff", model.to_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("different: 1 key(s), 1 template(s), 1 tensor(s)"),
        "{t}"
    );
    assert!(
        t.contains("~ general.name  \"Smollm2 135M 8k Lc100K Mix1 Ep2\" → \"SmolLM2 edited\""),
        "{t}"
    );
    assert!(t.contains("      @@ -1,5 +1,5 @@"), "{t}");
    if python_with_gguf().is_some() {
        let r = numpy_relchange(&model, &copy, &[SCALED]);
        let rel = r["tensors"][0]["relative_change"].as_f64().unwrap();
        assert!(close(rel, 1.0, 1e-12), "numpy: {rel}");
    }
}

#[test]
fn vocabulary_and_tensor_set_changes() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("vocab.gguf");
    rewrite(
        &model,
        &copy,
        |keys| {
            for (k, v) in keys.iter_mut() {
                if k == "tokenizer.ggml.tokens" {
                    let Value::Array(Array::String(tokens)) = v else {
                        panic!("tokens")
                    };
                    tokens[100] = "<changed>".into();
                    tokens.push("<added>".into());
                }
                if k == "llama.context_length" {
                    *v = Value::U64(8192);
                }
            }
        },
        |_, _| None,
    );
    let (out, report) = diff(&model, &copy, &[]);
    assert_eq!(out.status.code(), Some(1));
    let keys = report["metadata"].as_array().unwrap();
    let vocab = keys
        .iter()
        .find(|k| k["key"] == "tokenizer.ggml.tokens")
        .unwrap();
    let a = &vocab["array"];
    assert_eq!(
        (a["old_len"].as_u64(), a["new_len"].as_u64()),
        (Some(49152), Some(49153))
    );
    assert_eq!(
        (
            a["changed"].as_u64(),
            a["added"].as_u64(),
            a["removed"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(a["first_difference"], 100);
    assert_eq!(a["examples"][0]["new"], "\"<changed>\"");
    assert_eq!(a["examples"][1]["index"], 49152);
    // A type change with the same number is a change, and the loader tier ranks it first.
    let ctx = keys
        .iter()
        .find(|k| k["key"] == "llama.context_length")
        .unwrap();
    assert_eq!(ctx["type_changed"], true);
    assert_eq!(report["summary"]["changes"][0]["tier"], "loader");
    let t = text(&run(&[
        "diff",
        model.to_str().unwrap(),
        copy.to_str().unwrap(),
    ]));
    assert!(
        t.contains("49152 → 49153 tokens: 1 added, 0 removed, 1 changed (first difference at 100)"),
        "{t}"
    );
    assert!(t.contains("[100] ") && t.contains("→ \"<changed>\""), "{t}");
    assert!(t.contains("u32 8192 → u64 8192"), "{t}");

    // The tensor set: renaming one tensor removes it and adds another.
    let renamed = dir.path().join("renamed.gguf");
    let file = gguf_gate::gguf::GgufFile::open(&model).unwrap();
    let mut w = gguf_gate::gguf::GgufWriter::new();
    for e in &file.header.metadata {
        w.add(e.key.clone(), e.value.clone()).unwrap();
    }
    let mut data = Vec::new();
    for t in &file.header.tensors {
        let name = if t.name == "output_norm.weight" {
            "output_norm.renamed".to_string()
        } else {
            t.name.clone()
        };
        w.add_tensor(gguf_gate::gguf::TensorSpec::new(name, t.ty, &t.dims))
            .unwrap();
        data.push(file.tensor_data(t).to_vec());
    }
    std::fs::write(&renamed, w.to_bytes(&data).unwrap()).unwrap();
    let (out, report) = diff(&model, &renamed, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        changed_tensors(&report),
        ["output_norm.renamed", "output_norm.weight"]
    );
    assert_eq!(tensor(&report, "output_norm.renamed")["change"], "added");
    let removed = tensor(&report, "output_norm.weight");
    assert_eq!(removed["change"], "removed");
    // A removed tensor is still read (one pass over the old file): its hash and RMS.
    assert!(removed["old"]["rms"].as_f64().unwrap() > 1.0);
    assert_eq!(report["summary"]["tensors"]["added"], 1);
    assert_eq!(report["summary"]["changes"][0]["tier"], "structure");
}

#[test]
fn filter_selects_keys_and_tensors() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = edited(&model, dir.path());
    let (out, report) = diff(&model, &copy, &["--filter", "blk.3.*"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(changed_tensors(&report), [SCALED]);
    assert!(report["metadata"].as_array().unwrap().is_empty());
    assert_eq!(report["summary"]["tensors"]["unchanged"], 8);
    let (out, report) = diff(
        &model,
        &copy,
        &["--filter", "blk.4.*", "--filter", "llama.*"],
    );
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["identical"], true);
    let (out, report) = diff(&model, &copy, &["--filter", "general.name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(report["tensors"].as_array().unwrap().is_empty());
    assert_eq!(changed_keys(&report).len(), 1);
}

#[test]
fn recorded_summaries_are_small_diffable_and_validated() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let baseline = record(&model, dir.path());
    let size = std::fs::metadata(&baseline).unwrap().len();
    assert!(size < 64 << 10, "{size} bytes");
    let summary: Json = serde_json::from_slice(&std::fs::read(&baseline).unwrap()).unwrap();
    assert_eq!(
        summary["fingerprint"],
        format!("sha256-{}", common::SMOLLM2_SHA256)
    );
    assert_eq!(summary["tensors"].as_array().unwrap().len(), 272);

    // The summary against the file it records: identical, either way round.
    for (a, b) in [(&baseline, &model), (&model, &baseline)] {
        let (out, report) = diff(a, b, &[]);
        assert_eq!(out.status.code(), Some(0), "{report:#}");
    }
    // Against the edited copy: the same three changes; the scaled tensor by RMS only.
    let copy = edited(&model, dir.path());
    let (out, report) = diff(&baseline, &copy, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report["old"]["kind"], "summary");
    assert_eq!(
        changed_keys(&report),
        [("general.name".to_string(), "changed".to_string())]
    );
    assert_eq!(changed_tensors(&report), [SCALED]);
    assert!(report["templates"][0]["diff"]
        .as_str()
        .unwrap()
        .contains("\n-You are a helpful AI"));
    let t = tensor(&report, SCALED);
    assert!(t["relative_change"].is_null());
    assert!(close(t["rms_change"].as_f64().unwrap(), 1.0, 1e-9), "{t}");
    assert!(t["note"].as_str().unwrap().contains("hash and RMS"));

    // A damaged summary is an error naming the file and the entry.
    let bad = dir.path().join("bad.json");
    let text = std::fs::read_to_string(&baseline).unwrap();
    std::fs::write(&bad, text.replacen("\"Q4_1\"", "\"Q4_9\"", 1)).unwrap();
    let out = run(&["diff", bad.to_str().unwrap(), model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json") && err.contains("tensor entry") && err.contains("Q4_9"),
        "{err}"
    );
    std::fs::write(&bad, b"not json, not gguf").unwrap();
    let out = run(&["diff", bad.to_str().unwrap(), model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a GGUF file"));
}

#[test]
fn model_strings_are_escaped_in_text_and_markdown() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("hostile.gguf");
    rewrite(
        &model,
        &copy,
        |keys| {
            keys.push((
                "general.evil\n::error::pwned\u{202e}".into(),
                Value::String("a|b`c\u{200b}".into()),
            ));
            for (k, v) in keys.iter_mut() {
                if k == "tokenizer.chat_template" {
                    *v = Value::String("{{ x }}\n```\n::warning::in a template\n".into());
                }
            }
        },
        |_, _| None,
    );
    let out = run(&["diff", model.to_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("general.evil\\n::error::pwned\\u{202e}"), "{t}");
    assert!(!t.contains('\u{202e}') && !t.contains('\u{200b}'));
    assert!(t.lines().all(|l| !l.starts_with("::")), "{t}");
    let out = run(&[
        "diff",
        model.to_str().unwrap(),
        copy.to_str().unwrap(),
        "--format",
        "markdown",
    ]);
    let md = text(&out);
    assert!(
        md.contains("`general.evil\\n::error::pwned\\u{202e}`"),
        "{md}"
    );
    assert!(md.contains("a\\|b\\`c\\u{200b}"), "{md}");
    // The template's ``` cannot close the diff block: the fence is longer.
    assert!(md.contains("````diff\n") && md.contains("+```\n"), "{md}");
    assert!(md.lines().all(|l| !l.starts_with("::")), "{md}");
    let (_, report) = diff(&model, &copy, &[]);
    assert_eq!(
        report["metadata"][0]["key"],
        "general.evil\n::error::pwned\u{202e}"
    );
}

#[test]
fn same_output_whatever_the_thread_count() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let q8 = quantized_q8_0(&model, dir.path());
    let outputs: Vec<Vec<u8>> = ["1", "2", "3"]
        .iter()
        .map(|n| {
            run(&[
                "diff",
                model.to_str().unwrap(),
                q8.to_str().unwrap(),
                "--format",
                "json",
                "--threads",
                n,
            ])
            .stdout
        })
        .collect();
    assert!(!outputs[0].is_empty());
    assert!(outputs.iter().all(|o| *o == outputs[0]));
}

#[test]
fn unreadable_inputs_exit_2() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf");
    let out = run(&["diff", model.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.gguf"));
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&truncated, &bytes[..1 << 20]).unwrap();
    let out = run(&["diff", truncated.to_str().unwrap(), model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated.gguf"), "{err}");
}

// ---- The drift gate: `baseline:` in a policy, the `baseline-*` rules through `check` ----

/// Every check of a run, passed or failed, as (rule, subject, passed): the JUnit report
/// lists them all (the JSON report lists failures only).
type Checks = Vec<(String, String, bool)>;

fn check(model: &Path, policy: &Path) -> (Output, Json, Checks) {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let out = run(&[
        "check",
        model.to_str().unwrap(),
        "--format",
        "json",
        "--no-probe",
        "--policy",
        policy.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    let attr = |case: &str, name: &str| -> String {
        let at = case.find(&format!("{name}=\"")).map(|i| i + name.len() + 2);
        at.and_then(|i| case[i..].split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    let checks = xml
        .split("<testcase ")
        .skip(1)
        .map(|case| {
            (
                attr(case, "classname"),
                attr(case, "name"),
                !case.contains("<failure"),
            )
        })
        .collect();
    (out, json, checks)
}

/// The checks of `rule`: (subject, passed).
fn findings(checks: &Checks, rule: &str) -> Vec<(String, bool)> {
    checks
        .iter()
        .filter(|(r, _, _)| r == rule)
        .map(|(_, s, p)| (s.clone(), *p))
        .collect()
}

fn failed(checks: &Checks, rule: &str) -> Vec<String> {
    let mut f: Vec<String> = findings(checks, rule)
        .into_iter()
        .filter(|(_, p)| !p)
        .map(|(s, _)| s)
        .collect();
    f.sort();
    f
}

/// The failed finding of `rule` in the JSON report.
fn failure<'a>(report: &'a Json, rule: &str) -> &'a Json {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} failure in {report:#}"))
}

fn policy(dir: &Path, baseline: &Path, bounds: &str) -> PathBuf {
    let p = dir.join("policy.yaml");
    let text = format!(
        "version: 1\nbaseline:\n  file: {}\n{bounds}",
        baseline.display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

const ALL_BOUNDS: &str =
    "  keys_must_match: [\"general.architecture\", \"{arch}.*\", \"tokenizer.*\"]
  max_relative_change:
    - {pattern: \"*_norm.weight\", max: 0}
    - {pattern: \"*\", max: 0.01}
  dtypes_must_match: true
  template_must_match: true
";

/// Every `baseline-*` rule passes when the model is its own baseline, as a GGUF file and
/// as a recorded summary.
#[test]
fn every_baseline_rule_passes_against_the_same_release() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let summary = record(&model, dir.path());
    for baseline in [&model, &summary] {
        let p = policy(dir.path(), baseline, ALL_BOUNDS);
        let (out, report, checks) = check(&model, &p);
        assert_eq!(out.status.code(), Some(0), "{report:#}");
        for (rule, count) in [
            ("baseline-tensors", 272),
            ("baseline-dtype", 272),
            ("baseline-drift", 272),
            ("baseline-template", 1),
        ] {
            let f = findings(&checks, rule);
            assert_eq!(f.len(), count, "{rule}");
            assert!(f.iter().all(|(_, passed)| *passed), "{rule}");
        }
        // general.architecture, the llama.* keys and the tokenizer.* keys (template included).
        let keys = findings(&checks, "baseline-keys");
        assert!(keys.len() >= 20 && keys.iter().all(|(_, p)| *p), "{keys:?}");
        for key in [
            "llama.context_length",
            "tokenizer.ggml.tokens",
            "tokenizer.chat_template",
        ] {
            assert!(keys.iter().any(|(k, _)| k == key), "{key}");
        }
        assert!(!keys.iter().any(|(k, _)| k == "general.name"));
    }
}

/// `check --record-baseline`: the summary of the model, written in the same read.
fn record(model: &Path, dir: &Path) -> PathBuf {
    let summary = dir.join("baseline.json");
    let out = run(&[
        "check",
        model.to_str().unwrap(),
        "--no-probe",
        "--record-baseline",
        summary.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    summary
}

#[test]
fn baseline_tensors_fails_on_a_missing_tensor() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let summary = record(&model, dir.path());
    // The baseline had a tensor the model lacks, and lacked one it has (renamed in the record).
    let text = std::fs::read_to_string(&summary).unwrap();
    std::fs::write(
        &summary,
        text.replace("\"output_norm.weight\"", "\"output_norm.gone\""),
    )
    .unwrap();
    let p = policy(dir.path(), &summary, "");
    let (out, report, checks) = check(&model, &p);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(
        failed(&checks, "baseline-tensors"),
        ["output_norm.gone", "output_norm.weight"]
    );
    assert_eq!(findings(&checks, "baseline-tensors").len(), 273);
    assert!(failure(&report, "baseline-tensors")["message"]
        .as_str()
        .unwrap()
        .contains("since the baseline"));
    // `tensors_must_match: false` turns the check off.
    let p = policy(dir.path(), &summary, "  tensors_must_match: false\n");
    let (out, report, checks) = check(&model, &p);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert!(findings(&checks, "baseline-tensors").is_empty());
}

#[test]
fn baseline_keys_fails_on_a_changed_pinned_key() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ctx.gguf");
    rewrite(
        &model,
        &copy,
        |keys| {
            for (k, v) in keys.iter_mut() {
                if k == "llama.context_length" {
                    *v = Value::U32(4096);
                }
            }
        },
        |_, _| None,
    );
    let p = policy(dir.path(), &model, "  keys_must_match: [\"{arch}.*\"]\n");
    let (out, report, checks) = check(&copy, &p);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(failed(&checks, "baseline-keys"), ["llama.context_length"]);
    assert!(findings(&checks, "baseline-keys").len() >= 10);
    let message = failure(&report, "baseline-keys")["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("8192 → 4096"), "{message}");
    // A key outside the pinned patterns may change.
    let p = policy(dir.path(), &model, "  keys_must_match: [\"tokenizer.*\"]\n");
    let (out, _, checks) = check(&copy, &p);
    assert_eq!(out.status.code(), Some(0));
    assert!(failed(&checks, "baseline-keys").is_empty());
}

#[test]
fn baseline_dtype_and_drift_on_a_requantization() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let q8 = quantized_q8_0(&model, dir.path());
    // Q8_0's rounding error (0.005 to 0.007) is within 0.01 ...
    let p = policy(
        dir.path(),
        &model,
        "  max_relative_change: [{pattern: \"*\", max: 0.01}]\n",
    );
    let (out, report, checks) = check(&q8, &p);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(findings(&checks, "baseline-drift").len(), 272);
    assert!(failed(&checks, "baseline-drift").is_empty());
    // ... not within 0.006 for every matrix.
    let p = policy(
        dir.path(),
        &model,
        "  max_relative_change: [{pattern: \"*\", max: 0.006}]\n",
    );
    let (out, _, checks) = check(&q8, &p);
    assert_eq!(out.status.code(), Some(1));
    let n = failed(&checks, "baseline-drift").len();
    assert!(n > 0 && n < 210, "{n}");
    // And every matrix changed its dtype.
    let p = policy(dir.path(), &model, "  dtypes_must_match: true\n");
    let (out, report, checks) = check(&q8, &p);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(failed(&checks, "baseline-dtype").len(), 210);
    assert_eq!(findings(&checks, "baseline-dtype").len(), 272);
    let f = failure(&report, "baseline-dtype");
    assert_eq!(
        (f["value"].as_str(), f["bound"].as_str()),
        (Some("Q8_0"), Some("Q4_1"))
    );
}

#[test]
fn baseline_drift_fails_on_a_scaled_tensor_against_a_file_and_a_summary() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = edited(&model, dir.path());
    let summary = record(&model, dir.path());
    for baseline in [&model, &summary] {
        let p = policy(
            dir.path(),
            baseline,
            "  max_relative_change: [{pattern: \"blk.*\", max: 0.5}]\n",
        );
        let (out, report, checks) = check(&copy, &p);
        assert_eq!(out.status.code(), Some(1), "{report:#}");
        assert_eq!(findings(&checks, "baseline-drift").len(), 30 * 9);
        assert_eq!(failed(&checks, "baseline-drift"), [SCALED]);
        let f = failure(&report, "baseline-drift");
        assert_eq!(
            (f["value"].as_str(), f["bound"].as_str()),
            (Some("1"), Some("0.5"))
        );
        let summary_side = baseline == &summary;
        assert_eq!(
            f["message"].as_str().unwrap().contains("lower bound"),
            summary_side
        );
    }
}

#[test]
fn baseline_template_fails_on_an_edited_template() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = edited(&model, dir.path());
    let p = policy(dir.path(), &model, "  template_must_match: true\n");
    let (out, _, checks) = check(&copy, &p);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        findings(&checks, "baseline-template"),
        [("tokenizer.chat_template".to_string(), false)]
    );
    let (out, _, checks) = check(&model, &p);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        findings(&checks, "baseline-template"),
        [("tokenizer.chat_template".to_string(), true)]
    );
}

#[test]
fn a_baseline_policy_is_validated() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.yaml");
    std::fs::write(
        &p,
        "version: 1\nbaseline:\n  dtypes_must_match: true\n  max_relative_change: [{pattern: \"*\", max: -1}]\n",
    )
    .unwrap();
    let (out, _, _) = check(&model, &p);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("policy.yaml:3:22") && err.contains("need `baseline.file`"),
        "{err}"
    );
    assert!(err.contains("-1 is not a finite number ≥ 0"), "{err}");
    // A baseline that cannot be read is an input error, not a finding.
    let missing = dir.path().join("nowhere.gguf");
    let p = policy(dir.path(), &missing, "");
    let (out, _, _) = check(&model, &p);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere.gguf"));
    // Unknown keys are caught with a suggestion, as everywhere in a policy.
    std::fs::write(
        &p,
        "version: 1\nbaseline:\n  file: x.gguf\n  dtype_must_match: true\n",
    )
    .unwrap();
    let (out, _, _) = check(&model, &p);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `dtypes_must_match`"));
}

#[test]
fn with_a_baseline_the_gate_reports_the_same_fingerprint_and_findings() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path(), &model, "");
    let (out, with, with_checks) = check(&model, &p);
    assert_eq!(out.status.code(), Some(0));
    let none = dir.path().join("none.yaml");
    std::fs::write(&none, "version: 1\n").unwrap();
    let (_, without, without_checks) = check(&model, &none);
    // The statistics and fingerprint come from the diff's pass: every other check is the same.
    assert_eq!(with["fingerprint"], without["fingerprint"]);
    let others: Checks = with_checks
        .into_iter()
        .filter(|(r, _, _)| !r.starts_with("baseline-"))
        .collect();
    assert_eq!(others, without_checks);
    assert!(others.len() > 1000);
}

/// I2_S keeps its scale in a tail after the codes: two files with the same codes and
/// another scale hold other values, and the diff must say so (equal code bytes are not
/// equal values for this type).
#[test]
fn an_i2_s_scale_change_is_a_value_change() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    const NAME: &str = "blk.2.ffn_down.weight"; // rows of 1536: whole I2_S blocks
                                                // quantize converts float tensors: make this one F32 first.
    let float = dir.path().join("float.gguf");
    rewrite(
        &model,
        &float,
        |_| {},
        |t, data| {
            (t.name == NAME).then(|| {
                let mut v = vec![0f32; t.elements as usize];
                gguf_gate::quant::dequantize(t.ty, data, &mut v).unwrap();
                (
                    gguf_gate::gguf::GgmlType::F32,
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                )
            })
        },
    );
    let i2s = dir.path().join("smollm2-i2_s.gguf");
    let o = run(&[
        "quantize",
        float.to_str().unwrap(),
        "--type",
        "i2_s",
        "--out",
        i2s.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rescaled = dir.path().join("rescaled.gguf");
    rewrite(
        &i2s,
        &rescaled,
        |_| {},
        |t, data| {
            (t.name == NAME).then(|| {
                let mut out = data.to_vec();
                let at = out.len() - gguf_gate::gguf::I2S_TAIL_BYTES as usize;
                let scale = f32::from_le_bytes(out[at..at + 4].try_into().unwrap());
                out[at..at + 4].copy_from_slice(&(scale * 2.0).to_le_bytes());
                (t.ty, out)
            })
        },
    );
    let (out, json) = diff(&i2s, &rescaled, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == NAME)
        .unwrap_or_else(|| panic!("{NAME} not reported: {json}"));
    assert_eq!(t["old"]["type"], "I2_S", "{t}");
    let rel = t["relative_change"].as_f64().unwrap();
    assert!(
        (rel - 1.0).abs() < 1e-6,
        "doubling the scale is a relative change of 1: {t}"
    );
}
