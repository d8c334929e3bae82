//! What changed between two releases of a model: the GGUF header, metadata keys (the
//! vocabulary as tokens added, removed and changed), chat templates (a unified diff), and
//! tensors — added, removed, dtype or shape changed, byte-identical or not (per-tensor
//! SHA-256), and for tensors in both the RMS of each side and of their difference
//! (‖new − old‖ / ‖old‖ of the dequantized values), computed in one pass over each file
//! with the stats engine (`pass`). Either side may be a recorded summary (`record`) in
//! place of a GGUF file; values are then compared by hash and RMS only.
//!
//! `compare` returns a [`Diff`]; `render` writes it as text, Markdown or JSON, and the
//! `baseline-*` rules (`rules::baseline`) judge it against a policy's bounds.

mod metadata;
mod pass;
mod record;
mod render;
mod text;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::fingerprint::Fingerprint;
use crate::gguf::{GgmlType, GgufError, GgufFile, OpenError, TensorInfo};
use crate::glob::glob_match;
use crate::progress::Progress;
use crate::stats::{Scan, TensorStats};

pub use metadata::{
    is_template_key, ArrayDiff, Change, ElementChange, Excerpt, KeyDiff, TemplateDiff,
};
pub use pass::DiffSums;
pub use record::{
    hex, value_json, Recorded, Summary, TensorFacts, ValueDigest, FORMAT_VERSION, MAX_SUMMARY_BYTES,
};
pub use render::{key_summary, template_summary, tensor_summary, to_json, to_markdown, to_text};
pub use text::{unified, Hunk, Line};

/// One side of a comparison.
#[derive(Clone, Copy)]
pub enum Release<'a> {
    File(&'a GgufFile),
    Summary(&'a Summary),
}

impl Release<'_> {
    /// `general.architecture`, when it is a string.
    pub fn architecture(&self) -> Option<String> {
        match self {
            Release::File(f) => f.header.architecture().map(String::from),
            Release::Summary(s) => s.metadata.iter().find_map(|(k, v)| match v {
                Recorded::Value(crate::gguf::Value::String(a)) if k == "general.architecture" => {
                    Some(a.clone())
                }
                _ => None,
            }),
        }
    }
}

/// A side opened from a path: a GGUF file, or (when the file is not GGUF) a recorded
/// summary.
pub enum Loaded {
    File(GgufFile),
    Summary(Summary),
}

/// A side that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{path}: neither a GGUF file ({gguf}) nor a gguf-gate baseline summary ({summary})")]
    Neither {
        path: String,
        gguf: String,
        summary: String,
    },
}

