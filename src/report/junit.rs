//! JUnit XML via the `junit-report` crate: one testsuite per rule family, one testcase
//! per rule × subject (classname = rule code, name = subject); failures carry the
//! message and the value against its bound. Notes and waived failures are passing
//! testcases with the detail in system-out, so test views stay green for them. Each
//! suite's system-out names the model, its fingerprint, the policy and the verdict; with
//! several models each has its own suites. Model strings pass through `escape::visible`
//! (a control character is not even valid in XML 1.0).

use crate::registry::Rule;
use std::collections::BTreeMap;

use junit_report::{Duration, ReportBuilder, TestCase, TestSuiteBuilder};

use super::Report;
use crate::escape::visible;
use crate::rules::Severity;

/// JUnit XML for one or more reports (with several, each suite name ends in the model).
pub fn render(reports: &[Report]) -> Result<String, std::io::Error> {
    let mut report = ReportBuilder::new();
    for r in reports {
        let suffix = if reports.len() > 1 {
            format!(" ({})", visible(&r.model))
        } else {
            String::new()
        };
        for (family, cases) in cases_by_family(r) {
            let suite = TestSuiteBuilder::new(&format!("gguf-gate.{family}{suffix}"))
                .add_testcases(cases)
                .set_system_out(&about(r))
                .build();
            report.add_testsuite(suite);
        }
    }
    let mut out = Vec::new();
    report
        .build()
        .write_xml(&mut out)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Which file and policy the suites are about (junit-report has no <properties>).
fn about(r: &Report) -> String {
    format!(
        "model: {}\nfingerprint: {}\npolicy: {}\nverdict: {}\n",
        visible(&r.model),
        r.fingerprint,
        visible(&r.policy),
        r.verdict_word()
    )
}

/// One testcase per check, grouped by rule family.
fn cases_by_family(r: &Report) -> BTreeMap<&'static str, Vec<TestCase>> {
    let mut families: BTreeMap<&str, Vec<TestCase>> = BTreeMap::new();
    for f in &r.findings {
        let family = f.rule.family().as_str();
        let message = match f.place() {
            Some(place) => format!("{}\nat: {}", visible(&f.message), visible(&place)),
            None => visible(&f.message).into_owned(),
        };
        let detail = match (&f.value, &f.bound) {
            (Some(v), Some(b)) => format!(
                "{message}\nvalue: {}\nbound: {}\nfix: {}",
                visible(v),
                visible(b),
                f.hint
            ),
            _ => format!("{message}\nfix: {}", f.hint),
        };
        let subject = visible(&f.subject);
        let mut case = if f.passed || f.waived.is_some() || f.severity == Severity::Note {
            let mut c = TestCase::success(&subject, Duration::ZERO);
            if let Some(reason) = &f.waived {
                c.set_system_out(&format!("waived: {}\n{detail}", visible(reason)));
            } else if !f.passed {
                c.set_system_out(&detail);
            }
            c
        } else {
            TestCase::failure(&subject, Duration::ZERO, f.severity.name(), &detail)
        };
        case.set_classname(f.rule.as_str());
        if f.rule == Rule::ProbeText {
            if let Some(p) = r.probe.prompts.iter().find(|p| {
                f.subject
                    .contains(p.prompt.chars().take(40).collect::<String>().as_str())
            }) {
                case.set_system_out(&format!(
                    "prompt tokens: {:?}\ntokens: {:?}\ntext: {:?}\n{:.1} tok/s",
                    p.prompt_tokens, p.tokens, p.text, p.decode_tok_s
                ));
            }
        }
        families.entry(family).or_default().push(case);
    }
    families
}
