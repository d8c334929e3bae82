//! Runs one parsed command: opens inputs, calls the library, writes outputs, and says
//! whether the command passed. `main.rs` turns that into an exit code.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::atomic::{write_text, Overwrite};
use crate::check::{run_check, CheckOptions};
use crate::cli::{
    CheckFormat, Cli, Command, FailLevel, Format, OutType, QuantTypeArg, RulesFormat,
};
use crate::export::{self, ExportOptions};
use crate::fingerprint::{fingerprint_file, sidecar_path, Fingerprint};
use crate::gguf::GgufFile;
use crate::inspect;
use crate::policy;
use crate::probe;
use crate::progress::bytes_bar;
use crate::quantize::{self, QuantType, QuantizeOptions};
use crate::report::{github, human, json as json_report, junit, sarif, Report};
use crate::rules::{registry, Severity};
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
        Command::Check {
            model,
            policy,
            tokenizer,
            strict,
            format,
            json,
            junit,
            sarif,
            summary,
            fail_level,
            exit_zero,
            record_probe,
            no_probe,
            threads,
        } => {
            configure_threads(threads)?;
            let strict = strict || std::env::var("BITNET_STRICT_MODE").is_ok_and(|v| v == "1");
            let options = CheckOptions {
                policy: policy.as_deref(),
                strict,
                fail_level: match fail_level {
                    FailLevel::Error => Severity::Error,
                    FailLevel::Warning => Severity::Warning,
                },
                tokenizer: tokenizer.as_deref(),
                record_probe: record_probe.as_deref(),
                probe: !no_probe,
            };
            let report = run_check(&model, &options)?;
            write_reports(
                &report,
                format,
                json.as_deref(),
                junit.as_deref(),
                sarif.as_deref(),
                summary.as_deref(),
            )?;
            Ok(if report.passed || exit_zero {
                Outcome::Pass
            } else {
                Outcome::Fail
            })
        }
        Command::Run {
            model,
            prompt,
            tokenizer,
            max_tokens,
            threads,
            format,
        } => {
            configure_threads(threads)?;
            if max_tokens == 0 {
                bail!("--max-tokens must be at least 1");
            }
            let file = GgufFile::open(&model)?;
            let tok = probe::load_tokenizer(&file, tokenizer.as_deref())?;
            let engine = probe::load_model(&file)?;
            let c = probe::continue_prompt(&engine, &tok, &prompt, max_tokens)?;
            let text = match format {
                Format::Text => format!("{}{}\n", c.prompt, c.text),
                Format::Json => {
                    let v = serde_json::json!({
                        "prompt_tokens": c.prompt_tokens,
                        "tokens": c.tokens,
                        "text": c.text,
                        "timings": {"prompt_ms": c.prompt_ms, "decode_tok_s": c.decode_tok_s},
                    });
                    format!("{}\n", serde_json::to_string_pretty(&v)?)
                }
            };
            emit(None, &text)?;
            Ok(Outcome::Pass)
        }
        Command::Rules { format } => {
            let text = match format {
                RulesFormat::Markdown => registry::markdown(),
                RulesFormat::Text => {
                    let mut s = String::new();
                    for r in registry::RULES {
                        s.push_str(&format!(
                            "{:24} {:12} {:8} {}\n",
                            r.code,
                            r.family,
                            r.default_severity.name(),
                            r.summary
                        ));
                    }
                    s
                }
            };
            emit(None, &text)?;
            Ok(Outcome::Pass)
        }
        Command::Explain { rule } => {
            let Some(r) = registry::lookup(&rule) else {
                let codes: Vec<&str> = registry::RULES.iter().map(|r| r.code).collect();
                bail!(
                    "unknown rule code {rule:?}; known codes: {}",
                    codes.join(", ")
                );
            };
            emit(
                None,
                &format!(
                    "{} ({}, default severity {})\n\n{}\n\n{}\n\nFix: {}\n",
                    r.code,
                    r.family,
                    r.default_severity.name(),
                    r.summary,
                    r.explanation,
                    r.hint
                ),
            )?;
            Ok(Outcome::Pass)
        }
        Command::Schema => {
            let mut s = serde_json::to_string_pretty(&policy::schema())?;
            s.push('\n');
            emit(None, &s)?;
            Ok(Outcome::Pass)
        }
        Command::Init {
            preset,
            stdout,
            output,
            force,
        } => {
            let Some(text) = policy::starter_policy(&preset) else {
                bail!(
                    "unknown preset {preset:?}; known: default, {}",
                    policy::preset_names().join(", ")
                );
            };
            if stdout {
                emit(None, &text)?;
            } else {
                let mode = if force {
                    Overwrite::Allow
                } else {
                    Overwrite::Refuse
                };
                write_text(&output, mode, &text)
                    .with_context(|| format!("writing {}", output.display()))?;
                eprintln!("wrote {}", output.display());
            }
            Ok(Outcome::Pass)
        }
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
        Command::Export {
            dir,
            tokenizer,
            out,
            outtype,
            name,
            force,
            strict,
            allow_unmapped,
        } => {
            let options = ExportOptions {
                dir: &dir,
                tokenizer: tokenizer.as_deref(),
                out_dir: &out,
                outtype: match outtype {
                    OutType::F16 => export::OutType::F16,
                    OutType::Bf16 => export::OutType::BF16,
                    OutType::F32 => export::OutType::F32,
                },
                name: name.as_deref(),
                force,
                strict,
                allow_unmapped,
            };
            match export::export(&options)? {
                export::Outcome::Written(done) => {
                    let mut text = format!(
                        "wrote {} ({} tensors, {} bytes)\nwrote {}\nwrote {}\n{}\n",
                        done.gguf.display(),
                        done.tensors,
                        done.bytes,
                        done.fingerprint_file.display(),
                        done.meta.display(),
                        done.fingerprint
                    );
                    for (tensor, why) in &done.skipped {
                        text.push_str(&format!("skipped {tensor}: {why}\n"));
                    }
                    emit(None, &text)?;
                    Ok(Outcome::Pass)
                }
                export::Outcome::GateFailed { findings } => gate_failed("export", &findings),
            }
        }
        Command::Quantize {
            input,
            ty,
            out,
            force,
            strict,
        } => {
            let options = QuantizeOptions {
                input: &input,
                ty: match ty {
                    QuantTypeArg::Q8_0 => QuantType::Q8_0,
                    QuantTypeArg::Q4_0 => QuantType::Q4_0,
                    QuantTypeArg::Tq1_0 => QuantType::Tq1_0,
                    QuantTypeArg::Tq2_0 => QuantType::Tq2_0,
                    QuantTypeArg::I2S => QuantType::I2S,
                },
                out: out.as_deref(),
                force,
                strict,
            };
            match quantize::quantize(&options)? {
                quantize::Outcome::Written(done) => {
                    let quantized = done
                        .tensors
                        .iter()
                        .filter(|t| matches!(t.action, quantize::Action::Quantize(_)))
                        .count();
                    let mut text = format!(
                        "wrote {} ({} tensors, {quantized} quantized, {} bytes)\nwrote {}\nwrote {}\n{}\n",
                        done.gguf.display(),
                        done.tensors.len(),
                        done.bytes,
                        done.fingerprint_file.display(),
                        done.meta.display(),
                        done.fingerprint
                    );
                    // Norms and vectors are listed in .meta.json; other kept tensors here.
                    let vectors = done.tensors.iter().filter(|t| t.dims.len() == 1).count();
                    text.push_str(&format!(
                        "kept {vectors} norm and 1-D tensor(s) unquantized (listed in the .meta.json)\n"
                    ));
                    for t in done.tensors.iter().filter(|t| t.dims.len() != 1) {
                        if let quantize::Action::Keep(why) | quantize::Action::ToF32(why) =
                            &t.action
                        {
                            text.push_str(&format!("kept {} as {}: {why}\n", t.name, t.out_type()));
                        }
                    }
                    emit(None, &text)?;
                    Ok(Outcome::Pass)
                }
                quantize::Outcome::GateFailed { findings } => gate_failed("quantize", &findings),
            }
        }
    }
}

