//! The policy: what a model must satisfy to be released. Read in two phases (after
//! cargo-deny): `raw` types mirror the YAML with a position on every value; `load`
//! resolves presets (`extends`), rejects unknown keys with a suggestion, and
//! `validate` turns the raw document into a [`Policy`], collecting every problem with
//! its file:line:column before giving up. Presets are embedded in the binary.

mod keys;
mod load;
mod located;
pub mod raw;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use regex::Regex;

use crate::fingerprint::Fingerprint;
use crate::gguf::{GgmlType, ValueType};
use crate::registry::{Rule, Severity};

pub use load::{
    load, load_source, preset_names, preset_source, schema, starter_policy, PolicyErrors,
    PolicySource,
};
pub use located::Located;
pub use raw::RawScalar;

/// Where in a policy (or an embedded preset) a setting was written.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Loc {
    /// The policy file as given on the command line, or `preset:<name>`.
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A validated policy, ready for the rules.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The policy file, or `(default)` when none was given.
    pub name: String,
    /// The preset it resolved to (`llama`, `bitnet-b1.58`, `generic`), if any.
    pub preset: Option<String>,
    /// True when `default` found no preset for the architecture.
    pub generic_fallback: bool,
    pub strict: bool,
    /// Severity overrides; `None` means the rule is off.
    pub severity: HashMap<Rule, Option<Severity>>,
    pub keys: Vec<KeyRule>,
    pub consistency: bool,
    pub norms: NormPolicy,
    pub projections: ProjectionPolicy,
    pub tensors: TensorPolicy,
    pub fingerprints: Vec<(Fingerprint, Loc)>,
    pub probe: ProbePolicy,
    /// The quality gate, when the policy has a `quality:` section.
    pub quality: Option<QualityPolicy>,
    pub chat_template: TemplatePolicy,
    pub baseline: BaselinePolicy,
    pub waivers: Vec<Waiver>,
}

/// A metadata key requirement.
#[derive(Clone, Debug)]
pub struct KeyRule {
    /// May contain `{arch}`.
    pub key: String,
    pub ty: Option<TypeSpec>,
    pub required: bool,
    pub values: Vec<RawScalar>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub regex: Option<Regex>,
    pub when: Option<(String, RawScalar)>,
    pub loc: Loc,
}

/// A required metadata type: a scalar type, or an array of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeSpec {
    pub ty: ValueType,
    /// For arrays: the element type, when pinned.
    pub element: Option<ValueType>,
}

impl fmt::Display for TypeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.element {
            Some(e) => write!(f, "array[{e}]"),
            None => write!(f, "{}", self.ty),
        }
    }
}

/// An RMS range for tensors matching a pattern.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub pattern: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub loc: Loc,
}

#[derive(Clone, Debug, Default)]
pub struct NormPolicy {
    pub patterns: Vec<String>,
    pub dtypes: Vec<GgmlType>,
    pub dtypes_loc: Loc,
    pub envelopes: Vec<Envelope>,
}

#[derive(Clone, Debug, Default)]
pub struct ProjectionPolicy {
    pub patterns: Vec<String>,
    pub envelopes: Vec<Envelope>,
    pub max_spread_in_layer: Option<(f64, Loc)>,
    pub max_spread_across_layers: Option<(f64, Loc)>,
}