impl Loaded {
    /// Open `path`: GGUF when it starts with the GGUF magic, else a recorded summary.
    pub fn open(path: &Path) -> Result<Loaded, LoadError> {
        match GgufFile::open(path) {
            Ok(f) => Ok(Loaded::File(f)),
            Err(e) if matches!(e.format_error(), Some(GgufError::BadMagic { .. })) => {
                match Summary::read(path) {
                    Ok(s) => Ok(Loaded::Summary(s)),
                    Err(summary) => Err(LoadError::Neither {
                        path: path.display().to_string(),
                        gguf: e.format_error().map(|f| f.to_string()).unwrap_or_default(),
                        summary,
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn release(&self) -> Release<'_> {
        match self {
            Loaded::File(f) => Release::File(f),
            Loaded::Summary(s) => Release::Summary(s),
        }
    }
}

/// What a diff says about one side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SideInfo {
    pub path: String,
    /// `gguf` or `summary`.
    pub kind: &'static str,
    pub bytes: u64,
    pub gguf_version: u32,
    pub alignment: u64,
    pub keys: usize,
    pub tensors: usize,
    /// Known for a recorded summary, and for the new file when the gate asked for it.
    pub fingerprint: Option<String>,
}

/// A GGUF header field that differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeaderChange {
    pub field: &'static str,
    pub old: u64,
    pub new: u64,
}

/// One tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDiff {
    pub name: String,
    pub change: Change,
    pub old: Option<TensorFacts>,
    pub new: Option<TensorFacts>,
    /// Matches one of the norm patterns given to `compare`.
    pub norm: bool,
    /// Same type and shape and the same data bytes.
    pub byte_identical: bool,
    pub dtype_changed: bool,
    pub shape_changed: bool,
    /// RMS of (new − old) over positions finite on both sides (both sides decoded).
    pub rms_diff: Option<f64>,
    /// ‖new − old‖ / ‖old‖, exact (both sides decoded; 0 when byte-identical; infinite
    /// when the old tensor is all zero and the new one is not).
    pub relative_change: Option<f64>,
    /// (RMS new − RMS old) / RMS old. Known from a recorded summary too; its magnitude is
    /// a lower bound of the relative change (‖a‖ − ‖b‖ ≤ ‖a − b‖).
    pub rms_change: Option<f64>,
    /// Positions where one side is NaN or ±Inf and the other is not that same value.
    pub nonfinite_changed: u64,
    /// Why the values were not compared exactly, when they were not.
    pub note: Option<String>,
}

impl TensorDiff {
    /// How far the values moved and whether that is exact: the relative change when
    /// known, else the RMS change (a lower bound). Infinite when NaN/Inf positions changed.
    pub fn drift(&self) -> Option<(f64, bool)> {
        if self.nonfinite_changed > 0 {
            return Some((f64::INFINITY, true));
        }
        match (self.relative_change, self.rms_change) {
            (Some(r), _) => Some((r, true)),
            (None, Some(c)) => Some((c.abs(), false)),
            (None, None) => None,
        }
    }
}

/// Everything that differs between two releases (and, for the rules, what does not).
#[derive(Clone, Debug, PartialEq)]
pub struct Diff {
    pub old: SideInfo,
    pub new: SideInfo,
    /// `--filter` globs (empty: everything).
    pub filter: Vec<String>,
    pub header: Vec<HeaderChange>,
    /// Every selected key but the templates, changed or not: the new file's order, then
    /// the removed keys in the old file's order.
    pub keys: Vec<KeyDiff>,
    /// Every chat template key, changed or not, in the same order.
    pub templates: Vec<TemplateDiff>,
    /// Every selected tensor, changed or not: the new file's order, then the removed ones.
    pub tensors: Vec<TensorDiff>,
    /// `general.architecture` of each side, for `{arch}` and for ranking.
    pub architectures: Vec<String>,
}

/// Counts by kind of change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
}

impl Counts {
    fn of(changes: impl Iterator<Item = Change>) -> Counts {
        let mut c = Counts::default();
        for change in changes {
            match change {
                Change::Added => c.added += 1,
                Change::Removed => c.removed += 1,
                Change::Changed => c.changed += 1,
                Change::Unchanged => c.unchanged += 1,
            }
        }
        c
    }

    pub fn differing(&self) -> usize {
        self.added + self.removed + self.changed
    }
}

/// How much a change matters, most first: what a loader reads first (the header and
/// architecture, then hyper-parameters, the vocabulary and the tensor set), then the chat
/// template, norms, the other weights by how far they moved, and descriptive metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Header,
    Loader,
    Structure,
    Template,
    Norm,
    Weights,
    Metadata,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Header => "header",
            Tier::Loader => "loader",
            Tier::Structure => "structure",
            Tier::Template => "template",
            Tier::Norm => "norm",
            Tier::Weights => "weights",
            Tier::Metadata => "metadata",
        }
    }
}

/// One change in the ranked summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ranked {
    pub tier: Tier,
    /// The key, template key or tensor name (or a header field).
    pub subject: String,
    /// What changed, in words (model strings not yet escaped).
    pub summary: String,
    /// For tensors: how far the values moved (see `TensorDiff::drift`).
    pub magnitude: Option<f64>,
}

