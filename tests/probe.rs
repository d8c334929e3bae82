//! The probe on real files: SmolLM2's continuation of the reference prompt equals
//! llama.cpp's 32 tokens through `run`; the default policy's probe passes; a copy with
//! its attention-query rows shuffled (RMS unchanged: only the probe can see it) or a
//! norm zeroed fails a `probe-*` rule; recorded baselines catch drift; an architecture
//! the engine does not run is `probe-unsupported-arch`, never a pass.

mod common;

use std::path::Path;

use common::{f32_bytes, f32_values, rewrite, run, smollm2, tiny_llama};
use gguf_gate::gguf::{GgmlType, Value};
use serde_json::Value as Json;

fn reference() -> Option<Json> {
    Some(common::reference_json("smollm2-greedy.json"))
}

fn check_json(model: &Path, extra: &[&str]) -> (i32, Json) {
    let mut args = vec!["check", model.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Json::Null),
    )
}

fn failed_rules(report: &Json) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn run_matches_llama_cpp_token_for_token() {
    let (Some(model), Some(reference)) = (smollm2(), reference()) else {
        return;
    };
    let greedy = &reference["greedy"][0];
    let out = run(&[
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
    assert_eq!(j["tokens"], greedy["tokens"]);
    assert_eq!(j["text"], greedy["text"]);
    assert!(j["timings"]["decode_tok_s"].as_f64().unwrap() > 0.0);
    let text = run(&[
        "run",
        model.to_str().unwrap(),
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "4",
    ]);
    assert!(String::from_utf8_lossy(&text.stdout).starts_with("The capital of France is Paris."));
}

#[test]
fn smollm2_probe_passes_and_reports_its_text() {
    let Some(model) = smollm2() else { return };
    let (code, report) = check_json(&model, &[]);
    assert_eq!(code, 0, "{:?}", failed_rules(&report));
    assert_eq!(report["probe"]["ran"], true);
    let prompts = report["probe"]["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 3);
    assert!(prompts[0]["text"].as_str().unwrap().starts_with(" Paris."));
}

#[test]
fn shuffled_attention_query_rows_fail_the_probe() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shuffled.gguf");
    rewrite(
        &model,
        &path,
        |_| {},
        |t, data| {
            t.name.ends_with(".attn_q.weight").then(|| {
                // Q4_1 rows of 576 values = 18 blocks of 20 bytes; reverse the row order.
                let row = 18 * 20;
                let rows: Vec<&[u8]> = data.chunks_exact(row).collect();
                (
                    GgmlType::Q4_1,
                    rows.into_iter().rev().flatten().copied().collect(),
                )
            })
        },
    );
    let (code, report) = check_json(&path, &[]);
    assert_eq!(code, 1);
    let rules = failed_rules(&report);
    assert!(
        !rules.is_empty() && rules.iter().all(|r| r.starts_with("probe-")),
        "only the probe sees a row shuffle, and it fails: {rules:?}"
    );
}

#[test]
fn zeroed_norm_fails_the_probe() {
    let Some(model) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero-norm.gguf");
    rewrite(
        &model,
        &path,
        |_| {},
        |t, data| {
            (t.name == "output_norm.weight")
                .then(|| (GgmlType::F32, f32_bytes(&vec![0.0; f32_values(data).len()])))
        },
    );
    let (code, report) = check_json(&path, &[]);
    assert_eq!(code, 1);
    let rules = failed_rules(&report);
    assert!(rules.iter().any(|r| r.starts_with("probe-")), "{rules:?}");
}

#[test]
fn recorded_baseline_catches_drift() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "tiny.gguf", |_, _| {});
    let baseline = dir.path().join("baseline.json");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "version: 1\nprobe:\n  min_word_share: 0\n  max_tokens: 8\n  prompts:\n    - text: \"ab c1 d2\"\n  baseline: baseline.json\n").unwrap();
    // Record (the baseline does not exist yet, so that rule fails; record anyway).
    let out = run(&[
        "check",
        model.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--record-probe",
        baseline.to_str().unwrap(),
    ]);
    assert!(
        baseline.exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded: Json = serde_json::from_slice(&std::fs::read(&baseline).unwrap()).unwrap();
    assert_eq!(
        recorded["prompts"][0]["tokens"].as_array().unwrap().len(),
        8
    );
    let (_, report) = check_json(&model, &["--policy", policy.to_str().unwrap()]);
    assert!(
        !failed_rules(&report).contains(&"probe-baseline".to_string()),
        "{report:#}"
    );
    // The same baseline against a model with different weights: drift.
    let other = tiny_llama(dir.path(), "other.gguf", |_, tensors| {
        for t in tensors.iter_mut().filter(|t| t.0.contains("ffn_down")) {
            let v: Vec<f32> = f32_values(&t.3).iter().map(|x| -x * 3.0).collect();
            t.3 = f32_bytes(&v);
        }
    });
    let (code, report) = check_json(&other, &["--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        failed_rules(&report).contains(&"probe-baseline".to_string()),
        "{report:#}"
    );
}

#[test]
fn unsupported_architecture_is_never_a_silent_pass() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "gpt.gguf", |keys, _| {
        for (k, v) in keys.iter_mut() {
            if k == "general.architecture" {
                *v = Value::String("gpt2".into());
            }
        }
    });
    // A warning by default: the gate passes, and says the model is unverified, naming
    // what the probe can run.
    let (code, report) = check_json(&model, &[]);
    assert_eq!(code, 0, "{report:#}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "probe-unsupported-arch")
        .expect("a probe-unsupported-arch finding");
    assert_eq!(finding["severity"], "warning");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains("gpt2") && message.contains("qwen2") && message.contains("gemma3"),
        "{message}"
    );
    // An error under strict mode and with --fail-level warning.
    let (code, report) = check_json(&model, &["--strict"]);
    assert_eq!(code, 1);
    assert!(
        failed_rules(&report).contains(&"probe-unsupported-arch".to_string()),
        "{report:#}"
    );
    let (code, _) = check_json(&model, &["--fail-level", "warning"]);
    assert_eq!(code, 1);
    let out = run(&["run", model.to_str().unwrap(), "--prompt", "ab"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"gpt2\"") && stderr.contains("gemma3"),
        "{stderr}"
    );
}

