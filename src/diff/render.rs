//! A [`Diff`] as text (a terminal or a CI log), Markdown (a GitHub job summary or a pull
//! request comment) and JSON (the documented shape, docs/diff.md). Every string that came
//! from a model — keys, values, tensor names, template lines — goes through
//! `escape::visible` (text) or `escape::markdown` / `escape::markdown_block` (Markdown);
//! JSON is escaped by serde_json and `escape::json_text` at the writer.

use std::fmt::Write as _;

use serde_json::{json, Value as Json};

use super::metadata::{Change, KeyDiff, TemplateDiff};
use super::record::{hex, Recorded};
use super::text;
use super::{Counts, Diff, TensorDiff, TensorFacts};
use crate::escape::{markdown, markdown_block, markdown_code, visible};
use crate::stats::num;

/// Version of the JSON document's shape (docs/diff.md).
pub const DIFF_JSON_VERSION: u32 = 1;
/// Changes listed in the ranked summary of the text and Markdown outputs.
pub const RANKED_SHOWN: usize = 25;
/// Changed tensors listed in the Markdown table.
pub const MARKDOWN_TENSORS: usize = 100;
/// Characters of a value shown in a summary line.
const VALUE_CHARS: usize = 80;

/// A value for a summary line: whole when short, else cut; digests by type, length, hash.
fn short(r: &Recorded) -> String {
    match r {
        Recorded::Value(v) => {
            let s = v.to_string();
            if s.chars().count() > VALUE_CHARS {
                let cut: String = s.chars().take(VALUE_CHARS).collect();
                format!("{cut}… ({} chars)", s.chars().count())
            } else {
                s
            }
        }
        Recorded::Digest(d) => {
            let len = match (d.len, d.ty.starts_with("array")) {
                (Some(n), true) => format!(" of {n}"),
                (Some(n), false) => format!(" of {n} bytes"),
                (None, _) => String::new(),
            };
            format!("<{}{len}, sha256 {}…>", d.ty, &hex(&d.sha256)[..12])
        }
    }
}

fn typed(r: &Recorded) -> String {
    format!("{} {}", r.type_name(), short(r))
}

/// What happened to a key, in words.
pub fn key_summary(k: &KeyDiff) -> String {
    match (k.change, &k.old, &k.new) {
        (Change::Added, _, Some(n)) => format!("added: {}", typed(n)),
        (Change::Removed, Some(o), _) => format!("removed (was {})", typed(o)),
        (Change::Changed, Some(o), Some(n)) if k.type_changed => {
            format!("{} → {}", typed(o), typed(n))
        }
        (Change::Changed, Some(o), Some(n)) => match &k.array {
            Some(a) => {
                let what = if k.key == "tokenizer.ggml.tokens" {
                    "tokens"
                } else {
                    "elements"
                };
                let mut s = format!(
                    "{}: {} → {} {what}: {} added, {} removed, {} changed",
                    o.type_name(),
                    a.old_len,
                    a.new_len,
                    a.added,
                    a.removed,
                    a.changed
                );
                if let Some(i) = a.first_difference {
                    let _ = write!(s, " (first difference at {i})");
                }
                s
            }
            None => format!("{} → {}", short(o), short(n)),
        },
        _ => "unchanged".into(),
    }
}

/// Lines added and removed by a template's hunks.
fn line_counts(t: &TemplateDiff) -> Option<(usize, usize)> {
    let hunks = t.hunks.as_ref()?;
    let count = |tag| {
        hunks
            .iter()
            .flat_map(|h| &h.lines)
            .filter(|l| l.tag == tag)
            .count()
    };
    Some((count('+'), count('-')))
}

/// What happened to a template, in words.
pub fn template_summary(t: &TemplateDiff) -> String {
    let bytes = |n: Option<u64>| n.map_or("?".into(), |n| n.to_string());
    match t.change {
        Change::Added => format!("added ({} bytes)", bytes(t.new_bytes)),
        Change::Removed => format!("removed (was {} bytes)", bytes(t.old_bytes)),
        Change::Unchanged => "unchanged".into(),
        Change::Changed => match line_counts(t) {
            Some((added, removed)) => format!(
                "changed: {} → {} bytes, {added} line(s) added, {removed} removed",
                bytes(t.old_bytes),
                bytes(t.new_bytes)
            ),
            None => format!(
                "changed: {} → {} bytes (a side's text is not recorded: no line diff)",
                bytes(t.old_bytes),
                bytes(t.new_bytes)
            ),
        },
    }
}

