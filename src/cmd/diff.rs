//! `gguf-gate diff OLD NEW`: open both sides (GGUF files or recorded summaries), compare
//! them with the library (`diff::compare`, one pass over each file), print the report in
//! the asked format, and exit as diff(1) does: 0 identical, 1 different, 2 error. Norm
//! tensors, which the summary ranks first among the weights, are the default policy's
//! norm patterns for the model's architecture.

use anyhow::{Context, Result};

use super::progress::Bars;
use super::{configure_threads, emit, pretty_json, Outcome};
use crate::cli::{DiffArgs, DiffFormat};
use gguf_gate::diff::{self, Loaded};
use gguf_gate::escape::visible;
use gguf_gate::policy;

pub fn run(args: DiffArgs) -> Result<Outcome> {
    configure_threads(args.threads)?;
    let old = Loaded::open(&args.old)?;
    let new = Loaded::open(&args.new)?;
    let arch = new
        .release()
        .architecture()
        .or_else(|| old.release().architecture());
    let norms = policy::load(None, arch.as_deref(), false)
        .context("the default policy (for its norm patterns)")?
        .norms
        .patterns;
    let options = diff::Options {
        filter: &args.filter,
        norm_patterns: &norms,
        fingerprint: false,
        progress: &Bars,
        label: "diff",
    };
    let d = diff::compare(old.release(), new.release(), &options);
    if !args.filter.is_empty()
        && d.keys.is_empty()
        && d.templates.is_empty()
        && d.tensors.is_empty()
    {
        let filters: Vec<String> = args
            .filter
            .iter()
            .map(|f| visible(f).into_owned())
            .collect();
        eprintln!(
            "gguf-gate: warning: --filter {} matches no key or tensor",
            filters.join(", ")
        );
    }
    let text = match args.format {
        DiffFormat::Text => diff::to_text(&d),
        DiffFormat::Json => pretty_json(&diff::to_json(&d))?,
        DiffFormat::Markdown => diff::to_markdown(&d),
    };
    emit(args.output.as_deref(), &text)?;
    Ok(if d.identical() {
        Outcome::Pass
    } else {
        Outcome::Fail
    })
}
