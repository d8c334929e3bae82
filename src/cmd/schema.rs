//! `gguf-gate schema`: the policy's JSON Schema.

use anyhow::Result;

use super::{emit, pretty_json, Outcome};
use gguf_gate::policy;

pub fn run() -> Result<Outcome> {
    emit(None, &pretty_json(&policy::schema())?)?;
    Ok(Outcome::Pass)
}
