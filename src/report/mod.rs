//! Reports: the same verdict and findings rendered for people (human), programs (json),
//! CI test views (JUnit), code scanning (SARIF 2.1.0) and GitHub Actions (workflow
//! commands, job summary, step outputs) and HTML with per-layer plots. Each writer only
//! formats; nothing here decides.

pub mod github;
pub mod html;
pub mod human;
pub mod json;
pub mod junit;
pub mod location;
pub mod plot;
pub mod sarif;

use serde::Serialize;

use crate::fingerprint::Fingerprint;
use crate::rules::{Finding, ProbeReport, Severity};

/// Wall-clock time of the phases of a check, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Fingerprint and statistics (one read of the file).
    pub scan_ms: f64,
    pub rules_ms: f64,
    pub probe_ms: f64,
    pub total_ms: f64,
}

/// Everything a report shows.
#[derive(Clone, Debug)]
pub struct Report {
    /// The model as the user named it.
    pub model: String,
    /// Its absolute path (for report locations relative to the repository).
    pub model_path: std::path::PathBuf,
    /// Its length in bytes.
    pub model_bytes: u64,
    pub policy: String,
    pub preset: Option<String>,
    pub strict: bool,
    pub fail_level: Severity,
    pub passed: bool,
    pub fingerprint: Fingerprint,
    /// Every check made, passed or failed.
    pub findings: Vec<Finding>,
    pub probe: ProbeReport,
    /// The quality gate's measurements, when the policy has a `quality:` section.
    pub quality: Option<crate::quality::Score>,
    /// Per tensor role, the RMS of each layer with the policy's envelope (plots).
    pub series: Vec<plot::Series>,
    pub timings: Timings,
}

impl Report {
    /// Failed checks, most severe first (waived ones last), in a stable order.
    pub fn failures(&self) -> Vec<&Finding> {
        let mut f: Vec<&Finding> = self.findings.iter().filter(|f| !f.passed).collect();
        f.sort_by(|a, b| {
            (
                a.waived.is_some(),
                std::cmp::Reverse(a.severity),
                a.rule,
                &a.subject,
            )
                .cmp(&(
                    b.waived.is_some(),
                    std::cmp::Reverse(b.severity),
                    b.rule,
                    &b.subject,
                ))
        });
        f
    }

    /// Counts of unwaived failures by severity: (errors, warnings, notes).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for f in self.findings.iter().filter(|f| f.is_failure()) {
            match f.severity {
                Severity::Error => c.0 += 1,
                Severity::Warning => c.1 += 1,
                Severity::Note => c.2 += 1,
            }
        }
        c
    }

    pub fn verdict_word(&self) -> &'static str {
        if self.passed {
            "PASSED"
        } else {
            "FAILED"
        }
    }
}
