//! Loading a policy: read the YAML (bounded), reject unknown keys with a suggestion,
//! deserialize into the raw types, resolve `extends` against the embedded presets,
//! merge, and validate — collecting every problem with file:line:column.

use std::fmt;
use std::path::Path;

use serde_json::Value as Json;

use super::keys::{check_keys, KeyTree};
use super::located::with_source;
use super::raw::{self, RawPolicy};
use super::validate::validate;
use super::{Loc, Policy};

/// Policy files larger than this are refused before parsing.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;
/// `extends` chains longer than this are refused (they can only be cycles).
const MAX_EXTENDS_DEPTH: usize = 8;

const PRESETS: &[(&str, &str)] = &[
    ("generic", include_str!("presets/generic.yaml")),
    ("llama", include_str!("presets/llama.yaml")),
    ("bitnet-b1.58", include_str!("presets/bitnet-b1.58.yaml")),
    ("qwen2", include_str!("presets/qwen2.yaml")),
    ("qwen3", include_str!("presets/qwen3.yaml")),
    ("gemma3", include_str!("presets/gemma3.yaml")),
    ("phi3", include_str!("presets/phi3.yaml")),
];

/// Names accepted by `extends:` (besides `default` and `none`).
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.0).collect()
}

/// The YAML of an embedded preset.
pub fn preset_source(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|p| p.0 == name).map(|p| p.1)
}

/// One problem in a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyError {
    pub loc: Loc,
    pub message: String,
}

/// Every problem found in a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the policy has {} problem(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {}: {}", e.loc, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// The preset `default` resolves to for an architecture, or `None` (generic rules).
fn preset_for_architecture(arch: Option<&str>) -> Option<&'static str> {
    match arch? {
        "llama" | "mistral" => Some("llama"),
        "bitnet-b1.58" => Some("bitnet-b1.58"),
        "qwen2" => Some("qwen2"),
        "qwen3" => Some("qwen3"),
        "gemma3" => Some("gemma3"),
        "phi3" => Some("phi3"),
        _ => None,
    }
}

/// Load the policy at `path` (or the default policy when `None`) for a model of
/// architecture `arch`. `strict` is the command line's `--strict` (or
/// `BITNET_STRICT_MODE=1`), which the policy cannot turn off.
pub fn load(path: Option<&Path>, arch: Option<&str>, strict: bool) -> Result<Policy, PolicyErrors> {
    match path {
        Some(p) => {
            let text = read_policy_file(p).map_err(|e| PolicyErrors(vec![e]))?;
            let source = PolicySource {
                text: &text,
                name: &p.display().to_string(),
                base_dir: p.parent(),
            };
            load_source(Some(source), arch, strict)
        }
        None => load_source(None, arch, strict),
    }
}

/// A policy document already in memory: its text, the name errors cite, and the
/// directory relative paths in it (fingerprint files, baselines) are resolved against.
#[derive(Clone, Copy, Debug)]
pub struct PolicySource<'a> {
    pub text: &'a str,
    pub name: &'a str,
    pub base_dir: Option<&'a Path>,
}

