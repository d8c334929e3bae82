//! Loading a policy: read the YAML (bounded), reject unknown keys with a suggestion,
//! deserialize into the raw types, resolve `extends` against the embedded presets,
//! merge, and validate — collecting every problem with file:line:column.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use super::located::{with_source, Located};
use super::raw::{self, RawEnvelope, RawPolicy, RawScalar};
use super::{
    DtypeRule, Envelope, KeyRule, Loc, NormPolicy, Policy, ProbePolicy, ProjectionPolicy, Prompt,
    TensorPolicy, TypeSpec, Waiver,
};
use crate::fingerprint::Fingerprint;
use crate::gguf::{GgmlType, ValueType};
use crate::rules::registry::{self, Severity};

/// Policy files larger than this are refused before parsing.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;
/// `extends` chains longer than this are refused (they can only be cycles).
const MAX_EXTENDS_DEPTH: usize = 8;

const PRESETS: &[(&str, &str)] = &[
    ("generic", include_str!("presets/generic.yaml")),
    ("llama", include_str!("presets/llama.yaml")),
    ("bitnet-b1.58", include_str!("presets/bitnet-b1.58.yaml")),
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
    let meta = std::fs::metadata(path).map_err(|e| PolicyError {
        loc: loc.clone(),
        message: format!("cannot read the policy: {e}"),
    })?;
    if meta.len() > MAX_POLICY_BYTES {
        return Err(PolicyError {
            loc,
            message: format!(
                "{} bytes is larger than the {MAX_POLICY_BYTES}-byte limit for a policy",
                meta.len()
            ),
        });
    }
    std::fs::read_to_string(path).map_err(|e| PolicyError {
        loc,
        message: format!("cannot read the policy as UTF-8 text: {e}"),
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

/// Every key of a YAML document with its position, and nothing else: enough to find
/// unknown keys everywhere in one pass.
#[derive(Debug, Default)]
struct KeyTree {
    keys: Vec<(Located<String>, KeyTree)>,
    items: Vec<KeyTree>,
}

impl<'de> Deserialize<'de> for KeyTree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyTreeVisitor)
    }
}

struct KeyTreeVisitor;

