//! SARIF 2.1.0 for code scanning. Every rule is described in `tool.driver.rules`;
//! each failure is a result with a level, a physical location GitHub accepts (the
//! policy line that set the bound, repo-relative; or the model without a region — never
//! a line number in a multi-GB binary), a logical location for the tensor or key, and
//! stable `partialFingerprints` (rule + subject + model fingerprint) so re-runs do not
//! duplicate alerts. Waived failures are results with an external suppression.

use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::Report;
use crate::registry::{Severity, RULES};

pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
pub const INFORMATION_URI: &str = "https://github.com/gguf-gate/gguf-gate";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// A path as a repo-relative URI when it lies under the current directory.
fn artifact_uri(path: &str) -> String {
    let p = Path::new(path);
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf());
    let s = rel.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

pub fn render(r: &Report) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|rule| {
            json!({
                "id": rule.code,
                "name": rule.code.split('-').map(|w| {
                    let mut c = w.chars();
                    c.next().map_or(String::new(), |f| f.to_uppercase().collect::<String>() + c.as_str())
                }).collect::<String>(),
                "shortDescription": {"text": rule.summary},
                "fullDescription": {"text": rule.explanation},
                "help": {
                    "text": format!("{}\n\nFix: {}", rule.explanation, rule.hint),
                    "markdown": format!("**{}**\n\n{}\n\n**Fix:** {}\n\nSee `gguf-gate explain {}`.", rule.summary, rule.explanation, rule.hint, rule.code),
                },
                "defaultConfiguration": {"level": level(rule.default_severity)},
                "properties": {"tags": ["gguf", rule.family]},
            })
        })
        .collect();
    let model_uri = artifact_uri(&r.model);
    let results: Vec<Value> = r
        .failures()
        .iter()
        .map(|f| {
            let index = f.rule as usize;
            let physical = match f.loc.as_ref().filter(|l| l.line > 0 && !l.file.starts_with("preset:") && !l.file.starts_with('(')) {
                Some(loc) => json!({
                    "artifactLocation": {"uri": artifact_uri(&loc.file)},
                    "region": {"startLine": loc.line, "startColumn": loc.column.max(1)},
                }),
                None => json!({"artifactLocation": {"uri": model_uri}}),
            };
            let identity = format!("{}|{}|{}", f.rule, f.subject, r.fingerprint);
            let digest: String = Sha256::digest(identity.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            let mut message = f.message.clone();
            if let (Some(v), Some(b)) = (&f.value, &f.bound) {
                message.push_str(&format!(" (value {v}, bound {b})"));
            }
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": index,
                "level": level(f.severity),
                "message": {"text": format!("{}: {message}", f.subject)},
                "locations": [{
                    "physicalLocation": physical,
                    "logicalLocations": [{"name": f.subject, "fullyQualifiedName": format!("{}::{}", model_uri, f.subject), "kind": "member"}],
                }],
                "partialFingerprints": {
                    "ggufGate/v1": digest,
                    "primaryLocationLineHash": format!("{}:1", &digest[..16]),
                },
                "properties": {"value": f.value, "bound": f.bound, "modelFingerprint": r.fingerprint.to_string()},
            });
            if let Some(reason) = &f.waived {
                result["suppressions"] = json!([{"kind": "external", "justification": reason}]);
            }
            result
        })
        .collect();
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "gguf-gate",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "invocations": [{"executionSuccessful": true}],
            "results": results,
            "properties": {
                "passed": r.passed,
                "model": r.model,
                "modelFingerprint": r.fingerprint.to_string(),
                "policy": r.policy,
                "probe": r.probe,
                "timings": r.timings,
            },
        }],
    })
}
