//! Reports read by third parties: SARIF validates against the official OASIS 2.1.0
//! schema (Python `jsonschema`), JUnit parses with `junitparser` with the right counts,
//! and the generated docs (rules, policy schema) are in step with the code.

mod common;

use std::path::Path;
use std::process::Command;

use common::{f32_values, python_with_gguf, quantize_q8_0, run, tiny_llama};
use serde_json::Value as Json;

fn python(args: &[&str]) -> Json {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/validate_reports.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn python_has(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip(&format!("python3 module {module} is not installed"));
    }
    ok
}

/// A failing tiny model: a quantized norm, an all-zero matrix, a waived finding.
fn failing_reports(dir: &Path) -> (Json, std::path::PathBuf, std::path::PathBuf) {
    let model = tiny_llama(dir, "bad.gguf", |_, tensors| {
        tensors[1].1 = gguf_gate::gguf::GgmlType::Q8_0;
        tensors[1].3 = quantize_q8_0(&f32_values(&tensors[1].3));
        let zero = tensors
            .iter_mut()
            .find(|t| t.0 == "blk.1.ffn_up.weight")
            .unwrap();
        zero.3 = vec![0; zero.3.len()];
    });
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "version: 1\nwaivers:\n  - {rule: proj-rms, target: \"blk.1.ffn_up.weight\", reason: pruned, expires: 2999-01-01}\n").unwrap();
    let (json, junit, sarif) = (dir.join("r.json"), dir.join("r.xml"), dir.join("r.sarif"));
    let out = run(&[
        "check",
        model.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--sarif",
        sarif.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap(),
        junit,
        sarif,
    )
}

