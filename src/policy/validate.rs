//! Phase two of policy loading: the merged raw document becomes a validated [`Policy`].
//! Every problem — a bound that contradicts another, an invalid pattern or regex, an
//! unknown rule code, dtype or type, a bad date — is collected with its location.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// The probe's wall-clock budget unless the policy sets `probe.max_seconds`: a 2-core CI
/// runner finishes the default three 32-token prompts of a 7B Q4 model within it.
pub const DEFAULT_PROBE_SECONDS: f64 = 60.0;

/// Tokens of context per chunk when the policy's `quality.ctx` is not set.
pub const DEFAULT_QUALITY_CTX: usize = 2048;

use regex::Regex;

use super::keys::suggest;
use super::load::{PolicyError, PolicyErrors};
use super::located::Located;
use super::raw::{
    self, RawBaseline, RawChatTemplate, RawDtypeRule, RawEnvelope, RawFingerprint, RawNorms,
    RawPolicy, RawProbe, RawProjections, RawPrompt, RawQuality, RawScalar, RawTensors, RawWaiver,
};
use super::{
    BaselinePolicy, ChangeBound, DtypeRule, Envelope, ExpectedTemplate, KeyRule, Loc, NormPolicy,
    Policy, PolicyConversation, ProbePolicy, ProjectionPolicy, Prompt, QualityBase, QualityPolicy,
    TemplatePolicy, TensorPolicy, TypeSpec, Waiver,
};
use crate::fingerprint::Fingerprint;
use crate::gguf::{GgmlType, ValueType};
use crate::registry::{Rule, Severity, RULES};