/// `export --strict` / `quantize --strict` refused the file: print each failure with its fix.
fn gate_failed(command: &str, findings: &[crate::rules::Finding]) -> Result<Outcome> {
    let mut text = format!("{command} --strict: the gate failed; no file was written\n");
    for f in findings {
        text.push_str(&format!("  {} {}: {}", f.rule, f.subject, f.message));
        if let (Some(v), Some(b)) = (&f.value, &f.bound) {
            text.push_str(&format!(" (value {v}, bound {b})"));
        }
        text.push_str(&format!("\n    fix: {}\n", f.hint));
    }
    emit(None, &text)?;
    Ok(Outcome::Fail)
}

/// Print the report in `format` and write every requested report file.
fn write_reports(
    report: &Report,
    format: CheckFormat,
    json: Option<&Path>,
    junit_path: Option<&Path>,
    sarif_path: Option<&Path>,
    summary: Option<&Path>,
) -> Result<()> {
    let pretty = |v: serde_json::Value| -> Result<String> {
        let mut s = serde_json::to_string_pretty(&v)?;
        s.push('\n');
        Ok(s)
    };
    if let Some(p) = json {
        write_text(p, Overwrite::Allow, &pretty(json_report::render(report))?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = junit_path {
        write_text(p, Overwrite::Allow, &junit::render(report)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = sarif_path {
        write_text(p, Overwrite::Allow, &pretty(sarif::render(report))?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = summary {
        write_text(p, Overwrite::Allow, &github::summary(report))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    match format {
        CheckFormat::Human => emit(
            None,
            &human::render(report, std::io::stdout().is_terminal()),
        ),
        CheckFormat::Json => emit(None, &pretty(json_report::render(report))?),
        CheckFormat::Github => {
            emit(None, &github::annotations(report))?;
            if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
                append(Path::new(&path), &github::summary(report))?;
            }
            if let Some(path) = std::env::var_os("GITHUB_OUTPUT") {
                let show = |p: Option<&Path>| p.map(|p| p.display().to_string());
                let (j, u, s) = (show(json), show(junit_path), show(sarif_path));
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
    }
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
    let text = crate::input::read_text_bounded(path, 4096, "fingerprint file")?;
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
