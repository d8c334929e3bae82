//! The HTML report (`check --html FILE`, `stats --format html`): one self-contained file —
//! inline CSS and SVG, no script, no font or image fetched from anywhere — that opens
//! offline and as a CI artifact. It shows the verdict and the failures (each linking to its
//! rule's explanation), per tensor role a plot of RMS by layer with the policy's envelope
//! as a band and every failing point marked, NaN/Inf/zero counts where there are any, the
//! probe's continuations and the metadata checks. Every string from the model (tensor
//! names, keys, values, continuations) is escaped: the report must never be an injection
//! vector for whoever made the file.

use std::fmt::Write as _;

use super::plot::{Kind, Point, Series};
use super::sarif::RULES_DOC_URI;
use super::Report;
use crate::escape::visible;
use crate::registry::Family;

/// `s` escaped for HTML text and attribute values, control and invisible characters made
/// visible first.
pub fn escape(s: &str) -> String {
    let shown = visible(s);
    let mut out = String::with_capacity(shown.len());
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1180px;color:#1f2328;padding:0 16px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #d0d7de}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f6f8fa}code{font:12px ui-monospace,monospace;background:#f6f8fa;padding:1px 3px;word-break:break-all}\
.pass{color:#1a7f37}.fail{color:#cf222e}.warn{color:#9a6700}\
.plots{display:flex;flex-wrap:wrap;gap:12px}.plot{border:1px solid #d0d7de;border-radius:6px;padding:6px}\
.plot h3{font-size:13px;margin:0 0 4px;font-weight:600}.legend{font-size:12px;color:#57606a}\
svg text{font:10px ui-monospace,monospace;fill:#57606a}";

/// The report of `check`: every model's section in one document.
pub fn render(reports: &[Report]) -> String {
    let mut out = String::new();
    let title = match reports {
        [one] => format!("gguf-gate: {}", one.model),
        many => format!("gguf-gate: {} models", many.len()),
    };
    head(&mut out, &title);
    for r in reports {
        model_section(&mut out, r);
    }
    out.push_str("</body></html>\n");
    out
}

fn model_section(out: &mut String, r: &Report) {
    let (errors, warnings, notes) = r.counts();
    let (class, word) = if r.passed {
        ("pass", "✓ passed")
    } else {
        ("fail", "✗ failed")
    };
    let _ = write!(
        out,
        "<h1>gguf-gate <span class=\"{class}\">{word}</span></h1>\
         <table><tr><th>model</th><td><code>{}</code></td></tr>\
         <tr><th>fingerprint</th><td><code>{}</code></td></tr>\
         <tr><th>policy</th><td>{}{}</td></tr>\
         <tr><th>checks</th><td>{} ({errors} error(s), {warnings} warning(s), {notes} note(s))</td></tr></table>",
        escape(&r.model),
        r.fingerprint,
        escape(&r.policy),
        r.preset
            .as_deref()
            .map_or(String::new(), |p| format!(" (preset <code>{}</code>)", escape(p))),
        r.findings.len()
    );
    failures(out, r);
    plots(out, &r.series, "Per-layer RMS");
    probe(out, r);
    quality(out, r);
    metadata(out, r);
}

/// `stats --format html`: the plots alone, with the default policy's envelopes.
pub fn render_stats(model: &str, series: &[Series]) -> String {
    let mut out = String::new();
    head(&mut out, &format!("gguf-gate stats: {model}"));
    let _ = write!(
        out,
        "<h1>gguf-gate stats</h1><p><code>{}</code> — bands are the default policy's envelopes.</p>",
        escape(model)
    );
    plots(&mut out, series, "Per-layer RMS");
    out.push_str("</body></html>\n");
    out
}

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
}

fn failures(out: &mut String, r: &Report) {
    let failures = r.failures();
    if failures.is_empty() {
        out.push_str("<h2>Findings</h2><p class=\"pass\">No check failed.</p>");
        return;
    }
    out.push_str(
        "<h2>Findings</h2><table><tr><th>severity</th><th>rule</th><th>subject</th><th>value</th><th>bound</th><th>message</th></tr>",
    );
    for f in failures {
        let (class, sev) = match (&f.waived, f.severity.name()) {
            (Some(_), _) => ("", "waived"),
            (None, "error") => ("fail", "error"),
            (None, s) => ("warn", s),
        };
        let _ = write!(
            out,
            "<tr><td class=\"{class}\">{sev}</td><td><a href=\"{RULES_DOC_URI}#{code}\"><code>{code}</code></a></td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.subject),
            escape(f.value.as_deref().unwrap_or("")),
            escape(f.bound.as_deref().unwrap_or("")),
            escape(&f.message),
            code = f.rule,
        );
    }
    out.push_str("</table>");
}

fn plots(out: &mut String, series: &[Series], title: &str) {
    let _ = write!(
        out,
        "<h2>{title}</h2><p class=\"legend\">RMS of each layer's tensor (log scale). \
         Shaded: the policy's envelope. <span class=\"fail\">●</span> a point a failed check names.</p>"
    );
    for (kind, heading) in [
        (Kind::Norm, "Norms"),
        (Kind::Projection, "Projections"),
        (Kind::Other, "Other per-layer tensors"),
    ] {
        let group: Vec<&Series> = series.iter().filter(|s| s.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        let _ = write!(out, "<h3>{heading}</h3><div class=\"plots\">");
        for s in group {
            out.push_str(&rms_plot(s));
        }
        out.push_str("</div>");
    }
    let bad: Vec<&Series> = series.iter().filter(|s| s.has_bad_values()).collect();
    if !bad.is_empty() {
        out.push_str("<h3>NaN, Inf and zero elements</h3><div class=\"plots\">");
        for s in bad {
            out.push_str(&bad_values_plot(s));
        }
        out.push_str("</div>");
    }
}

const W: f64 = 380.0;
const H: f64 = 150.0;
const LEFT: f64 = 52.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;
const RIGHT: f64 = 10.0;

/// Maps layers and log values to the plot area.
struct Axes {
    first: f64,
    last: f64,
    lo: f64,
    hi: f64,
}

impl Axes {
    fn x(&self, layer: u32) -> f64 {
        let span = (self.last - self.first).max(1.0);
        LEFT + (f64::from(layer) - self.first) / span * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        let lv = v.max(f64::MIN_POSITIVE).log10().clamp(self.lo, self.hi);
        TOP + (self.hi - lv) / (self.hi - self.lo) * (H - TOP - BOTTOM)
    }
}

fn axes(points: &[Point]) -> Axes {
    let logs = points
        .iter()
        .filter(|p| p.rms.is_finite() && p.rms > 0.0)
        .map(|p| p.rms.log10());
    let (mut lo, mut hi) = logs.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (-3.0, 0.0);
    }
    // Some room around the data, at least a decade in all.
    let pad = ((1.0 - (hi - lo)) / 2.0).max(0.0) + 0.15;
    let first = points.first().map_or(0.0, |p| f64::from(p.layer));
    let last = points.last().map_or(1.0, |p| f64::from(p.layer));
    Axes {
        first,
        last,
        lo: lo - pad,
        hi: hi + pad,
    }
}

fn rms_plot(s: &Series) -> String {
    let a = axes(&s.points);
    let mut svg = String::new();
    let failed = s.points.iter().filter(|p| p.failed).count();
    let _ = write!(
        svg,
        "<div class=\"plot\" data-role=\"{role}\" data-failed=\"{failed}\"><h3><code>blk.*.{role}</code>{}</h3>\
         <svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"RMS by layer of {role}\">",
        if failed > 0 {
            format!(" <span class=\"fail\">{failed} failing</span>")
        } else {
            String::new()
        },
        role = escape(&s.role),
    );
    band(&mut svg, s, &a);
    // Axes and ticks: every decade in range, the first and last layer.
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{y0}\" stroke=\"#8c959f\"/>\
         <line x1=\"{LEFT}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#8c959f\"/>",
        y0 = H - BOTTOM,
        x1 = W - RIGHT
    );
    let mut decade = a.lo.ceil();
    while decade <= a.hi {
        let y = a.y(10f64.powf(decade));
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            y + 3.0,
            crate::stats::num(10f64.powf(decade))
        );
        decade += 1.0;
    }
    if let (Some(f), Some(l)) = (s.points.first(), s.points.last()) {
        for layer in [f.layer, l.layer] {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{layer}</text>",
                a.x(layer),
                H - 8.0
            );
        }
    }
    let line: Vec<String> = s
        .points
        .iter()
        .map(|p| format!("{:.1},{:.1}", a.x(p.layer), a.y(p.rms)))
        .collect();
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\"/>",
        line.join(" ")
    );
    for p in &s.points {
        let (r, fill, class) = if p.failed {
            (4.5, "#cf222e", "pt fail")
        } else {
            (2.2, "#0969da", "pt ok")
        };
        let _ = write!(
            svg,
            "<circle class=\"{class}\" data-layer=\"{}\" data-outside=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\" fill=\"{fill}\"><title>{} ({}): RMS {}</title></circle>",
            p.layer,
            p.outside_band(),
            a.x(p.layer),
            a.y(p.rms),
            escape(&p.name),
            escape(&p.ty),
            crate::stats::num(p.rms)
        );
    }
    svg.push_str("</svg></div>");
    svg
}

