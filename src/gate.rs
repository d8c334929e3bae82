//! The gate: open the model, load the policy for its architecture, read the file once
//! (fingerprint + statistics; with a `baseline:` in the policy, the diff from the previous
//! release in the same read), run the rules and the probe, and produce the [`Report`]
//! every report writer formats. `gguf-gate check` (`cmd::check`) is a thin shell around
//! [`run_check`]; `export --strict` and `quantize --strict` pass [`strict_gate`] to the
//! GGUF writer so that a file is gated before it takes its name.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::atomic::{write_text, Overwrite};
use crate::diff;
use crate::fingerprint::Fingerprint;
use crate::gguf::{GgufFile, Header};
use crate::policy::{self, Policy};
use crate::probe::{self, Baseline, BaselinePrompt, Continuation, ProbeError};
use crate::progress::{Progress, Quiet};
use crate::quality;
use crate::registry::Family;
use crate::report::{Report, Timings};
use crate::rules::{self, Context, Finding, Severity, Sink, Span};
use crate::stats;

/// How to run a check.
#[derive(Clone)]
pub struct CheckOptions<'a> {
    pub policy: Option<&'a Path>,
    pub strict: bool,
    pub fail_level: Severity,
    /// tokenizer.json for the probe (default: the GGUF's own vocabulary).
    pub tokenizer: Option<&'a Path>,
    /// Write the probe's token ids here as a baseline (`--record-probe`).
    pub record_probe: Option<&'a Path>,
    /// Write the model's summary here, a baseline for `baseline.file` and `diff`
    /// (`--record-baseline`).
    pub record_baseline: Option<&'a Path>,
    /// Run the probe (when the policy enables it); false for `--no-probe`.
    pub probe: bool,
    /// Where the scan's progress goes.
    pub progress: &'a dyn Progress,
}

/// Run the gate on `model`. Errors are usage or input errors (exit 2).
pub fn run_check(model: &Path, options: &CheckOptions<'_>) -> Result<Report> {
    let start = Instant::now();
    if let Some(path) = options.tokenizer {
        // A tokenizer the user names must at least be a readable file: that is a usage
        // error (exit 2), not a probe finding.
        crate::input::open_regular(path).context("--tokenizer")?;
    }
    let mut file = GgufFile::open(model)?;
    let policy = policy::load(options.policy, file.header.architecture(), options.strict)
        .map_err(anyhow::Error::new)
        .with_context(|| {
            format!(
                "policy {}",
                options
                    .policy
                    .map_or("(default)".into(), |p| p.display().to_string())
            )
        })?;

    let scan_start = Instant::now();
    let read = read_model(&file, &policy, options)?;
    let scan = read.scan;
    let scan_ms = scan_start.elapsed().as_secs_f64() * 1e3;
    let fingerprint = scan
        .fingerprint
        .unwrap_or_else(|| crate::fingerprint::Fingerprint::of_bytes(file.bytes()));
    if let (Some(path), Some(tensors)) = (options.record_baseline, read.tensors) {
        let summary = diff::Summary::of(&file, fingerprint, tensors);
        write_text(path, Overwrite::Allow, &summary.to_json_text())
            .with_context(|| format!("writing {}", path.display()))?;
    }

    let rules_start = Instant::now();
    let by_name: HashMap<&str, &stats::TensorStats> =
        scan.stats.iter().map(|s| (s.name.as_str(), s)).collect();
    let ctx = Context {
        header: &file.header,
        policy: &policy,
        fingerprint,
        stats: by_name,
        undecodable: &scan.errors,
        baseline: read.baseline.as_ref(),
    };
    let mut sink = Sink::new(&policy, fingerprint, rules::today());
    rules::check_all(&ctx, &mut sink);
    let rules_ms = rules_start.elapsed().as_secs_f64() * 1e3;

    let probe_start = Instant::now();
    let infers = options.probe && (policy.probe.enabled || policy.quality.is_some());
    if infers {
        // The scan is done: from here on the file is read by the forward pass.
        file.make_resident();
    }
    let run = (options.probe && policy.probe.enabled)
        .then(|| run_probe(&file, options.tokenizer, &policy));
    let baseline = policy.probe.baseline.as_deref().map(read_baseline);
    let probe = rules::check_probe(&policy, run.as_ref(), baseline.as_ref(), &mut sink);
    if let Some(path) = options.record_probe {
        let Some(Ok(continuations)) = &run else {
            anyhow::bail!("--record-probe: the probe did not run ({})", probe.note);
        };
        if let Some(cut) = continuations.iter().find(|c| c.stopped_by_budget) {
            anyhow::bail!(
                "--record-probe: the continuation of {:?} was cut by probe.max_seconds; a baseline must be complete (raise the budget)",
                cut.prompt
            );
        }
        write_baseline(path, &fingerprint, &policy, continuations)?;
    }
    let probe_ms = probe_start.elapsed().as_secs_f64() * 1e3;

    let quality = match &policy.quality {
        Some(q) if options.probe => {
            let score = run_quality(&file, options.tokenizer, q)?;
            rules::check_quality(&policy, &score, &mut sink);
            Some(score)
        }
        _ => None,
    };

    let mut findings = sink.findings;
    for f in findings.iter_mut().filter(|f| !f.passed) {
        f.span = span_of(&file.header, &f.subject);
    }
    let passed = rules::passed(&findings, options.fail_level);
    let series = crate::report::plot::series(&file.header, &scan.stats, &policy, &findings);
    Ok(Report {
        model: model.display().to_string(),
        model_path: model.canonicalize().unwrap_or_else(|_| model.to_path_buf()),
        model_bytes: file.header.file_len,
        policy: policy.name.clone(),
        preset: policy.preset.clone(),
        strict: policy.strict,
        fail_level: options.fail_level,
        passed,
        fingerprint,
        findings,
        probe,
        quality,
        series,
        timings: Timings {
            scan_ms,
            rules_ms,
            probe_ms,
            total_ms: start.elapsed().as_secs_f64() * 1e3,
        },
    })
}

