//! The gate end to end: SmolLM2 passes its default policy; copies with one defect
//! injected fail naming the right rule; every rule passes and fails on small files;
//! policy errors exit 2 with every problem and its line:column; strict mode, waivers,
//! severities, fail levels and `--exit-zero` behave.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{f32_bytes, f32_values, quantize_q8_0, rewrite, run, smollm2, tiny_llama};
use gguf_gate::gguf::{GgmlType, Value};
use serde_json::Value as Json;

fn check(model: &Path, extra: &[&str]) -> (Output, Json) {
    // The probe has its own tests (tests/probe.rs); these test the other rules.
    let mut args = vec![
        "check",
        model.to_str().unwrap(),
        "--format",
        "json",
        "--no-probe",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
    (out, json)
}

/// Failing (unwaived) findings as (rule, subject).
fn failures(report: &Json) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["waived"].is_null() && f["severity"] != "note")
                .map(|f| {
                    (
                        f["rule"].as_str().unwrap().to_string(),
                        f["subject"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn assert_fails_with(out: &Output, report: &Json, rule: &str, subject: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["passed"], false);
    let f = failures(report);
    assert!(
        f.iter().any(|(r, s)| r == rule && s == subject),
        "expected {rule} on {subject}, got {f:?}"
    );
}

fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("policy.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

// ---- SmolLM2: the real model and real defects ----

#[test]
fn smollm2_passes_the_default_policy() {
    let Some(model) = smollm2() else { return };
    let (out, report) = check(&model, &[]);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["passed"], true);
    assert_eq!(report["preset"], "llama");
    assert_eq!(
        report["fingerprint"],
        format!("sha256-{}", common::SMOLLM2_SHA256)
    );
    assert!(report["summary"]["checks"].as_u64().unwrap() > 1000);
    assert!(failures(&report).is_empty(), "{:?}", failures(&report));
}

fn smollm2_with(
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, Value)>),
    tensor: impl FnMut(&gguf_gate::gguf::TensorInfo, &[u8]) -> Option<(GgmlType, Vec<u8>)>,
) -> Option<(tempfile::TempDir, PathBuf)> {
    let model = smollm2()?;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    rewrite(&model, &path, edit, tensor);
    Some((dir, path))
}

#[test]
fn smollm2_quantized_norm_fails_norm_dtype() {
    let Some((_d, path)) = smollm2_with(
        "qnorm.gguf",
        |_| {},
        |t, data| {
            (t.name == "blk.0.attn_norm.weight")
                .then(|| (GgmlType::Q8_0, quantize_q8_0(&f32_values(data))))
        },
    ) else {
        return;
    };
    let (out, report) = check(&path, &[]);
    assert_fails_with(&out, &report, "norm-dtype", "blk.0.attn_norm.weight");
}

#[test]
fn smollm2_scaled_projection_fails_proj_rules() {
    let Some((_d, path)) = smollm2_with(
        "scaled.gguf",
        |_| {},
        |t, data| {
            (t.name == "blk.3.attn_q.weight").then(|| {
                // Q4_1 blocks: f16 d, f16 m, 16 bytes of nibbles. Scale d and m by 1000.
                let mut out = data.to_vec();
                for block in out.chunks_exact_mut(20) {
                    for field in 0..2 {
                        let bits = u16::from_le_bytes([block[2 * field], block[2 * field + 1]]);
                        let scaled =
                            half::f16::from_f32(half::f16::from_bits(bits).to_f32() * 1000.0);
                        block[2 * field..2 * field + 2]
                            .copy_from_slice(&scaled.to_bits().to_le_bytes());
                    }
                }
                (GgmlType::Q4_1, out)
            })
        },
    ) else {
        return;
    };
    let (out, report) = check(&path, &[]);
    assert_fails_with(&out, &report, "proj-rms", "blk.3.attn_q.weight");
    assert_fails_with(&out, &report, "proj-rms-spread", "blk.3");
}

#[test]
fn smollm2_nan_fails_tensor_finite() {
    let Some((_d, path)) = smollm2_with(
        "nan.gguf",
        |_| {},
        |t, data| {
            (t.name == "blk.0.ffn_norm.weight").then(|| {
                let mut v = f32_values(data);
                v[7] = f32::NAN;
                (GgmlType::F32, f32_bytes(&v))
            })
        },
    ) else {
        return;
    };
    let (out, report) = check(&path, &[]);
    assert_fails_with(&out, &report, "tensor-finite", "blk.0.ffn_norm.weight");
}

#[test]
fn smollm2_all_zero_matrix_fails_tensor_zero() {
    let Some((_d, path)) = smollm2_with(
        "zero.gguf",
        |_| {},
        |t, data| {
            (t.name == "blk.5.ffn_down.weight").then(|| (GgmlType::Q4_1, vec![0u8; data.len()]))
        },
    ) else {
        return;
    };
    let (out, report) = check(&path, &[]);
    assert_fails_with(&out, &report, "tensor-zero", "blk.5.ffn_down.weight");
}

#[test]
fn smollm2_missing_and_mistyped_keys_fail() {
    let Some((_d, path)) = smollm2_with(
        "keys.gguf",
        |keys| {
            keys.retain(|(k, _)| k != "llama.block_count");
            for (k, v) in keys.iter_mut() {
                if k == "llama.context_length" {
                    *v = Value::U64(8192);
                }
            }
        },
        |_, _| None,
    ) else {
        return;
    };
    let (out, report) = check(&path, &[]);
    assert_fails_with(&out, &report, "metadata-required", "llama.block_count");
    assert_fails_with(&out, &report, "metadata-type", "llama.context_length");
}

#[test]
fn smollm2_zeroed_constant_and_rescaled_norms_fail() {
    let Some((_d, path)) = smollm2_with(
        "norms.gguf",
        |_| {},
        |t, data| {
            let v = f32_values(data);
            let edited: Option<Vec<f32>> = match t.name.as_str() {
                "blk.1.attn_norm.weight" => Some(vec![0.0; v.len()]),
                "blk.2.attn_norm.weight" => Some(vec![1.0; v.len()]),
                "blk.3.ffn_norm.weight" => Some(v.iter().map(|x| x * 1000.0).collect()),
                _ => None,
            };
            edited.map(|e| (GgmlType::F32, f32_bytes(&e)))
        },
    ) else {
        return;
    };
    let (out, report) = check(&path, &[]);
    assert_fails_with(&out, &report, "norm-rms", "blk.1.attn_norm.weight");
    assert_fails_with(&out, &report, "tensor-zero", "blk.1.attn_norm.weight");
    assert_fails_with(&out, &report, "tensor-constant", "blk.2.attn_norm.weight");
    assert_fails_with(&out, &report, "norm-rms", "blk.3.ffn_norm.weight");
}

#[test]
fn smollm2_wrong_pinned_fingerprint_fails() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wrong = format!("sha256-{}", "ab".repeat(32));
    let policy = write_policy(
        dir.path(),
        &format!("version: 1\nfingerprint:\n  expected: [{wrong}]\n"),
    );
    let (out, report) = check(&model, &["--policy", policy.to_str().unwrap()]);
    assert_fails_with(&out, &report, "fingerprint-match", "(file)");
    let right = write_policy(
        dir.path(),
        &format!(
            "version: 1\nfingerprint:\n  expected: [{wrong}, sha256-{}]\n",
            common::SMOLLM2_SHA256
        ),
    );
    let (out, _) = check(&model, &["--policy", right.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
}

// ---- every rule on small files ----

#[test]
fn tiny_llama_passes_the_llama_preset() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "ok.gguf", |_, _| {});
    let (out, report) = check(&model, &[]);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert!(failures(&report).is_empty(), "{:?}", failures(&report));
    let rules: std::collections::BTreeSet<String> = {
        // All checks, passed included, are in the JUnit report; use --junit to list them.
        let junit = dir.path().join("j.xml");
        run(&[
            "check",
            model.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ]);
        let xml = std::fs::read_to_string(junit).unwrap();
        xml.split("classname=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_string())
            .collect()
    };
    for rule in [
        "metadata-required",
        "metadata-type",
        "metadata-value",
        "metadata-consistency",
        "norm-dtype",
        "norm-rms",
        "proj-rms",
        "proj-rms-spread",
        "tensor-finite",
        "tensor-zero",
        "tensor-constant",
    ] {
        assert!(
            rules.contains(rule),
            "{rule} did not run on a passing model: {rules:?}"
        );
    }
}

#[test]
fn metadata_rules_fail_on_small_files() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "meta.gguf", |keys, _| {
        for (k, v) in keys.iter_mut() {
            match k.as_str() {
                "general.architecture" => {}
                "llama.attention.layer_norm_rms_epsilon" => *v = Value::F32(0.5),
                "llama.block_count" => *v = Value::U32(3),
                "llama.attention.head_count" => *v = Value::U32(5),
                _ => {}
            }
        }
    });
    let (out, report) = check(&model, &[]);
    assert_fails_with(
        &out,
        &report,
        "metadata-value",
        "llama.attention.layer_norm_rms_epsilon",
    );
    assert_fails_with(&out, &report, "metadata-consistency", "llama.block_count");
    assert_fails_with(
        &out,
        &report,
        "metadata-consistency",
        "llama.attention.head_count",
    );
}

