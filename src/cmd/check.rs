//! `gguf-gate check`: run the gate (`gate::run_check`) and write the report in every
//! format asked for; the verdict is the exit code.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::progress::Bars;
use super::{configure_threads, emit, pretty_json, strict, Outcome};
use crate::cli::{CheckArgs, CheckFormat, FailLevel};
use gguf_gate::atomic::{write_text, Overwrite};
use gguf_gate::gate::{run_check, CheckOptions};
use gguf_gate::report::{github, human, json as json_report, junit, sarif, Report};
use gguf_gate::rules::Severity;

pub fn run(args: CheckArgs) -> Result<Outcome> {
    configure_threads(args.threads)?;
    let options = CheckOptions {
        policy: args.policy.as_deref(),
        strict: strict(args.strict),
        fail_level: match args.fail_level {
            FailLevel::Error => Severity::Error,
            FailLevel::Warning => Severity::Warning,
        },
        tokenizer: args.tokenizer.as_deref(),
        record_probe: args.record_probe.as_deref(),
        probe: !args.no_probe,
        progress: &Bars,
    };
    let report = run_check(&args.model, &options)?;
    write_reports(&report, &args)?;
    Ok(if report.passed || args.exit_zero {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

/// Renders one report format.
type Render<'a> = &'a dyn Fn() -> Result<String>;

/// Write every requested report file, then print the report in `--format`.
fn write_reports(report: &Report, args: &CheckArgs) -> Result<()> {
    let files: [(Option<&Path>, Render<'_>); 4] = [
        (args.json.as_deref(), &|| {
            pretty_json(&json_report::render(report))
        }),
        (args.junit.as_deref(), &|| Ok(junit::render(report)?)),
        (args.sarif.as_deref(), &|| {
            pretty_json(&sarif::render(report))
        }),
        (args.summary.as_deref(), &|| Ok(github::summary(report))),
    ];
    for (path, render) in files {
        if let Some(p) = path {
            write_text(p, Overwrite::Allow, &render()?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
    }
    match args.format {
        CheckFormat::Human => emit(
            None,
            &human::render(report, std::io::stdout().is_terminal()),
        ),
        CheckFormat::Json => emit(None, &pretty_json(&json_report::render(report))?),
        CheckFormat::Github => github_output(report, args),
    }
}

/// `--format github`: annotations on stdout, the job summary and the step outputs into
/// the files GitHub Actions names.
fn github_output(report: &Report, args: &CheckArgs) -> Result<()> {
    emit(None, &github::annotations(report))?;
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        append(Path::new(&path), &github::summary(report))?;
    }
    if let Some(path) = std::env::var_os("GITHUB_OUTPUT") {
        let show = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let (j, u, s) = (show(&args.json), show(&args.junit), show(&args.sarif));
        let outputs = github::outputs(
            report,
            &[
                ("json", j.as_deref()),
                ("junit", u.as_deref()),
                ("sarif", s.as_deref()),
            ],
        );
        append(Path::new(&path), &outputs)?;
    }
    Ok(())
}

/// Append to a file GitHub Actions reads after the step (summary, outputs).
fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