#[derive(Clone, Debug, Default)]
pub struct TensorPolicy {
    pub finite: bool,
    pub nonzero: bool,
    pub nonconstant: bool,
    pub dtypes: Vec<DtypeRule>,
    pub count: Option<(u64, Loc)>,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub struct DtypeRule {
    pub pattern: String,
    pub allowed: Vec<GgmlType>,
    pub loc: Loc,
}

#[derive(Clone, Debug, Default)]
pub struct ProbePolicy {
    pub enabled: bool,
    pub prompts: Vec<Prompt>,
    pub max_tokens: u64,
    pub min_word_share: f64,
    /// Wall-clock budget of the whole probe, seconds.
    pub max_seconds: f64,
    pub baseline: Option<PathBuf>,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub struct Prompt {
    pub text: String,
    pub max_tokens: u64,
    pub expect_contains: Vec<String>,
    pub expect_regex: Option<Regex>,
    pub loc: Loc,
}

/// Where the quality gate's base comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum QualityBase {
    None,
    /// A base GGUF, run on the same text.
    Model(PathBuf),
    /// A recorded base (`score --record-base`).
    Record(PathBuf),
}

/// The quality gate's settings.
#[derive(Clone, Debug)]
pub struct QualityPolicy {
    /// The text to score; `None` is the bundled evaluation text.
    pub text: Option<PathBuf>,
    pub base: QualityBase,
    /// The fingerprint the base (a GGUF, or the model a record was made from) must have.
    pub base_fingerprint: Option<Fingerprint>,
    pub max_perplexity: Option<f64>,
    pub max_mean_kld: Option<f64>,
    pub max_p99_kld: Option<f64>,
    pub min_same_top1: Option<f64>,
    pub ctx: usize,
    pub loc: Loc,
}

/// The `chat_template:` section.
#[derive(Clone, Debug)]
pub struct TemplatePolicy {
    pub required: bool,
    pub required_loc: Loc,
    pub max_bytes: u64,
    pub max_bytes_loc: Loc,
    /// Lower-case hex SHA-256 of known-good templates.
    pub allow_sha256: Vec<String>,
    pub expected: Option<ExpectedTemplate>,
    pub conversations: Vec<PolicyConversation>,
}

/// Default for `chat_template.max_bytes`: several times the largest public template.
pub const DEFAULT_TEMPLATE_MAX_BYTES: u64 = 65_536;

impl Default for TemplatePolicy {
    fn default() -> Self {
        TemplatePolicy {
            required: false,
            required_loc: Loc::default(),
            max_bytes: DEFAULT_TEMPLATE_MAX_BYTES,
            max_bytes_loc: Loc::default(),
            allow_sha256: Vec::new(),
            expected: None,
            conversations: Vec::new(),
        }
    }
}

/// `chat_template.expect_file`, read when the policy is loaded.
#[derive(Clone, Debug)]
pub struct ExpectedTemplate {
    pub path: PathBuf,
    pub text: String,
    pub loc: Loc,
}

/// A conversation the policy renders.
#[derive(Clone, Debug)]
pub struct PolicyConversation {
    pub name: String,
    /// The template variant; `None` for the default template.
    pub template: Option<String>,
    /// A JSON array of messages.
    pub messages: serde_json::Value,
    pub tools: Option<serde_json::Value>,
    pub add_generation_prompt: bool,
    pub variables: serde_json::Map<String, serde_json::Value>,
    pub expect_contains: Vec<String>,
    pub loc: Loc,
}

/// The drift gate (`baseline:`): no checks when `file` is `None`.
#[derive(Clone, Debug, Default)]
pub struct BaselinePolicy {
    /// The previous release (a GGUF file or a recorded summary), resolved against the
    /// policy's directory.
    pub file: Option<PathBuf>,
    /// Key globs (may contain `{arch}`) that must match the baseline, with where each was set.
    pub keys_must_match: Vec<(String, Loc)>,
    pub max_relative_change: Vec<ChangeBound>,
    /// Where `dtypes_must_match: true` was set, when it was.
    pub dtypes_must_match: Option<Loc>,
    pub template_must_match: Option<Loc>,
    /// `tensors_must_match` (default true).
    pub tensors_must_match: bool,
    /// Where `baseline.file` was set.
    pub loc: Loc,
}

/// `max_relative_change` for the tensors matching `pattern`.
#[derive(Clone, Debug)]
pub struct ChangeBound {
    pub pattern: String,
    pub max: f64,
    pub loc: Loc,
}

/// An accepted exception.
#[derive(Clone, Debug)]
pub struct Waiver {
    pub rule: Rule,
    pub target: String,
    pub reason: String,
    /// (year, month, day)
    pub expires: (i32, u32, u32),
    pub fingerprint: Option<Fingerprint>,
    pub loc: Loc,
}

impl Policy {
    /// The severity a failed check of `rule` gets under this policy (None: the rule is off).
    pub fn severity_of(&self, rule: Rule) -> Option<Severity> {
        let base = match self.severity.get(&rule) {
            Some(over) => *over,
            None => Some(rule.info().default_severity),
        };
        match base {
            Some(Severity::Warning) if self.strict => Some(Severity::Error),
            other => other,
        }
    }
}