/// `576×49152` (ggml order, as `inspect` lists dims).
fn shape(dims: &[u64]) -> String {
    dims.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

fn facts(t: &TensorFacts) -> String {
    format!("{} {}", t.ty, shape(&t.dims))
}

/// What happened to a tensor, in words.
pub fn tensor_summary(t: &TensorDiff) -> String {
    let (o, n) = match (&t.old, &t.new) {
        (None, Some(n)) => return format!("added: {}", facts(n)),
        (Some(o), None) => return format!("removed (was {})", facts(o)),
        (Some(o), Some(n)) => (o, n),
        (None, None) => return String::new(),
    };
    if t.byte_identical {
        return "identical".into();
    }
    let mut parts = Vec::new();
    if t.dtype_changed {
        parts.push(format!("{} → {}", o.ty, n.ty));
    }
    if t.shape_changed {
        parts.push(format!("shape {} → {}", shape(&o.dims), shape(&n.dims)));
    }
    match (t.relative_change, t.rms_change) {
        (Some(r), _) => parts.push(format!("‖Δ‖/‖old‖ {}", num(r))),
        (None, Some(c)) => parts.push(format!("RMS change {:+.2}% (a lower bound)", c * 100.0)),
        (None, None) => {}
    }
    if let (Some(a), Some(b)) = (o.rms, n.rms) {
        parts.push(format!("RMS {} → {}", num(a), num(b)));
    }
    if t.nonfinite_changed > 0 {
        parts.push(format!(
            "{} NaN/Inf position(s) changed",
            t.nonfinite_changed
        ));
    }
    if parts.is_empty() {
        parts.push("bytes differ".into());
    }
    parts.join(", ")
}

fn side_line(label: &str, s: &super::SideInfo) -> String {
    format!(
        "{label}: {} ({}, GGUF v{}, {} bytes, {} keys, {} tensors{})",
        visible(&s.path),
        s.kind,
        s.gguf_version,
        s.bytes,
        s.keys,
        s.tensors,
        s.fingerprint
            .as_deref()
            .map_or(String::new(), |f| format!(", {f}"))
    )
}

fn counts_phrase(what: &str, c: Counts) -> String {
    format!(
        "{what}: {} changed, {} added, {} removed, {} unchanged",
        c.changed, c.added, c.removed, c.unchanged
    )
}

/// The verdict line: identical, or what differs.
fn verdict(d: &Diff) -> String {
    let (k, t, x) = (d.key_counts(), d.template_counts(), d.tensor_counts());
    if d.identical() {
        return format!(
            "identical: {} keys, {} template(s), {} tensors (every tensor byte-identical)",
            k.unchanged, t.unchanged, x.unchanged
        );
    }
    let dtype = d.tensors.iter().filter(|t| t.dtype_changed).count();
    let shape = d.tensors.iter().filter(|t| t.shape_changed).count();
    let mut parts = Vec::new();
    if !d.header.is_empty() {
        parts.push(format!("{} header field(s)", d.header.len()));
    }
    for (what, c) in [("key", k), ("template", t)] {
        if c.differing() > 0 {
            parts.push(format!("{} {what}(s)", c.differing()));
        }
    }
    if x.differing() > 0 {
        parts.push(format!(
            "{} tensor(s) ({} changed: {dtype} dtype, {shape} shape; {} added, {} removed)",
            x.differing(),
            x.changed,
            x.added,
            x.removed
        ));
    }
    format!("different: {}", parts.join(", "))
}

/// The text report.
pub fn to_text(d: &Diff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", side_line("old", &d.old));
    let _ = writeln!(out, "{}", side_line("new", &d.new));
    if !d.filter.is_empty() {
        let filters: Vec<String> = d.filter.iter().map(|f| visible(f).into_owned()).collect();
        let _ = writeln!(out, "filter: {}", filters.join(", "));
    }
    let _ = writeln!(out, "{}", verdict(d));
    if d.identical() {
        return out;
    }
    let ranked = d.ranked();
    let _ = writeln!(out, "\nchanges, most important first:");
    let width = ranked
        .iter()
        .take(RANKED_SHOWN)
        .map(|r| visible(&r.subject).chars().count())
        .max()
        .unwrap_or(0);
    for r in ranked.iter().take(RANKED_SHOWN) {
        let tier = r.tier.name();
        let _ = writeln!(
            out,
            "  {tier:<9} {:width$}  {}",
            visible(&r.subject),
            visible(&r.summary)
        );
    }
    if ranked.len() > RANKED_SHOWN {
        let _ = writeln!(out, "  … and {} more (below)", ranked.len() - RANKED_SHOWN);
    }
    for h in &d.header {
        let _ = writeln!(out, "\nheader: {} {} → {}", h.field, h.old, h.new);
    }
    text_keys(&mut out, d);
    text_templates(&mut out, d);
    text_tensors(&mut out, d);
    out
}

fn change_mark(c: Change) -> char {
    match c {
        Change::Added => '+',
        Change::Removed => '-',
        Change::Changed => '~',
        Change::Unchanged => ' ',
    }
}

fn text_keys(out: &mut String, d: &Diff) {
    let changed: Vec<&KeyDiff> = d
        .keys
        .iter()
        .filter(|k| k.change != Change::Unchanged)
        .collect();
    if changed.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", counts_phrase("metadata", d.key_counts()));
    for k in changed {
        let _ = writeln!(
            out,
            "  {} {}  {}",
            change_mark(k.change),
            visible(&k.key),
            visible(&key_summary(k))
        );
        for e in k.array.iter().flat_map(|a| &a.examples) {
            let side = |v: &Option<String>| {
                v.as_deref()
                    .map_or("(none)".into(), |s| visible(s).into_owned())
            };
            let _ = writeln!(
                out,
                "      [{}] {} → {}",
                e.index,
                side(&e.old),
                side(&e.new)
            );
        }
    }
}

fn text_templates(out: &mut String, d: &Diff) {
    let changed: Vec<&TemplateDiff> = d
        .templates
        .iter()
        .filter(|t| t.change != Change::Unchanged)
        .collect();
    if changed.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", counts_phrase("templates", d.template_counts()));
    for t in changed {
        let _ = writeln!(
            out,
            "  {} {}  {}",
            change_mark(t.change),
            visible(&t.key),
            visible(&template_summary(t))
        );
        if let Some(e) = &t.excerpt {
            let _ = writeln!(out, "      first difference at character {}:", e.offset);
            let _ = writeln!(out, "        old: {}", visible(&e.old));
            let _ = writeln!(out, "        new: {}", visible(&e.new));
        }
        for h in t.hunks.iter().flatten() {
            let _ = writeln!(out, "      {}", h.header);
            for l in &h.lines {
                let _ = writeln!(
                    out,
                    "      {}{}",
                    l.tag,
                    crate::escape::visible_lines(&l.text)
                );
            }
        }
    }
}

/// `x` for a table: scientific, or `-` when unknown, `inf` when infinite.
fn cell(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v.is_infinite() => "inf".into(),
        Some(v) => format!("{v:.4e}"),
    }
}