impl Diff {
    /// Nothing selected differs.
    pub fn identical(&self) -> bool {
        self.header.is_empty()
            && self.keys.iter().all(|k| k.change == Change::Unchanged)
            && self.templates.iter().all(|t| t.change == Change::Unchanged)
            && self.tensors.iter().all(|t| t.change == Change::Unchanged)
    }

    pub fn key_counts(&self) -> Counts {
        Counts::of(self.keys.iter().map(|k| k.change))
    }

    pub fn template_counts(&self) -> Counts {
        Counts::of(self.templates.iter().map(|t| t.change))
    }

    pub fn tensor_counts(&self) -> Counts {
        Counts::of(self.tensors.iter().map(|t| t.change))
    }

    fn is_loader_key(&self, key: &str) -> bool {
        key == "general.alignment"
            || key.starts_with("tokenizer.ggml.")
            || self.architectures.iter().any(|a| {
                key.strip_prefix(a.as_str())
                    .is_some_and(|r| r.starts_with('.'))
            })
    }

    /// Every change, most important first (see [`Tier`]); within a tier, the largest
    /// weight changes first, then file order.
    pub fn ranked(&self) -> Vec<Ranked> {
        let mut out = Vec::new();
        for h in &self.header {
            out.push(Ranked {
                tier: Tier::Header,
                subject: format!("GGUF {}", h.field),
                summary: format!("{} → {}", h.old, h.new),
                magnitude: None,
            });
        }
        for k in self.keys.iter().filter(|k| k.change != Change::Unchanged) {
            let tier = if k.key == "general.architecture" {
                Tier::Header
            } else if self.is_loader_key(&k.key) {
                Tier::Loader
            } else {
                Tier::Metadata
            };
            out.push(Ranked {
                tier,
                subject: k.key.clone(),
                summary: render::key_summary(k),
                magnitude: None,
            });
        }
        for t in self
            .templates
            .iter()
            .filter(|t| t.change != Change::Unchanged)
        {
            out.push(Ranked {
                tier: Tier::Template,
                subject: t.key.clone(),
                summary: render::template_summary(t),
                magnitude: None,
            });
        }
        for t in self
            .tensors
            .iter()
            .filter(|t| t.change != Change::Unchanged)
        {
            let tier = if t.change != Change::Changed || t.shape_changed {
                Tier::Structure
            } else if t.norm {
                Tier::Norm
            } else {
                Tier::Weights
            };
            out.push(Ranked {
                tier,
                subject: t.name.clone(),
                summary: render::tensor_summary(t),
                magnitude: t.drift().map(|(m, _)| m),
            });
        }
        // Stable: ties keep file order.
        out.sort_by(|a, b| {
            a.tier.cmp(&b.tier).then_with(|| {
                let m = |r: &Ranked| {
                    r.magnitude.map_or(f64::NEG_INFINITY, |m| {
                        if m.is_nan() {
                            f64::NEG_INFINITY
                        } else {
                            m
                        }
                    })
                };
                m(b).total_cmp(&m(a))
            })
        });
        out
    }
}

/// How to compare.
pub struct Options<'a> {
    /// Only keys and tensors whose name matches one of these globs (all when empty).
    pub filter: &'a [String],
    /// Globs naming the norm tensors (the policy's `norms.patterns`), for ranking.
    pub norm_patterns: &'a [String],
    /// Also compute the new file's fingerprint (the gate reports it).
    pub fingerprint: bool,
    pub progress: &'a dyn Progress,
    /// The progress task's name.
    pub label: &'a str,
}

/// What one pass over a file learnt: what `stats::scan` gives, and every tensor's facts.
#[derive(Clone, Debug)]
pub struct Survey {
    pub scan: Scan,
    pub tensors: Vec<TensorFacts>,
}

fn facts(t: &TensorInfo, sha256: [u8; 32], stats: Option<&TensorStats>) -> TensorFacts {
    TensorFacts {
        name: t.name.clone(),
        ty: t.ty,
        dims: t.dims.clone(),
        sha256,
        rms: stats.map(|s| s.rms).filter(|r| r.is_finite()),
    }
}

