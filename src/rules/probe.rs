//! The probe rule family: greedy continuations of the policy's prompts must read as
//! language. Until the inference engine is part of this build, the probe reports
//! `probe-skipped` — never a pass.

use serde::Serialize;

use super::finding::{Check, Sink};
use crate::policy::Policy;

/// What the probe produced, for the reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProbeReport {
    pub ran: bool,
    pub note: String,
}

pub fn check(policy: &Policy, sink: &mut Sink<'_>) -> ProbeReport {
    let note = if !policy.probe.enabled {
        "the probe is disabled by the policy".to_string()
    } else {
        "skipped: not implemented in this build (the inference engine is not available)".to_string()
    };
    sink.push(Check {
        rule: "probe-skipped",
        subject: "(probe)",
        passed: false,
        message: note.clone(),
        value: None,
        bound: None,
        loc: Some(policy.probe.loc.clone()),
    });
    ProbeReport { ran: false, note }
}
