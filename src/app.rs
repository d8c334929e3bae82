//! Runs one parsed command: opens inputs, calls the library, writes outputs, and says
//! whether the command passed. `main.rs` turns that into an exit code.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::atomic::{write_text, Overwrite};
use crate::cli::{Cli, Command, Format};
use crate::fingerprint::{fingerprint_file, sidecar_path, Fingerprint};
use crate::gguf::GgufFile;
use crate::inspect;
use crate::progress::bytes_bar;
use crate::stats;

/// How a command that ran to completion ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Pass,
    /// Exit 1: the check ran and failed.
    Fail,
}

pub fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Inspect {
            model,
            format,
            full,
            output,
        } => {
            let file = GgufFile::open(&model)?;
            let text = match format {
                Format::Text => inspect::to_text(&file, full),
                Format::Json => {
                    let mut s = serde_json::to_string_pretty(&inspect::to_json(&file, full))?;
                    s.push('\n');
                    s
                }
            };
            emit(output.as_deref(), &text)?;
            Ok(Outcome::Pass)
        }
        Command::Stats {
            model,
            format,
            filter,
            output,
            threads,
        } => {
            configure_threads(threads)?;
            let file = GgufFile::open(&model)?;
            let selected = stats::select(&file.header, &filter);
            let bar = bytes_bar(file.header.file_len, "stats");
            let stats::Scan {
                stats: result,
                errors,
                ..
            } = stats::scan(&file, &selected, false, |n| bar.inc(n));
            bar.finish_and_clear();
            let text = match format {
                Format::Text => stats::to_text(&result, &errors),
                Format::Json => {
                    let mut s = serde_json::to_string_pretty(&stats::to_json(&result, &errors))?;
                    s.push('\n');
                    s
                }
            };
            emit(output.as_deref(), &text)?;
            if let Some(first) = errors.first() {
                bail!(
                    "{}: {} tensor(s) could not be decoded, first: {first}",
                    model.display(),
                    errors.len()
                );
            }
            Ok(Outcome::Pass)
        }
        Command::Fingerprint {
            model,
            write,
            verify,
        } => {
            let expected = verify.as_deref().map(parse_expected).transpose()?;
            let fp = fingerprint_file(&model).with_context(|| format!("{}", model.display()))?;
            println!("{fp}");
            if write {
                let path = sidecar_path(&model);
                write_text(&path, Overwrite::Allow, &format!("{fp}\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            match expected {
                Some(want) if want != fp => {
                    eprintln!("fingerprint mismatch: expected {want}, got {fp}");
                    Ok(Outcome::Fail)
                }
                _ => Ok(Outcome::Pass),
            }
        }
    }
}

/// Size rayon's global pool (once per process).
fn configure_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("configuring the thread pool")?;
    }
    Ok(())
}

/// `--verify` takes a fingerprint or the path of a file holding one.
fn parse_expected(arg: &str) -> Result<Fingerprint> {
    if arg.starts_with("sha256-") {
        return Ok(arg.parse()?);
    }
    let path = Path::new(arg);
    if !path.exists() {
        bail!("--verify {arg:?}: neither a sha256-... fingerprint nor an existing file");
    }
    let meta = std::fs::metadata(path).with_context(|| arg.to_string())?;
    if meta.len() > 4096 {
        bail!(
            "{arg}: {} bytes is too large for a fingerprint file",
            meta.len()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| arg.to_string())?;
    text.trim()
        .parse()
        .with_context(|| format!("{arg}: does not hold a fingerprint"))
}

/// Write a report to `--output` atomically, or to stdout.
fn emit(output: Option<&Path>, text: &str) -> Result<()> {
    match output {
        Some(path) => write_text(path, Overwrite::Allow, text)
            .with_context(|| format!("writing {}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                // A closed pipe (`| head`) is not an error worth reporting.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
    }
}