fn type_cell(t: &TensorDiff) -> String {
    match (&t.old, &t.new) {
        (Some(o), Some(n)) if o.ty != n.ty => format!("{}→{}", o.ty, n.ty),
        (_, Some(x)) | (Some(x), None) => x.ty.to_string(),
        (None, None) => String::new(),
    }
}

fn shape_cell(t: &TensorDiff) -> String {
    match (&t.old, &t.new) {
        (Some(o), Some(n)) if o.dims != n.dims => format!("{}→{}", shape(&o.dims), shape(&n.dims)),
        (_, Some(x)) | (Some(x), None) => shape(&x.dims),
        (None, None) => String::new(),
    }
}

fn text_tensors(out: &mut String, d: &Diff) {
    let changed: Vec<&TensorDiff> = d
        .tensors
        .iter()
        .filter(|t| t.change != Change::Unchanged)
        .collect();
    if changed.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", counts_phrase("tensors", d.tensor_counts()));
    let rows: Vec<[String; 9]> = changed
        .iter()
        .map(|t| {
            [
                change_mark(t.change).to_string(),
                visible(&t.name).into_owned(),
                type_cell(t),
                shape_cell(t),
                cell(t.old.as_ref().and_then(|o| o.rms)),
                cell(t.new.as_ref().and_then(|n| n.rms)),
                cell(t.rms_diff),
                cell(t.relative_change),
                t.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let head = [
        "",
        "name",
        "type",
        "shape",
        "old RMS",
        "new RMS",
        "RMS(new-old)",
        "|new-old|/|old|",
        "note",
    ];
    let mut widths = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 9]| {
        let mut s = String::from(" ");
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            if (4..8).contains(&i) {
                let _ = write!(s, " {}{c}", " ".repeat(pad));
            } else {
                let _ = write!(s, " {c}{}", " ".repeat(pad));
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(head));
    for r in &rows {
        let _ = writeln!(
            out,
            "{}",
            line(
                [&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7], &r[8]].map(String::as_str)
            )
        );
    }
}

/// The Markdown report (a job summary or a pull-request comment).
pub fn to_markdown(d: &Diff) -> String {
    let mut out = String::new();
    let icon = if d.identical() { "🟰" } else { "🔀" };
    let _ = writeln!(
        out,
        "## {icon} gguf-gate diff: {} → {}\n",
        markdown_code(&d.old.path),
        markdown_code(&d.new.path)
    );
    let _ = writeln!(out, "**{}**\n", markdown(&verdict(d)));
    let _ = writeln!(out, "| | old | new |\n|---|---|---|");
    let row = |label: &str, f: &dyn Fn(&super::SideInfo) -> String| {
        format!("| {label} | {} | {} |", f(&d.old), f(&d.new))
    };
    let _ = writeln!(out, "{}", row("kind", &|s| s.kind.to_string()));
    let _ = writeln!(
        out,
        "{}",
        row("GGUF", &|s| format!(
            "v{}, alignment {}",
            s.gguf_version, s.alignment
        ))
    );
    let _ = writeln!(out, "{}", row("bytes", &|s| s.bytes.to_string()));
    let _ = writeln!(
        out,
        "{}",
        row("keys / tensors", &|s| format!("{} / {}", s.keys, s.tensors))
    );
    if d.old.fingerprint.is_some() || d.new.fingerprint.is_some() {
        let _ = writeln!(
            out,
            "{}",
            row("fingerprint", &|s| s
                .fingerprint
                .as_deref()
                .map_or("".into(), |f| format!("`{f}`")))
        );
    }
    if !d.filter.is_empty() {
        let filters: Vec<String> = d.filter.iter().map(|f| markdown_code(f)).collect();
        let _ = writeln!(out, "\nFilter: {}", filters.join(", "));
    }
    if d.identical() {
        return out;
    }
    let ranked = d.ranked();
    let _ = writeln!(out, "\n### Most important changes\n");
    for (i, r) in ranked.iter().take(RANKED_SHOWN).enumerate() {
        let tier = r.tier.name();
        let _ = writeln!(
            out,
            "{}. **{tier}** {}: {}",
            i + 1,
            markdown_code(&r.subject),
            markdown(&r.summary)
        );
    }
    if ranked.len() > RANKED_SHOWN {
        let _ = writeln!(out, "\n… and {} more.", ranked.len() - RANKED_SHOWN);
    }
    md_keys(&mut out, d);
    md_templates(&mut out, d);
    md_tensors(&mut out, d);
    out
}

fn change_word(c: Change) -> &'static str {
    match c {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Changed => "changed",
        Change::Unchanged => "unchanged",
    }
}

fn md_keys(out: &mut String, d: &Diff) {
    let changed: Vec<&KeyDiff> = d
        .keys
        .iter()
        .filter(|k| k.change != Change::Unchanged)
        .collect();
    if changed.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Metadata\n\n| key | change | what |\n|---|---|---|"
    );
    for k in changed {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            markdown_code(&k.key),
            change_word(k.change),
            markdown(&key_summary(k))
        );
    }
}