/// What reading the model produced.
struct Read {
    scan: stats::Scan,
    /// Every tensor's facts (hash, RMS), when a baseline is compared or recorded.
    tensors: Option<Vec<diff::TensorFacts>>,
    /// The diff from the policy's baseline.
    baseline: Option<diff::Diff>,
}

/// Read the model once: statistics and fingerprint; with a baseline in the policy, the
/// diff from it in the same pass; when recording a baseline, every tensor's hash too.
fn read_model(file: &GgufFile, policy: &Policy, options: &CheckOptions<'_>) -> Result<Read> {
    if let Some(path) = &policy.baseline.file {
        let baseline = diff::Loaded::open(path)
            .with_context(|| format!("the policy's baseline {}", path.display()))?;
        let diff_options = diff::Options {
            filter: &[],
            norm_patterns: &policy.norms.patterns,
            fingerprint: true,
            progress: options.progress,
            label: "check",
        };
        let (d, survey) = diff::compare_file(baseline.release(), file, &diff_options);
        return Ok(Read {
            scan: survey.scan,
            tensors: Some(survey.tensors),
            baseline: Some(d),
        });
    }
    if options.record_baseline.is_some() {
        let survey = diff::survey(file, true, options.progress, "check");
        return Ok(Read {
            scan: survey.scan,
            tensors: Some(survey.tensors),
            baseline: None,
        });
    }
    let all: Vec<usize> = (0..file.header.tensors.len()).collect();
    let count = options.progress.task("check", file.header.file_len);
    Ok(Read {
        scan: stats::scan(file, &all, true, count),
        tensors: None,
        baseline: None,
    })
}

/// Where `subject` lies in the file: a tensor's data, or a key-value pair (from its key's
/// length prefix to the next pair, or to the tensor infos after the last one).
fn span_of(header: &Header, subject: &str) -> Option<Span> {
    if let Some(t) = header.tensors.iter().find(|t| t.name == subject) {
        let range = header.data_range(t);
        return Some(Span {
            offset: range.start,
            length: t.size,
        });
    }
    let at = header.metadata.iter().position(|e| e.key == subject)?;
    let start = header.metadata.get(at)?.offset;
    let end = match header.metadata.get(at + 1) {
        Some(next) => next.offset,
        None => header
            .tensors
            .first()
            .map_or(header.data_offset, |t| t.info_offset),
    };
    Some(Span {
        offset: start,
        length: end.saturating_sub(start),
    })
}

/// The bytes a quality text may have.
const MAX_QUALITY_TEXT_BYTES: u64 = 16 << 20;