impl<'de> Visitor<'de> for KeyTreeVisitor {
    type Value = KeyTree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<KeyTree, D::Error> {
        KeyTree::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyTree, A::Error> {
        let mut tree = KeyTree::default();
        while let Some(item) = seq.next_element::<KeyTree>()? {
            tree.items.push(item);
        }
        Ok(tree)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyTree, A::Error> {
        let mut tree = KeyTree::default();
        while let Some(key) = map.next_key::<Located<String>>()? {
            let value = map.next_value::<KeyTree>()?;
            tree.keys.push((key, value));
        }
        Ok(tree)
    }
}

/// Follow `$ref` and pick the non-null branch of `anyOf`/`oneOf` (how `Option<T>` shows).
fn resolve<'a>(node: &'a Json, root: &'a Json) -> &'a Json {
    let mut node = node;
    for _ in 0..16 {
        if let Some(r) = node.get("$ref").and_then(Json::as_str) {
            let name = r.rsplit('/').next().unwrap_or("");
            match root.get("$defs").and_then(|d| d.get(name)) {
                Some(target) => node = target,
                None => return node,
            }
            continue;
        }
        let branches = node
            .get("anyOf")
            .or_else(|| node.get("oneOf"))
            .and_then(Json::as_array);
        if let Some(branch) = branches.and_then(|b| {
            b.iter().find(|x| {
                x.get("$ref").is_some() || x.get("properties").is_some() || x.get("items").is_some()
            })
        }) {
            node = branch;
            continue;
        }
        return node;
    }
    node
}

fn check_keys(tree: &KeyTree, schema: &Json, root: &Json, errors: &mut Vec<PolicyError>) {
    let node = resolve(schema, root);
    let props = node.get("properties").and_then(Json::as_object);
    let extra = node.get("additionalProperties").filter(|a| a.is_object());
    for (key, sub) in &tree.keys {
        match (props.and_then(|p| p.get(&key.value)), extra) {
            (Some(s), _) | (None, Some(s)) => check_keys(sub, s, root, errors),
            (None, None) => {
                let known: Vec<&str> = props
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let mut message = format!("unknown key `{}`", key.value);
                if let Some(best) = suggest(&key.value, &known) {
                    message.push_str(&format!("; did you mean `{best}`?"));
                } else if !known.is_empty() {
                    message.push_str(&format!("; expected one of: {}", known.join(", ")));
                }
                errors.push(PolicyError {
                    loc: key.loc(),
                    message,
                });
            }
        }
    }
    if let Some(items) = node.get("items") {
        for item in &tree.items {
            check_keys(item, items, root, errors);
        }
    }
}

/// The closest known name, if it is close enough to be a typo.
pub(crate) fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Phase two: raw document -> `Policy`, every problem collected.
fn validate(
    raw: RawPolicy,
    name: String,
    preset: Option<String>,
    generic_fallback: bool,
    strict_flag: bool,
    base_dir: Option<PathBuf>,
) -> Result<Policy, PolicyErrors> {
    let mut v = Validator::default();
    match &raw.version {
        Some(ver) if ver.value == 1 => {}
        Some(ver) => v.err(
            &ver.loc(),
            format!(
                "unsupported policy version {}; this gguf-gate reads version 1",
                ver.value
            ),
        ),
        None => v.errors.push(PolicyError {
            loc: Loc {
                file: name.clone(),
                line: 1,
                column: 1,
            },
            message: "missing `version: 1`".into(),
        }),
    }
    let strict = strict_flag || raw.strict.as_ref().is_some_and(|s| s.value);

    let mut severity = HashMap::new();
    for (code, level) in raw.severity.iter().flatten() {
        let Some(rule) = v.rule(code, &level.loc()) else {
            continue;
        };
        let sev = match level.value.as_str() {
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "off" => None,
            other => {
                v.err(
                    &level.loc(),
                    format!("severity {other:?} for `{code}`: expected error, warning or off"),
                );
                continue;
            }
        };
        severity.insert(rule, sev);
    }

    let metadata = raw.metadata.unwrap_or_default();
    let keys = metadata
        .keys
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| v.key_rule(k))
        .collect();

    let norms_raw = raw.norms.unwrap_or_default();
    let norms = NormPolicy {
        patterns: v.patterns(norms_raw.patterns.unwrap_or_default()),
        dtypes_loc: norms_raw
            .dtypes
            .as_ref()
            .map(Located::loc)
            .unwrap_or_default(),
        dtypes: norms_raw.dtypes.map(|d| v.dtypes(&d)).unwrap_or_default(),
        envelopes: v.envelopes(norms_raw.rms.unwrap_or_default()),
    };

    let proj_raw = raw.projections.unwrap_or_default();
    let projections = ProjectionPolicy {
        patterns: v.patterns(proj_raw.patterns.unwrap_or_default()),
        envelopes: v.envelopes(proj_raw.rms.unwrap_or_default()),
        max_spread_in_layer: proj_raw.max_spread_in_layer.map(|s| v.spread(s)),
        max_spread_across_layers: proj_raw.max_spread_across_layers.map(|s| v.spread(s)),
    };

    let t = raw.tensors.unwrap_or_default();
    let tensors = TensorPolicy {
        loc: t.finite.as_ref().map(Located::loc).unwrap_or_default(),
        finite: t.finite.is_none_or(|b| b.value),
        nonzero: t.nonzero.is_none_or(|b| b.value),
        nonconstant: t.nonconstant.is_none_or(|b| b.value),
        dtypes: t
            .dtypes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| {
                let pattern = v.pattern(d.pattern)?;
                Some(DtypeRule {
                    pattern,
                    allowed: v.dtypes(&d.allowed),
                    loc: d.allowed.loc(),
                })
            })
            .collect(),
        count: t.count.map(|c| (c.value, c.loc())),
    };

