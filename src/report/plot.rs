//! The per-layer picture of a model: for every tensor role (`attn_q.weight`,
//! `ffn_norm.weight`, …) the RMS of each layer's tensor, the policy's envelope for it as a
//! band, and which points failed. People who debug conversions plot exactly this to find
//! the broken layer at a glance (a spike, a flat line, a layer of zeros); the HTML report
//! draws it as SVG and the Markdown summary as Mermaid charts or text sparklines. Nothing
//! here decides: a point is failing when a failed check names it, or — for a spread check,
//! which names a whole role — when it is the role's point farthest from the role's median.

use serde::Serialize;

use crate::gguf::Header;
use crate::glob::glob_match;
use crate::policy::{Envelope, Policy};
use crate::rules::{layer_of, Finding};
use crate::stats::TensorStats;

/// One tensor in a series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub name: String,
    pub layer: u32,
    #[serde(rename = "type")]
    pub ty: String,
    pub rms: f64,
    pub nan: u64,
    pub inf: u64,
    pub zeros: u64,
    /// The policy's envelope for this tensor (lower, upper), when it has one.
    pub band: Option<(Option<f64>, Option<f64>)>,
    /// A failed (unwaived) check points at this tensor.
    pub failed: bool,
}

impl Point {
    /// Outside its band (the band may be open on one side).
    pub fn outside_band(&self) -> bool {
        self.band.is_some_and(|(lo, hi)| {
            !self.rms.is_finite()
                || lo.is_some_and(|l| self.rms < l)
                || hi.is_some_and(|h| self.rms > h)
        })
    }
}

/// What a role is, for grouping the plots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Norm,
    Projection,
    Other,
}

/// The tensors of one role across layers (`blk.N.<role>`), in layer order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Series {
    /// The role: the tensor name after `blk.N.`.
    pub role: String,
    pub kind: Kind,
    pub points: Vec<Point>,
}

impl Series {
    pub fn has_failure(&self) -> bool {
        self.points.iter().any(|p| p.failed)
    }

    /// Whether any point has NaN, Inf or all-zero elements worth a plot.
    pub fn has_bad_values(&self) -> bool {
        self.points
            .iter()
            .any(|p| p.nan > 0 || p.inf > 0 || p.zeros > 0)
    }
}

fn envelope<'a>(envelopes: &'a [Envelope], name: &str) -> Option<&'a Envelope> {
    envelopes.iter().find(|e| glob_match(&e.pattern, name))
}

/// The series of every per-layer role of the model, with the policy's envelopes and the
/// failed checks of `findings` marked. Roles are ordered norms, projections, others, then
/// by name; at most `MAX_SERIES` roles are kept (a file may hold anything).
pub fn series(
    header: &Header,
    stats: &[TensorStats],
    policy: &Policy,
    findings: &[Finding],
) -> Vec<Series> {
    let stats_of: std::collections::HashMap<&str, &TensorStats> =
        stats.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut by_role: std::collections::BTreeMap<(Kind, String), Vec<Point>> = Default::default();
    for t in &header.tensors {
        let (Some(layer), Some(s)) = (layer_of(&t.name), stats_of.get(t.name.as_str())) else {
            continue;
        };
        let role = t.name.splitn(3, '.').nth(2).unwrap_or("").to_string();
        let is_norm = policy.norms.patterns.iter().any(|p| glob_match(p, &t.name));
        let is_proj = policy
            .projections
            .patterns
            .iter()
            .any(|p| glob_match(p, &t.name));
        let (kind, env) = if is_norm {
            (Kind::Norm, envelope(&policy.norms.envelopes, &t.name))
        } else if is_proj {
            (
                Kind::Projection,
                envelope(&policy.projections.envelopes, &t.name),
            )
        } else {
            (Kind::Other, None)
        };
        let failed = findings
            .iter()
            .any(|f| f.is_failure() && f.subject == t.name);
        by_role.entry((kind, role)).or_default().push(Point {
            name: t.name.clone(),
            layer,
            ty: s.ty.clone(),
            rms: s.rms,
            nan: s.nan,
            inf: s.inf,
            zeros: s.zeros,
            band: env.map(|e| (e.min, e.max)),
            failed,
        });
    }
    let mut out: Vec<Series> = by_role
        .into_iter()
        .take(MAX_SERIES)
        .map(|((kind, role), mut points)| {
            points.sort_by(|a, b| a.layer.cmp(&b.layer).then(a.name.cmp(&b.name)));
            Series { role, kind, points }
        })
        .collect();
    mark_spread_failures(&mut out, findings);
    out
}

