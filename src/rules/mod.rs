//! The rules: one module per family, each reading the model (header, statistics,
//! fingerprint, the diff from a baseline) and the policy and pushing checks into the `Sink`. Rules never know
//! which report format is in use; severities, strict mode and waivers are applied by
//! the sink, and the verdict is computed by one small function.

mod baseline;
mod charset;
pub mod finding;
mod fingerprint;
mod metadata;
mod norms;
mod probe;
mod projections;
mod quality;
pub mod template;
mod tensors;

use std::collections::HashMap;

use crate::fingerprint::Fingerprint;
use crate::gguf::Header;
use crate::policy::Policy;
use crate::stats::{StatsError, TensorStats};

pub use crate::registry::{Rule, Severity};
pub use finding::{today, Excerpt, Finding, Sink, Span};

/// What the rules look at.
pub struct Context<'a> {
    pub header: &'a Header,
    pub policy: &'a Policy,
    pub fingerprint: Fingerprint,
    /// Statistics by tensor name.
    pub stats: HashMap<&'a str, &'a TensorStats>,
    /// Tensors whose values could not be decoded.
    pub undecodable: &'a [StatsError],
    /// The diff from the policy's baseline (the previous release) to this model, when the
    /// policy names one.
    pub baseline: Option<&'a crate::diff::Diff>,
}

/// Run every rule family; the probe runs separately (it needs the inference engine).
pub fn check_all(ctx: &Context<'_>, sink: &mut Sink<'_>) {
    if ctx.policy.generic_fallback {
        let arch = ctx.header.architecture().unwrap_or("(none)");
        sink.push(finding::Check {
            rule: Rule::PolicyGeneric,
            subject: arch,
            passed: false,
            message: format!(
                "no preset for architecture {arch:?}: only generic rules (dtype, finite, zero, constant, structure) ran"
            ),
            value: None,
            bound: None,
            loc: None,
        });
    }
    charset::check(ctx, sink);
    metadata::check(ctx, sink);
    norms::check(ctx, sink);
    projections::check(ctx, sink);
    tensors::check(ctx, sink);
    fingerprint::check(ctx, sink);
    template::check(ctx, sink);
    baseline::check(ctx, sink);
    sink.check_waivers();
}

pub use probe::{check as check_probe, ProbeReport};
pub use quality::check as check_quality;

/// The verdict: passed unless some unwaived failure reaches `fail_level`.
pub fn passed(findings: &[Finding], fail_level: Severity) -> bool {
    !findings
        .iter()
        .any(|f| f.is_failure() && f.severity >= fail_level)
}

/// Check a tensor's RMS against the first envelope whose pattern matches its name
/// (`None` when no envelope applies).
pub(crate) fn rms_check<'a>(
    rule: Rule,
    envelopes: &[crate::policy::Envelope],
    name: &'a str,
    rms: f64,
) -> Option<finding::Check<'a>> {
    let env = envelopes
        .iter()
        .find(|e| crate::glob::glob_match(&e.pattern, name))?;
    let ok =
        rms.is_finite() && env.min.is_none_or(|m| rms >= m) && env.max.is_none_or(|m| rms <= m);
    let bound = format!(
        "[{}, {}]",
        env.min.map_or("-".into(), num),
        env.max.map_or("-".into(), num)
    );
    Some(finding::Check {
        rule,
        subject: name,
        passed: ok,
        message: if ok {
            format!("RMS {} within {bound}", num(rms))
        } else {
            format!(
                "RMS {} outside the envelope {bound} (pattern {:?})",
                num(rms),
                env.pattern
            )
        },
        value: Some(num(rms)),
        bound: Some(bound),
        loc: Some(env.loc.clone()),
    })
}

/// `blk.N.` -> N.
pub fn layer_of(name: &str) -> Option<u32> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// A finite number in reports (shared with `diff`, which lives below the rules).
pub use crate::stats::num;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_respects_fail_level_and_waivers() {
        let f = |severity, passed, waived: Option<&str>| Finding {
            rule: Rule::NormRms,
            severity,
            passed,
            subject: "x".into(),
            message: String::new(),
            value: None,
            bound: None,
            hint: "",
            loc: None,
            waived: waived.map(String::from),
            span: None,
            excerpt: None,
        };
        assert!(passed(&[f(Severity::Error, true, None)], Severity::Error));
        assert!(!passed(&[f(Severity::Error, false, None)], Severity::Error));
        assert!(passed(
            &[f(Severity::Warning, false, None)],
            Severity::Error
        ));
        assert!(!passed(
            &[f(Severity::Warning, false, None)],
            Severity::Warning
        ));
        assert!(passed(
            &[f(Severity::Error, false, Some("ok"))],
            Severity::Error
        ));
        assert!(passed(&[f(Severity::Note, false, None)], Severity::Warning));
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(layer_of("blk.12.attn_q.weight"), Some(12));
        assert_eq!(layer_of("output.weight"), None);
        assert_eq!(num(0.0399), "0.0399");
        assert_eq!(num(1830.5), "1830.5");
        assert_eq!(num(1.5e-5), "1.500e-5");
    }
}
