//! The JSON report (`--format json`, `--json FILE`), format version 1, documented in
//! docs/reports.md. Lists the failed checks (waived ones marked) and a summary of all;
//! several models are an object with one report per model. Strings are the model's own
//! (JSON escapes control characters; programs, not terminals, read this).

use serde_json::{json, Value};

use super::Report;

/// Version of the JSON report's shape.
pub const JSON_REPORT_VERSION: u32 = 1;

/// The JSON report: one model's object, or for several
/// `{"version", "passed", "reports": [one object per model]}`.
pub fn render(reports: &[Report]) -> Value {
    match reports {
        [one] => render_one(one),
        many => json!({
            "version": JSON_REPORT_VERSION,
            "tool": {"name": "gguf-gate", "version": env!("CARGO_PKG_VERSION")},
            "passed": many.iter().all(|r| r.passed),
            "reports": many.iter().map(render_one).collect::<Vec<_>>(),
        }),
    }
}

/// One model's report.
pub fn render_one(r: &Report) -> Value {
    let (errors, warnings, notes) = r.counts();
    let findings: Vec<Value> = r
        .failures()
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule,
                "severity": f.severity.name(),
                "subject": f.subject,
                "message": f.message,
                "value": f.value,
                "bound": f.bound,
                "hint": f.hint,
                "excerpt": f.excerpt,
                "location": f.loc.as_ref().filter(|l| l.line > 0).map(|l| json!({"file": l.file, "line": l.line, "column": l.column})),
                "waived": f.waived,
            })
        })
        .collect();
    json!({
        "version": JSON_REPORT_VERSION,
        "tool": {"name": "gguf-gate", "version": env!("CARGO_PKG_VERSION")},
        "passed": r.passed,
        "fingerprint": r.fingerprint.to_string(),
        "model": r.model,
        "policy": r.policy,
        "preset": r.preset,
        "strict": r.strict,
        "fail_level": r.fail_level.name(),
        "summary": {
            "checks": r.findings.len(),
            "failed": r.findings.iter().filter(|f| !f.passed).count(),
            "errors": errors,
            "warnings": warnings,
            "notes": notes,
            "waived": r.findings.iter().filter(|f| f.waived.is_some()).count(),
        },
        "findings": findings,
        "probe": r.probe,
        "quality": r.quality,
        "timings": r.timings,
    })
}