fn md_templates(out: &mut String, d: &Diff) {
    let changed: Vec<&TemplateDiff> = d
        .templates
        .iter()
        .filter(|t| t.change != Change::Unchanged)
        .collect();
    if changed.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Chat templates\n");
    for t in changed {
        let _ = writeln!(
            out,
            "{}: {}\n",
            markdown_code(&t.key),
            markdown(&template_summary(t))
        );
        if let Some(e) = &t.excerpt {
            let _ = writeln!(
                out,
                "First difference at character {}: {} → {}\n",
                e.offset,
                markdown_code(&e.old),
                markdown_code(&e.new)
            );
        }
        if let Some(h) = &t.hunks {
            let _ = writeln!(out, "{}", markdown_block("diff", &text::to_text(h)));
        }
    }
}

fn md_tensors(out: &mut String, d: &Diff) {
    let changed: Vec<&TensorDiff> = d
        .tensors
        .iter()
        .filter(|t| t.change != Change::Unchanged)
        .collect();
    if changed.is_empty() {
        return;
    }
    let c = d.tensor_counts();
    let _ = writeln!(
        out,
        "\n### Tensors: {} changed, {} added, {} removed, {} unchanged\n\n\
         | tensor | change | type | shape | old RMS | new RMS | ‖new−old‖/‖old‖ | note |\n|---|---|---|---|---:|---:|---:|---|",
        c.changed, c.added, c.removed, c.unchanged
    );
    for t in changed.iter().take(MARKDOWN_TENSORS) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            markdown_code(&t.name),
            change_word(t.change),
            type_cell(t),
            shape_cell(t),
            cell(t.old.as_ref().and_then(|o| o.rms)),
            cell(t.new.as_ref().and_then(|n| n.rms)),
            cell(t.relative_change),
            markdown(t.note.as_deref().unwrap_or(""))
        );
    }
    if changed.len() > MARKDOWN_TENSORS {
        let _ = writeln!(
            out,
            "\n… and {} more changed tensors (`--format json` lists every one).",
            changed.len() - MARKDOWN_TENSORS
        );
    }
}