/// Read `file` once: statistics, per-tensor hashes and, when asked, the fingerprint.
pub fn survey(file: &GgufFile, fingerprint: bool, progress: &dyn Progress, label: &str) -> Survey {
    let selected: Vec<usize> = (0..file.header.tensors.len()).collect();
    survey_of(file, &selected, fingerprint, progress, label)
}

fn survey_of(
    file: &GgufFile,
    selected: &[usize],
    fingerprint: bool,
    progress: &dyn Progress,
    label: &str,
) -> Survey {
    let entries: Vec<pass::Entry> = selected
        .iter()
        .map(|&i| pass::Entry {
            driver: i,
            partner: None,
        })
        .collect();
    let count = progress.task(label, file.header.file_len);
    let out = pass::run(file, None, &entries, fingerprint, &*count);
    let tensors = entries
        .iter()
        .zip(&out.entries)
        .map(|(e, r)| {
            let t = &file.header.tensors[e.driver];
            facts(t, r.driver.sha256, r.driver.stats.as_ref().ok())
        })
        .collect();
    let (stats, errors) = out.driver_stats();
    Survey {
        scan: Scan {
            fingerprint: out.fingerprint,
            stats,
            errors,
        },
        tensors,
    }
}

/// What is known about the tensors of both sides.
#[derive(Default)]
struct Known {
    old: Vec<TensorFacts>,
    new: Vec<TensorFacts>,
    /// By tensor name: the difference of the values and the old side's Σx² (both decoded).
    sums: HashMap<String, (DiffSums, f64)>,
    /// By tensor name: bytes compared equal.
    identical: HashSet<String>,
}

fn sum_sq(s: &TensorStats) -> f64 {
    s.rms * s.rms * s.finite() as f64
}

/// The tensors of `f` that `filter` selects.
fn selected(f: &GgufFile, filter: &[String]) -> Vec<usize> {
    (0..f.header.tensors.len())
        .filter(|&i| selects(filter, &f.header.tensors[i].name))
        .collect()
}

/// Two GGUF files: one joint pass over the new file with the old file's matching bytes,
/// then one pass over the old file for the tensors the new one lacks (or has in another
/// shape).
fn known_files(old: &GgufFile, new: &GgufFile, opts: &Options<'_>) -> (Known, Survey) {
    let entries: Vec<pass::Entry> = selected(new, opts.filter)
        .into_iter()
        .map(|i| {
            let t = &new.header.tensors[i];
            let partner = old
                .header
                .tensors
                .iter()
                .position(|o| o.name == t.name && o.dims == t.dims);
            pass::Entry { driver: i, partner }
        })
        .collect();
    let count = opts.progress.task(opts.label, new.header.file_len);
    let out = pass::run(new, Some(old), &entries, opts.fingerprint, &*count);
    drop(count);
    let mut known = Known::default();
    let mut paired = HashSet::new();
    for (e, r) in entries.iter().zip(&out.entries) {
        let t = &new.header.tensors[e.driver];
        known
            .new
            .push(facts(t, r.driver.sha256, r.driver.stats.as_ref().ok()));
        if let (Some(p), Some(side)) = (e.partner, &r.partner) {
            let o = &old.header.tensors[p];
            paired.insert(o.name.clone());
            known
                .old
                .push(facts(o, side.sha256, side.stats.as_ref().ok()));
            if r.byte_identical {
                known.identical.insert(t.name.clone());
            }
            if let (Some(d), Ok(s)) = (r.diff, &side.stats) {
                known.sums.insert(t.name.clone(), (d, sum_sq(s)));
            }
        }
    }
    let (stats, errors) = out.driver_stats();
    let survey = Survey {
        scan: Scan {
            fingerprint: out.fingerprint,
            stats,
            errors,
        },
        tensors: known.new.clone(),
    };
    let rest: Vec<usize> = selected(old, opts.filter)
        .into_iter()
        .filter(|&i| !paired.contains(&old.header.tensors[i].name))
        .collect();
    if !rest.is_empty() {
        known
            .old
            .extend(survey_of(old, &rest, false, opts.progress, opts.label).tensors);
    }
    (known, survey)
}

