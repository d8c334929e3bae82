//! GitHub Actions output: `::error`/`::warning`/`::notice` workflow commands inside a
//! `::group::`, with the escaping the runner requires (`%`, CR, LF in messages; also `:`
//! and `,` in properties) on top of `escape::visible` (no control, bidi or zero-width
//! character from the model reaches the log), placed on the model's repository-relative
//! path (`file=`, as SARIF places it; else the policy line); a Markdown job summary with
//! every model string escaped for Markdown; and step outputs (`passed`, `fingerprint`,
//! report paths) appended to `$GITHUB_OUTPUT`.

use std::fmt::Write as _;

use super::location::{Place, Root};
use super::Report;
use crate::escape::{markdown, markdown_code, visible};
use crate::rules::Severity;

/// Escape a workflow command's message.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a workflow command's property value.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The workflow commands for a report (annotations inside a group).
pub fn annotations(r: &Report, root: &Root) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "::group::{}",
        escape_data(&visible(&format!("gguf-gate check {}", r.model)))
    );
    let model = match root.place(&r.model_path) {
        Place::Inside { relative } => Some(relative),
        Place::Outside { .. } => None,
    };
    for f in r.failures() {
        if f.waived.is_some() {
            continue;
        }
        let command = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let mut props = vec![format!(
            "title={}",
            escape_property(&visible(&format!("{} {}", f.rule, f.subject)))
        )];
        let policy_line = f
            .loc
            .as_ref()
            .filter(|l| l.line > 0 && !l.file.starts_with("preset:"))
            .and_then(|l| match root.place(std::path::Path::new(&l.file)) {
                Place::Inside { relative } => Some((relative, l.line, l.column.max(1))),
                Place::Outside { .. } => None,
            });
        if let Some(file) = &model {
            props.push(format!("file={}", escape_property(file)));
            props.push("line=1".into());
        } else if let Some((file, line, col)) = policy_line {
            props.push(format!("file={}", escape_property(&file)));
            props.push(format!("line={line}"));
            props.push(format!("col={col}"));
        }
        let mut message = format!("{}: {}", f.subject, f.message);
        if let (Some(v), Some(b)) = (&f.value, &f.bound) {
            message.push_str(&format!(" (value {v}, bound {b})"));
        }
        if let Some(place) = f.place() {
            message.push_str(&format!(" at {place}"));
        }
        let _ = writeln!(
            out,
            "::{command} {}::{}",
            props.join(","),
            escape_data(&format!("{}\nfix: {}", visible(&message), f.hint))
        );
    }
    let (errors, warnings, _) = r.counts();
    let _ = writeln!(
        out,
        "gguf-gate: {} — {} error(s), {} warning(s), {}",
        r.verdict_word(),
        errors,
        warnings,
        r.fingerprint
    );
    let _ = writeln!(out, "::endgroup::");
    out
}

/// The Markdown job summary.
pub fn summary(r: &Report) -> String {
    let mut out = String::new();
    let icon = if r.passed { "✅" } else { "❌" };
    let (errors, warnings, notes) = r.counts();
    let _ = writeln!(out, "## {icon} gguf-gate: {}\n", r.verdict_word());
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| model | {} |", markdown_code(&r.model));
    let _ = writeln!(out, "| fingerprint | `{}` |", r.fingerprint);
    let _ = writeln!(
        out,
        "| policy | {}{} |",
        markdown(&r.policy),
        r.preset
            .as_deref()
            .map_or(String::new(), |p| format!(" (preset `{p}`)"))
    );
    let _ = writeln!(
        out,
        "| checks | {} ({errors} error(s), {warnings} warning(s), {notes} note(s)) |",
        r.findings.len()
    );
    let _ = writeln!(
        out,
        "| timings | scan {:.0} ms, rules {:.0} ms, probe {:.0} ms, total {:.0} ms |",
        r.timings.scan_ms, r.timings.rules_ms, r.timings.probe_ms, r.timings.total_ms
    );
    let failures = r.failures();
    if !failures.is_empty() {
        let _ = writeln!(
            out,
            "\n| severity | rule | subject | value | bound | message |\n|---|---|---|---|---|---|"
        );
        for f in failures {
            let sev = if f.waived.is_some() {
                "waived"
            } else {
                f.severity.name()
            };
            let _ = writeln!(
                out,
                "| {sev} | `{}` | {} | {} | {} | {} |",
                f.rule,
                markdown_code(&f.subject),
                markdown(f.value.as_deref().unwrap_or("")),
                markdown(f.bound.as_deref().unwrap_or("")),
                markdown(&f.message)
            );
        }
    }
    out.push_str(&super::plot::markdown(&r.series));
    out
}

/// `key=value` lines for `$GITHUB_OUTPUT` (values here never contain newlines): `passed`
/// (every model passed), `fingerprint` (space-separated with several models).
pub fn outputs(models: &[Report], reports: &[(&str, Option<&str>)]) -> String {
    let fingerprints: Vec<String> = models.iter().map(|r| r.fingerprint.to_string()).collect();
    let mut out = format!(
        "passed={}\nfingerprint={}\n",
        models.iter().all(|r| r.passed),
        fingerprints.join(" ")
    );
    for (name, path) in reports {
        if let Some(p) = path {
            let _ = writeln!(out, "{name}={}", visible(p));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_the_runner() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("blk.0:a,b%"), "blk.0%3Aa%2Cb%25");
    }
}