#[test]
fn tensor_dtype_and_count_rules() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "t.gguf", |_, _| {});
    let ok = write_policy(
        dir.path(),
        "version: 1\ntensors:\n  count: 20\n  dtypes:\n    - {pattern: \"*\", allowed: [F32]}\n",
    );
    let (out, report) = check(&model, &["--policy", ok.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let bad = write_policy(dir.path(), "version: 1\ntensors:\n  count: 21\n  dtypes:\n    - {pattern: \"blk.*\", allowed: [Q8_0]}\n");
    let (out, report) = check(&model, &["--policy", bad.to_str().unwrap()]);
    assert_fails_with(&out, &report, "tensor-count", "(file)");
    assert_fails_with(&out, &report, "tensor-dtype", "blk.0.attn_q.weight");
    // The finding cites the policy line that set the bound.
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "tensor-count")
        .unwrap();
    assert_eq!(f["location"]["line"], 3);
}

#[test]
fn undecodable_tensor_is_a_warning_and_generic_arch_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "u.gguf", |keys, tensors| {
        for (k, v) in keys.iter_mut() {
            if k == "general.architecture" {
                *v = Value::String("mystery".into());
            }
        }
        tensors.push((
            "extra.weight".into(),
            GgmlType::Iq2Xxs,
            vec![256],
            vec![0; 66],
        ));
    });
    let (out, report) = check(&model, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings do not fail at --fail-level error"
    );
    let all = report["findings"].as_array().unwrap();
    assert!(all
        .iter()
        .any(|f| f["rule"] == "tensor-undecodable" && f["severity"] == "warning"));
    assert!(all
        .iter()
        .any(|f| f["rule"] == "policy-generic" && f["severity"] == "note"));
    let (out, _) = check(&model, &["--fail-level", "warning"]);
    assert_eq!(out.status.code(), Some(1));
    let (out, _) = check(&model, &["--strict"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "strict turns the warning into an error"
    );
    let out = common::gguf_gate()
        .args(["check", model.to_str().unwrap(), "--no-probe"])
        .env("BITNET_STRICT_MODE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "BITNET_STRICT_MODE=1 is strict");
}

#[test]
fn waivers_severities_and_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "w.gguf", |_, tensors| {
        for t in tensors.iter_mut() {
            if t.0 == "blk.1.ffn_up.weight" {
                t.3 = vec![0; t.3.len()];
            }
        }
    });
    let (out, report) = check(&model, &[]);
    assert_fails_with(&out, &report, "tensor-zero", "blk.1.ffn_up.weight");
    let waived = write_policy(dir.path(), "version: 1\nextends: llama\nwaivers:\n  - {rule: tensor-zero, target: \"blk.1.*\", reason: \"pruned on purpose\", expires: 2999-12-31}\n  - {rule: proj-rms, target: \"blk.1.ffn_up.weight\", reason: \"pruned\", expires: 2999-12-31}\n  - {rule: proj-rms-spread, target: \"*\", reason: \"pruned\", expires: 2999-12-31}\n");
    let (out, report) = check(&model, &["--policy", waived.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", failures(&report));
    assert!(report["summary"]["waived"].as_u64().unwrap() >= 1);
    let (out, _) = check(&model, &["--policy", waived.to_str().unwrap(), "--strict"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "strict mode does not apply waivers"
    );
    let expired = write_policy(dir.path(), "version: 1\nwaivers:\n  - {rule: tensor-zero, target: \"*\", reason: \"old\", expires: 2001-01-01}\n");
    let (out, report) = check(&model, &["--policy", expired.to_str().unwrap()]);
    assert_fails_with(&out, &report, "policy-waiver-expired", "*");
    let off = write_policy(
        dir.path(),
        "version: 1\nseverity:\n  tensor-zero: off\n  proj-rms: warning\n  proj-rms-spread: off\n",
    );
    let (out, report) = check(&model, &["--policy", off.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", failures(&report));
    let (out, report) = check(&model, &["--exit-zero"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(report["passed"], false);
}

#[test]
fn broken_policy_exits_2_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "p.gguf", |_, _| {});
    let policy = write_policy(
        dir.path(),
        "version: 1\nnorm:\n  rms: []\nnorms:\n  dtypes: [F32, Q9_9]\n  rms:\n    - {pattern: \"blk.*\", min: 2.0, max: 1.0}\n    - {pattern: \"\", min: 0.1}\nseverity:\n  norm-rsm: off\nmetadata:\n  keys:\n    - {key: x, regex: \"([a-\"}\n",
    );
    let out = run(&[
        "check",
        model.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let p = policy.to_str().unwrap();
    for expected in [
        format!("{p}:2:1: unknown key `norm`; did you mean `norms`?"),
        format!("{p}:5:11: unknown dtype \"Q9_9\""),
        format!("{p}:7:31: rms for \"blk.*\": min 2 is greater than max 1"),
        format!("{p}:8:17: an empty pattern"),
        format!("{p}:10:13: unknown rule code `norm-rsm`; did you mean `norm-rms`?"),
        format!("{p}:13:23: invalid regular expression"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    for (text, what) in [
        ("", "empty"),
        ("version: 2\n", "unsupported policy version"),
        ("version: 1\nnorms: {dtypes: 5}\n", ":2:17"),
        ("version: 1\nextends: llama2\n", "unknown preset"),
        (
            "version: 1\nprobe:\n  prompts:\n    - {text: hi, max_tokens: 0}\n",
            "max_tokens 0 must be between 1 and 4096",
        ),
    ] {
        let policy = write_policy(dir.path(), text);
        let out = run(&[
            "check",
            model.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{text:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(what),
            "{text:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn reports_are_written_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "r.gguf", |_, tensors| {
        tensors[1].1 = GgmlType::Q8_0;
        tensors[1].3 = quantize_q8_0(&f32_values(&tensors[1].3));
    });
    let (json, junit, sarif, summary) = (
        dir.path().join("r.json"),
        dir.path().join("r.xml"),
        dir.path().join("r.sarif"),
        dir.path().join("r.md"),
    );
    let out = run(&[
        "check",
        model.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--sarif",
        sarif.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human.contains("error [norm-dtype] blk.0.attn_norm.weight") && human.contains("FAILED"),
        "{human}"
    );
    let j: Json = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(j["version"], 1);
    let fp = j["fingerprint"].as_str().unwrap().to_string();
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("norm-dtype"));
    let s: Json = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(s["version"], "2.1.0");
    assert_eq!(s["runs"][0]["results"][0]["ruleId"], "norm-dtype");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("FAILED") && md.contains(&fp) && md.contains("norm-dtype"));
    // Every report names the model's fingerprint.
    for (name, text) in [
        ("junit", std::fs::read_to_string(&junit).unwrap()),
        ("sarif", serde_json::to_string(&s).unwrap()),
        ("summary", md),
        ("human", human.to_string()),
    ] {
        assert!(text.contains(&fp), "{name} does not name {fp}:\n{text}");
    }
}

#[test]
fn github_format_escapes_and_writes_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "g.gguf", |_, tensors| {
        // A hostile tensor name: ':' and ',' and '%' must be escaped in properties.
        tensors.push((
            "evil:name,50%.weight".into(),
            GgmlType::F32,
            vec![4],
            f32_bytes(&[0.0; 4]),
        ));
    });
    let (summary, output) = (dir.path().join("summary.md"), dir.path().join("output.txt"));
    let out = common::gguf_gate()
        .args([
            "check",
            model.to_str().unwrap(),
            "--no-probe",
            "--format",
            "github",
        ])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &output)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("::group::") && text.contains("::endgroup::"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("::error") && l.contains("evil"))
        .expect("an annotation for the zero tensor");
    assert!(
        line.contains("title=tensor-zero evil%3Aname%2C50%25.weight"),
        "{line}"
    );
    assert!(
        line.contains("::evil:name,50%25.weight: all 4 values are zero"),
        "{line}"
    );
    assert!(!line.contains('\n'));
    let outputs = std::fs::read_to_string(&output).unwrap();
    assert!(
        outputs.contains("passed=false\n") && outputs.contains("fingerprint=sha256-"),
        "{outputs}"
    );
    assert!(std::fs::read_to_string(&summary)
        .unwrap()
        .contains("## ❌ gguf-gate: FAILED"));
}

#[test]
fn rules_explain_schema_init() {
    let out = run(&["rules"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("norm-dtype"));
    let out = run(&["explain", "norm-dtype"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Fix:"));
    assert_eq!(run(&["explain", "nope"]).status.code(), Some(2));
    let schema: Json = serde_json::from_slice(&run(&["schema"]).stdout).unwrap();
    assert!(schema["properties"]["norms"].is_object());
    let out = run(&["init", "--stdout"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("# yaml-language-server: $schema=") && text.contains("extends: default")
    );
    let copy = String::from_utf8_lossy(&run(&["init", "--preset", "llama", "--stdout"]).stdout)
        .to_string();
    assert!(copy.starts_with("# yaml-language-server: $schema="));
    assert!(copy.contains("llama.context_length"));
    assert_eq!(
        run(&["init", "--preset", "llama2", "--stdout"])
            .status
            .code(),
        Some(2)
    );
    // The starter policy and the copied preset are valid policies.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "i.gguf", |_, _| {});
    for t in [text, copy] {
        let p = write_policy(dir.path(), &t);
        let (out, _) = check(&model, &["--policy", p.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // init refuses to overwrite.
    let target = dir.path().join("gate.yaml");
    assert_eq!(
        run(&["init", "-o", target.to_str().unwrap()]).status.code(),
        Some(0)
    );
    assert_eq!(
        run(&["init", "-o", target.to_str().unwrap()]).status.code(),
        Some(2)
    );
}
