//! Rules on every tensor: finite values (`tensor-finite`), not all zero
//! (`tensor-zero`), not constant (`tensor-constant`), allowed dtypes (`tensor-dtype`),
//! the expected count (`tensor-count`), and a warning for tensors whose type cannot be
//! decoded (`tensor-undecodable`).

use super::finding::{Check, Sink};
use super::{num, Context};
use crate::gguf::TensorInfo;
use crate::glob::glob_match;
use crate::policy::TensorPolicy;
use crate::registry::Rule;
use crate::stats::TensorStats;

pub fn check(ctx: &Context<'_>, sink: &mut Sink<'_>) {
    let policy = &ctx.policy.tensors;
    for t in &ctx.header.tensors {
        dtype(sink, policy, t);
        if let Some(s) = ctx.stats.get(t.name.as_str()).filter(|s| s.elements > 0) {
            values(sink, policy, &t.name, s);
        }
    }
    for e in ctx.undecodable {
        sink.push(Check {
            rule: Rule::TensorUndecodable,
            subject: &e.tensor,
            passed: false,
            message: format!("values not checked: {}", e.error),
            value: None,
            bound: None,
            loc: None,
        });
    }
    if let Some((expected, count_loc)) = &policy.count {
        let n = ctx.header.tensors.len() as u64;
        sink.push(Check {
            rule: Rule::TensorCount,
            subject: "(file)",
            passed: n == *expected,
            message: format!("{n} tensors, expected {expected}"),
            value: Some(n.to_string()),
            bound: Some(expected.to_string()),
            loc: Some(count_loc.clone()),
        });
    }
}

/// `tensor-dtype` under the first dtype rule whose pattern matches the tensor, if any.
fn dtype(sink: &mut Sink<'_>, policy: &TensorPolicy, t: &TensorInfo) {
    let Some(rule) = policy
        .dtypes
        .iter()
        .find(|r| glob_match(&r.pattern, &t.name))
    else {
        return;
    };
    let ok = rule.allowed.contains(&t.ty);
    let allowed: Vec<&str> = rule.allowed.iter().map(|d| d.name()).collect();
    sink.push(Check {
        rule: Rule::TensorDtype,
        subject: &t.name,
        passed: ok,
        message: if ok {
            format!("{} is allowed", t.ty)
        } else {
            format!(
                "{} is not allowed for {:?} ({})",
                t.ty,
                rule.pattern,
                allowed.join("|")
            )
        },
        value: Some(t.ty.name().into()),
        bound: Some(allowed.join("|")),
        loc: Some(rule.loc.clone()),
    });
}

/// `tensor-finite`, `tensor-zero` and `tensor-constant` on a tensor's statistics (of at
/// least one element), each as the policy enables it.
fn values(sink: &mut Sink<'_>, policy: &TensorPolicy, name: &str, s: &TensorStats) {
    let loc = Some(policy.loc.clone());
    if policy.finite {
        let bad = s.nan + s.inf;
        sink.push(Check {
            rule: Rule::TensorFinite,
            subject: name,
            passed: bad == 0,
            message: if bad == 0 {
                "all values finite".into()
            } else {
                format!(
                    "{} NaN and {} infinite values out of {}",
                    s.nan, s.inf, s.elements
                )
            },
            value: Some(bad.to_string()),
            bound: Some("0".into()),
            loc: loc.clone(),
        });
    }
    let all_zero = s.zeros == s.elements;
    if policy.nonzero {
        sink.push(Check {
            rule: Rule::TensorZero,
            subject: name,
            passed: !all_zero,
            message: if all_zero {
                format!("all {} values are zero", s.elements)
            } else {
                format!("{} of {} values are zero", s.zeros, s.elements)
            },
            value: Some(s.zeros.to_string()),
            bound: Some(format!("< {}", s.elements)),
            loc: loc.clone(),
        });
    }
    if policy.nonconstant && s.elements > 1 && !all_zero && s.finite() > 0 {
        let constant = s.min == s.max && s.nan + s.inf == 0;
        sink.push(Check {
            rule: Rule::TensorConstant,
            subject: name,
            passed: !constant,
            message: if constant {
                format!("every value is {}", num(s.min))
            } else {
                format!("values range over [{}, {}]", num(s.min), num(s.max))
            },
            value: Some(format!("std {}", num(s.std))),
            bound: Some("std > 0".into()),
            loc,
        });
    }
}
