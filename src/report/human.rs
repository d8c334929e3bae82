//! The human report: failures first, with their numbers, then a one-line verdict.
//! Coloured when writing to a terminal, plain otherwise.

use std::fmt::Write as _;

use super::Report;
use crate::rules::Severity;

pub fn render(r: &Report, colour: bool) -> String {
    let paint = |code: &str, s: &str| {
        if colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "gguf-gate check {}", r.model);
    let _ = writeln!(
        out,
        "policy: {}{}{}",
        r.policy,
        r.preset
            .as_deref()
            .map_or(String::new(), |p| format!(" (preset {p})")),
        if r.strict { ", strict" } else { "" }
    );
    let _ = writeln!(out, "fingerprint: {}", r.fingerprint);
    for p in &r.probe.prompts {
        let _ = writeln!(
            out,
            "probe: {:?} -> {:?} ({:.0}% English, {:.1} tok/s)",
            p.prompt,
            p.text,
            100.0 * p.word_share,
            p.decode_tok_s
        );
    }
    let failures = r.failures();
    if !failures.is_empty() {
        let _ = writeln!(out);
    }
    for f in &failures {
        let (label, code) = match (f.waived.is_some(), f.severity) {
            (true, _) => ("waived", "2"),
            (false, Severity::Error) => ("error", "1;31"),
            (false, Severity::Warning) => ("warning", "1;33"),
            (false, Severity::Note) => ("note", "36"),
        };
        let _ = writeln!(
            out,
            "{} [{}] {}: {}",
            paint(code, label),
            f.rule,
            f.subject,
            f.message
        );
        if let (Some(v), Some(b)) = (&f.value, &f.bound) {
            let _ = writeln!(out, "    value {v}, bound {b}");
        }
        if let Some(reason) = &f.waived {
            let _ = writeln!(out, "    waiver: {reason}");
        } else if f.severity != Severity::Note {
            let _ = writeln!(out, "    fix: {}", f.hint);
        }
        if let Some(loc) = &f.loc {
            if loc.line > 0 {
                let _ = writeln!(out, "    set at {loc}");
            }
        }
    }
    let (errors, warnings, notes) = r.counts();
    let checks = r.findings.len();
    let verdict = if r.passed {
        paint("1;32", "PASSED")
    } else {
        paint("1;31", "FAILED")
    };
    let _ = writeln!(
        out,
        "\n{verdict}: {checks} checks, {errors} error(s), {warnings} warning(s), {notes} note(s) (fails at {}) in {:.0} ms",
        r.fail_level.name(),
        r.timings.total_ms
    );
    out
}
