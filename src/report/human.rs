//! The human report: failures first, with their numbers, then a one-line verdict.
//! Coloured when asked (a terminal without `NO_COLOR`, or `--color always`), plain
//! otherwise; `quiet` keeps only the failures and the verdict. Every string from the
//! model (names, probe text) is passed through `escape::visible`, so no control, bidi or
//! zero-width character reaches the terminal or a log.

use std::fmt::Write as _;

use super::Report;
use crate::escape::visible;
use crate::rules::Severity;

/// How the human report looks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
    pub quiet: bool,
}

pub fn render(r: &Report, style: Style) -> String {
    let paint = |code: &str, s: &str| {
        if style.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    if !style.quiet {
        header(&mut out, r);
    }
    let failures = r.failures();
    if !failures.is_empty() && !style.quiet {
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
            visible(&f.subject),
            visible(&f.message)
        );
        if let (Some(v), Some(b)) = (&f.value, &f.bound) {
            let _ = writeln!(out, "    value {}, bound {}", visible(v), visible(b));
        }
        if let Some(place) = f.place() {
            let _ = writeln!(out, "    at {}", visible(&place));
        }
        if let Some(reason) = &f.waived {
            let _ = writeln!(out, "    waiver: {}", visible(reason));
        } else if f.severity != Severity::Note {
            let _ = writeln!(out, "    fix: {}", f.hint);
        }
        if let Some(loc) = &f.loc {
            if loc.line > 0 {
                let _ = writeln!(out, "    set at {}", visible(&loc.to_string()));
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
    let lead = if style.quiet {
        format!("{}: ", visible(&r.model))
    } else {
        "\n".to_string()
    };
    let _ = writeln!(
        out,
        "{lead}{verdict}: {checks} checks, {errors} error(s), {warnings} warning(s), {notes} note(s) (fails at {}) in {:.0} ms",
        r.fail_level.name(),
        r.timings.total_ms
    );
    out
}

/// The model, policy, fingerprint and probe lines.
fn header(out: &mut String, r: &Report) {
    let _ = writeln!(out, "gguf-gate check {}", visible(&r.model));
    let _ = writeln!(
        out,
        "policy: {}{}{}",
        visible(&r.policy),
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
    if let Some(q) = &r.quality {
        let _ = write!(
            out,
            "quality: perplexity {} over {} tokens",
            crate::rules::num(q.perplexity),
            q.scored
        );
        if let Some(b) = &q.base {
            let _ = write!(
                out,
                "; vs base: mean KLD {}, p99 {}, same top-1 {}%, perplexity ratio {}",
                crate::rules::num(b.mean_kld),
                crate::rules::num(b.p99_kld),
                crate::rules::num(100.0 * b.same_top1),
                crate::rules::num(b.perplexity_ratio)
            );
        }
        let _ = writeln!(out);
    }
}
