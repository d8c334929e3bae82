//! What users of lint-style CI tools expect from `check`: a policy file found without
//! `--policy` (and `--policy none` to ignore it), several models in one run with one
//! verdict each and one report file per format, colour that follows `--color` and
//! `NO_COLOR`, `--quiet`, shell completions and a man page, and `GGUF_GATE_STRICT=1`.

mod common;

use std::path::Path;

use common::{gguf_gate, tiny_llama};
use serde_json::Value as Json;

/// A policy every tiny model fails: it requires a key they do not have.
const FAILING_POLICY: &str =
    "version: 1\nmetadata:\n  keys:\n    - {key: general.license, type: string}\n";

fn check_in(dir: &Path, args: &[&str]) -> std::process::Output {
    gguf_gate()
        .current_dir(dir)
        .arg("check")
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("GGUF_GATE_STRICT")
        .env_remove("BITNET_STRICT_MODE")
        .output()
        .unwrap()
}

#[test]
fn a_policy_file_in_the_working_directory_or_repository_is_found() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir(repo.path().join(".git")).unwrap();
    let sub = repo.path().join("models");
    std::fs::create_dir(&sub).unwrap();
    tiny_llama(&sub, "m.gguf", |_, _| {});
    // No policy anywhere: the embedded default, and the tiny model passes.
    let out = check_in(&sub, &["m.gguf", "--no-probe"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A policy at the repository root (the git top level) is found from a subdirectory.
    std::fs::write(repo.path().join("gguf-gate.yaml"), FAILING_POLICY).unwrap();
    let out = check_in(&sub, &["m.gguf", "--no-probe"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stderr.contains("using the policy") && stderr.contains("gguf-gate.yaml"),
        "{stderr}"
    );
    assert!(
        stdout.contains("policy: ") && stdout.contains("gguf-gate.yaml"),
        "{stdout}"
    );
    // One in the working directory wins over the root's.
    std::fs::write(sub.join(".gguf-gate.yaml"), "version: 1\n").unwrap();
    let out = check_in(&sub, &["m.gguf", "--no-probe"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains(".gguf-gate.yaml"));
    // --policy none ignores both.
    std::fs::write(sub.join(".gguf-gate.yaml"), FAILING_POLICY).unwrap();
    let out = check_in(&sub, &["m.gguf", "--no-probe", "--policy", "none"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("policy: (default)"));
}

#[test]
fn several_models_one_verdict_each_one_file_per_format() {
    let dir = tempfile::tempdir().unwrap();
    tiny_llama(dir.path(), "a.gguf", |_, _| {});
    tiny_llama(dir.path(), "b.gguf", |_, tensors| {
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "blk.0.ffn_up.weight")
            .unwrap();
        t.3 = vec![0; t.3.len()];
    });
    let out = check_in(
        dir.path(),
        &[
            "*.gguf",
            "--no-probe",
            "--policy",
            "none",
            "--sarif",
            "r.sarif",
            "--json",
            "r.json",
            "--junit",
            "r.xml",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one failed model fails the run: {stdout}"
    );
    assert!(stdout.contains("2 models: 1 passed, 1 failed"), "{stdout}");
    let sarif: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.sarif")).unwrap()).unwrap();
    let runs = sarif["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let ids: Vec<&str> = runs
        .iter()
        .map(|r| r["automationDetails"]["id"].as_str().unwrap())
        .collect();
    assert_ne!(ids[0], ids[1], "each model its own alert category");
    let json: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(json["passed"], false);
    let passed: Vec<bool> = json["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(passed, [true, false]);
    let junit = std::fs::read_to_string(dir.path().join("r.xml")).unwrap();
    assert!(
        junit.contains("(a.gguf)") && junit.contains("(b.gguf)"),
        "{junit}"
    );
    // A pattern that matches nothing is a usage error.
    let out = check_in(dir.path(), &["*.none", "--no-probe"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches no file"));
    // A missing model among several: the others are still checked, then exit 2.
    let out = check_in(
        dir.path(),
        &["a.gguf", "missing.gguf", "--no-probe", "--policy", "none"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASSED"));
}

#[test]
fn colour_follows_color_and_no_color_and_quiet_is_short() {
    let dir = tempfile::tempdir().unwrap();
    tiny_llama(dir.path(), "m.gguf", |_, _| {});
    std::fs::write(dir.path().join("p.yaml"), FAILING_POLICY).unwrap();
    let base = ["m.gguf", "--no-probe", "--policy", "p.yaml"];
    let with = |extra: &[&str], no_color: bool| {
        let mut cmd = gguf_gate();
        cmd.current_dir(dir.path())
            .arg("check")
            .args(base)
            .args(extra);
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    // stdout is a pipe here: auto means no colour.
    assert!(!with(&[], false).contains('\u{1b}'));
    assert!(with(&["--color", "always"], false).contains("\u{1b}[1;31m"));
    assert!(!with(&["--color", "never"], false).contains('\u{1b}'));
    let quiet = with(&["--quiet"], true);
    assert!(
        !quiet.contains("fingerprint:") && !quiet.contains("policy:"),
        "{quiet}"
    );
    assert!(
        quiet.contains("metadata-required") && quiet.contains("FAILED"),
        "{quiet}"
    );
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = gguf_gate().args(["completions", shell]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            text.contains("gguf-gate") && text.contains("check"),
            "{shell}: {text}"
        );
    }
    let man = gguf_gate().arg("man").output().unwrap();
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(
        text.starts_with(".ie") || text.contains(".TH gguf-gate"),
        "{text}"
    );
    assert!(text.contains("check"));
}

#[test]
fn gguf_gate_strict_is_strict_mode_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    tiny_llama(dir.path(), "m.gguf", |_, _| {});
    // A warning-level rule fails only in strict mode.
    std::fs::write(
        dir.path().join("p.yaml"),
        "version: 1\nseverity: {metadata-required: warning}\nmetadata:\n  keys:\n    - {key: general.license, type: string}\n",
    )
    .unwrap();
    let args = ["m.gguf", "--no-probe", "--policy", "p.yaml"];
    assert_eq!(check_in(dir.path(), &args).status.code(), Some(0));
    for var in ["GGUF_GATE_STRICT", "BITNET_STRICT_MODE"] {
        let out = gguf_gate()
            .current_dir(dir.path())
            .arg("check")
            .args(args)
            .env(var, "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{var}=1");
        assert!(String::from_utf8_lossy(&out.stdout).contains("strict"));
    }
    // quantize honours it too: with GGUF_GATE_STRICT=1 the written file is gated, and one
    // that fails (a zeroed norm) is refused and never takes its name.
    let bad = tiny_llama(dir.path(), "bad.gguf", |_, tensors| {
        let t = tensors
            .iter_mut()
            .find(|t| t.0 == "blk.0.attn_norm.weight")
            .unwrap();
        t.3 = vec![0; t.3.len()];
    });
    let out = gguf_gate()
        .args(["quantize", bad.to_str().unwrap(), "--type", "q8_0"])
        .env("GGUF_GATE_STRICT", "1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("--strict: the gate failed"));
    assert!(!dir.path().join("bad-q8_0.gguf").exists());
}
