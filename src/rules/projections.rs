//! Projection rules: each attention/FFN projection's RMS within bounds (`proj-rms`),
//! and the max/min RMS spread within a layer and of one projection kind across layers
//! (`proj-rms-spread`) — a scaled or scrambled matrix stands out against its siblings.

use crate::registry::Rule;
use std::collections::BTreeMap;

use super::finding::{Check, Sink};
use super::{layer_of, num, rms_check, Context};
use crate::glob::glob_match;

pub fn check(ctx: &Context<'_>, sink: &mut Sink<'_>) {
    let policy = &ctx.policy.projections;
    // (name, layer, kind, rms) of every projection with statistics.
    let mut projections = Vec::new();
    for t in &ctx.header.tensors {
        if !policy.patterns.iter().any(|p| glob_match(p, &t.name)) {
            continue;
        }
        let Some(stats) = ctx.stats.get(t.name.as_str()) else {
            continue;
        };
        let rms = stats.rms;
        if let Some(check) = rms_check(Rule::ProjRms, &policy.envelopes, &t.name, rms) {
            sink.push(check);
        }
        if let Some(layer) = layer_of(&t.name) {
            let kind = t.name.splitn(3, '.').nth(2).unwrap_or("").to_string();
            projections.push((t.name.as_str(), layer, kind, rms));
        }
    }

    if let Some((limit, loc)) = &policy.max_spread_in_layer {
        let mut by_layer: BTreeMap<u32, Vec<(&str, f64)>> = BTreeMap::new();
        for (name, layer, _, rms) in &projections {
            by_layer.entry(*layer).or_default().push((name, *rms));
        }
        for (layer, members) in by_layer {
            spread(
                sink,
                &format!("blk.{layer}"),
                "within the layer",
                &members,
                *limit,
                loc,
            );
        }
    }
    if let Some((limit, loc)) = &policy.max_spread_across_layers {
        let mut by_kind: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
        for (name, _, kind, rms) in &projections {
            by_kind.entry(kind.as_str()).or_default().push((name, *rms));
        }
        for (kind, members) in by_kind {
            spread(
                sink,
                &format!("blk.*.{kind}"),
                "across layers",
                &members,
                *limit,
                loc,
            );
        }
    }
}

fn spread(
    sink: &mut Sink<'_>,
    subject: &str,
    scope: &str,
    members: &[(&str, f64)],
    limit: f64,
    loc: &crate::policy::Loc,
) {
    if members.len() < 2 {
        return;
    }
    let min = members.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    let max = members.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    let (Some(&(lo_name, lo)), Some(&(hi_name, hi))) = (min, max) else {
        return;
    };
    let ratio = if lo > 0.0 { hi / lo } else { f64::INFINITY };
    let ok = ratio.is_finite() && ratio <= limit;
    sink.push(Check {
        rule: Rule::ProjRmsSpread,
        subject,
        passed: ok,
        message: if ok {
            format!("RMS spread {}x {scope} (limit {}x)", num(ratio), num(limit))
        } else {
            format!(
                "RMS spread {}x {scope} exceeds {}x: {hi_name} has {}, {lo_name} has {}",
                num(ratio),
                num(limit),
                num(hi),
                num(lo)
            )
        },
        value: Some(format!("{}x", num(ratio))),
        bound: Some(format!("<= {}x", num(limit))),
        loc: Some(loc.clone()),
    });
}