/// The selected tensors of a side read on its own: a pass over a file, or a record.
fn side_facts(side: Release<'_>, opts: &Options<'_>) -> Vec<TensorFacts> {
    match side {
        Release::File(f) => {
            let chosen = selected(f, opts.filter);
            survey_of(f, &chosen, false, opts.progress, opts.label).tensors
        }
        Release::Summary(s) => s
            .tensors
            .iter()
            .filter(|t| selects(opts.filter, &t.name))
            .cloned()
            .collect(),
    }
}

fn selects(filter: &[String], name: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| glob_match(f, name))
}

/// Compare two releases (either may be a recorded summary).
pub fn compare(old: Release<'_>, new: Release<'_>, opts: &Options<'_>) -> Diff {
    match new {
        Release::File(n) => compare_file(old, n, opts).0,
        Release::Summary(_) => {
            let known = Known {
                old: side_facts(old, opts),
                new: side_facts(new, opts),
                ..Known::default()
            };
            build(old, new, &known, None, opts)
        }
    }
}

/// Compare a release with a GGUF file, and return what the pass learnt about the file:
/// the gate's statistics, per-tensor hashes and fingerprint come from the same read.
pub fn compare_file(old: Release<'_>, new: &GgufFile, opts: &Options<'_>) -> (Diff, Survey) {
    let (known, survey) = match old {
        Release::File(o) => known_files(o, new, opts),
        Release::Summary(_) => {
            let chosen = selected(new, opts.filter);
            let survey = survey_of(new, &chosen, opts.fingerprint, opts.progress, opts.label);
            let known = Known {
                old: side_facts(old, opts),
                new: survey.tensors.clone(),
                ..Known::default()
            };
            (known, survey)
        }
    };
    let diff = build(
        old,
        Release::File(new),
        &known,
        survey.scan.fingerprint,
        opts,
    );
    (diff, survey)
}

fn build(
    old: Release<'_>,
    new: Release<'_>,
    known: &Known,
    new_fingerprint: Option<Fingerprint>,
    opts: &Options<'_>,
) -> Diff {
    let old_keys = keys_of(old);
    let new_keys = keys_of(new);
    let (keys, templates) = metadata::compare(
        &old_keys
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect::<Vec<_>>(),
        &new_keys
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect::<Vec<_>>(),
        &|k| selects(opts.filter, k),
    );
    let mut architectures: Vec<String> = [old.architecture(), new.architecture()]
        .into_iter()
        .flatten()
        .collect();
    architectures.dedup();
    let old_info = info(old, &old_keys);
    let mut new_info = info(new, &new_keys);
    if let Some(f) = new_fingerprint {
        new_info.fingerprint = Some(f.to_string());
    }
    let header = [
        (
            "version",
            u64::from(old_info.gguf_version),
            u64::from(new_info.gguf_version),
        ),
        ("alignment", old_info.alignment, new_info.alignment),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(field, old, new)| HeaderChange { field, old, new })
    .collect();
    Diff {
        old: old_info,
        new: new_info,
        filter: opts.filter.to_vec(),
        header,
        keys,
        templates,
        tensors: tensor_diffs(known, opts.norm_patterns),
        architectures,
    }
}

fn keys_of(side: Release<'_>) -> Vec<(String, Recorded)> {
    match side {
        Release::File(f) => f
            .header
            .metadata
            .iter()
            .map(|e| (e.key.clone(), Recorded::Value(e.value.clone())))
            .collect(),
        Release::Summary(s) => s.metadata.clone(),
    }
}