/// A number for JSON: `null` when unknown or not finite.
fn number(x: Option<f64>) -> Json {
    x.filter(|v| v.is_finite()).map_or(Json::Null, |v| json!(v))
}

fn tensor_side(t: &Option<TensorFacts>) -> Json {
    match t {
        None => Json::Null,
        Some(t) => json!({
            "type": t.ty.name(),
            "dims": t.dims,
            "sha256": hex(&t.sha256),
            "rms": number(t.rms),
        }),
    }
}

/// The JSON document (shape in docs/diff.md).
pub fn to_json(d: &Diff) -> Json {
    let ranked: Vec<Json> = d
        .ranked()
        .into_iter()
        .map(|r| json!({"tier": r.tier, "subject": r.subject, "summary": r.summary, "magnitude": number(r.magnitude)}))
        .collect();
    let keys: Vec<Json> = d
        .keys
        .iter()
        .filter(|k| k.change != Change::Unchanged)
        .map(|k| {
            json!({
                "key": k.key,
                "change": k.change,
                "old": k.old.as_ref().map(Recorded::to_json),
                "new": k.new.as_ref().map(Recorded::to_json),
                "type_changed": k.type_changed,
                "array": k.array,
            })
        })
        .collect();
    let templates: Vec<Json> = d
        .templates
        .iter()
        .filter(|t| t.change != Change::Unchanged)
        .map(|t| {
            json!({
                "key": t.key,
                "change": t.change,
                "old_bytes": t.old_bytes,
                "new_bytes": t.new_bytes,
                "diff": t.hunks.as_ref().map(|h| text::to_text(h)),
                "first_difference": t.excerpt,
            })
        })
        .collect();
    let tensors: Vec<Json> = d
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "change": t.change,
                "norm": t.norm,
                "old": tensor_side(&t.old),
                "new": tensor_side(&t.new),
                "byte_identical": t.byte_identical,
                "dtype_changed": t.dtype_changed,
                "shape_changed": t.shape_changed,
                "rms_diff": number(t.rms_diff),
                "relative_change": number(t.relative_change),
                "relative_change_infinite": t.relative_change.is_some_and(f64::is_infinite),
                "rms_change": number(t.rms_change),
                "nonfinite_changed": t.nonfinite_changed,
                "note": t.note,
            })
        })
        .collect();
    json!({
        "version": DIFF_JSON_VERSION,
        "tool": {"name": "gguf-gate", "version": env!("CARGO_PKG_VERSION")},
        "identical": d.identical(),
        "old": d.old,
        "new": d.new,
        "filter": d.filter,
        "summary": {
            "header_changes": d.header.len(),
            "keys": d.key_counts(),
            "templates": d.template_counts(),
            "tensors": d.tensor_counts(),
            "dtype_changed": d.tensors.iter().filter(|t| t.dtype_changed).count(),
            "shape_changed": d.tensors.iter().filter(|t| t.shape_changed).count(),
            "changes": ranked,
        },
        "header": d.header,
        "metadata": keys,
        "templates": templates,
        "tensors": tensors,
    })
}