    let mut fingerprints = Vec::new();
    let fp = raw.fingerprint.unwrap_or_default();
    for e in fp.expected.unwrap_or_default() {
        if let Some(f) = v.fingerprint(&e) {
            fingerprints.push((f, e.loc()));
        }
    }
    if let Some(file) = fp.file {
        let path = relative_to(&base_dir, &file.value);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.len() <= 1 << 16 => {
                for line in text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                {
                    match line.parse::<Fingerprint>() {
                        Ok(f) => fingerprints.push((f, file.loc())),
                        Err(e) => v.err(&file.loc(), format!("{}: {e}", path.display())),
                    }
                }
            }
            Ok(_) => v.err(
                &file.loc(),
                format!("{}: too large for a fingerprint file", path.display()),
            ),
            Err(e) => v.err(
                &file.loc(),
                format!("cannot read fingerprint file {}: {e}", path.display()),
            ),
        }
    }

    let p = raw.probe.unwrap_or_default();
    let default_tokens = p.max_tokens.as_ref().map_or(32, |m| m.value);
    if let Some(m) = &p.max_tokens {
        if m.value == 0 || m.value > 4096 {
            v.err(
                &m.loc(),
                format!("probe.max_tokens {} must be between 1 and 4096", m.value),
            );
        }
    }
    let min_word_share = match &p.min_word_share {
        Some(s) if !(0.0..=1.0).contains(&s.value) => {
            v.err(
                &s.loc(),
                format!("probe.min_word_share {} must be between 0 and 1", s.value),
            );
            0.6
        }
        Some(s) => s.value,
        None => 0.6,
    };
    let prompts = p
        .prompts
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pr| {
            if pr.text.value.trim().is_empty() {
                v.err(&pr.text.loc(), "an empty probe prompt".into());
                return None;
            }
            Some(Prompt {
                loc: pr.text.loc(),
                text: pr.text.value,
                max_tokens: pr.max_tokens.map_or(default_tokens, |m| m.value),
                expect_contains: pr
                    .expect_contains
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.value)
                    .collect(),
                expect_regex: pr.expect_regex.and_then(|r| v.regex(&r, false)),
            })
        })
        .collect();
    let probe = ProbePolicy {
        loc: p.enabled.as_ref().map(Located::loc).unwrap_or_default(),
        enabled: p.enabled.is_none_or(|e| e.value),
        prompts,
        max_tokens: default_tokens,
        min_word_share,
        baseline: p.baseline.map(|b| relative_to(&base_dir, &b.value)),
    };

    let waivers = raw
        .waivers
        .unwrap_or_default()
        .into_iter()
        .filter_map(|w| {
            let rule = v.rule(&w.rule.value, &w.rule.loc());
            let target = v.pattern(w.target.clone());
            let expires = parse_date(&w.expires.value);
            if expires.is_none() {
                v.err(
                    &w.expires.loc(),
                    format!(
                        "waiver expiry {:?} is not a date (YYYY-MM-DD)",
                        w.expires.value
                    ),
                );
            }
            if w.reason.value.trim().is_empty() {
                v.err(&w.reason.loc(), "a waiver needs a reason".into());
            }
            let fingerprint = match &w.fingerprint {
                Some(f) => Some(v.fingerprint(f)?),
                None => None,
            };
            Some(Waiver {
                rule: rule?,
                target: target?,
                reason: w.reason.value,
                expires: expires?,
                fingerprint,
                loc: w.rule.loc(),
            })
        })
        .collect();

    if !v.errors.is_empty() {
        return Err(PolicyErrors(v.errors));
    }
    Ok(Policy {
        name,
        preset,
        generic_fallback,
        strict,
        severity,
        keys,
        consistency: metadata.consistency.is_none_or(|c| c.value),
        norms,
        projections,
        tensors,
        fingerprints,
        probe,
        waivers,
    })
}

