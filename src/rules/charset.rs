//! `name-charset` and `string-charset`: names and strings that hide text. A tensor name
//! or metadata key with a control, bidirectional-override or zero-width character (a
//! newline that starts a fake log line, U+202E that reverses what a reviewer reads, a
//! zero-width space that makes two names look alike) is an error; a metadata string value
//! with a bidi or zero-width character is a warning (values may hold newlines; chat
//! templates have rules of their own, and arrays — the vocabulary — legitimately hold such
//! tokens). One finding per offending name; one passing check when all are plain.

use super::finding::{Check, Sink};
use super::Context;
use crate::escape::{is_bidi, is_hidden, is_invisible, visible};
use crate::gguf::Value;
use crate::registry::Rule;

/// The first hidden character in `s`, and what kind it is.
fn first_hidden(s: &str, hidden: impl Fn(char) -> bool) -> Option<(usize, char)> {
    s.chars().enumerate().find(|(_, c)| hidden(*c))
}

fn kind(c: char) -> &'static str {
    if is_bidi(c) {
        "a bidirectional-text control"
    } else if is_invisible(c) {
        "a zero-width character"
    } else {
        "a control character"
    }
}

pub fn check(ctx: &Context<'_>, sink: &mut Sink<'_>) {
    if sink.enabled(Rule::NameCharset) {
        let names = ctx
            .header
            .tensors
            .iter()
            .map(|t| ("tensor name", t.name.as_str()))
            .chain(
                ctx.header
                    .metadata
                    .iter()
                    .map(|e| ("metadata key", e.key.as_str())),
            );
        let mut bad = 0;
        let mut total = 0;
        for (what, name) in names {
            total += 1;
            if let Some((at, c)) = first_hidden(name, is_hidden) {
                bad += 1;
                sink.push(Check {
                    rule: Rule::NameCharset,
                    subject: name,
                    passed: false,
                    message: format!(
                        "the {what} {:?} holds {} (U+{:04X}) at character {at}",
                        visible(name),
                        kind(c),
                        c as u32
                    ),
                    value: Some(format!("U+{:04X}", c as u32)),
                    bound: Some("no control, bidi or zero-width characters".into()),
                    loc: None,
                });
            }
        }
        if bad == 0 {
            sink.push(Check {
                rule: Rule::NameCharset,
                subject: "(names)",
                passed: true,
                message: format!("all {total} tensor names and metadata keys are plain text"),
                value: None,
                bound: None,
                loc: None,
            });
        }
    }
    if sink.enabled(Rule::StringCharset) {
        let hides = |c: char| is_bidi(c) || is_invisible(c);
        for e in &ctx.header.metadata {
            let Value::String(s) = &e.value else { continue };
            if e.key.starts_with("tokenizer.chat_template") {
                continue;
            }
            if let Some((at, c)) = first_hidden(s, hides) {
                sink.push(Check {
                    rule: Rule::StringCharset,
                    subject: &e.key,
                    passed: false,
                    message: format!(
                        "the value holds {} (U+{:04X}) at character {at}: {:?}",
                        kind(c),
                        c as u32,
                        visible(s).chars().take(120).collect::<String>()
                    ),
                    value: Some(format!("U+{:04X}", c as u32)),
                    bound: Some("no bidi or zero-width characters".into()),
                    loc: None,
                });
            }
        }
    }
}
