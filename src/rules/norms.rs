//! Norm rules: a norm weight must be stored as a float (`norm-dtype`) and its RMS must
//! lie in the envelope of the first matching pattern (`norm-rms`).

use super::finding::{Check, Sink};
use super::{rms_check, Context};
use crate::gguf::TensorInfo;
use crate::glob::glob_match;
use crate::registry::Rule;

/// Whether a tensor is a norm under the policy.
pub fn is_norm(ctx: &Context<'_>, t: &TensorInfo) -> bool {
    ctx.policy
        .norms
        .patterns
        .iter()
        .any(|p| glob_match(p, &t.name))
}

pub fn check(ctx: &Context<'_>, sink: &mut Sink<'_>) {
    let norms = &ctx.policy.norms;
    for t in ctx.header.tensors.iter().filter(|t| is_norm(ctx, t)) {
        if !norms.dtypes.is_empty() {
            let ok = norms.dtypes.contains(&t.ty);
            let allowed: Vec<&str> = norms.dtypes.iter().map(|d| d.name()).collect();
            sink.push(Check {
                rule: Rule::NormDtype,
                subject: &t.name,
                passed: ok,
                message: if ok {
                    format!("norm stored as {}", t.ty)
                } else {
                    format!(
                        "norm weight is quantized as {}; norms must stay float",
                        t.ty
                    )
                },
                value: Some(t.ty.name().to_string()),
                bound: Some(allowed.join("|")),
                loc: Some(norms.dtypes_loc.clone()),
            });
        }
        if let Some(stats) = ctx.stats.get(t.name.as_str()) {
            if let Some(check) = rms_check(Rule::NormRms, &norms.envelopes, &t.name, stats.rms) {
                sink.push(check);
            }
        }
    }
}
