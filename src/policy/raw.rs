//! The policy file as written: serde + JSON Schema types that mirror the YAML one to
//! one, every field optional and located. Phase one of loading (after cargo-deny's
//! `cfg.rs`): these types only describe shape; `validate` turns them into a `Policy`
//! and reports every semantic problem at once. Doc comments here are the schema's
//! descriptions, shown by editors through `# yaml-language-server: $schema=`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::located::Located;

/// A gguf-gate policy (version 1).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawPolicy {
    /// Policy format version; must be 1.
    pub version: Option<Located<u32>>,
    /// A preset to start from: `default` (chosen by `general.architecture`), `llama`,
    /// `bitnet-b1.58`, `generic`, or `none`. Sections you write replace the preset's fields.
    pub extends: Option<Located<String>>,
    /// Turn every warning into an error and disallow waivers (also `--strict` and
    /// `BITNET_STRICT_MODE=1`).
    pub strict: Option<Located<bool>>,
    /// Severity per rule code: `error`, `warning` or `off`.
    pub severity: Option<BTreeMap<String, Located<String>>>,
    /// Required metadata keys, their types and values; metadata/tensor consistency.
    pub metadata: Option<RawMetadata>,
    /// Which tensors are norms, their allowed dtypes and RMS envelopes.
    pub norms: Option<RawNorms>,
    /// Attention and FFN projections: RMS bounds and spread.
    pub projections: Option<RawProjections>,
    /// Checks on every tensor: finite, not all-zero, not constant, dtypes, count.
    pub tensors: Option<RawTensors>,
    /// Pinned fingerprints: the file must hash to one of them.
    pub fingerprint: Option<RawFingerprint>,
    /// The greedy-decoding probe.
    pub probe: Option<RawProbe>,
    /// The drift gate: the previous release and what may change since it.
    pub baseline: Option<RawBaseline>,
    /// Accepted exceptions, each with a reason and an expiry date.
    pub waivers: Option<Vec<RawWaiver>>,
}

/// Metadata requirements.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawMetadata {
    /// Keys to check, in order.
    pub keys: Option<Vec<RawKeyRule>>,
    /// Check metadata against tensors (embedding width, block count, head counts,
    /// vocabulary size). Default true.
    pub consistency: Option<Located<bool>>,
}

/// One metadata key requirement. `{arch}` in `key` stands for `general.architecture`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct RawKeyRule {
    /// The key, e.g. `llama.context_length` or `{arch}.block_count`.
    pub key: Located<String>,
    /// Required value type: u8 i8 u16 i16 u32 i32 u64 i64 f32 f64 bool string, or
    /// `array[<type>]`.
    #[serde(rename = "type")]
    pub ty: Option<Located<String>>,
    /// false: only check type and value when the key is present. Default true.
    pub required: Option<Located<bool>>,
    /// Allowed values (strings, numbers or booleans).
    pub values: Option<Located<Vec<RawScalar>>>,
    /// Lowest allowed numeric value.
    pub min: Option<Located<f64>>,
    /// Highest allowed numeric value.
    pub max: Option<Located<f64>>,
    /// A regular expression a string value must match (anchored: the whole value).
    pub regex: Option<Located<String>>,
    /// Apply this requirement only when another key has a given value.
    pub when: Option<RawCondition>,
}

/// `when: {key: tokenizer.ggml.model, equals: gpt2}`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct RawCondition {
    pub key: Located<String>,
    pub equals: Located<RawScalar>,
}

/// A YAML scalar.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// Norm tensors.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawNorms {
    /// Globs naming the norm tensors (`*` any run of characters, `?` one).
    pub patterns: Option<Vec<Located<String>>>,
    /// Allowed dtypes for norms (float types: F32, F16, BF16).
    pub dtypes: Option<Located<Vec<String>>>,
    /// RMS envelopes, first matching pattern wins.
    pub rms: Option<Vec<RawEnvelope>>,
}

