//! `gguf-gate stats`: per-tensor statistics of the dequantized values, as a table, JSON,
//! or an HTML page of per-layer RMS plots.

use anyhow::{bail, Result};

use super::progress::Bars;
use super::{configure_threads, emit, pretty_json, Outcome};
use crate::cli::{StatsArgs, StatsFormat};
use gguf_gate::gguf::GgufFile;
use gguf_gate::progress::Progress;
use gguf_gate::report::{html, plot};
use gguf_gate::stats;

pub fn run(args: StatsArgs) -> Result<Outcome> {
    configure_threads(args.threads)?;
    let file = GgufFile::open(&args.model)?;
    let selected = stats::select(&file.header, &args.filter);
    let count = Bars.task("stats", file.header.file_len);
    let stats::Scan { stats, errors, .. } = stats::scan(&file, &selected, false, count);
    let text = match args.format {
        StatsFormat::Text => stats::to_text(&stats, &errors),
        StatsFormat::Json => pretty_json(&stats::to_json(&stats, &errors))?,
        StatsFormat::Html => {
            let policy = gguf_gate::policy::load(None, file.header.architecture(), false)
                .map_err(anyhow::Error::new)?;
            let series = plot::series(&file.header, &stats, &policy, &[]);
            html::render_stats(&args.model.display().to_string(), &series)
        }
    };
    emit(args.output.as_deref(), &text)?;
    if let Some(first) = errors.first() {
        bail!(
            "{}: {} tensor(s) could not be decoded, first: {first}",
            args.model.display(),
            errors.len()
        );
    }
    Ok(Outcome::Pass)
}
