//! SARIF 2.1.0 for GitHub code scanning, one run per model. Every rule is described in
//! `tool.driver.rules` (with a `helpUri` into docs/rules.md). Each failure is a result
//! whose location is the model, relative to the repository root (`%SRCROOT%`, declared in
//! `originalUriBaseIds`; a model outside the checkout is named by its file name under
//! `MODELDIR`), with a region code scanning can place: `startLine` 1 and the byte range of
//! the tensor's data or the key-value pair (the whole file for file-wide findings). A
//! `relatedLocations` entry points at the policy line that set the bound. Alert
//! identities (`partialFingerprints`) hash the rule, the subject and the model's relative
//! path — not its bytes — so a rebuilt model with the same defect keeps its alerts (and
//! their dismissals); each run's `automationDetails.id` is per model path so two models
//! gated in one workflow do not overwrite each other's alerts. Waived failures are results
//! with an external suppression. docs/reports.md shows an example.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::location::{dir_uri, uri_escape, Place, Root};
use super::Report;
use crate::escape::visible;
use crate::registry::{Severity, RULES};
use crate::rules::Finding;

pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
pub const INFORMATION_URI: &str = "https://github.com/gguf-gate/gguf-gate";
/// Where each rule's documentation is (an anchor per rule code is appended).
pub const RULES_DOC_URI: &str = "https://github.com/gguf-gate/gguf-gate/blob/main/docs/rules.md";
/// The base id for files in the repository.
pub const SRCROOT: &str = "%SRCROOT%";
/// The base id for a model outside the repository (its own directory).
pub const MODELDIR: &str = "MODELDIR";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// A SARIF log with one run per report.
pub fn render(reports: &[Report], root: &Root) -> Value {
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": reports.iter().map(|r| run(r, root)).collect::<Vec<_>>(),
    })
}

/// `tool.driver.rules`: every rule, in registry order (results refer to them by index).
fn rule_descriptors() -> Vec<Value> {
    RULES
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
                "helpUri": format!("{RULES_DOC_URI}#{}", rule.code),
                "defaultConfiguration": {"level": level(rule.default_severity)},
                "properties": {"tags": ["gguf", rule.family.as_str()]},
            })
        })
        .collect()
}

/// An artifact location and the base ids it needs.
fn artifact_location(place: &Place) -> (Value, Option<(&'static str, String)>) {
    match place {
        Place::Inside { relative } => (
            json!({"uri": uri_escape(relative), "uriBaseId": SRCROOT}),
            None,
        ),
        Place::Outside { name, dir } => (
            json!({"uri": uri_escape(name), "uriBaseId": MODELDIR}),
            Some((MODELDIR, dir_uri(dir))),
        ),
    }
}

fn run(r: &Report, root: &Root) -> Value {
    let model = root.place(&r.model_path);
    let (model_location, model_base) = artifact_location(&model);
    let mut bases = serde_json::Map::new();
    bases.insert(SRCROOT.into(), json!({"uri": dir_uri(&root.dir)}));
    let results: Vec<Value> = r
        .failures()
        .iter()
        .map(|f| result(f, r, root, &model, &model_location, &mut bases))
        .collect();
    if let Some((id, uri)) = model_base {
        bases.insert(id.into(), json!({"uri": uri}));
    }
    json!({
        "tool": {"driver": {
            "name": "gguf-gate",
            "fullName": format!("gguf-gate {}: the release gate for GGUF model files", env!("CARGO_PKG_VERSION")),
            "version": env!("CARGO_PKG_VERSION"),
            "semanticVersion": env!("CARGO_PKG_VERSION"),
            "informationUri": INFORMATION_URI,
            "rules": rule_descriptors(),
        }},
        "automationDetails": {"id": format!("gguf-gate/{}/", model.relative())},
        "originalUriBaseIds": bases,
        "artifacts": [{
            "location": model_location,
            "length": r.model_bytes,
            "hashes": {"sha-256": r.fingerprint.hex()},
            "mimeType": "application/octet-stream",
        }],
        "invocations": [{"executionSuccessful": true}],
        "results": results,
        "properties": {
            "passed": r.passed,
            "model": r.model,
            "modelFingerprint": r.fingerprint.to_string(),
            "policy": r.policy,
            "probe": r.probe,
            "quality": r.quality,
            "timings": r.timings,
        },
    })
}

fn result(
    f: &Finding,
    r: &Report,
    root: &Root,
    model: &Place,
    model_location: &Value,
    bases: &mut serde_json::Map<String, Value>,
) -> Value {
    let (offset, length) = f.span.map_or((0, r.model_bytes), |s| (s.offset, s.length));
    let mut location = model_location.clone();
    location["index"] = json!(0);
    let identity = format!("{}|{}|{}", f.rule, f.subject, model.relative());
    let digest: String = Sha256::digest(identity.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut message = format!("{}: {}", f.subject, f.message);
    if let (Some(v), Some(b)) = (&f.value, &f.bound) {
        message.push_str(&format!(" (value {v}, bound {b})"));
    }
    if let Some(place) = f.place() {
        message.push_str(&format!(" — at {place} (line:column inside the template)"));
    }
    let mut result = json!({
        "ruleId": f.rule.as_str(),
        "ruleIndex": f.rule as usize,
        "level": level(f.severity),
        "message": {"text": visible(&message)},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": location,
                "region": {"startLine": 1, "byteOffset": offset, "byteLength": length},
            },
            "logicalLocations": [{
                "name": visible(&f.subject),
                "fullyQualifiedName": format!("{}::{}", model.relative(), visible(&f.subject)),
                "kind": "member",
            }],
        }],
        "partialFingerprints": {
            "ggufGate/v2": digest,
            "primaryLocationLineHash": format!("{}:1", &digest[..16]),
        },
        "properties": {"value": f.value, "bound": f.bound, "excerpt": f.excerpt, "modelFingerprint": r.fingerprint.to_string()},
    });
    if let Some(related) = policy_location(f, root, bases) {
        result["relatedLocations"] = json!([related]);
    }
    if let Some(reason) = &f.waived {
        result["suppressions"] = json!([{"kind": "external", "justification": reason}]);
    }
    result
}

/// Where the policy set the bound a finding was held to: the line in the policy file, or
/// (for an embedded preset) a message naming the preset and line.
fn policy_location(
    f: &Finding,
    root: &Root,
    bases: &mut serde_json::Map<String, Value>,
) -> Option<Value> {
    let loc = f.loc.as_ref().filter(|l| l.line > 0)?;
    let text = format!("the bound was set at {loc}");
    let path = std::path::Path::new(&loc.file);
    if loc.file.starts_with("preset:") || !path.is_file() {
        return Some(json!({"id": 1, "message": {"text": text}}));
    }
    let place = root.place(path);
    let (artifact, base) = match &place {
        Place::Inside { .. } => artifact_location(&place),
        Place::Outside { name, dir } => (
            json!({"uri": uri_escape(name), "uriBaseId": "POLICYDIR"}),
            Some(("POLICYDIR", dir_uri(dir))),
        ),
    };
    if let Some((id, uri)) = base {
        bases.insert(id.into(), json!({"uri": uri}));
    }
    Some(json!({
        "id": 1,
        "message": {"text": text},
        "physicalLocation": {
            "artifactLocation": artifact,
            "region": {"startLine": loc.line, "startColumn": loc.column.max(1)},
        },
    }))
}