/// An RMS range for the tensors matching `pattern`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct RawEnvelope {
    pub pattern: Located<String>,
    pub min: Option<Located<f64>>,
    pub max: Option<Located<f64>>,
}

/// Projection tensors.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawProjections {
    /// Globs naming the projections; `blk.N.` in a name gives its layer.
    pub patterns: Option<Vec<Located<String>>>,
    /// RMS envelopes, first matching pattern wins.
    pub rms: Option<Vec<RawEnvelope>>,
    /// Largest allowed max/min RMS ratio among the projections of one layer.
    pub max_spread_in_layer: Option<Located<f64>>,
    /// Largest allowed max/min RMS ratio of one projection kind across layers.
    pub max_spread_across_layers: Option<Located<f64>>,
}

/// Checks on every tensor.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawTensors {
    /// No NaN or infinity anywhere. Default true.
    pub finite: Option<Located<bool>>,
    /// No tensor entirely zero. Default true.
    pub nonzero: Option<Located<bool>>,
    /// No tensor (of more than one element) with every value equal. Default true.
    pub nonconstant: Option<Located<bool>>,
    /// Allowed dtypes per pattern, first match wins.
    pub dtypes: Option<Vec<RawDtypeRule>>,
    /// Expected number of tensors.
    pub count: Option<Located<u64>>,
}

/// `{pattern: "*_norm.weight", allowed: [F32, F16]}`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct RawDtypeRule {
    pub pattern: Located<String>,
    pub allowed: Located<Vec<String>>,
}

/// Fingerprint pinning.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawFingerprint {
    /// Accepted `sha256-<hex>` fingerprints.
    pub expected: Option<Vec<Located<String>>>,
    /// A file (relative to the policy) holding one accepted fingerprint per line.
    pub file: Option<Located<String>>,
}

/// The greedy-decoding probe.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawProbe {
    /// Run the probe. Default true.
    pub enabled: Option<Located<bool>>,
    /// Prompts to continue greedily.
    pub prompts: Option<Vec<RawPrompt>>,
    /// Tokens to generate per prompt unless a prompt says otherwise. Default 32.
    pub max_tokens: Option<Located<u64>>,
    /// Least share of alphabetic words found in the English word list. Default 0.6.
    pub min_word_share: Option<Located<f64>>,
    /// A baseline of token ids recorded with `check --record-probe`; any drift fails.
    pub baseline: Option<Located<String>>,
}

/// One probe prompt.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct RawPrompt {
    pub text: Located<String>,
    pub max_tokens: Option<Located<u64>>,
    /// Substrings the continuation must contain.
    pub expect_contains: Option<Vec<Located<String>>>,
    /// A regular expression the continuation must match somewhere.
    pub expect_regex: Option<Located<String>>,
}

/// The drift gate: compare the model with the previous release (`gguf-gate diff`) and
/// bound what may change.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawBaseline {
    /// The previous release, relative to the policy: its GGUF file, or the summary
    /// `check --record-baseline` wrote (a few dozen KB: dtype, shape, SHA-256 and RMS of
    /// every tensor, and the metadata).
    pub file: Option<Located<String>>,
    /// Metadata keys (globs; `{arch}` stands for `general.architecture`) whose type and
    /// value must equal the baseline's.
    pub keys_must_match: Option<Vec<Located<String>>>,
    /// Largest allowed relative change ‖new − old‖ / ‖old‖ of the dequantized values, per
    /// tensor pattern; first match wins. Against a recorded summary the measure is the
    /// relative change of the RMS, a lower bound.
    pub max_relative_change: Option<Vec<RawChangeBound>>,
    /// Every tensor keeps the baseline's dtype. Default false.
    pub dtypes_must_match: Option<Located<bool>>,
    /// Every chat template is the baseline's, byte for byte. Default false.
    pub template_must_match: Option<Located<bool>>,
    /// No tensor added, removed or reshaped. Default true.
    pub tensors_must_match: Option<Located<bool>>,
}