/// The envelope as a shaded band, layer by layer (open sides reach the plot's edge).
fn band(svg: &mut String, s: &Series, a: &Axes) {
    let pts: Vec<(f64, f64, f64)> = s
        .points
        .iter()
        .filter_map(|p| {
            let (lo, hi) = p.band?;
            let x = a.x(p.layer);
            Some((x, a.y(hi.unwrap_or(f64::MAX)), a.y(lo.unwrap_or(0.0))))
        })
        .collect();
    if pts.is_empty() {
        return;
    }
    let mut poly: Vec<String> = pts
        .iter()
        .map(|(x, top, _)| format!("{x:.1},{top:.1}"))
        .collect();
    poly.extend(
        pts.iter()
            .rev()
            .map(|(x, _, bottom)| format!("{x:.1},{bottom:.1}")),
    );
    if pts.len() == 1 {
        // One layer: a thin vertical band.
        let (x, top, bottom) = pts[0];
        poly = vec![
            format!("{:.1},{top:.1}", x - 4.0),
            format!("{:.1},{top:.1}", x + 4.0),
            format!("{:.1},{bottom:.1}", x + 4.0),
            format!("{:.1},{bottom:.1}", x - 4.0),
        ];
    }
    let _ = write!(
        svg,
        "<polygon class=\"band\" points=\"{}\" fill=\"#2da44e\" fill-opacity=\"0.13\" stroke=\"#2da44e\" stroke-opacity=\"0.4\"/>",
        poly.join(" ")
    );
}

