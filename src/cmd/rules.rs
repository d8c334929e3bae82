//! `gguf-gate rules` (every rule code) and `gguf-gate explain RULE` (one rule in full),
//! read from the registry.

use anyhow::Result;

use super::{emit, Outcome};
use crate::cli::{ExplainArgs, RulesArgs, RulesFormat};
use gguf_gate::registry::{self, Rule, RULES};

pub fn list(args: RulesArgs) -> Result<Outcome> {
    let text = match args.format {
        RulesFormat::Markdown => registry::markdown(),
        RulesFormat::Text => RULES
            .iter()
            .map(|r| {
                format!(
                    "{:24} {:12} {:8} {}\n",
                    r.code,
                    r.family,
                    r.default_severity.name(),
                    r.summary
                )
            })
            .collect(),
    };
    emit(None, &text)?;
    Ok(Outcome::Pass)
}

pub fn explain(args: ExplainArgs) -> Result<Outcome> {
    let r = args.rule.parse::<Rule>()?.info();
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
