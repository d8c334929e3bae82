//! Findings and the sink the rules push them into. Every check a rule makes is
//! recorded — passed or failed — so JUnit can list passing testcases too. The sink, not
//! the rules, applies the policy's severity overrides, strict mode and waivers.

use serde::Serialize;

use crate::fingerprint::Fingerprint;
use crate::glob::glob_match;
use crate::policy::{Loc, Policy};
use crate::registry::{Rule, Severity};

/// The result of one check of one rule on one subject.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub passed: bool,
    /// The tensor or key the check is about (or the file, for file-wide rules).
    pub subject: String,
    pub message: String,
    /// The measured value, when there is one.
    pub value: Option<String>,
    /// The bound it was held to.
    pub bound: Option<String>,
    pub hint: &'static str,
    /// Where the policy set the bound.
    #[serde(skip)]
    pub loc: Option<Loc>,
    /// The waiver's reason, when a waiver accepted this failure.
    pub waived: Option<String>,
    /// Where in the model file the subject lies (a tensor's data, a key-value pair),
    /// when it is one: set by the gate for failures, used by SARIF regions.
    #[serde(skip)]
    pub span: Option<Span>,
    /// Where inside a text value (a chat template) the finding is, when it is.
    pub excerpt: Option<Excerpt>,
}

/// A place inside a text the model file holds (a chat template): 1-based line and
/// column, and the text there. Model text: escape it before showing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Excerpt {
    pub line: usize,
    pub column: usize,
    pub text: String,
}

impl std::fmt::Display for Excerpt {
    /// `line:column: text`, the text escaped.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}",
            self.line,
            self.column,
            crate::escape::visible(&self.text)
        )
    }
}

/// A byte range of the model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: u64,
    pub length: u64,
}

impl Finding {
    /// A failure that counts against the verdict.
    pub fn is_failure(&self) -> bool {
        !self.passed && self.waived.is_none()
    }

    /// `line:column: text` inside the template, unescaped (reports escape it).
    pub fn place(&self) -> Option<String> {
        self.excerpt
            .as_ref()
            .map(|e| format!("{}:{}: {}", e.line, e.column, e.text))
    }
}

/// What a rule reports about one check.
pub struct Check<'a> {
    pub rule: Rule,
    pub subject: &'a str,
    pub passed: bool,
    pub message: String,
    pub value: Option<String>,
    pub bound: Option<String>,
    pub loc: Option<Loc>,
}

/// Collects findings, applying severities, strict mode and waivers.
pub struct Sink<'a> {
    policy: &'a Policy,
    fingerprint: Fingerprint,
    today: (i32, u32, u32),
    pub findings: Vec<Finding>,
}

impl<'a> Sink<'a> {
    pub fn new(policy: &'a Policy, fingerprint: Fingerprint, today: (i32, u32, u32)) -> Sink<'a> {
        Sink {
            policy,
            fingerprint,
            today,
            findings: Vec::new(),
        }
    }

    /// Whether checks of `rule` are recorded at all (rules may skip work for `off` rules).
    pub fn enabled(&self, rule: Rule) -> bool {
        self.policy.severity_of(rule).is_some()
    }

    pub fn push(&mut self, check: Check<'_>) {
        self.push_at(check, None);
    }

    /// `push`, with the place inside a text value the check is about.
    pub fn push_at(&mut self, check: Check<'_>, excerpt: Option<Excerpt>) {
        let Some(severity) = self.policy.severity_of(check.rule) else {
            return;
        };
        let waived = if check.passed || self.policy.strict {
            None
        } else {
            self.waiver_for(check.rule, check.subject)
        };
        self.findings.push(Finding {
            rule: check.rule,
            severity,
            passed: check.passed,
            subject: check.subject.to_string(),
            message: check.message,
            value: check.value,
            bound: check.bound,
            hint: check.rule.info().hint,
            loc: check.loc,
            waived,
            span: None,
            excerpt,
        });
    }

    fn waiver_for(&self, rule: Rule, subject: &str) -> Option<String> {
        self.policy
            .waivers
            .iter()
            .find(|w| {
                w.rule == rule
                    && glob_match(&w.target, subject)
                    && w.expires >= self.today
                    && w.fingerprint.is_none_or(|f| f == self.fingerprint)
            })
            .map(|w| w.reason.clone())
    }

    /// Expired waivers are errors of their own.
    pub fn check_waivers(&mut self) {
        let policy = self.policy;
        for w in &policy.waivers {
            let (y, m, d) = w.expires;
            let expired = w.expires < self.today;
            self.push(Check {
                rule: Rule::PolicyWaiverExpired,
                subject: &w.target,
                passed: !expired,
                message: if expired {
                    format!(
                        "the waiver of `{}` for {:?} expired on {y:04}-{m:02}-{d:02}",
                        w.rule, w.target
                    )
                } else {
                    format!(
                        "the waiver of `{}` for {:?} is valid until {y:04}-{m:02}-{d:02}",
                        w.rule, w.target
                    )
                },
                value: Some(format!("{y:04}-{m:02}-{d:02}")),
                bound: None,
                loc: Some(w.loc.clone()),
            });
        }
    }
}

/// Today's date (UTC) as (year, month, day).
pub fn today() -> (i32, u32, u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_from_days((secs / 86_400) as i64)
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }
}