/// `{pattern: "blk.*", max: 0.01}`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct RawChangeBound {
    pub pattern: Located<String>,
    /// Largest allowed ‖new − old‖ / ‖old‖ (0: byte-identical values).
    pub max: Located<f64>,
}

/// An accepted exception.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct RawWaiver {
    /// The rule code waived.
    pub rule: Located<String>,
    /// Glob over the finding's subject (tensor or key).
    pub target: Located<String>,
    /// Why this is acceptable.
    pub reason: Located<String>,
    /// Last day the waiver applies, YYYY-MM-DD; after it the waiver is an error.
    pub expires: Located<String>,
    /// Only for the file with this fingerprint.
    pub fingerprint: Option<Located<String>>,
}

/// Later values win, field by field; `base` supplies what `over` leaves out.
pub fn merge(base: RawPolicy, over: RawPolicy) -> RawPolicy {
    RawPolicy {
        version: over.version.or(base.version),
        extends: over.extends.or(base.extends),
        strict: over.strict.or(base.strict),
        severity: match (base.severity, over.severity) {
            (Some(mut b), Some(o)) => {
                b.extend(o);
                Some(b)
            }
            (b, o) => o.or(b),
        },
        metadata: merge_opt(base.metadata, over.metadata, |b, o| RawMetadata {
            keys: o.keys.or(b.keys),
            consistency: o.consistency.or(b.consistency),
        }),
        norms: merge_opt(base.norms, over.norms, |b, o| RawNorms {
            patterns: o.patterns.or(b.patterns),
            dtypes: o.dtypes.or(b.dtypes),
            rms: o.rms.or(b.rms),
        }),
        projections: merge_opt(base.projections, over.projections, |b, o| RawProjections {
            patterns: o.patterns.or(b.patterns),
            rms: o.rms.or(b.rms),
            max_spread_in_layer: o.max_spread_in_layer.or(b.max_spread_in_layer),
            max_spread_across_layers: o.max_spread_across_layers.or(b.max_spread_across_layers),
        }),
        tensors: merge_opt(base.tensors, over.tensors, |b, o| RawTensors {
            finite: o.finite.or(b.finite),
            nonzero: o.nonzero.or(b.nonzero),
            nonconstant: o.nonconstant.or(b.nonconstant),
            dtypes: o.dtypes.or(b.dtypes),
            count: o.count.or(b.count),
        }),
        fingerprint: merge_opt(base.fingerprint, over.fingerprint, |b, o| RawFingerprint {
            expected: o.expected.or(b.expected),
            file: o.file.or(b.file),
        }),
        probe: merge_opt(base.probe, over.probe, |b, o| RawProbe {
            enabled: o.enabled.or(b.enabled),
            prompts: o.prompts.or(b.prompts),
            max_tokens: o.max_tokens.or(b.max_tokens),
            min_word_share: o.min_word_share.or(b.min_word_share),
            baseline: o.baseline.or(b.baseline),
        }),
        baseline: merge_opt(base.baseline, over.baseline, |b, o| RawBaseline {
            file: o.file.or(b.file),
            keys_must_match: o.keys_must_match.or(b.keys_must_match),
            max_relative_change: o.max_relative_change.or(b.max_relative_change),
            dtypes_must_match: o.dtypes_must_match.or(b.dtypes_must_match),
            template_must_match: o.template_must_match.or(b.template_must_match),
            tensors_must_match: o.tensors_must_match.or(b.tensors_must_match),
        }),
        waivers: over.waivers.or(base.waivers),
    }
}

fn merge_opt<T>(base: Option<T>, over: Option<T>, f: impl FnOnce(T, T) -> T) -> Option<T> {
    match (base, over) {
        (Some(b), Some(o)) => Some(f(b, o)),
        (b, o) => o.or(b),
    }
}