fn info(side: Release<'_>, keys: &[(String, Recorded)]) -> SideInfo {
    match side {
        Release::File(f) => SideInfo {
            path: f.path().display().to_string(),
            kind: "gguf",
            bytes: f.header.file_len,
            gguf_version: f.header.version,
            alignment: f.header.alignment,
            keys: keys.len(),
            tensors: f.header.tensors.len(),
            fingerprint: None,
        },
        Release::Summary(s) => SideInfo {
            path: s.path.clone(),
            kind: "summary",
            bytes: s.bytes,
            gguf_version: s.version,
            alignment: s.alignment,
            keys: keys.len(),
            tensors: s.tensors.len(),
            fingerprint: s.fingerprint.map(|f| f.to_string()),
        },
    }
}

fn tensor_diffs(known: &Known, norm_patterns: &[String]) -> Vec<TensorDiff> {
    let old: HashMap<&str, &TensorFacts> = known.old.iter().map(|t| (t.name.as_str(), t)).collect();
    let new_names: HashSet<&str> = known.new.iter().map(|t| t.name.as_str()).collect();
    let pairs = known
        .new
        .iter()
        .map(|n| (old.get(n.name.as_str()).copied(), Some(n)))
        .chain(
            known
                .old
                .iter()
                .filter(|o| !new_names.contains(o.name.as_str()))
                .map(|o| (Some(o), None)),
        );
    pairs
        .filter_map(|(o, n)| {
            let name = n.or(o)?.name.clone();
            let norm = norm_patterns.iter().any(|p| glob_match(p, &name));
            Some(tensor_diff(name, o, n, norm, known))
        })
        .collect()
}

fn tensor_diff(
    name: String,
    o: Option<&TensorFacts>,
    n: Option<&TensorFacts>,
    norm: bool,
    known: &Known,
) -> TensorDiff {
    let mut d = TensorDiff {
        name,
        change: match (o, n) {
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
            _ => Change::Changed,
        },
        old: o.cloned(),
        new: n.cloned(),
        norm,
        byte_identical: false,
        dtype_changed: false,
        shape_changed: false,
        rms_diff: None,
        relative_change: None,
        rms_change: None,
        nonfinite_changed: 0,
        note: None,
    };
    let (Some(o), Some(n)) = (o, n) else {
        return d;
    };
    d.dtype_changed = o.ty != n.ty;
    d.shape_changed = o.dims != n.dims;
    // Bytes compared in the joint pass; else (a recorded side) the same type, shape and hash.
    d.byte_identical = known.identical.contains(&d.name)
        || (!d.dtype_changed && !d.shape_changed && o.sha256 == n.sha256);
    if d.byte_identical {
        d.change = Change::Unchanged;
        d.rms_diff = Some(0.0);
        d.relative_change = Some(0.0);
        d.rms_change = Some(0.0);
        return d;
    }
    if let (Some(a), Some(b)) = (o.rms, n.rms) {
        if a > 0.0 {
            d.rms_change = Some((b - a) / a);
        }
    }
    if d.shape_changed {
        d.note = Some("shapes differ: values not compared".into());
        return d;
    }
    match known.sums.get(&d.name) {
        Some((s, old_sq)) => {
            d.nonfinite_changed = s.nonfinite_changed;
            d.rms_diff = (s.pairs > 0).then(|| (s.sum_sq / s.pairs as f64).sqrt());
            d.relative_change = Some(if *old_sq > 0.0 {
                (s.sum_sq / old_sq).sqrt()
            } else if s.sum_sq == 0.0 {
                0.0
            } else {
                f64::INFINITY
            });
        }
        None => {
            d.note = Some(match (undecodable(o.ty), undecodable(n.ty)) {
                (true, _) => format!("{} cannot be decoded: values not compared", o.ty),
                (_, true) => format!("{} cannot be decoded: values not compared", n.ty),
                _ => "compared by hash and RMS (a recorded summary holds no values)".into(),
            });
        }
    }
    d
}

fn undecodable(ty: GgmlType) -> bool {
    !crate::quant::is_supported(ty)
}
