//! `gguf-gate run`: greedy generation on the CPU with the engine the probe uses.

use anyhow::{bail, Result};

use super::{configure_threads, emit, pretty_json, Outcome};
use crate::cli::{Format, RunArgs};
use gguf_gate::gguf::GgufFile;
use gguf_gate::probe;

pub fn run(args: RunArgs) -> Result<Outcome> {
    configure_threads(args.threads)?;
    if args.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    let mut file = GgufFile::open(&args.model)?;
    file.make_resident();
    let tok = probe::load_tokenizer(&file, args.tokenizer.as_deref())?;
    let engine = probe::load_model(&file)?;
    let c = probe::continue_prompt(&engine, &tok, &args.prompt, args.max_tokens, None)?;
    let text = match args.format {
        Format::Text => format!("{}{}\n", c.prompt, c.text),
        Format::Json => pretty_json(&serde_json::json!({
            "prompt_tokens": c.prompt_tokens,
            "tokens": c.tokens,
            "text": c.text,
            "timings": {"prompt_ms": c.prompt_ms, "decode_tok_s": c.decode_tok_s},
        }))?,
    };
    emit(None, &text)?;
    Ok(Outcome::Pass)
}