fn bad_values_plot(s: &Series) -> String {
    let max = s
        .points
        .iter()
        .map(|p| p.nan + p.inf + p.zeros)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (w, h) = (W, 90.0);
    // Layer numbers come from tensor names: f64, so no u32 arithmetic can overflow.
    let first = s.points.first().map_or(0.0, |p| f64::from(p.layer));
    let last = s
        .points
        .last()
        .map_or(1.0, |p| f64::from(p.layer))
        .max(first + 1.0);
    let bar = ((w - LEFT - RIGHT) / (last - first + 1.0)).max(1.0);
    let mut svg = format!(
        "<div class=\"plot\"><h3><code>blk.*.{}</code> NaN / Inf / zeros</h3><svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        escape(&s.role)
    );
    for p in &s.points {
        let x = LEFT + (f64::from(p.layer) - first) * bar;
        let mut y = h - 16.0;
        for (count, color) in [(p.nan, "#cf222e"), (p.inf, "#bf8700"), (p.zeros, "#8c959f")] {
            if count == 0 {
                continue;
            }
            let bh = count as f64 / max * (h - 26.0);
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"><title>{}: {} NaN, {} Inf, {} zeros</title></rect>",
                (bar - 1.0).max(0.5),
                escape(&p.name),
                p.nan,
                p.inf,
                p.zeros
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\">layer {first}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{last}</text></svg>\
         <div class=\"legend\"><span style=\"color:#cf222e\">■</span> NaN <span style=\"color:#bf8700\">■</span> Inf <span style=\"color:#8c959f\">■</span> zero</div></div>",
        h - 4.0,
        w - RIGHT,
        h - 4.0
    );
    svg
}

fn probe(out: &mut String, r: &Report) {
    let _ = write!(out, "<h2>Probe</h2><p>{}</p>", escape(&r.probe.note));
    if r.probe.prompts.is_empty() {
        return;
    }
    out.push_str("<table><tr><th>prompt</th><th>continuation</th><th>words</th><th>English</th><th>tokens/s</th></tr>");
    for p in &r.probe.prompts {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{:.0}%</td><td>{:.1}</td></tr>",
            escape(&p.prompt),
            escape(&p.text),
            p.words,
            100.0 * p.word_share,
            p.decode_tok_s
        );
    }
    out.push_str("</table>");
}

fn quality(out: &mut String, r: &Report) {
    let Some(q) = &r.quality else { return };
    let _ = write!(
        out,
        "<h2>Quality</h2><p>perplexity {} over {} tokens",
        crate::stats::num(q.perplexity),
        q.tokens
    );
    if let Some(b) = &q.base {
        let _ = write!(
            out,
            "; against the base: mean KL divergence {}, p99 {}, same top-1 {:.1}%",
            crate::stats::num(b.mean_kld),
            crate::stats::num(b.p99_kld),
            100.0 * b.same_top1
        );
    }
    out.push_str("</p>");
}

fn metadata(out: &mut String, r: &Report) {
    let checks: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.rule.family() == Family::Metadata)
        .collect();
    if checks.is_empty() {
        return;
    }
    out.push_str("<h2>Metadata checked</h2><table><tr><th></th><th>rule</th><th>key</th><th>result</th></tr>");
    for f in checks {
        let (class, mark) = if f.passed {
            ("pass", "✓")
        } else {
            ("fail", "✗")
        };
        let _ = write!(
            out,
            "<tr><td class=\"{class}\">{mark}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            f.rule,
            escape(&f.subject),
            escape(&f.message)
        );
    }
    out.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_shows_hidden_characters() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert!(!escape("a\u{202e}b").contains('\u{202e}'));
    }
}
