//! `fingerprint-match`: when the policy pins fingerprints, the file must hash to one
//! of them — a release gate approves exact bytes.

use super::finding::{Check, Sink};
use super::Context;
use crate::registry::Rule;

pub fn check(ctx: &Context<'_>, sink: &mut Sink<'_>) {
    let pinned = &ctx.policy.fingerprints;
    if pinned.is_empty() {
        return;
    }
    let actual = ctx.fingerprint;
    let hit = pinned.iter().find(|(f, _)| *f == actual);
    let expected: Vec<String> = pinned.iter().map(|(f, _)| f.to_string()).collect();
    sink.push(Check {
        rule: Rule::FingerprintMatch,
        subject: "(file)",
        passed: hit.is_some(),
        message: if hit.is_some() {
            format!("{actual} is pinned")
        } else {
            format!(
                "{actual} is not among the {} pinned fingerprint(s)",
                pinned.len()
            )
        },
        value: Some(actual.to_string()),
        bound: Some(expected.join(" | ")),
        loc: Some(hit.unwrap_or(&pinned[0]).1.clone()),
    });
}
