//! Output that a hostile model cannot hijack. Names and strings inside a GGUF are written
//! by whoever made the file: a tensor named "x\n::error::pwned" must not produce a line
//! that GitHub Actions reads as a workflow command, an ESC sequence must not reach the
//! terminal, a bidi override must not reorder what a reviewer reads — in any output
//! format. The crafted files are written by gguf-py (llama.cpp's own writer), and the
//! file fails `name-charset` / `string-charset`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{python_with_gguf, run};
use serde_json::Value as Json;

const NAME: &str = "x\n::error::pwned";

/// A small llama-shaped GGUF written by gguf-py, with a tensor named `NAME`, a key with
/// an ESC sequence and a string value with a right-to-left override.
fn crafted(dir: &Path) -> Option<PathBuf> {
    python_with_gguf()?;
    let path = dir.join("crafted.gguf");
    let script = r#"
import sys, numpy as np, gguf
w = gguf.GGUFWriter(sys.argv[1], "llama")
w.add_name("tiny")
w.add_string("general.description", "safe \u202eevil\u202c text")
w.add_uint32("weird.\x1b[31mkey", 1)
w.add_tensor("x\n::error::pwned", np.ones((4, 8), dtype=np.float32))
w.add_tensor("token_embd.weight", np.full((4, 8), 0.5, dtype=np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(path)
}

/// A workflow command the gate itself writes (`--format github`).
fn own_command(line: &str) -> bool {
    [
        "::group::",
        "::endgroup::",
        "::error title=",
        "::warning title=",
        "::notice title=",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

fn assert_clean(what: &str, text: &str) {
    // The human report's own colours (asked for with --color always) are the only ESC
    // sequences allowed.
    let mut text = text.to_string();
    for ours in [
        "\u{1b}[1;31m",
        "\u{1b}[1;33m",
        "\u{1b}[1;32m",
        "\u{1b}[36m",
        "\u{1b}[2m",
        "\u{1b}[0m",
    ] {
        text = text.replace(ours, "");
    }
    for line in text.lines() {
        assert!(
            !line.starts_with("::") || own_command(line),
            "{what}: a line a runner would obey: {line:?}\n{text}"
        );
        assert!(!line.contains('\u{1b}'), "{what}: raw ESC: {line:?}");
        assert!(
            !line.contains('\u{202e}'),
            "{what}: raw bidi override: {line:?}"
        );
    }
}

#[test]
fn no_output_format_lets_a_name_start_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = crafted(dir.path()) else {
        return;
    };
    let m = model.to_str().unwrap();
    let files = ["r.json", "r.xml", "r.sarif", "r.md"].map(|f| dir.path().join(f));
    let [json, junit, sarif, summary] = files.clone().map(|p| p.to_str().unwrap().to_string());
    let step_summary = dir.path().join("step-summary.md");
    let commands: Vec<Vec<&str>> = vec![
        vec!["inspect", m],
        vec!["inspect", m, "--format", "json"],
        vec!["stats", m],
        vec!["check", m, "--no-probe"],
        vec![
            "check",
            m,
            "--no-probe",
            "--json",
            &json,
            "--junit",
            &junit,
            "--sarif",
            &sarif,
            "--summary",
            &summary,
        ],
        vec!["check", m, "--no-probe", "--format", "json"],
        vec!["check", m, "--no-probe", "--format", "github"],
        vec!["check", m, "--no-probe", "--quiet", "--color", "always"],
        vec!["run", m, "--prompt", "hi"],
    ];
    for args in &commands {
        let out = common::gguf_gate()
            .args(args)
            .env("GITHUB_STEP_SUMMARY", &step_summary)
            .output()
            .unwrap();
        assert_clean(
            &format!("{args:?} stdout"),
            &String::from_utf8_lossy(&out.stdout),
        );
        assert_clean(
            &format!("{args:?} stderr"),
            &String::from_utf8_lossy(&out.stderr),
        );
    }
    for f in files.iter().chain([&step_summary]) {
        assert_clean(
            &f.display().to_string(),
            &std::fs::read_to_string(f).unwrap(),
        );
    }
    // The name is still reported — escaped, not dropped.
    let human = String::from_utf8_lossy(&run(&["check", m, "--no-probe"]).stdout).into_owned();
    assert!(human.contains("x\\n::error::pwned"), "{human}");
    let md = std::fs::read_to_string(&files[3]).unwrap();
    assert!(md.contains("x\\n::error::pwned"), "{md}");
}

#[test]
fn hidden_characters_fail_name_charset_and_string_charset() {
    let dir = tempfile::tempdir().unwrap();
    let Some(model) = crafted(dir.path()) else {
        return;
    };
    let out = run(&[
        "check",
        model.to_str().unwrap(),
        "--no-probe",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: Json = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<(String, String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["subject"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |rule: &str, subject: &str, severity: &str| {
        failed
            .iter()
            .any(|(r, s, v)| r == rule && s == subject && v == severity)
    };
    assert!(has("name-charset", NAME, "error"), "{failed:?}");
    assert!(
        has("name-charset", "weird.\u{1b}[31mkey", "error"),
        "{failed:?}"
    );
    assert!(
        has("string-charset", "general.description", "warning"),
        "{failed:?}"
    );
    // Plain names pass: SmolLM2-like names raise nothing.
    assert!(!failed
        .iter()
        .any(|(r, s, _)| r == "name-charset" && s == "token_embd.weight"));
}

#[test]
fn a_plain_model_passes_name_charset() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_llama(dir.path(), "plain.gguf", |_, _| {});
    let out = run(&[
        "check",
        model.to_str().unwrap(),
        "--no-probe",
        "--junit",
        dir.path().join("r.xml").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let junit = std::fs::read_to_string(dir.path().join("r.xml")).unwrap();
    assert!(junit.contains("classname=\"name-charset\""), "{junit}");
}
