//! `gguf-gate inspect`: the header as text or JSON (`inspect` in the library formats it).

use anyhow::Result;

use super::{emit, pretty_json, Outcome};
use crate::cli::{Format, InspectArgs};
use gguf_gate::gguf::GgufFile;
use gguf_gate::inspect;

pub fn run(args: InspectArgs) -> Result<Outcome> {
    let file = GgufFile::open(&args.model)?;
    let text = match args.format {
        Format::Text => inspect::to_text(&file, args.full),
        Format::Json => pretty_json(&inspect::to_json(&file, args.full))?,
    };
    emit(args.output.as_deref(), &text)?;
    Ok(Outcome::Pass)
}
