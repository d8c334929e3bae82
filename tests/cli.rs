//! The `inspect` and `fingerprint` commands as a user runs them: exit codes, output
//! shapes, `--write`, `--verify` and `--output`, on small files and on SmolLM2.

mod common;

use common::{run, smollm2, SMOLLM2_SHA256};
use gguf_gate::gguf::{Array, GgmlType, GgufWriter, TensorSpec, Value};

fn tiny_model(dir: &std::path::Path) -> std::path::PathBuf {
    let mut w = GgufWriter::new();
    w.add("general.architecture", Value::String("llama".into()))
        .unwrap();
    w.add("general.file_type", Value::U32(7)).unwrap();
    let tokens: Vec<String> = (0..100).map(|i| format!("tok{i}")).collect();
    w.add("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
        .unwrap();
    w.add("general.description", Value::String("x".repeat(500)))
        .unwrap();
    w.add_tensor(TensorSpec::new("output_norm.weight", GgmlType::F32, &[32]))
        .unwrap();
    w.add_tensor(TensorSpec::new(
        "token_embd.weight",
        GgmlType::Q8_0,
        &[32, 100],
    ))
    .unwrap();
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, w.to_bytes(&[vec![0; 128], vec![0; 3400]]).unwrap()).unwrap();
    path
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn inspect_json_has_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = run(&["inspect", model.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["version"], 3);
    assert_eq!(j["metadata"][0]["key"], "general.architecture");
    assert_eq!(j["metadata"][2]["type"], "array[string]");
    let tokens = &j["metadata"][2]["value"];
    assert_eq!(tokens["len"], 100);
    assert_eq!(tokens["head"].as_array().unwrap().len(), 8);
    assert_eq!(j["tensors"][1]["type"], "Q8_0");
    assert_eq!(j["tensors"][1]["dims"], serde_json::json!([32, 100]));
    assert_eq!(j["tensors"][1]["bytes"], 3400);
    assert_eq!(j["summary"]["parameters"], 3232);
    assert_eq!(j["summary"]["file_type"]["name"], "MOSTLY_Q8_0");
    // --full: arrays complete.
    let out = run(&[
        "inspect",
        model.to_str().unwrap(),
        "--format",
        "json",
        "--full",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["metadata"][2]["value"].as_array().unwrap().len(), 100);
}

#[test]
fn inspect_text_truncates_unless_full() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let text = stdout(&run(&["inspect", model.to_str().unwrap()]));
    assert!(text.contains("… 92 more] (len 100)"), "{text}");
    assert!(text.contains("(500 chars)"), "{text}");
    assert!(
        text.contains("token_embd.weight") && text.contains("Q8_0"),
        "{text}"
    );
    let full = stdout(&run(&["inspect", model.to_str().unwrap(), "--full"]));
    assert!(full.contains("\"tok99\"") && !full.contains("more]"));
}

#[test]
fn inspect_output_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let report = dir.path().join("report.json");
    let out = run(&[
        "inspect",
        model.to_str().unwrap(),
        "--format",
        "json",
        "--output",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    assert_eq!(j["tensors"].as_array().unwrap().len(), 2);
}

#[test]
fn fingerprint_write_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let m = model.to_str().unwrap();
    let out = run(&["fingerprint", m, "--write"]);
    assert_eq!(out.status.code(), Some(0));
    let fp = stdout(&out).trim().to_string();
    assert!(fp.starts_with("sha256-") && fp.len() == 71, "{fp}");
    let sidecar = dir.path().join("tiny.fingerprint");
    assert_eq!(std::fs::read_to_string(&sidecar).unwrap().trim(), fp);
    // Verify against the string and against the file: pass.
    assert_eq!(
        run(&["fingerprint", m, "--verify", &fp]).status.code(),
        Some(0)
    );
    assert_eq!(
        run(&["fingerprint", m, "--verify", sidecar.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    // A different fingerprint: exit 1 naming both.
    let wrong = format!("sha256-{}", "0".repeat(64));
    let out = run(&["fingerprint", m, "--verify", &wrong]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mismatch"));
    // Not a fingerprint, not a file: usage error.
    assert_eq!(
        run(&["fingerprint", m, "--verify", "sha256-xyz"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["fingerprint", m, "--verify", "nope"]).status.code(),
        Some(2)
    );
    // A missing model: exit 2 naming it.
    let out = run(&["fingerprint", "/nonexistent/model.gguf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.gguf"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["inspect"]).status.code(), Some(2));
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(
        run(&["inspect", "x", "--format", "yaml"]).status.code(),
        Some(2)
    );
    let help = stdout(&run(&["--help"]));
    assert!(
        help.contains("Exit codes") && help.contains("Examples"),
        "{help}"
    );
}

#[test]
fn smollm2_fingerprint_equals_sha256sum() {
    let Some(model) = smollm2() else { return };
    let out = run(&["fingerprint", model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out).trim(), format!("sha256-{SMOLLM2_SHA256}"));
}

#[test]
fn smollm2_inspect_summary() {
    let Some(model) = smollm2() else { return };
    let out = run(&["inspect", model.to_str().unwrap(), "--format", "json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &j["summary"];
    assert_eq!(s["architecture"], "llama");
    assert_eq!(s["tensor_count"], 272);
    assert_eq!(s["file_type"]["name"], "MOSTLY_Q4_1");
    assert_eq!(
        s["tensor_types"],
        serde_json::json!({"F32": 61, "Q4_1": 210, "Q8_0": 1})
    );
    let params = s["parameters"].as_u64().unwrap();
    assert!((134_000_000..135_000_000).contains(&params), "{params}");
}

/// Run the binary with a deadline: a named input that could block (a FIFO) or never end
/// (`/dev/zero`) must be refused at once, never read.
fn run_within(args: &[&str], seconds: u64) -> std::process::Output {
    let mut child = common::gguf_gate()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(seconds) {
            child.kill().unwrap();
            panic!("gguf-gate {args:?} still running after {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn unreadable_named_inputs_exit_2_at_once_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let model = model.to_str().unwrap();
    let fifo = dir.path().join("policy.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // A 2 GiB sparse file behind a symlink: nothing is read, its size alone refuses it.
    let huge = dir.path().join("huge.yaml");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&huge, &link).unwrap();
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["check", model, "--policy", "/dev/zero"],
            "/dev/zero",
            "character device",
        ),
        (
            vec!["check", model, "--policy", fifo.to_str().unwrap()],
            "policy.fifo",
            "FIFO",
        ),
        (
            vec!["check", model, "--policy", link.to_str().unwrap()],
            "link.yaml",
            "2147483648 bytes",
        ),
        (
            vec!["check", model, "--tokenizer", "/dev/zero"],
            "/dev/zero",
            "character device",
        ),
        (
            vec!["fingerprint", model, "--verify", fifo.to_str().unwrap()],
            "policy.fifo",
            "FIFO",
        ),
        (
            vec!["inspect", "/dev/zero"],
            "/dev/zero",
            "character device",
        ),
        (
            vec!["fingerprint", fifo.to_str().unwrap()],
            "policy.fifo",
            "FIFO",
        ),
    ];
    for (args, names, problem) in cases {
        let out = run_within(&args, 5);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(names) && err.contains(problem),
            "{args:?} should name {names} and say {problem}: {err}"
        );
    }
}

#[test]
fn a_panic_is_an_internal_error_with_exit_2() {
    let out = common::gguf_gate()
        .arg("--version")
        .env("GGUF_GATE_TEST_FORCE_PANIC", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("gguf-gate: internal error:") && err.contains("report"),
        "{err}"
    );
}

#[test]
fn a_forced_instruction_set_must_exist_and_run_here() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let with = |isa: &str| {
        common::gguf_gate()
            .args(["inspect", model.to_str().unwrap()])
            .env("GGUF_GATE_ISA", isa)
            .output()
            .unwrap()
    };
    let out = with("sse9");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GGUF_GATE_ISA=\"sse9\""));
    assert_eq!(with("scalar").status.code(), Some(0));
    for isa in gguf_gate::infer::kernels::Isa::ALL {
        let out = with(isa.name());
        let expected = if isa.available() { 0 } else { 2 };
        assert_eq!(out.status.code(), Some(expected), "{isa:?}");
    }
}
