//! Metadata rules: required keys, their types and values (`metadata-required`,
//! `metadata-type`, `metadata-value`), and whether the metadata agrees with the tensors
//! (`metadata-consistency`).

use crate::registry::Rule;
use std::collections::BTreeSet;

use super::finding::{Check, Sink};
use super::{layer_of, Context};
use crate::gguf::{Header, Value};
use crate::policy::KeyRule;

pub fn check(ctx: &Context<'_>, sink: &mut Sink<'_>) {
    let arch = ctx.header.architecture();
    for rule in &ctx.policy.keys {
        check_key(ctx, sink, rule, arch);
    }
    if ctx.policy.consistency {
        consistency(ctx, sink, arch);
    }
}

fn check_key(ctx: &Context<'_>, sink: &mut Sink<'_>, rule: &KeyRule, arch: Option<&str>) {
    let key = match (rule.key.contains("{arch}"), arch) {
        (false, _) => rule.key.clone(),
        (true, Some(a)) => rule.key.replace("{arch}", a),
        (true, None) => return,
    };
    if let Some((cond_key, expected)) = &rule.when {
        match ctx.header.get(cond_key) {
            Some(v) if expected.matches(v) => {}
            _ => return,
        }
    }
    let loc = Some(rule.loc.clone());
    let Some(value) = ctx.header.get(&key) else {
        if rule.required {
            sink.push(Check {
                rule: Rule::MetadataRequired,
                subject: &key,
                passed: false,
                message: format!("required key `{key}` is missing"),
                value: None,
                bound: rule.ty.map(|t| t.to_string()),
                loc,
            });
        }
        return;
    };
    if rule.required {
        sink.push(Check {
            rule: Rule::MetadataRequired,
            subject: &key,
            passed: true,
            message: format!("`{key}` is present"),
            value: None,
            bound: None,
            loc: loc.clone(),
        });
    }
    if let Some(spec) = rule.ty {
        let actual = value.value_type();
        let element = value.as_array().map(|a| a.element_type());
        let ok = actual == spec.ty && (spec.element.is_none() || spec.element == element);
        sink.push(Check {
            rule: Rule::MetadataType,
            subject: &key,
            passed: ok,
            message: if ok {
                format!("`{key}` has type {spec}")
            } else {
                format!("`{key}` has type {}, expected {spec}", value.type_name())
            },
            value: Some(value.type_name()),
            bound: Some(spec.to_string()),
            loc: loc.clone(),
        });
        if !ok {
            return;
        }
    }
    if let Some(problem) = value_problem(rule, value) {
        sink.push(Check {
            rule: Rule::MetadataValue,
            subject: &key,
            passed: false,
            message: format!("`{key}` = {}: {problem}", short(value)),
            value: Some(short(value)),
            bound: Some(bound_text(rule)),
            loc,
        });
    } else if !rule.values.is_empty()
        || rule.min.is_some()
        || rule.max.is_some()
        || rule.regex.is_some()
    {
        sink.push(Check {
            rule: Rule::MetadataValue,
            subject: &key,
            passed: true,
            message: format!("`{key}` = {} is allowed", short(value)),
            value: Some(short(value)),
            bound: Some(bound_text(rule)),
            loc,
        });
    }
}

fn value_problem(rule: &KeyRule, value: &Value) -> Option<String> {
    if !rule.values.is_empty() && !rule.values.iter().any(|v| v.matches(value)) {
        let allowed: Vec<String> = rule.values.iter().map(ToString::to_string).collect();
        return Some(format!("not one of [{}]", allowed.join(", ")));
    }
    if rule.min.is_some() || rule.max.is_some() {
        let Some(x) = value.as_f64() else {
            return Some("not a number".into());
        };
        if rule.min.is_some_and(|m| x < m) || rule.max.is_some_and(|m| x > m) || x.is_nan() {
            return Some("out of range".into());
        }
    }
    if let Some(re) = &rule.regex {
        match value.as_str() {
            Some(s) if re.is_match(s) => {}
            Some(_) => return Some(format!("does not match /{}/", re.as_str())),
            None => return Some("not a string".into()),
        }
    }
    None
}

fn bound_text(rule: &KeyRule) -> String {
    let mut parts = Vec::new();
    if !rule.values.is_empty() {
        let allowed: Vec<String> = rule.values.iter().map(ToString::to_string).collect();
        parts.push(format!("one of [{}]", allowed.join(", ")));
    }
    match (rule.min, rule.max) {
        (Some(lo), Some(hi)) => parts.push(format!("[{lo}, {hi}]")),
        (Some(lo), None) => parts.push(format!(">= {lo}")),
        (None, Some(hi)) => parts.push(format!("<= {hi}")),
        (None, None) => {}
    }
    if let Some(re) = &rule.regex {
        parts.push(format!("/{}/", re.as_str()));
    }
    parts.join(", ")
}

