//! `gguf-gate check`: find the policy (`--policy`, else `gguf-gate.yaml` discovered in
//! the working directory or the git top level, else the embedded default), expand the
//! model arguments, run the gate (`gate::run_check`) on each, and write the reports in
//! every format asked for — one file per format for all models. The verdicts make the
//! exit code: 0 all passed, 1 one failed, 2 one could not be checked.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::progress::Bars;
use super::{configure_threads, emit, pretty_json, strict, Outcome};
use crate::cli::{CheckArgs, CheckFormat, Color, FailLevel};
use gguf_gate::atomic::{write_text, Overwrite};
use gguf_gate::escape::visible_lines;
use gguf_gate::gate::{run_check, CheckOptions};
use gguf_gate::glob::glob_match;
use gguf_gate::report::human::Style;
use gguf_gate::report::location::Root;
use gguf_gate::report::{github, html, human, json as json_report, junit, sarif, Report};
use gguf_gate::rules::Severity;

/// The policy file names `check` looks for when `--policy` is not given.
pub const DISCOVERED_POLICIES: [&str; 2] = ["gguf-gate.yaml", ".gguf-gate.yaml"];

pub fn run(args: CheckArgs) -> Result<Outcome> {
    configure_threads(args.threads)?;
    let models = expand_models(&args.models)?;
    if models.len() > 1 && args.record_probe.is_some() {
        bail!("--record-probe records one model's probe: give one model");
    }
    if models.len() > 1 && args.record_baseline.is_some() {
        bail!("--record-baseline records one model: give one model");
    }
    let root = Root::discover();
    let policy = resolve_policy(args.policy.as_deref(), &root)?;
    let options = CheckOptions {
        policy: policy.as_deref(),
        strict: strict(args.strict),
        fail_level: match args.fail_level {
            FailLevel::Error => Severity::Error,
            FailLevel::Warning => Severity::Warning,
        },
        tokenizer: args.tokenizer.as_deref(),
        record_probe: args.record_probe.as_deref(),
        record_baseline: args.record_baseline.as_deref(),
        probe: !args.no_probe,
        progress: &Bars,
    };
    let mut reports = Vec::new();
    let mut unchecked = 0;
    for model in &models {
        match run_check(model, &options) {
            Ok(report) => reports.push(report),
            // With one model the error is the command's; with several the others still run.
            Err(e) if models.len() == 1 => return Err(e),
            Err(e) => {
                unchecked += 1;
                eprintln!("error: {}", visible_lines(&format!("{e:#}")));
            }
        }
    }
    write_reports(&reports, &args, &root)?;
    if unchecked > 0 {
        bail!(
            "{unchecked} of {} models could not be checked",
            models.len()
        );
    }
    Ok(if reports.iter().all(|r| r.passed) || args.exit_zero {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}

/// `--policy none` is the embedded default; no `--policy` looks for a policy file in the
/// working directory, then at the repository root; it says which file it uses.
fn resolve_policy(arg: Option<&Path>, root: &Root) -> Result<Option<PathBuf>> {
    match arg {
        Some(p) if p == Path::new("none") => Ok(None),
        Some(p) => Ok(Some(p.to_path_buf())),
        None => {
            let cwd = std::env::current_dir().context("the working directory")?;
            let found = [cwd.as_path(), root.dir.as_path()]
                .iter()
                .flat_map(|dir| DISCOVERED_POLICIES.iter().map(move |n| dir.join(n)))
                .find(|p| p.is_file());
            if let Some(p) = &found {
                eprintln!(
                    "gguf-gate: using the policy {} (found; --policy none to skip it)",
                    p.display()
                );
            }
            Ok(found)
        }
    }
}

/// The model arguments as files: an argument with `*` or `?` that is not itself a file
/// is a pattern, expanded (sorted) one path component at a time; a pattern that matches
/// nothing is an error.
fn expand_models(args: &[String]) -> Result<Vec<PathBuf>> {
    let mut models = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if !arg.contains(['*', '?']) || path.exists() {
            models.push(path.to_path_buf());
            continue;
        }
        let mut matches = vec![PathBuf::new()];
        for component in path.components() {
            let part = component.as_os_str().to_string_lossy();
            if !part.contains(['*', '?']) {
                matches.iter_mut().for_each(|m| m.push(component));
                continue;
            }
            let mut next = Vec::new();
            for dir in &matches {
                let listing = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir.as_path()
                };
                let Ok(entries) = std::fs::read_dir(listing) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| glob_match(&part, n) && !n.starts_with('.'))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            }
            matches = next;
        }
        matches.retain(|m| m.is_file());
        if matches.is_empty() {
            bail!("{arg:?} matches no file");
        }
        models.extend(matches);
    }
    Ok(models)
}

/// Renders one report format.
type Render<'a> = &'a dyn Fn() -> Result<String>;

/// Write every requested report file, then print the reports in `--format`.
fn write_reports(reports: &[Report], args: &CheckArgs, root: &Root) -> Result<()> {
    let summary = || {
        reports
            .iter()
            .map(github::summary)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let files: [(Option<&Path>, Render<'_>); 5] = [
        (args.json.as_deref(), &|| {
            pretty_json(&json_report::render(reports))
        }),
        (args.junit.as_deref(), &|| Ok(junit::render(reports)?)),
        (args.sarif.as_deref(), &|| {
            pretty_json(&sarif::render(reports, root))
        }),
        (args.summary.as_deref(), &|| Ok(summary())),
        (args.html.as_deref(), &|| Ok(html::render(reports))),
    ];
    for (path, render) in files {
        if let Some(p) = path {
            write_text(p, Overwrite::Allow, &render()?)
                .with_context(|| format!("writing {}", p.display()))?;
        }
    }
    match args.format {
        CheckFormat::Human => {
            let style = Style {
                colour: colour(args.color),
                quiet: args.quiet,
            };
            let text: Vec<String> = reports.iter().map(|r| human::render(r, style)).collect();
            let mut text = text.join(if args.quiet { "" } else { "\n" });
            if reports.len() > 1 {
                let passed = reports.iter().filter(|r| r.passed).count();
                text.push_str(&format!(
                    "\n{} models: {passed} passed, {} failed\n",
                    reports.len(),
                    reports.len() - passed
                ));
            }
            emit(None, &text)
        }
        CheckFormat::Json => emit(None, &pretty_json(&json_report::render(reports))?),
        CheckFormat::Github => github_output(reports, args, root, &summary()),
    }
}

/// Colour for the human report: `--color`, and for `auto` a terminal without `NO_COLOR`.
fn colour(choice: Color) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// `--format github`: annotations on stdout, the job summary and the step outputs into
/// the files GitHub Actions names.
fn github_output(reports: &[Report], args: &CheckArgs, root: &Root, summary: &str) -> Result<()> {
    let annotations: String = reports
        .iter()
        .map(|r| github::annotations(r, root))
        .collect();
    emit(None, &annotations)?;
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        append(Path::new(&path), summary)?;
    }
    if let Some(path) = std::env::var_os("GITHUB_OUTPUT") {
        let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let (j, u, s) = (show(&args.json), show(&args.junit), show(&args.sarif));
        let outputs = github::outputs(
            reports,
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