/// Score the policy's text with the model against the policy's base. A base or record
/// that does not fit the model (another vocabulary, text or tokenization), or a base
/// fingerprint that does not match, is an input error: the gate does not compare the
/// incomparable.
fn run_quality(
    file: &GgufFile,
    tokenizer: Option<&Path>,
    q: &crate::policy::QualityPolicy,
) -> Result<quality::Score> {
    use crate::policy::QualityBase;
    let text = match &q.text {
        Some(p) => crate::input::read_text_bounded(p, MAX_QUALITY_TEXT_BYTES, "quality text")?,
        None => quality::BUNDLED_TEXT.to_string(),
    };
    let tok = probe::load_tokenizer(file, tokenizer).context("quality")?;
    let options = quality::ScoreOptions {
        ctx: q.ctx,
        logits_out: None,
        record_top_k: None,
    };
    // A pinned base must be that file: the live base's bytes, or the model a record
    // was made from.
    let pinned = |what: &str, got: &str| match &q.base_fingerprint {
        Some(want) if got != want.to_string() => Err(anyhow::anyhow!(
            "{what}: it is {got}, but quality.base_fingerprint pins {want}"
        )),
        _ => Ok(()),
    };
    let (score, _) = match &q.base {
        QualityBase::None => {
            quality::score_text(file, &tok, &text, quality::BaseSource::None, options)
        }
        QualityBase::Model(path) => {
            let mut base = GgufFile::open(path).context("quality.base")?;
            let what = format!("quality.base {}", path.display());
            pinned(&what, &Fingerprint::of_bytes(base.bytes()).to_string())?;
            base.make_resident();
            let source = quality::BaseSource::File {
                base: &base,
                shared_tokenizer: tokenizer.is_some(),
            };
            quality::score_text(file, &tok, &text, source, options)
        }
        QualityBase::Record(path) => {
            let record = quality::record::BaseRecord::read(path)
                .map_err(|e| anyhow::anyhow!("quality.base_record: {e}"))?;
            let what = format!(
                "quality.base_record {} (recorded from that model)",
                path.display()
            );
            pinned(&what, &record.base_fingerprint)?;
            quality::score_text(
                file,
                &tok,
                &text,
                quality::BaseSource::Record(&record),
                options,
            )
        }
    }
    .context("quality")?;
    Ok(score)
}

/// Continue every policy prompt greedily.
fn run_probe(
    file: &GgufFile,
    tokenizer: Option<&Path>,
    policy: &Policy,
) -> Result<Vec<Continuation>, ProbeError> {
    // The model first: an architecture the engine cannot run is the finding that matters.
    let model = probe::load_model(file)?;
    let tokenizer = probe::load_tokenizer(file, tokenizer)?;
    // The prompts are decoded together, within one budget.
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(policy.probe.max_seconds);
    let prompts: Vec<(&str, usize)> = policy
        .probe
        .prompts
        .iter()
        .map(|p| {
            (
                p.text.as_str(),
                usize::try_from(p.max_tokens).unwrap_or(usize::MAX),
            )
        })
        .collect();
    probe::continue_prompts(&model, &tokenizer, &prompts, Some(deadline))
}

/// Baselines are small JSON files; anything larger is refused.
const MAX_BASELINE_BYTES: u64 = 16 << 20;

fn read_baseline(path: &Path) -> Result<Baseline, String> {
    let text = crate::input::read_text_bounded(path, MAX_BASELINE_BYTES, "probe baseline")
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_baseline(
    path: &Path,
    fingerprint: &Fingerprint,
    policy: &Policy,
    continuations: &[Continuation],
) -> Result<()> {
    let baseline = Baseline {
        version: 1,
        model_fingerprint: fingerprint.to_string(),
        prompts: continuations
            .iter()
            .zip(&policy.probe.prompts)
            .map(|(c, p)| BaselinePrompt {
                text: c.prompt.clone(),
                max_tokens: p.max_tokens,
                tokens: c.tokens.clone(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&baseline)?;
    text.push('\n');
    write_text(path, Overwrite::Allow, &text).with_context(|| format!("writing {}", path.display()))
}

/// The rule families `--strict` refuses a written file for.
pub const GATE_FAMILIES: &[Family] = &[Family::Metadata, Family::Norms, Family::Tensors];

/// `--strict`'s gate for `export` and `quantize`: check `path` in strict mode with the
/// default policy and return the failures of the metadata, norm and tensor families. The
/// probe does not run (its family is not gated): `check` the written file to probe it.
/// `Err` is a message: the check could not run.
pub fn strict_gate(path: &Path) -> Result<Vec<Finding>, String> {
    let options = CheckOptions {
        policy: None,
        strict: true,
        fail_level: Severity::Error,
        tokenizer: None,
        record_probe: None,
        record_baseline: None,
        probe: false,
        progress: &Quiet,
    };
    let report = run_check(path, &options).map_err(|e| format!("{e:#}"))?;
    Ok(gate_failures_of(report.findings))
}

/// The failures `--strict` refuses: errors of the metadata, norm and tensor families.
pub fn gate_failures_of(findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|f| {
            f.is_failure()
                && f.severity >= Severity::Error
                && GATE_FAMILIES.contains(&f.rule.family())
        })
        .collect()
}