/// `load` for a policy in memory (`None`: the default policy).
pub fn load_source(
    source: Option<PolicySource<'_>>,
    arch: Option<&str>,
    strict: bool,
) -> Result<Policy, PolicyErrors> {
    let mut errors: Vec<PolicyError> = Vec::new();
    let (user, name) = match source {
        Some(src) => {
            let name = src.name.to_string();
            let (raw, problems) = parse_document(src.text, &name);
            errors.extend(problems);
            match raw {
                Some(raw) => (Some(raw), name),
                None => return Err(PolicyErrors(errors)),
            }
        }
        None => (None, "(default)".to_string()),
    };

    // Resolve `extends` (default: choose by architecture) and merge preset chains.
    let mut generic_fallback = false;
    let mut chain: Vec<RawPolicy> = Vec::new();
    let mut next = user
        .as_ref()
        .and_then(|u| u.extends.clone())
        .map(|e| (e.value.clone(), Some(e.loc())))
        .unwrap_or_else(|| ("default".to_string(), None));
    let mut preset: Option<String> = None;
    for _ in 0..MAX_EXTENDS_DEPTH {
        let (target, loc) = next.clone();
        let resolved = match target.as_str() {
            "none" => break,
            "default" => match preset_for_architecture(arch) {
                Some(p) => p.to_string(),
                None => {
                    generic_fallback = true;
                    "generic".to_string()
                }
            },
            other => other.to_string(),
        };
        let Some(text) = preset_source(&resolved) else {
            errors.push(PolicyError {
                loc: loc.unwrap_or_default(),
                message: format!(
                    "unknown preset {resolved:?} in `extends`; known: default, none, {}",
                    preset_names().join(", ")
                ),
            });
            break;
        };
        let source = format!("preset:{resolved}");
        let (Some(raw), _) = parse_document(text, &source) else {
            // Presets are tested to parse; reaching this is a build defect.
            errors.push(PolicyError {
                loc: loc.unwrap_or_default(),
                message: format!("embedded preset {resolved:?} does not parse"),
            });
            break;
        };
        preset.get_or_insert(resolved);
        next = match &raw.extends {
            Some(e) => (e.value.clone(), Some(e.loc())),
            None => ("none".to_string(), None),
        };
        chain.push(raw);
    }
    let mut merged = RawPolicy::default();
    for raw in chain.into_iter().rev() {
        merged = raw::merge(merged, raw);
    }
    if let Some(u) = user {
        merged = raw::merge(merged, u);
    }
    let base_dir = source.and_then(|s| s.base_dir).map(Path::to_path_buf);
    match validate(merged, name, preset, generic_fallback, strict, base_dir) {
        Ok(policy) if errors.is_empty() => Ok(policy),
        Ok(_) => Err(sorted(errors)),
        Err(PolicyErrors(more)) => {
            errors.extend(more);
            Err(sorted(errors))
        }
    }
}

/// Problems in file order (line, then column).
fn sorted(mut errors: Vec<PolicyError>) -> PolicyErrors {
    errors.sort_by(|a, b| {
        (&a.loc.file, a.loc.line, a.loc.column).cmp(&(&b.loc.file, b.loc.line, b.loc.column))
    });
    errors.dedup();
    PolicyErrors(errors)
}

fn read_policy_file(path: &Path) -> Result<String, PolicyError> {
    let loc = Loc {
        file: path.display().to_string(),
        line: 0,
        column: 0,
    };
    crate::input::read_text_bounded(path, MAX_POLICY_BYTES, "policy").map_err(|e| PolicyError {
        loc,
        message: format!("cannot read the policy: {}", e.problem),
    })
}

/// Parse one YAML document: every unknown key (with its position and a suggestion),
/// then the typed shape. Returns the document when its shape is right, and the problems.
fn parse_document(text: &str, source: &str) -> (Option<RawPolicy>, Vec<PolicyError>) {
    let at = |line, column| Loc {
        file: source.to_string(),
        line,
        column,
    };
    let yaml_error = |e: serde_saphyr::Error| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let text = e.to_string();
        // The first line, without serde-saphyr's "error: line L column C: " prefix.
        let first = text.lines().next().unwrap_or("invalid YAML");
        let message = first
            .strip_prefix("error: ")
            .map(|rest| match rest.split_once(": ") {
                Some((prefix, msg)) if prefix.starts_with("line ") => msg,
                _ => rest,
            })
            .unwrap_or(first)
            .to_string();
        PolicyError {
            loc: at(line, column),
            message,
        }
    };
    if text.trim().is_empty() {
        return (
            None,
            vec![PolicyError {
                loc: at(1, 1),
                message: "the policy is empty; it needs at least `version: 1`".into(),
            }],
        );
    }
    let tree: KeyTree = match with_source(source, || serde_saphyr::from_str(text)) {
        Ok(tree) => tree,
        Err(e) => return (None, vec![yaml_error(e)]),
    };
    // The schema is static: build it once per process, not once per document.
    static SCHEMA: std::sync::OnceLock<Json> = std::sync::OnceLock::new();
    let schema = SCHEMA.get_or_init(schema);
    let mut errors = Vec::new();
    check_keys(&tree, schema, schema, &mut errors);
    match with_source(source, || serde_saphyr::from_str::<RawPolicy>(text)) {
        Ok(raw) => (Some(raw), errors),
        Err(e) => {
            errors.push(yaml_error(e));
            (None, errors)
        }
    }
}

