//! `gguf-gate check`: open the model, load the policy for its architecture, read the
//! file once (fingerprint + statistics), run the rules and the probe, and produce the
//! report every writer formats. Exit-code mapping lives in `app.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::gguf::GgufFile;
use crate::policy;
use crate::progress::bytes_bar;
use crate::report::{Report, Timings};
use crate::rules::{self, Context, Severity, Sink};
use crate::stats;

/// How to run a check.
#[derive(Clone, Debug)]
pub struct CheckOptions<'a> {
    pub policy: Option<&'a Path>,
    pub strict: bool,
    pub fail_level: Severity,
}

/// Run the gate on `model`. Errors are usage or input errors (exit 2).
pub fn run_check(model: &Path, options: &CheckOptions<'_>) -> Result<Report> {
    let start = Instant::now();
    let file = GgufFile::open(model)?;
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
    let all: Vec<usize> = (0..file.header.tensors.len()).collect();
    let bar = bytes_bar(file.header.file_len, "check");
    let scan = stats::scan(&file, &all, true, |n| bar.inc(n));
    bar.finish_and_clear();
    let scan_ms = scan_start.elapsed().as_secs_f64() * 1e3;
    let fingerprint = scan
        .fingerprint
        .unwrap_or_else(|| crate::fingerprint::Fingerprint::of_bytes(file.bytes()));

    let rules_start = Instant::now();
    let by_name: HashMap<&str, &stats::TensorStats> =
        scan.stats.iter().map(|s| (s.name.as_str(), s)).collect();
    let ctx = Context {
        header: &file.header,
        policy: &policy,
        fingerprint,
        stats: by_name,
        undecodable: &scan.errors,
    };
    let mut sink = Sink::new(&policy, fingerprint, rules::today());
    rules::check_all(&ctx, &mut sink);
    let rules_ms = rules_start.elapsed().as_secs_f64() * 1e3;

    let probe_start = Instant::now();
    let probe = rules::check_probe(&policy, &mut sink);
    let probe_ms = probe_start.elapsed().as_secs_f64() * 1e3;

    let findings = sink.findings;
    let passed = rules::passed(&findings, options.fail_level);
    Ok(Report {
        model: model.display().to_string(),
        policy: policy.name.clone(),
        preset: policy.preset.clone(),
        strict: policy.strict,
        fail_level: options.fail_level,
        passed,
        fingerprint,
        findings,
        probe,
        timings: Timings {
            scan_ms,
            rules_ms,
            probe_ms,
            total_ms: start.elapsed().as_secs_f64() * 1e3,
        },
    })
}