fn relative_to(base: &Option<PathBuf>, path: &str) -> PathBuf {
    let p = Path::new(path);
    match base {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// `YYYY-MM-DD` -> (year, month, day), with the day checked against the month.
pub(crate) fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let mut parts = s.trim().splitn(3, '-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max = *days.get(m.checked_sub(1)? as usize)?;
    (s.trim().len() == 10 && (1..=max).contains(&d)).then_some((y, m, d))
}

/// Collects problems while converting.
#[derive(Default)]
struct Validator {
    errors: Vec<PolicyError>,
}

impl Validator {
    fn err(&mut self, loc: &Loc, message: String) {
        self.errors.push(PolicyError {
            loc: loc.clone(),
            message,
        });
    }

    fn rule(&mut self, code: &str, loc: &Loc) -> Option<&'static str> {
        match registry::lookup(code) {
            Some(r) => Some(r.code),
            None => {
                let codes: Vec<&str> = registry::RULES.iter().map(|r| r.code).collect();
                let hint = suggest(code, &codes)
                    .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                self.err(
                    loc,
                    format!("unknown rule code `{code}`{hint} (see `gguf-gate rules`)"),
                );
                None
            }
        }
    }

    fn pattern(&mut self, p: Located<String>) -> Option<String> {
        if p.value.trim().is_empty() {
            self.err(&p.loc(), "an empty pattern".into());
            return None;
        }
        Some(p.value)
    }

    fn patterns(&mut self, list: Vec<Located<String>>) -> Vec<String> {
        list.into_iter().filter_map(|p| self.pattern(p)).collect()
    }

    fn regex(&mut self, r: &Located<String>, anchored: bool) -> Option<Regex> {
        if r.value.is_empty() {
            self.err(&r.loc(), "an empty regular expression".into());
            return None;
        }
        let source = if anchored {
            format!("^(?:{})$", r.value)
        } else {
            r.value.clone()
        };
        match regex::RegexBuilder::new(&source)
            .size_limit(1 << 20)
            .build()
        {
            Ok(re) => Some(re),
            Err(e) => {
                let text = e.to_string();
                let last = text.lines().last().unwrap_or("invalid");
                let msg = last.strip_prefix("error: ").unwrap_or(last).to_string();
                self.err(
                    &r.loc(),
                    format!("invalid regular expression {:?}: {msg}", r.value),
                );
                None
            }
        }
    }

    fn dtypes(&mut self, list: &Located<Vec<String>>) -> Vec<GgmlType> {
        if list.value.is_empty() {
            self.err(&list.loc(), "an empty dtype list allows nothing".into());
        }
        list.value
            .iter()
            .filter_map(|name| match GgmlType::from_name(name) {
                Some(t) => Some(t),
                None => {
                    let names: Vec<&str> = GgmlType::all().map(GgmlType::name).collect();
                    let hint = suggest(&name.to_uppercase(), &names)
                        .map_or(String::new(), |s| format!("; did you mean {s}?"));
                    self.err(&list.loc(), format!("unknown dtype {name:?}{hint}"));
                    None
                }
            })
            .collect()
    }

    fn bounds(&mut self, min: &Option<Located<f64>>, max: &Option<Located<f64>>, what: &str) {
        for b in [min, max].into_iter().flatten() {
            if !b.value.is_finite() {
                self.err(
                    &b.loc(),
                    format!("{what}: bound {} is not a finite number", b.value),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo.value > hi.value {
                self.err(
                    &lo.loc(),
                    format!(
                        "{what}: min {} is greater than max {} (line {})",
                        lo.value, hi.value, hi.line
                    ),
                );
            }
        }
    }

    fn envelopes(&mut self, list: Vec<RawEnvelope>) -> Vec<Envelope> {
        list.into_iter()
            .filter_map(|e| {
                let what = format!("rms for {:?}", e.pattern.value);
                self.bounds(&e.min, &e.max, &what);
                if let Some(m) = &e.min {
                    if m.value < 0.0 {
                        self.err(
                            &m.loc(),
                            format!("{what}: an RMS is never negative (min {})", m.value),
                        );
                    }
                }
                let loc = e
                    .min
                    .as_ref()
                    .or(e.max.as_ref())
                    .map_or_else(|| e.pattern.loc(), Located::loc);
                let pattern = self.pattern(e.pattern)?;
                Some(Envelope {
                    pattern,
                    min: e.min.map(|m| m.value),
                    max: e.max.map(|m| m.value),
                    loc,
                })
            })
            .collect()
    }

    fn spread(&mut self, s: Located<f64>) -> (f64, Loc) {
        if s.value.is_nan() || s.value < 1.0 {
            self.err(
                &s.loc(),
                format!("a max/min spread must be at least 1 (got {})", s.value),
            );
        }
        (s.value, s.loc())
    }

    fn fingerprint(&mut self, s: &Located<String>) -> Option<Fingerprint> {
        match s.value.parse() {
            Ok(f) => Some(f),
            Err(e) => {
                self.err(&s.loc(), format!("{e}"));
                None
            }
        }
    }

    fn type_spec(&mut self, t: &Located<String>) -> Option<TypeSpec> {
        let name = t.value.trim();
        let scalar = |n: &str| {
            [
                "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "u64", "i64",
                "f64",
            ]
            .iter()
            .position(|x| *x == n)
            .and_then(|i| ValueType::from_id([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12][i]))
        };
        let spec = if name == "array" {
            Some(TypeSpec {
                ty: ValueType::Array,
                element: None,
            })
        } else if let Some(inner) = name
            .strip_prefix("array[")
            .and_then(|r| r.strip_suffix(']'))
        {
            scalar(inner).map(|e| TypeSpec {
                ty: ValueType::Array,
                element: Some(e),
            })
        } else {
            scalar(name).map(|ty| TypeSpec { ty, element: None })
        };
        if spec.is_none() {
            self.err(
                &t.loc(),
                format!("unknown type {name:?}: expected u8 i8 u16 i16 u32 i32 u64 i64 f32 f64 bool string, array or array[<type>]"),
            );
        }
        spec
    }

    fn key_rule(&mut self, k: raw::RawKeyRule) -> Option<KeyRule> {
        let ty = k.ty.as_ref().and_then(|t| self.type_spec(t));
        let what = format!("key {:?}", k.key.value);
        self.bounds(&k.min, &k.max, &what);
        let regex = k.regex.as_ref().and_then(|r| self.regex(r, true));
        if let Some(vals) = &k.values {
            if vals.value.is_empty() {
                self.err(
                    &vals.loc(),
                    format!("{what}: an empty `values` list allows nothing"),
                );
            }
        }
        let key = self.pattern(k.key.clone())?;
        Some(KeyRule {
            key,
            ty,
            required: k.required.is_none_or(|r| r.value),
            values: k.values.map(|v| v.value).unwrap_or_default(),
            min: k.min.map(|m| m.value),
            max: k.max.map(|m| m.value),
            regex,
            when: k.when.map(|w| (w.key.value, w.equals.value)),
            loc: k.key.loc(),
        })
    }
}

impl RawScalar {
    /// Whether a metadata value equals this scalar (numbers compare by value).
    pub fn matches(&self, v: &crate::gguf::Value) -> bool {
        match self {
            RawScalar::Bool(b) => v.as_bool() == Some(*b),
            RawScalar::Int(i) => v.as_f64() == Some(*i as f64),
            RawScalar::Float(f) => v.as_f64() == Some(*f),
            RawScalar::Str(s) => v.as_str() == Some(s.as_str()),
        }
    }
}

impl fmt::Display for RawScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawScalar::Bool(b) => write!(f, "{b}"),
            RawScalar::Int(i) => write!(f, "{i}"),
            RawScalar::Float(x) => write!(f, "{x}"),
            RawScalar::Str(s) => write!(f, "{s:?}"),
        }
    }
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
