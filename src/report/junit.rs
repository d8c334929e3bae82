//! JUnit XML via the `junit-report` crate: one testsuite per rule family, one testcase
//! per rule × subject (classname = rule code, name = subject); failures carry the
//! message and the value against its bound. Notes and waived failures are passing
//! testcases with the detail in system-out, so test views stay green for them. Each
//! suite's system-out names the model, its fingerprint, the policy and the verdict.

use crate::registry::Rule;
use std::collections::BTreeMap;

use junit_report::{Duration, ReportBuilder, TestCase, TestSuiteBuilder};

use super::Report;
use crate::rules::Severity;

pub fn render(r: &Report) -> Result<String, std::io::Error> {
    let mut families: BTreeMap<&str, Vec<TestCase>> = BTreeMap::new();
    for f in &r.findings {
        let family = f.rule.family().as_str();
        let detail = match (&f.value, &f.bound) {
            (Some(v), Some(b)) => format!("{}\nvalue: {v}\nbound: {b}\nfix: {}", f.message, f.hint),
            _ => format!("{}\nfix: {}", f.message, f.hint),
        };
        let case = if f.passed || f.waived.is_some() || f.severity == Severity::Note {
            let mut c = TestCase::success(&f.subject, Duration::ZERO);
            if let Some(reason) = &f.waived {
                c.set_system_out(&format!("waived: {reason}\n{detail}"));
            } else if !f.passed {
                c.set_system_out(&detail);
            }
            c
        } else {
            TestCase::failure(&f.subject, Duration::ZERO, f.severity.name(), &detail)
        };
        let mut case = case;
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
    // Which file and policy the suites are about (junit-report has no <properties>).
    let about = format!(
        "model: {}\nfingerprint: {}\npolicy: {}\nverdict: {}\n",
        r.model,
        r.fingerprint,
        r.policy,
        r.verdict_word()
    );
    let mut report = ReportBuilder::new();
    for (family, cases) in families {
        let suite = TestSuiteBuilder::new(&format!("gguf-gate.{family}"))
            .add_testcases(cases)
            .set_system_out(&about)
            .build();
        report.add_testsuite(suite);
    }
    let mut out = Vec::new();
    report
        .build()
        .write_xml(&mut out)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