fn short(value: &Value) -> String {
    match value {
        Value::Array(a) => format!("array[{}] of {}", a.element_type(), a.len()),
        Value::String(s) if s.chars().count() > 80 => {
            format!("{:?}…", s.chars().take(80).collect::<String>())
        }
        other => other.to_string(),
    }
}

/// Metadata against tensors: widths, layer counts, head counts, vocabulary size.
fn consistency(ctx: &Context<'_>, sink: &mut Sink<'_>, arch: Option<&str>) {
    sizes_agree(ctx.header, sink, arch);
    heads_divide(ctx.header, sink, arch);
}

/// `{arch}.{suffix}`, when the architecture is known.
fn arch_key(arch: Option<&str>, suffix: &str) -> Option<String> {
    arch.map(|a| format!("{a}.{suffix}"))
}

/// Widths, layer counts and vocabulary sizes in the metadata against the token
/// embedding's shape and the `blk.N` layers present.
fn sizes_agree(h: &Header, sink: &mut Sink<'_>, arch: Option<&str>) {
    let embd = h.tensor("token_embd.weight");
    let width = embd.and_then(|t| t.dims.first().copied());
    let rows = embd.and_then(|t| t.dims.get(1).copied());
    let layers: BTreeSet<u32> = h.tensors.iter().filter_map(|t| layer_of(&t.name)).collect();

    for (key, actual, what) in [
        (
            arch_key(arch, "embedding_length"),
            width,
            "embedding length vs token_embd row width",
        ),
        (
            Some("bitnet.hidden_size".to_string()),
            width,
            "bitnet.hidden_size vs token_embd row width",
        ),
        (
            arch_key(arch, "block_count"),
            Some(layers.len() as u64),
            "block count vs blk.N layers",
        ),
        (
            Some("bitnet.num_layers".to_string()),
            Some(layers.len() as u64),
            "bitnet.num_layers vs blk.N layers",
        ),
        (
            arch_key(arch, "vocab_size"),
            rows,
            "vocabulary size vs token_embd rows",
        ),
        (
            Some("bitnet.vocab_size".to_string()),
            rows,
            "bitnet.vocab_size vs token_embd rows",
        ),
    ] {
        if let (Some(key), Some(actual)) = (key, actual) {
            if let Some(m) = h.get_u64(&key) {
                let counts_layers = key.contains("block_count") || key.contains("num_layers");
                if counts_layers && layers.is_empty() {
                    continue;
                }
                agree(sink, &key, what, m, actual);
            }
        }
    }
    if let (Some(tokens), Some(rows)) = (
        h.get("tokenizer.ggml.tokens").and_then(Value::as_array),
        rows,
    ) {
        agree(
            sink,
            "tokenizer.ggml.tokens",
            "tokenizer tokens vs token_embd rows",
            tokens.len() as u64,
            rows,
        );
    }
}

/// A `metadata-consistency` check that a metadata value equals what the tensors say.
fn agree(sink: &mut Sink<'_>, subject: &str, what: &str, meta: u64, actual: u64) {
    sink.push(Check {
        rule: Rule::MetadataConsistency,
        subject,
        passed: meta == actual,
        message: if meta == actual {
            format!("{what}: {meta}")
        } else {
            format!("{what}: metadata says {meta}, the tensors say {actual}")
        },
        value: Some(actual.to_string()),
        bound: Some(meta.to_string()),
        loc: None,
    });
}

/// The attention heads divide the embedding width, and the KV heads the attention heads.
fn heads_divide(h: &Header, sink: &mut Sink<'_>, arch: Option<&str>) {
    let (Some(heads_key), Some(embd_key)) = (
        arch_key(arch, "attention.head_count"),
        arch_key(arch, "embedding_length"),
    ) else {
        return;
    };
    let (Some(heads), Some(width)) = (h.get_u64(&heads_key), h.get_u64(&embd_key)) else {
        return;
    };
    divides(
        sink,
        &heads_key,
        (heads, &format!("{heads} attention heads")),
        (width, &format!("the width {width}")),
    );
    if let Some(kv_key) = arch_key(arch, "attention.head_count_kv") {
        if let Some(kv) = h.get_u64(&kv_key) {
            divides(
                sink,
                &kv_key,
                (kv, &format!("{kv} KV heads")),
                (heads, &format!("the {heads} attention heads")),
            );
        }
    }
}

/// A `metadata-consistency` check that `part` (non-zero) divides `whole`; each comes
/// with the words that name it in the message.
fn divides(sink: &mut Sink<'_>, subject: &str, part: (u64, &str), whole: (u64, &str)) {
    let ((part, part_text), (whole, whole_text)) = (part, whole);
    let ok = part > 0 && whole % part == 0;
    sink.push(Check {
        rule: Rule::MetadataConsistency,
        subject,
        passed: ok,
        message: format!(
            "{part_text} {} {whole_text}",
            if ok { "divide" } else { "do not divide" }
        ),
        value: Some(part.to_string()),
        bound: Some(format!("divides {whole}")),
        loc: None,
    });
}