/// The JSON Schema of the policy file.
pub fn schema() -> Json {
    let mut schema = serde_json::to_value(schemars::schema_for!(RawPolicy)).unwrap_or(Json::Null);
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), Json::String("gguf-gate policy".into()));
        obj.insert(
            "$id".into(),
            Json::String(
                "https://github.com/gguf-gate/gguf-gate/blob/main/docs/policy.schema.json".into(),
            ),
        );
    }
    schema
}

/// A starter policy beginning with the schema line editors understand: for `default`, a
/// commented policy extending it (the preset is chosen per model); for a named preset,
/// the preset itself, ready to edit — which is also how presets are read.
pub fn starter_policy(preset: &str) -> Option<String> {
    let schema_line = "# yaml-language-server: $schema=https://raw.githubusercontent.com/gguf-gate/gguf-gate/main/docs/policy.schema.json\n";
    if preset != "default" {
        return preset_source(preset).map(|s| {
            format!("{schema_line}# A copy of gguf-gate's embedded preset `{preset}`; edit freely (docs/policy.md).\n{s}")
        });
    }
    Some(format!(
        "{schema_line}# gguf-gate policy: what a model must satisfy to be released.
# Every key is optional except `version`; sections you write replace the preset's
# fields. Reference: docs/policy.md. `default` picks the preset for each model's
# architecture; read one with `gguf-gate init --preset llama --stdout`.
version: 1
extends: default

# strict: true            # warnings become errors; waivers are not applied

# severity:               # per rule: error | warning | off (codes: gguf-gate rules)
#   proj-rms-spread: warning

# fingerprint:            # pin the exact bytes you approved
#   expected: [sha256-...]

# norms:
#   rms:                  # first matching pattern wins
#     - {{pattern: \"blk.*.attn_norm.weight\", min: 0.005, max: 10}}

# probe:
#   prompts:
#     - text: \"The capital of France is\"
#       expect_contains: [Paris]

# chat_template:          # docs/templates.md
#   required: true
#   expect_file: tokenizer_config.json   # the source model's template
#   conversations:
#     - name: hello
#       messages: [{{role: user, content: \"Hi\"}}]
#       expect_contains: [\"<|im_start|>assistant\"]

# waivers:
#   - rule: tensor-constant
#     target: \"blk.0.attn_norm.weight\"
#     reason: \"initialised to ones in this release, see issue #12\"
#     expires: 2027-01-31
"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::keys::suggest;
    use super::super::validate::parse_date;
    use super::*;

    #[test]
    fn dates_and_suggestions() {
        assert_eq!(parse_date("2027-02-28"), Some((2027, 2, 28)));
        assert_eq!(parse_date("2027-02-29"), None);
        assert_eq!(parse_date("2028-02-29"), Some((2028, 2, 29)));
        assert_eq!(parse_date("2027-13-01"), None);
        assert_eq!(parse_date("27-1-1"), None);
        assert_eq!(suggest("norm", &["norms", "tensors"]), Some("norms"));
        assert_eq!(suggest("zzzzzz", &["norms", "tensors"]), None);
    }

    #[test]
    fn every_preset_loads_and_validates() {
        for name in preset_names() {
            let text = preset_source(name).unwrap();
            let (raw, errors) = parse_document(text, name);
            assert!(raw.is_some() && errors.is_empty(), "{name}: {errors:?}");
        }
        for arch in [Some("llama"), Some("bitnet-b1.58"), Some("gpt2"), None] {
            let p = load(None, arch, false).unwrap_or_else(|e| panic!("{arch:?}: {e}"));
            assert_eq!(
                p.generic_fallback,
                !matches!(arch, Some("llama" | "bitnet-b1.58"))
            );
            assert!(!p.norms.patterns.is_empty());
        }
    }
}
