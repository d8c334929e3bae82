//! The commands, one small module each: take the parsed arguments, call the library,
//! print or write what it returns, and say how the command ended. Nothing here decides
//! whether a model passes (that is `gate`, `rules` and `policy` in the library); this is
//! where arguments become library options and results become text and exit codes. Part of
//! the binary, like `cli.rs` and `main.rs`.

mod check;
mod completions;
mod diff;
mod export;
mod fingerprint;
mod init;
mod inspect;
mod progress;
mod quantize;
mod rules;
mod run;
mod schema;
mod score;
mod stats;
mod template;

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::{Cli, Command};
use gguf_gate::atomic::{write_text, Overwrite};

/// How a command that ran to completion ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Pass,
    /// Exit 1: the check ran and failed.
    Fail,
}

/// Run one parsed command.
pub fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Run(args) => run::run(args),
        Command::Score(args) => score::run(args),
        Command::Rules(args) => rules::list(args),
        Command::Explain(args) => rules::explain(args),
        Command::Schema => schema::run(),
        Command::Completions(args) => completions::completions(args),
        Command::Man => completions::man(),
        Command::Init(args) => init::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Template(args) => template::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Fingerprint(args) => fingerprint::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Export(args) => export::run(args),
        Command::Quantize(args) => quantize::run(args),
    }
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

/// Pretty JSON with a final newline, bidi and zero-width characters as `\u` escapes.
fn pretty_json(v: &serde_json::Value) -> Result<String> {
    let mut s = gguf_gate::escape::json_text(serde_json::to_string_pretty(v)?);
    s.push('\n');
    Ok(s)
}

/// Set up rayon's global pool (once per process): `threads` workers (default: one per
/// core), the calling thread being one of them. The forward pass starts hundreds of
/// parallel loops per token; from a thread outside the pool each would be handed over
/// and waited for through the OS scheduler, which costs more than a small model's
/// matrix products (and with `--threads 1` it is all overhead).
fn configure_threads(threads: Option<usize>) -> Result<()> {
    if threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .use_current_thread()
        .build_global()
        .context("configuring the thread pool")?;
    Ok(())
}

/// `--strict` for the commands that have it: the flag, or `GGUF_GATE_STRICT=1`, or its
/// alias `BITNET_STRICT_MODE=1` (the name BitNet pipelines use).
fn strict(flag: bool) -> bool {
    flag || ["GGUF_GATE_STRICT", "BITNET_STRICT_MODE"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| v == "1"))
}