#[test]
fn sarif_validates_against_the_official_schema() {
    if python_with_gguf().is_none() || !python_has("jsonschema") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, _, sarif) = failing_reports(dir.path());
    let schema = common::reference_path("sarif-schema-2.1.0.json");
    let v = python(&["sarif", sarif.to_str().unwrap(), schema.to_str().unwrap()]);
    assert_eq!(v["valid"], true, "{v}");
    // The validator is not vacuous: a broken copy is rejected.
    let mut broken: Json = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    broken["runs"][0]["results"][0]["level"] = Json::String("fatal".into());
    let broken_path = dir.path().join("broken.sarif");
    std::fs::write(&broken_path, serde_json::to_vec(&broken).unwrap()).unwrap();
    let b = python(&[
        "sarif",
        broken_path.to_str().unwrap(),
        schema.to_str().unwrap(),
    ]);
    assert_eq!(b["valid"], false);
    // One result per failed check, waived ones included (as suppressed results).
    assert_eq!(v["results"], report["summary"]["failed"]);
    let doc: Json = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    let results = doc["runs"][0]["results"].as_array().unwrap();
    let suppressed = results
        .iter()
        .filter(|r| r["suppressions"].is_array())
        .count();
    assert_eq!(
        suppressed as u64,
        report["summary"]["waived"].as_u64().unwrap()
    );
    let run = &doc["runs"][0];
    assert_eq!(run["automationDetails"]["id"], "gguf-gate/bad.gguf/");
    assert!(run["originalUriBaseIds"]["MODELDIR"]["uri"]
        .as_str()
        .unwrap()
        .starts_with("file:///"));
    for rule in run["tool"]["driver"]["rules"].as_array().unwrap() {
        let uri = rule["helpUri"].as_str().unwrap();
        assert!(
            uri.ends_with(&format!("docs/rules.md#{}", rule["id"].as_str().unwrap())),
            "{uri}"
        );
    }
    for r in results {
        // Every result is placed in the model (outside the repository: its file name under
        // MODELDIR), with a region code scanning can show: line 1 and the byte range.
        let physical = &r["locations"][0]["physicalLocation"];
        assert_eq!(physical["artifactLocation"]["uri"], "bad.gguf", "{r:#}");
        assert_eq!(physical["artifactLocation"]["uriBaseId"], "MODELDIR");
        let region = &physical["region"];
        assert_eq!(region["startLine"], 1, "{r:#}");
        assert!(region["byteLength"].as_u64().unwrap() > 0, "{r:#}");
        // The bound's policy line, when a policy file set it, is a related location.
        if let Some(related) = r["relatedLocations"].as_array() {
            let rel = &related[0]["physicalLocation"];
            if !rel.is_null() {
                assert_eq!(rel["artifactLocation"]["uri"], "policy.yaml");
                assert!(rel["region"]["startLine"].as_u64().unwrap() >= 1);
            }
        }
        assert_eq!(
            r["partialFingerprints"]["ggufGate/v2"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
    }
    // A tensor's finding covers exactly that tensor's data in the file.
    let zero = results
        .iter()
        .find(|r| r["ruleId"] == "tensor-zero")
        .expect("the all-zero tensor");
    let region = &zero["locations"][0]["physicalLocation"]["region"];
    let file = gguf_gate::gguf::GgufFile::open(&dir.path().join("bad.gguf")).unwrap();
    let t = file
        .header
        .tensors
        .iter()
        .find(|t| t.name == "blk.1.ffn_up.weight")
        .unwrap();
    assert_eq!(region["byteOffset"], file.header.data_range(t).start);
    assert_eq!(region["byteLength"], t.size);
}

#[test]
fn sarif_alert_identities_survive_a_rebuild_of_the_model() {
    // Two rebuilds of the same model in two places, with the same defect but different
    // bytes (a metadata value changed): the alerts keep their identity; only the model
    // fingerprint in the properties differs.
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, _, first) = failing_reports(one.path());
    let rebuilt = tiny_llama(two.path(), "bad.gguf", |keys, tensors| {
        for (k, v) in keys.iter_mut() {
            if k == "general.name" {
                *v = gguf_gate::gguf::Value::String("tiny, rebuilt".into());
            }
        }
        tensors[1].1 = gguf_gate::gguf::GgmlType::Q8_0;
        tensors[1].3 = quantize_q8_0(&f32_values(&tensors[1].3));
        let zero = tensors
            .iter_mut()
            .find(|t| t.0 == "blk.1.ffn_up.weight")
            .unwrap();
        zero.3 = vec![0; zero.3.len()];
    });
    let policy = one.path().join("policy.yaml");
    let second = two.path().join("r.sarif");
    let out = run(&[
        "check",
        rebuilt.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--sarif",
        second.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let a: Json = serde_json::from_slice(&std::fs::read(&first).unwrap()).unwrap();
    let b: Json = serde_json::from_slice(&std::fs::read(&second).unwrap()).unwrap();
    let fps = |d: &Json| -> Vec<Json> {
        d["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["partialFingerprints"].clone())
            .collect()
    };
    assert!(!fps(&a).is_empty());
    assert_eq!(fps(&a), fps(&b));
    assert_ne!(
        a["runs"][0]["properties"]["modelFingerprint"],
        b["runs"][0]["properties"]["modelFingerprint"]
    );
}

#[test]
fn junit_parses_with_junitparser_with_the_right_counts() {
    if !python_has("junitparser") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (report, junit, _) = failing_reports(dir.path());
    let j = python(&["junit", junit.to_str().unwrap()]);
    assert_eq!(j["tests"], report["summary"]["checks"]);
    let (errors, warnings) = (
        report["summary"]["errors"].as_u64().unwrap(),
        report["summary"]["warnings"].as_u64().unwrap(),
    );
    assert_eq!(j["failures"].as_u64().unwrap(), errors + warnings);
    let failed: Vec<String> = j["suites"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["failed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        failed.contains(&"norm-dtype/blk.0.attn_norm.weight".to_string()),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"tensor-zero/blk.1.ffn_up.weight".to_string()),
        "{failed:?}"
    );
    assert!(
        !failed.iter().any(|f| f.starts_with("proj-rms/")),
        "waived findings are not failures"
    );
    let names: Vec<&str> = j["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"gguf-gate.norms") && names.contains(&"gguf-gate.tensors"),
        "{names:?}"
    );
}

#[test]
fn docs_are_generated_from_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = String::from_utf8(run(&["rules", "--format", "markdown"]).stdout).unwrap();
    let committed = std::fs::read_to_string(root.join("docs/rules.md")).unwrap_or_default();
    assert_eq!(
        committed, rules,
        "docs/rules.md is stale: run `gguf-gate rules --format markdown > docs/rules.md`"
    );
    let schema = String::from_utf8(run(&["schema"]).stdout).unwrap();
    let committed =
        std::fs::read_to_string(root.join("docs/policy.schema.json")).unwrap_or_default();
    assert_eq!(
        committed, schema,
        "docs/policy.schema.json is stale: run `gguf-gate schema > docs/policy.schema.json`"
    );
    // Every rule code is explained in the policy docs or the rules docs.
    for r in gguf_gate::registry::RULES {
        assert!(rules.contains(&format!("## {}", r.code)));
    }
}
