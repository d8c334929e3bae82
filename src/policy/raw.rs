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
    /// The quality gate: perplexity on a text, and KL divergence from a base model.
    pub quality: Option<RawQuality>,
    /// Chat templates: whether one is required, known-good hashes, the expected text,
    /// and conversations to render (docs/templates.md).
    pub chat_template: Option<RawChatTemplate>,
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
    /// Wall-clock budget of the whole probe in seconds (default 60): when generating every
    /// prompt's tokens would take longer, each prompt gets fewer tokens, and the findings
    /// say so.
    pub max_seconds: Option<Located<f64>>,
}

/// The quality gate (docs/quality.md): the model scores a text (teacher-forced); its
/// perplexity, and its next-token distributions against a base model's, are bounded.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawQuality {
    /// Run the quality gate. Default true when the section is present.
    pub enabled: Option<Located<bool>>,
    /// The text to score (relative to the policy). Default: the bundled evaluation text.
    pub text: Option<Located<String>>,
    /// Fail when the model's perplexity on the text is above this.
    pub max_perplexity: Option<Located<f64>>,
    /// The base model (a GGUF, relative to the policy) to compare with, e.g. the F16 export.
    pub base: Option<Located<String>>,
    /// A recorded base (`gguf-gate score BASE --record-base FILE`), instead of `base`.
    pub base_record: Option<Located<String>>,
    /// The fingerprint the recorded base must have (`sha256-…`).
    pub base_fingerprint: Option<Located<String>>,
    /// Fail when the mean KL divergence from the base is above this.
    pub max_mean_kld: Option<Located<f64>>,
    /// Fail when the 99th percentile of the KL divergence is above this.
    pub max_p99_kld: Option<Located<f64>>,
    /// Fail when the share of positions where model and base pick the same top token is
    /// below this (0..1).
    pub min_same_top1: Option<Located<f64>>,
    /// Tokens of context per chunk of the text. Default 2048 (or the model's context).
    pub ctx: Option<Located<u64>>,
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

/// Chat template rules (`template-*`).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct RawChatTemplate {
    /// Fail (`template-missing`) when the file has no `tokenizer.chat_template`. Default false.
    pub required: Option<Located<bool>>,
    /// Largest template, in bytes, before `template-size` reports it. Default 65536.
    pub max_bytes: Option<Located<u64>>,
    /// SHA-256 (64 hex digits) of templates reviewed and known good: the static and
    /// behavioural heuristics skip them; they are still rendered.
    pub allow_sha256: Option<Vec<Located<String>>>,
    /// A file (relative to the policy) the default template must equal: a template file,
    /// or a `tokenizer_config.json` whose `chat_template` is taken.
    pub expect_file: Option<Located<String>>,
    /// Extra conversations to render, each optionally with text the prompt must contain.
    pub conversations: Option<Vec<RawConversation>>,
}

/// A conversation the policy renders with a template.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
pub struct RawConversation {
    /// A name for reports.
    pub name: Located<String>,
    /// The template variant (`tokenizer.chat_template.<name>`); default: the default template.
    pub template: Option<Located<String>>,
    /// The messages, as runtimes pass them: `[{role: user, content: "Hi"}]`.
    pub messages: Located<Vec<serde_json::Value>>,
    /// Tool definitions (JSON schemas) passed as `tools`.
    pub tools: Option<Vec<serde_json::Value>>,
    /// Render with `add_generation_prompt`. Default true.
    pub add_generation_prompt: Option<Located<bool>>,
    /// Extra template variables, e.g. `{enable_thinking: false}`.
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
    /// Substrings the rendered prompt must contain.
    pub expect_contains: Option<Vec<Located<String>>>,
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
            max_seconds: o.max_seconds.or(b.max_seconds),
        }),
        quality: merge_opt(base.quality, over.quality, |b, o| RawQuality {
            enabled: o.enabled.or(b.enabled),
            text: o.text.or(b.text),
            max_perplexity: o.max_perplexity.or(b.max_perplexity),
            base: o.base.or(b.base),
            base_record: o.base_record.or(b.base_record),
            base_fingerprint: o.base_fingerprint.or(b.base_fingerprint),
            max_mean_kld: o.max_mean_kld.or(b.max_mean_kld),
            max_p99_kld: o.max_p99_kld.or(b.max_p99_kld),
            min_same_top1: o.min_same_top1.or(b.min_same_top1),
            ctx: o.ctx.or(b.ctx),
        }),
        chat_template: merge_opt(base.chat_template, over.chat_template, |b, o| {
            RawChatTemplate {
                required: o.required.or(b.required),
                max_bytes: o.max_bytes.or(b.max_bytes),
                allow_sha256: o.allow_sha256.or(b.allow_sha256),
                expect_file: o.expect_file.or(b.expect_file),
                conversations: o.conversations.or(b.conversations),
            }
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