/// Phase two: raw document -> `Policy`, every problem collected.
pub(super) fn validate(
    raw: RawPolicy,
    name: String,
    preset: Option<String>,
    generic_fallback: bool,
    strict_flag: bool,
    base_dir: Option<PathBuf>,
) -> Result<Policy, PolicyErrors> {
    let mut v = Validator::default();
    v.version(raw.version.as_ref(), &name);
    let strict = strict_flag || raw.strict.as_ref().is_some_and(|s| s.value);
    let severity = v.severity(raw.severity.unwrap_or_default());
    let metadata = raw.metadata.unwrap_or_default();
    let keys = v.key_rules(metadata.keys.unwrap_or_default());
    let norms = v.norms(raw.norms.unwrap_or_default());
    let projections = v.projections(raw.projections.unwrap_or_default());
    let tensors = v.tensors(raw.tensors.unwrap_or_default());
    let fingerprints = v.fingerprints(raw.fingerprint.unwrap_or_default(), &base_dir);
    let probe = v.probe(raw.probe.unwrap_or_default(), &base_dir);
    let quality = raw.quality.and_then(|q| v.quality(q, &base_dir));
    let chat_template = v.chat_template(raw.chat_template.unwrap_or_default(), &base_dir);
    let baseline = v.baseline(raw.baseline.unwrap_or_default(), &base_dir);
    let waivers = v.waivers(raw.waivers.unwrap_or_default());

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
        quality,
        chat_template,
        baseline,
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

/// One method per section of the policy, called by [`validate`] in the order of
/// [`RawPolicy`]'s fields, which is the order problems are reported in.
impl Validator {
    fn version(&mut self, version: Option<&Located<u32>>, file: &str) {
        match version {
            Some(ver) if ver.value == 1 => {}
            Some(ver) => self.err(
                &ver.loc(),
                format!(
                    "unsupported policy version {}; this gguf-gate reads version 1",
                    ver.value
                ),
            ),
            None => self.errors.push(PolicyError {
                loc: Loc {
                    file: file.to_string(),
                    line: 1,
                    column: 1,
                },
                message: "missing `version: 1`".into(),
            }),
        }
    }

    fn severity(
        &mut self,
        raw: BTreeMap<String, Located<String>>,
    ) -> HashMap<Rule, Option<Severity>> {
        let mut severity = HashMap::new();
        for (code, level) in &raw {
            let Some(rule) = self.rule(code, &level.loc()) else {
                continue;
            };
            let sev = match level.value.as_str() {
                "error" => Some(Severity::Error),
                "warning" => Some(Severity::Warning),
                "off" => None,
                other => {
                    self.err(
                        &level.loc(),
                        format!("severity {other:?} for `{code}`: expected error, warning or off"),
                    );
                    continue;
                }
            };
            severity.insert(rule, sev);
        }
        severity
    }

    fn key_rules(&mut self, list: Vec<raw::RawKeyRule>) -> Vec<KeyRule> {
        list.into_iter().filter_map(|k| self.key_rule(k)).collect()
    }

    fn norms(&mut self, n: RawNorms) -> NormPolicy {
        NormPolicy {
            patterns: self.patterns(n.patterns.unwrap_or_default()),
            dtypes_loc: n.dtypes.as_ref().map(Located::loc).unwrap_or_default(),
            dtypes: n.dtypes.map(|d| self.dtypes(&d)).unwrap_or_default(),
            envelopes: self.envelopes(n.rms.unwrap_or_default()),
        }
    }

    fn projections(&mut self, p: RawProjections) -> ProjectionPolicy {
        ProjectionPolicy {
            patterns: self.patterns(p.patterns.unwrap_or_default()),
            envelopes: self.envelopes(p.rms.unwrap_or_default()),
            max_spread_in_layer: p.max_spread_in_layer.map(|s| self.spread(s)),
            max_spread_across_layers: p.max_spread_across_layers.map(|s| self.spread(s)),
        }
    }

    fn tensors(&mut self, t: RawTensors) -> TensorPolicy {
        TensorPolicy {
            loc: t.finite.as_ref().map(Located::loc).unwrap_or_default(),
            finite: t.finite.is_none_or(|b| b.value),
            nonzero: t.nonzero.is_none_or(|b| b.value),
            nonconstant: t.nonconstant.is_none_or(|b| b.value),
            dtypes: t
                .dtypes
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| self.dtype_rule(d))
                .collect(),
            count: t.count.map(|c| (c.value, c.loc())),
        }
    }

    fn dtype_rule(&mut self, d: RawDtypeRule) -> Option<DtypeRule> {
        let pattern = self.pattern(d.pattern)?;
        Some(DtypeRule {
            pattern,
            allowed: self.dtypes(&d.allowed),
            loc: d.allowed.loc(),
        })
    }

    fn fingerprints(
        &mut self,
        fp: RawFingerprint,
        base_dir: &Option<PathBuf>,
    ) -> Vec<(Fingerprint, Loc)> {
        let mut fingerprints = Vec::new();
        for e in fp.expected.unwrap_or_default() {
            if let Some(f) = self.fingerprint(&e) {
                fingerprints.push((f, e.loc()));
            }
        }
        if let Some(file) = fp.file {
            fingerprints.extend(self.fingerprint_file(&file, base_dir));
        }
        fingerprints
    }

    /// The fingerprints listed in `file`, one a line; blank lines and `#` comments skipped.
    fn fingerprint_file(
        &mut self,
        file: &Located<String>,
        base_dir: &Option<PathBuf>,
    ) -> Vec<(Fingerprint, Loc)> {
        let path = relative_to(base_dir, &file.value);
        let text = match crate::input::read_text_bounded(&path, 1 << 16, "fingerprint file") {
            Ok(text) => text,
            Err(e) => {
                self.err(&file.loc(), format!("cannot read fingerprint file {e}"));
                return Vec::new();
            }
        };
        let mut fingerprints = Vec::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            match line.parse::<Fingerprint>() {
                Ok(f) => fingerprints.push((f, file.loc())),
                Err(e) => self.err(&file.loc(), format!("{}: {e}", path.display())),
            }
        }
        fingerprints
    }

    fn probe(&mut self, p: RawProbe, base_dir: &Option<PathBuf>) -> ProbePolicy {
        let default_tokens = p.max_tokens.as_ref().map_or(32, |m| m.value);
        if let Some(m) = &p.max_tokens {
            self.max_tokens(m, "probe.max_tokens");
        }
        let min_word_share = match &p.min_word_share {
            Some(s) if !(0.0..=1.0).contains(&s.value) => {
                self.err(
                    &s.loc(),
                    format!("probe.min_word_share {} must be between 0 and 1", s.value),
                );
                0.6
            }
            Some(s) => s.value,
            None => 0.6,
        };
        let max_seconds = match &p.max_seconds {
            Some(s) if !(s.value > 0.0 && s.value <= 86_400.0) => {
                self.err(
                    &s.loc(),
                    format!(
                        "probe.max_seconds {} must be above 0 and at most 86400",
                        s.value
                    ),
                );
                DEFAULT_PROBE_SECONDS
            }
            Some(s) => s.value,
            None => DEFAULT_PROBE_SECONDS,
        };
        let prompts = p
            .prompts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pr| self.prompt(pr, default_tokens))
            .collect();
        ProbePolicy {
            loc: p.enabled.as_ref().map(Located::loc).unwrap_or_default(),
            enabled: p.enabled.is_none_or(|e| e.value),
            prompts,
            max_tokens: default_tokens,
            min_word_share,
            max_seconds,
            baseline: p.baseline.map(|b| relative_to(base_dir, &b.value)),
        }
    }

    /// The `quality:` section (`None` when disabled).
    fn quality(&mut self, q: RawQuality, base_dir: &Option<PathBuf>) -> Option<QualityPolicy> {
        let loc = q
            .enabled
            .as_ref()
            .map(Located::loc)
            .or_else(|| q.text.as_ref().map(Located::loc))
            .unwrap_or_default();
        if q.enabled.as_ref().is_some_and(|e| !e.value) {
            return None;
        }
        let mut positive = |f: &Option<Located<f64>>, what: &str| {
            f.as_ref().and_then(|v| {
                if v.value.is_finite() && v.value > 0.0 {
                    Some(v.value)
                } else {
                    self.err(
                        &v.loc(),
                        format!("quality.{what} {} must be a positive number", v.value),
                    );
                    None
                }
            })
        };
        let max_perplexity = positive(&q.max_perplexity, "max_perplexity");
        let max_mean_kld = positive(&q.max_mean_kld, "max_mean_kld");
        let max_p99_kld = positive(&q.max_p99_kld, "max_p99_kld");
        let min_same_top1 = q.min_same_top1.as_ref().and_then(|v| {
            if (0.0..=1.0).contains(&v.value) {
                Some(v.value)
            } else {
                self.err(
                    &v.loc(),
                    format!("quality.min_same_top1 {} must be between 0 and 1", v.value),
                );
                None
            }
        });
        let fingerprint = q
            .base_fingerprint
            .as_ref()
            .and_then(|f| self.fingerprint(f));
        let base = match (&q.base, &q.base_record) {
            (Some(b), Some(r)) => {
                self.err(
                    &r.loc(),
                    format!(
                        "quality: give `base` ({}) or `base_record`, not both",
                        b.value
                    ),
                );
                QualityBase::None
            }
            (Some(b), None) => QualityBase::Model(relative_to(base_dir, &b.value)),
            (None, Some(r)) => QualityBase::Record(relative_to(base_dir, &r.value)),
            (None, None) => QualityBase::None,
        };
        if let (QualityBase::None, Some(f)) = (&base, &q.base_fingerprint) {
            self.err(
                &f.loc(),
                "quality.base_fingerprint pins a base: give `quality.base` or `quality.base_record`"
                    .into(),
            );
        }
        let bounds = [&q.max_mean_kld, &q.max_p99_kld, &q.min_same_top1];
        if base == QualityBase::None {
            for at in bounds.iter().filter_map(|b| b.as_ref().map(Located::loc)) {
                self.err(
                    &at,
                    "a KL or top-1 bound needs `quality.base` or `quality.base_record`".into(),
                );
            }
        }
        let ctx = match &q.ctx {
            Some(c) if !(16..=1 << 20).contains(&c.value) => {
                self.err(
                    &c.loc(),
                    format!("quality.ctx {} must be between 16 and 1048576", c.value),
                );
                DEFAULT_QUALITY_CTX
            }
            Some(c) => c.value as usize,
            None => DEFAULT_QUALITY_CTX,
        };
        Some(QualityPolicy {
            text: q.text.map(|t| relative_to(base_dir, &t.value)),
            base,
            base_fingerprint: fingerprint,
            max_perplexity,
            max_mean_kld,
            max_p99_kld,
            min_same_top1,
            ctx,
            loc,
        })
    }

    /// A token budget, the probe's default (`what` = `probe.max_tokens`) or a prompt's.
    fn max_tokens(&mut self, m: &Located<u64>, what: &str) {
        if m.value == 0 || m.value > 4096 {
            self.err(
                &m.loc(),
                format!("{what} {} must be between 1 and 4096", m.value),
            );
        }
    }

    fn prompt(&mut self, pr: RawPrompt, default_tokens: u64) -> Option<Prompt> {
        if pr.text.value.trim().is_empty() {
            self.err(&pr.text.loc(), "an empty probe prompt".into());
            return None;
        }
        if let Some(m) = &pr.max_tokens {
            self.max_tokens(m, "max_tokens");
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
            expect_regex: pr.expect_regex.and_then(|r| self.regex(&r, false)),
        })
    }

    fn chat_template(&mut self, t: RawChatTemplate, base_dir: &Option<PathBuf>) -> TemplatePolicy {
        let mut policy = TemplatePolicy::default();
        if let Some(r) = &t.required {
            policy.required = r.value;
            policy.required_loc = r.loc();
        }
        if let Some(m) = &t.max_bytes {
            if m.value == 0 {
                self.err(
                    &m.loc(),
                    "chat_template.max_bytes must be at least 1".into(),
                );
            }
            policy.max_bytes = m.value;
            policy.max_bytes_loc = m.loc();
        }
        for h in t.allow_sha256.unwrap_or_default() {
            let hex = h.value.trim().to_ascii_lowercase();
            let hex = hex.strip_prefix("sha256-").unwrap_or(&hex).to_string();
            if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                policy.allow_sha256.push(hex);
            } else {
                self.err(
                    &h.loc(),
                    format!("{:?} is not a SHA-256 (64 hex digits)", h.value),
                );
            }
        }
        if let Some(file) = &t.expect_file {
            policy.expected = self.expected_template(file, base_dir);
        }
        policy.conversations = t
            .conversations
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| self.conversation(c))
            .collect();
        policy
    }

    /// The template `expect_file` names: a `tokenizer_config.json`'s `chat_template`
    /// (a string, or the entry named `default` of a list), or the file's text.
    fn expected_template(
        &mut self,
        file: &Located<String>,
        base_dir: &Option<PathBuf>,
    ) -> Option<ExpectedTemplate> {
        let path = relative_to(base_dir, &file.value);
        let text = match crate::input::read_text_bounded(&path, 1 << 24, "expected template") {
            Ok(text) => text,
            Err(e) => {
                self.err(
                    &file.loc(),
                    format!("cannot read the expected template {e}"),
                );
                return None;
            }
        };
        let is_json = path.extension().is_some_and(|e| e == "json");
        let text = if is_json {
            let json: serde_json::Value = match serde_json::from_str(&text) {
                Ok(j) => j,
                Err(e) => {
                    self.err(&file.loc(), format!("{}: {e}", path.display()));
                    return None;
                }
            };
            let template = match &json["chat_template"] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Array(list) => list
                    .iter()
                    .find(|t| t["name"] == "default")
                    .and_then(|t| t["template"].as_str())
                    .map(str::to_string),
                _ => None,
            };
            match template {
                Some(t) => t,
                None => {
                    self.err(
                        &file.loc(),
                        format!("{}: no `chat_template` string in it", path.display()),
                    );
                    return None;
                }
            }
        } else {
            text
        };
        Some(ExpectedTemplate {
            path,
            text,
            loc: file.loc(),
        })
    }

    fn conversation(&mut self, c: super::raw::RawConversation) -> Option<PolicyConversation> {
        if c.name.value.trim().is_empty() {
            self.err(&c.name.loc(), "a conversation needs a name".into());
        }
        if c.messages.value.is_empty() {
            self.err(
                &c.messages.loc(),
                "a conversation needs at least one message".into(),
            );
            return None;
        }
        for m in &c.messages.value {
            if !m.is_object() || !m.get("role").is_some_and(serde_json::Value::is_string) {
                self.err(
                    &c.messages.loc(),
                    format!(
                        "conversation {:?}: every message is a map with a `role`",
                        c.name.value
                    ),
                );
                return None;
            }
        }
        Some(PolicyConversation {
            loc: c.name.loc(),
            name: c.name.value,
            template: c.template.map(|t| t.value),
            messages: serde_json::Value::Array(c.messages.value),
            tools: c.tools.map(serde_json::Value::Array),
            add_generation_prompt: c.add_generation_prompt.is_none_or(|a| a.value),
            variables: c.variables.unwrap_or_default(),
            expect_contains: c
                .expect_contains
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.value)
                .collect(),
        })
    }

    fn baseline(&mut self, b: RawBaseline, base_dir: &Option<PathBuf>) -> BaselinePolicy {
        let set = |x: &Option<Located<bool>>| x.as_ref().filter(|x| x.value).map(Located::loc);
        // A bound that turns a check on needs a file; `false` only turns one off.
        let bound_given = b.keys_must_match.is_some()
            || b.max_relative_change.is_some()
            || set(&b.dtypes_must_match).is_some()
            || set(&b.template_must_match).is_some()
            || set(&b.tensors_must_match).is_some();
        let loc = b.file.as_ref().map(Located::loc).unwrap_or_default();
        let file = match &b.file {
            Some(f) if f.value.trim().is_empty() => {
                self.err(&f.loc(), "baseline.file is empty".into());
                None
            }
            Some(f) => Some(relative_to(base_dir, &f.value)),
            None => None,
        };
        if b.file.is_none() && bound_given {
            let at = [
                &b.dtypes_must_match,
                &b.template_must_match,
                &b.tensors_must_match,
            ]
            .into_iter()
            .flatten()
            .map(Located::loc)
            .next()
            .or_else(|| b.keys_must_match.iter().flatten().map(Located::loc).next())
            .or_else(|| {
                b.max_relative_change
                    .iter()
                    .flatten()
                    .map(|c| c.pattern.loc())
                    .next()
            })
            .unwrap_or_default();
            self.err(
                &at,
                "baseline bounds need `baseline.file`: the previous release (a GGUF file or a summary recorded with `check --record-baseline`)".into(),
            );
        }
        let keys_must_match = b
            .keys_must_match
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| {
                let loc = k.loc();
                self.pattern(k).map(|p| (p, loc))
            })
            .collect();
        let max_relative_change = b
            .max_relative_change
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| {
                if !(c.max.value.is_finite() && c.max.value >= 0.0) {
                    self.err(
                        &c.max.loc(),
                        format!(
                            "max_relative_change for {:?}: {} is not a finite number ≥ 0",
                            c.pattern.value, c.max.value
                        ),
                    );
                }
                let loc = c.max.loc();
                let max = c.max.value;
                self.pattern(c.pattern)
                    .map(|pattern| ChangeBound { pattern, max, loc })
            })
            .collect();
        BaselinePolicy {
            file,
            keys_must_match,
            max_relative_change,
            dtypes_must_match: set(&b.dtypes_must_match),
            template_must_match: set(&b.template_must_match),
            tensors_must_match: b.tensors_must_match.as_ref().is_none_or(|t| t.value),
            loc,
        }
    }

    fn waivers(&mut self, list: Vec<RawWaiver>) -> Vec<Waiver> {
        list.into_iter().filter_map(|w| self.waiver(w)).collect()
    }

    fn waiver(&mut self, w: RawWaiver) -> Option<Waiver> {
        let rule = self.rule(&w.rule.value, &w.rule.loc());
        let target = self.pattern(w.target.clone());
        let expires = parse_date(&w.expires.value);
        if expires.is_none() {
            self.err(
                &w.expires.loc(),
                format!(
                    "waiver expiry {:?} is not a date (YYYY-MM-DD)",
                    w.expires.value
                ),
            );
        }
        if w.reason.value.trim().is_empty() {
            self.err(&w.reason.loc(), "a waiver needs a reason".into());
        }
        let fingerprint = match &w.fingerprint {
            Some(f) => Some(self.fingerprint(f)?),
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
    }
}

impl Validator {
    fn err(&mut self, loc: &Loc, message: String) {
        self.errors.push(PolicyError {
            loc: loc.clone(),
            message,
        });
    }

    fn rule(&mut self, code: &str, loc: &Loc) -> Option<Rule> {
        match code.parse::<Rule>() {
            Ok(r) => Some(r),
            Err(_) => {
                let codes: Vec<&str> = RULES.iter().map(|r| r.code).collect();
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
