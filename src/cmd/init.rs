//! `gguf-gate init`: a commented starter policy, or a copy of a preset, to edit.

use anyhow::{bail, Context, Result};

use super::{emit, Outcome};
use crate::cli::InitArgs;
use gguf_gate::atomic::{write_text, Overwrite};
use gguf_gate::policy;

pub fn run(args: InitArgs) -> Result<Outcome> {
    let Some(text) = policy::starter_policy(&args.preset) else {
        bail!(
            "unknown preset {:?}; known: default, {}",
            args.preset,
            policy::preset_names().join(", ")
        );
    };
    if args.stdout {
        emit(None, &text)?;
    } else {
        let mode = if args.force {
            Overwrite::Allow
        } else {
            Overwrite::Refuse
        };
        write_text(&args.output, mode, &text)
            .with_context(|| format!("writing {}", args.output.display()))?;
        eprintln!("wrote {}", args.output.display());
    }
    Ok(Outcome::Pass)
}
