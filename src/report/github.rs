//! GitHub Actions output: `::error`/`::warning`/`::notice` workflow commands inside a
//! `::group::`, with the escaping the runner requires (`%`, CR, LF in messages; also `:`
//! and `,` in properties); a Markdown job summary; and step outputs (`passed`,
//! `fingerprint`, report paths) appended to `$GITHUB_OUTPUT`.

use std::fmt::Write as _;

use super::Report;
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
pub fn annotations(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "::group::{}",
        escape_data(&format!("gguf-gate check {}", r.model))
    );
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
            escape_property(&format!("{} {}", f.rule, f.subject))
        )];
        if let Some(loc) = f
            .loc
            .as_ref()
            .filter(|l| l.line > 0 && !l.file.starts_with("preset:"))
        {
            props.push(format!("file={}", escape_property(&loc.file)));
            props.push(format!("line={}", loc.line));
            props.push(format!("col={}", loc.column.max(1)));
        }
        let mut message = format!("{}: {}", f.subject, f.message);
        if let (Some(v), Some(b)) = (&f.value, &f.bound) {
            message.push_str(&format!(" (value {v}, bound {b})"));
        }
        message.push_str(&format!("\nfix: {}", f.hint));
        let _ = writeln!(
            out,
            "::{command} {}::{}",
            props.join(","),
            escape_data(&message)
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

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown job summary.
pub fn summary(r: &Report) -> String {
    let mut out = String::new();
    let icon = if r.passed { "✅" } else { "❌" };
    let (errors, warnings, notes) = r.counts();
    let _ = writeln!(out, "## {icon} gguf-gate: {}\n", r.verdict_word());
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| model | `{}` |", cell(&r.model));
    let _ = writeln!(out, "| fingerprint | `{}` |", r.fingerprint);
    let _ = writeln!(
        out,
        "| policy | {}{} |",
        cell(&r.policy),
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
                "| {sev} | `{}` | `{}` | {} | {} | {} |",
                f.rule,
                cell(&f.subject),
                cell(f.value.as_deref().unwrap_or("")),
                cell(f.bound.as_deref().unwrap_or("")),
                cell(&f.message)
            );
        }
    }
    out
}

/// `key=value` lines for `$GITHUB_OUTPUT` (values here never contain newlines).
pub fn outputs(r: &Report, reports: &[(&str, Option<&str>)]) -> String {
    let mut out = format!("passed={}\nfingerprint={}\n", r.passed, r.fingerprint);
    for (name, path) in reports {
        if let Some(p) = path {
            let _ = writeln!(out, "{name}={}", p.replace(['\n', '\r'], " "));
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
