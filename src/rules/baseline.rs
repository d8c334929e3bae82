//! The drift gate: the `baseline-*` rules judge the diff between the policy's baseline
//! (the previous release: a GGUF file or a recorded summary) and the model, computed by
//! the gate with `diff::compare` in the same read as the statistics. The tensor set
//! (`baseline-tensors`), pinned keys (`baseline-keys`), dtypes (`baseline-dtype`), the
//! relative change of the values per pattern (`baseline-drift`) and the chat templates
//! (`baseline-template`). Every check is recorded, passed or failed.

use super::finding::{Check, Sink};
use super::{num, Context};
use crate::diff::{Change, Diff, TensorDiff};
use crate::glob::glob_match;
use crate::policy::BaselinePolicy;
use crate::registry::Rule;

pub fn check(ctx: &Context<'_>, sink: &mut Sink<'_>) {
    let (Some(diff), policy) = (ctx.baseline, &ctx.policy.baseline) else {
        return;
    };
    if policy.tensors_must_match {
        tensors(diff, policy, sink);
    }
    keys(diff, policy, ctx.header.architecture(), sink);
    if let Some(loc) = &policy.dtypes_must_match {
        for t in diff
            .tensors
            .iter()
            .filter(|t| t.old.is_some() && t.new.is_some())
        {
            sink.push(Check {
                rule: Rule::BaselineDtype,
                subject: &t.name,
                passed: !t.dtype_changed,
                message: match (&t.old, &t.new) {
                    (Some(o), Some(n)) if t.dtype_changed => {
                        format!("{} in the baseline, {} now", o.ty, n.ty)
                    }
                    (_, Some(n)) => format!("{} as in the baseline", n.ty),
                    _ => String::new(),
                },
                value: t.new.as_ref().map(|n| n.ty.to_string()),
                bound: t.old.as_ref().map(|o| o.ty.to_string()),
                loc: Some(loc.clone()),
            });
        }
    }
    for t in diff
        .tensors
        .iter()
        .filter(|t| t.old.is_some() && t.new.is_some() && !t.shape_changed)
    {
        drift(t, policy, sink);
    }
    if let Some(loc) = &policy.template_must_match {
        for t in &diff.templates {
            let same = t.change == Change::Unchanged;
            sink.push(Check {
                rule: Rule::BaselineTemplate,
                subject: &t.key,
                passed: same,
                message: if same {
                    "the baseline's template, byte for byte".into()
                } else {
                    format!("since the baseline: {}", crate::diff::template_summary(t))
                },
                value: t.new_bytes.map(|b| format!("{b} bytes")),
                bound: t.old_bytes.map(|b| format!("{b} bytes")),
                loc: Some(loc.clone()),
            });
        }
    }
}

fn tensors(diff: &Diff, policy: &BaselinePolicy, sink: &mut Sink<'_>) {
    for t in &diff.tensors {
        let passed = t.old.is_some() && t.new.is_some() && !t.shape_changed;
        sink.push(Check {
            rule: Rule::BaselineTensors,
            subject: &t.name,
            passed,
            message: if passed {
                "present in the baseline, same shape".into()
            } else {
                format!("since the baseline: {}", crate::diff::tensor_summary(t))
            },
            value: None,
            bound: None,
            loc: Some(policy.loc.clone()),
        });
    }
}

/// Pinned keys, chat templates included (a pattern like `tokenizer.*` covers them).
fn keys(diff: &Diff, policy: &BaselinePolicy, arch: Option<&str>, sink: &mut Sink<'_>) {
    let keys = diff
        .keys
        .iter()
        .map(|k| (k.key.as_str(), k.change, crate::diff::key_summary(k)));
    let templates = diff
        .templates
        .iter()
        .map(|t| (t.key.as_str(), t.change, crate::diff::template_summary(t)));
    for (key, change, summary) in keys.chain(templates) {
        let Some((_, loc)) = policy.keys_must_match.iter().find(|(pattern, _)| {
            let pattern = match arch {
                Some(a) => pattern.replace("{arch}", a),
                None => pattern.clone(),
            };
            glob_match(&pattern, key)
        }) else {
            continue;
        };
        let same = change == Change::Unchanged;
        sink.push(Check {
            rule: Rule::BaselineKeys,
            subject: key,
            passed: same,
            message: if same {
                "equals the baseline".into()
            } else {
                format!("since the baseline: {summary}")
            },
            value: None,
            bound: None,
            loc: Some(loc.clone()),
        });
    }
}

fn drift(t: &TensorDiff, policy: &BaselinePolicy, sink: &mut Sink<'_>) {
    let Some(bound) = policy
        .max_relative_change
        .iter()
        .find(|b| glob_match(&b.pattern, &t.name))
    else {
        return;
    };
    let (passed, value, message) = match t.drift() {
        Some((m, exact)) => {
            let what = if exact {
                "‖new − old‖ / ‖old‖"
            } else {
                "relative RMS change (a lower bound: the baseline is a recorded summary)"
            };
            let shown = if m.is_finite() { num(m) } else { "inf".into() };
            let ok = m <= bound.max;
            let verb = if ok { "within" } else { "exceeds" };
            (
                ok,
                Some(shown.clone()),
                format!(
                    "{what} {shown} {verb} {} (pattern {:?})",
                    num(bound.max),
                    bound.pattern
                ),
            )
        }
        None => (
            false,
            None,
            format!(
                "the change cannot be measured ({}); the bound {} cannot be shown to hold",
                t.note.as_deref().unwrap_or("values not compared"),
                num(bound.max)
            ),
        ),
    };
    sink.push(Check {
        rule: Rule::BaselineDrift,
        subject: &t.name,
        passed,
        message,
        value,
        bound: Some(num(bound.max)),
        loc: Some(bound.loc.clone()),
    });
}
