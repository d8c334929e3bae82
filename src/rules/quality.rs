//! The quality rule family: the model's perplexity on the policy's text
//! (`quality-perplexity`), its KL divergence from the base model — mean and 99th
//! percentile (`quality-kld`) — and the share of positions where both pick the same top
//! token (`quality-top1`), each against the policy's `quality:` bound. What is measured
//! is `quality::Score`, computed by the gate.

use super::finding::{Check, Sink};
use super::{num, Rule};
use crate::policy::{Policy, QualityPolicy};
use crate::quality::Score;

/// Check `score` against the policy's bounds (nothing when the policy has none).
pub fn check(policy: &Policy, score: &Score, sink: &mut Sink<'_>) {
    let Some(q) = &policy.quality else { return };
    let mut bound = |rule: Rule, subject: &str, value: f64, limit: f64, below: bool, what: &str| {
        let ok = value.is_finite()
            && if below {
                value <= limit
            } else {
                value >= limit
            };
        sink.push(Check {
            rule,
            subject,
            passed: ok,
            message: format!(
                "{what} {} ({} {})",
                num(value),
                if ok { "within" } else { "outside" },
                if below {
                    format!("at most {}", num(limit))
                } else {
                    format!("at least {}", num(limit))
                }
            ),
            value: Some(num(value)),
            bound: Some(format!(
                "{} {}",
                if below { "<=" } else { ">=" },
                num(limit)
            )),
            loc: Some(q.loc.clone()),
        });
    };
    let text = text_subject(q);
    if let Some(limit) = q.max_perplexity {
        bound(
            Rule::QualityPerplexity,
            &text,
            score.perplexity,
            limit,
            true,
            "perplexity",
        );
    }
    let Some(base) = &score.base else { return };
    if let Some(limit) = q.max_mean_kld {
        let subject = format!("{text} mean KLD");
        bound(
            Rule::QualityKld,
            &subject,
            base.mean_kld,
            limit,
            true,
            "mean KL divergence from the base",
        );
    }
    if let Some(limit) = q.max_p99_kld {
        let subject = format!("{text} p99 KLD");
        bound(
            Rule::QualityKld,
            &subject,
            base.p99_kld,
            limit,
            true,
            "99th percentile of the KL divergence",
        );
    }
    if let Some(limit) = q.min_same_top1 {
        bound(
            Rule::QualityTop1,
            &text,
            base.same_top1,
            limit,
            false,
            "share of positions with the base's top token",
        );
    }
}

/// The subject of quality findings: the text scored.
fn text_subject(q: &QualityPolicy) -> String {
    match &q.text {
        Some(p) => format!("text {}", p.display()),
        None => "the bundled evaluation text".into(),
    }
}