/// Roles kept in a picture.
pub const MAX_SERIES: usize = 256;

/// A failed spread check across layers names a role (`blk.*.ffn_down.weight`): mark, in
/// the series it covers, the point farthest (in log distance) from the median. (A spread
/// within one layer, subject `blk.7`, compares different roles, which have different
/// scales, so no single point of a series stands for it.)
fn mark_spread_failures(series: &mut [Series], findings: &[Finding]) {
    for f in findings
        .iter()
        .filter(|f| f.is_failure() && f.subject.contains('*'))
    {
        for s in series.iter_mut() {
            let covered: Vec<usize> = (0..s.points.len())
                .filter(|&i| glob_match(&f.subject, &s.points[i].name))
                .collect();
            if covered.len() < 2 {
                continue;
            }
            let mut logs: Vec<f64> = covered
                .iter()
                .map(|&i| s.points[i].rms.max(f64::MIN_POSITIVE).ln())
                .collect();
            logs.sort_by(f64::total_cmp);
            let median = logs[logs.len() / 2];
            let worst = covered.iter().copied().max_by(|&a, &b| {
                let da = (s.points[a].rms.max(f64::MIN_POSITIVE).ln() - median).abs();
                let db = (s.points[b].rms.max(f64::MIN_POSITIVE).ln() - median).abs();
                da.total_cmp(&db)
            });
            if let Some(w) = worst {
                s.points[w].failed = true;
            }
        }
    }
}

/// Layers beyond which the Markdown summary shows a sparkline instead of a chart.
pub const MAX_CHART_LAYERS: usize = 64;

/// The per-role picture for a Markdown job summary: only roles with a failing point, as a
/// Mermaid `xychart-beta` (GitHub renders it) or, past [`MAX_CHART_LAYERS`], a sparkline.
/// Role names come from the model: only `[A-Za-z0-9._*-]` reaches the chart source.
pub fn markdown(series: &[Series]) -> String {
    let mut out = String::new();
    for s in series.iter().filter(|s| s.has_failure()) {
        let role: String = s
            .role
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._*-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let failing: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.failed)
            .map(|p| p.layer.to_string())
            .collect();
        out.push_str(&format!(
            "\n**`blk.*.{role}`** RMS by layer — failing at layer {}\n\n",
            failing.join(", ")
        ));
        if s.points.len() > MAX_CHART_LAYERS {
            let values: Vec<f64> = s.points.iter().map(|p| p.rms).collect();
            out.push_str(&format!("`{}`\n", sparkline(&values)));
            continue;
        }
        let layers: Vec<String> = s.points.iter().map(|p| p.layer.to_string()).collect();
        let values: Vec<String> = s
            .points
            .iter()
            .map(|p| {
                let v = if p.rms.is_finite() { p.rms } else { 0.0 };
                format!("{}", (v * 1e6).round() / 1e6)
            })
            .collect();
        out.push_str(&format!(
            "```mermaid\nxychart-beta\n    title \"{role} RMS\"\n    x-axis \"layer\" [{}]\n    y-axis \"RMS\"\n    line [{}]\n```\n",
            layers.join(", "),
            values.join(", ")
        ));
    }
    out
}

/// A text sparkline of `values` (▁ to █, log scale; `×` for a non-finite value).
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let logs: Vec<Option<f64>> = values
        .iter()
        .map(|&v| (v.is_finite() && v > 0.0).then(|| v.ln()))
        .collect();
    let (lo, hi) = logs
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    logs.iter()
        .map(|v| match v {
            None => '×',
            Some(_) if hi <= lo => BARS[3],
            Some(v) => {
                let at = ((v - lo) / (hi - lo) * 7.0).round() as usize;
                BARS[at.min(7)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_use_a_log_scale_and_mark_non_finite_values() {
        assert_eq!(sparkline(&[1.0, 10.0, 100.0]), "▁▅█");
        assert_eq!(sparkline(&[1.0, f64::NAN, 0.0]), "▄××");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn bands_may_be_open() {
        let mut p = Point {
            name: "blk.0.x".into(),
            layer: 0,
            ty: "F32".into(),
            rms: 2.0,
            nan: 0,
            inf: 0,
            zeros: 0,
            band: Some((Some(1.0), None)),
            failed: false,
        };
        assert!(!p.outside_band());
        p.rms = 0.5;
        assert!(p.outside_band());
        p.band = None;
        assert!(!p.outside_band());
    }
}