#[test]
fn the_probe_budget_cuts_continuations_short_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "tiny.gguf", |_, _| {});
    let policy = dir.path().join("p.yaml");
    // A budget far below what 2 x 200 tokens take, even on a tiny model (context 256).
    std::fs::write(
        &policy,
        "version: 1\nprobe:\n  min_word_share: 0\n  max_seconds: 0.001\n  max_tokens: 200\n  prompts:\n    - text: \"ab c1\"\n    - text: \"d2 ab\"\n",
    )
    .unwrap();
    let (_, report) = check_json(&model, &["--policy", policy.to_str().unwrap()]);
    let prompts = report["probe"]["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 2);
    for p in prompts {
        let n = p["tokens"].as_array().unwrap().len();
        assert!(
            p["stopped_by_budget"] == true && (1..200).contains(&n),
            "{p:#}"
        );
    }
    assert!(
        report["probe"]["note"]
            .as_str()
            .unwrap()
            .contains("probe.max_seconds"),
        "{report:#}"
    );
    // A budget that is not a positive number of seconds is a policy error.
    std::fs::write(&policy, "version: 1\nprobe:\n  max_seconds: 0\n").unwrap();
    let (code, _) = check_json(&model, &["--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 2);
}

#[test]
fn degenerate_output_fails_probe_text() {
    // A tiny model whose output layer always prefers one token loops on it.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama(dir.path(), "loop.gguf", |_, tensors| {
        let embd = tensors
            .iter_mut()
            .find(|t| t.0 == "token_embd.weight")
            .unwrap();
        let mut v = f32_values(&embd.3);
        for (i, x) in v.iter_mut().enumerate() {
            // Row 5 (token 5) gets a huge weight in every column; tied output -> always 5.
            *x = if i / 64 == 5 { 50.0 } else { *x * 0.01 };
        }
        embd.3 = f32_bytes(&v);
    });
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\nprobe:\n  prompts:\n    - text: \"ab c1 d2\"\n",
    )
    .unwrap();
    let (code, report) = check_json(&model, &["--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 1);
    // probe-text, and nothing else, is what failed.
    assert_eq!(failed_rules(&report), vec!["probe-text"], "{report:#}");
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        // The JSON report lists failed checks only.
        .find(|f| f["rule"] == "probe-text")
        .expect("a failed probe-text finding");
    assert!(
        f["message"].as_str().unwrap().contains("loop")
            || f["message"].as_str().unwrap().contains("word"),
        "{f:#}"
    );
}
