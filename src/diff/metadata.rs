//! The metadata half of a diff: keys added, removed and changed (type or value, compared
//! through their GGUF encoding, so floats compare bit for bit), long arrays summarized
//! (lengths, the first differing index, how many elements differ, a few examples — for
//! the vocabulary, tokens added, removed and changed by id), and chat templates
//! (`tokenizer.chat_template`, `tokenizer.chat_template.<name>`) with a unified diff.

use std::collections::HashMap;

use serde::Serialize;

use super::record::Recorded;
use super::text::{self, Hunk};
use crate::gguf::{encode_value, Array, Value};

/// Array elements (and tokens) listed as examples of a change.
pub const EXAMPLES: usize = 10;
/// Arrays longer than this are shown by length and digest, not in full.
pub const SHOWN_ARRAY_ELEMENTS: usize = 16;
/// Strings longer than this are shown by length and digest, not in full.
pub const SHOWN_STRING_BYTES: usize = 1024;

/// How a key, template or tensor changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
    Unchanged,
}

/// One metadata key (templates excluded).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyDiff {
    pub key: String,
    pub change: Change,
    /// Abbreviated for showing: long arrays and strings as digests.
    pub old: Option<Recorded>,
    pub new: Option<Recorded>,
    pub type_changed: bool,
    /// For two arrays of one element type, known in full.
    pub array: Option<ArrayDiff>,
}

/// How two arrays of one element type differ.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArrayDiff {
    pub old_len: u64,
    pub new_len: u64,
    /// The first index at which they differ (an element changed, or one array ends).
    pub first_difference: Option<u64>,
    /// Indices present in both whose element differs.
    pub changed: u64,
    /// Indices only in the new array.
    pub added: u64,
    /// Indices only in the old array.
    pub removed: u64,
    /// The first few differences.
    pub examples: Vec<ElementChange>,
}

/// One element (a token, for the vocabulary) that differs, shown as `Value` displays it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ElementChange {
    pub index: u64,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// One chat template.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateDiff {
    pub key: String,
    pub change: Change,
    /// Bytes of the template text.
    pub old_bytes: Option<u64>,
    pub new_bytes: Option<u64>,
    /// The unified diff, when both texts are known (a recorded summary keeps templates of
    /// up to 64 KiB whole) and they differ.
    pub hunks: Option<Vec<Hunk>>,
    /// Where the texts first differ, for templates written on one long line: the
    /// character offset and the differing middle of each side with some context.
    pub excerpt: Option<Excerpt>,
}

/// The part of two texts that differs, with context (see [`TemplateDiff::excerpt`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Excerpt {
    /// Characters the texts share before the first difference.
    pub offset: u64,
    pub old: String,
    pub new: String,
}

/// Characters of context around the differing middle of an excerpt.
pub const EXCERPT_CONTEXT: usize = 24;
/// Characters of an excerpt side at most.
pub const EXCERPT_CHARS: usize = 160;

/// The differing middle of `a` and `b` with context, each side capped.
pub fn excerpt(a: &str, b: &str) -> Option<Excerpt> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if prefix == a.len() && prefix == b.len() {
        return None;
    }
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let start = prefix.saturating_sub(EXCERPT_CONTEXT);
    let side = |s: &[char]| -> String {
        let end = (s.len() - suffix + EXCERPT_CONTEXT).min(s.len());
        let mut out: String = s[start..end].iter().take(EXCERPT_CHARS).collect();
        if end - start > EXCERPT_CHARS {
            out.push('…');
        }
        out
    };
    Some(Excerpt {
        offset: prefix as u64,
        old: side(&a),
        new: side(&b),
    })
}

/// A key holding a chat template.
pub fn is_template_key(key: &str, values: &[Option<&Recorded>]) -> bool {
    let named = key == "tokenizer.chat_template" || key.starts_with("tokenizer.chat_template.");
    named && values.iter().flatten().all(|v| v.type_name() == "string")
}

/// Whether two recorded values are the same value of the same type.
pub fn same(a: &Recorded, b: &Recorded) -> bool {
    match (a, b) {
        (Recorded::Value(x), Recorded::Value(y)) => {
            x.value_type() == y.value_type()
                && x.type_name() == y.type_name()
                && encode_value(x) == encode_value(y)
        }
        _ => a.digest() == b.digest(),
    }
}

/// `v` as shown in a diff: whole when short, else by digest.
fn shown(v: &Recorded) -> Recorded {
    match v {
        Recorded::Value(v) => Recorded::of(v, SHOWN_ARRAY_ELEMENTS, SHOWN_STRING_BYTES),
        Recorded::Digest(d) => Recorded::Digest(d.clone()),
    }
}

/// Compare two key lists (each in file order). Returns the keys in the new list's order,
/// then the removed keys in the old list's order, and the templates the same way.
pub fn compare(
    old: &[(&str, &Recorded)],
    new: &[(&str, &Recorded)],
    selected: &dyn Fn(&str) -> bool,
) -> (Vec<KeyDiff>, Vec<TemplateDiff>) {
    let old_index: HashMap<&str, &Recorded> = old.iter().copied().collect();
    let new_index: HashMap<&str, &Recorded> = new.iter().copied().collect();
    let mut keys = Vec::new();
    let mut templates = Vec::new();
    let pairs = new
        .iter()
        .map(|&(k, v)| (k, old_index.get(k).copied(), Some(v)))
        .chain(
            old.iter()
                .filter(|(k, _)| !new_index.contains_key(k))
                .map(|&(k, v)| (k, Some(v), None)),
        );
    for (key, o, n) in pairs {
        if !selected(key) {
            continue;
        }
        let change = match (o, n) {
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
            (Some(o), Some(n)) if same(o, n) => Change::Unchanged,
            _ => Change::Changed,
        };
        if is_template_key(key, &[o, n]) {
            templates.push(template(key, change, o, n));
        } else {
            keys.push(KeyDiff {
                key: key.to_string(),
                change,
                old: o.map(shown),
                new: n.map(shown),
                type_changed: matches!((o, n), (Some(o), Some(n)) if o.type_name() != n.type_name()),
                array: match (change, o, n) {
                    (Change::Changed, Some(Recorded::Value(Value::Array(a))), Some(Recorded::Value(Value::Array(b)))) => {
                        array_diff(a, b)
                    }
                    _ => None,
                },
            });
        }
    }
    (keys, templates)
}

fn template(key: &str, change: Change, o: Option<&Recorded>, n: Option<&Recorded>) -> TemplateDiff {
    // The text's length, without hashing it (a recorded side carries its digest).
    let len = |v: Option<&Recorded>| match v? {
        Recorded::Value(Value::String(s)) => Some(s.len() as u64),
        Recorded::Value(_) => None,
        Recorded::Digest(d) => d.len,
    };
    fn text(v: Option<&Recorded>) -> Option<&str> {
        match v {
            Some(Recorded::Value(Value::String(s))) => Some(s.as_str()),
            // A side that is absent compares as empty text.
            None => Some(""),
            _ => None,
        }
    }
    let hunks = match (change, text(o), text(n)) {
        (Change::Unchanged, _, _) => None,
        (_, Some(a), Some(b)) if a.len().max(b.len()) <= text::MAX_TEXT_BYTES => {
            Some(text::unified(a, b))
        }
        _ => None,
    };
    let excerpt = match (change, text(o), text(n)) {
        (Change::Changed, Some(a), Some(b)) => excerpt(a, b),
        _ => None,
    };
    TemplateDiff {
        key: key.to_string(),
        change,
        old_bytes: len(o),
        new_bytes: len(n),
        hunks,
        excerpt,
    }
}

/// Element `i` of two arrays of one type: equal (floats bit for bit)?
fn element_eq(a: &Array, b: &Array, i: usize) -> Option<bool> {
    macro_rules! eq {
        ($($v:ident),*) => {
            match (a, b) {
                $((Array::$v(x), Array::$v(y)) => Some(x.get(i)? == y.get(i)?),)*
                (Array::F32(x), Array::F32(y)) => Some(x.get(i)?.to_bits() == y.get(i)?.to_bits()),
                (Array::F64(x), Array::F64(y)) => Some(x.get(i)?.to_bits() == y.get(i)?.to_bits()),
                _ => None,
            }
        };
    }
    eq!(U8, I8, U16, I16, U32, I32, Bool, String, U64, I64)
}

fn array_diff(a: &Array, b: &Array) -> Option<ArrayDiff> {
    if a.element_type() != b.element_type() {
        return None;
    }
    let common = a.len().min(b.len());
    let mut d = ArrayDiff {
        old_len: a.len() as u64,
        new_len: b.len() as u64,
        first_difference: None,
        changed: 0,
        added: b.len().saturating_sub(a.len()) as u64,
        removed: a.len().saturating_sub(b.len()) as u64,
        examples: Vec::new(),
    };
    let show = |arr: &Array, i: usize| arr.get(i).map(|v| v.to_string());
    for i in 0..common {
        if element_eq(a, b, i) == Some(false) {
            d.changed += 1;
            d.first_difference.get_or_insert(i as u64);
            if d.examples.len() < EXAMPLES {
                d.examples.push(ElementChange {
                    index: i as u64,
                    old: show(a, i),
                    new: show(b, i),
                });
            }
        }
    }
    if a.len() != b.len() {
        d.first_difference.get_or_insert(common as u64);
    }
    for i in common..a.len().max(b.len()) {
        if d.examples.len() >= EXAMPLES {
            break;
        }
        d.examples.push(ElementChange {
            index: i as u64,
            old: show(a, i),
            new: show(b, i),
        });
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: Value) -> Recorded {
        Recorded::Value(x)
    }

    #[test]
    fn keys_templates_and_vocabularies() {
        let tokens = |t: &[&str]| {
            v(Value::Array(Array::String(
                t.iter().map(|s| s.to_string()).collect(),
            )))
        };
        let o = [
            ("a", v(Value::U32(1))),
            ("b", v(Value::U32(2))),
            ("gone", v(Value::Bool(true))),
            ("tokenizer.ggml.tokens", tokens(&["x", "y", "z"])),
            (
                "tokenizer.chat_template",
                v(Value::String("hi\n{{ x }}\n".into())),
            ),
            ("f", v(Value::F32(f32::NAN))),
        ];
        let n = [
            ("a", v(Value::U64(1))),
            ("b", v(Value::U32(2))),
            ("new", v(Value::I8(-1))),
            ("tokenizer.ggml.tokens", tokens(&["x", "Y", "z", "w"])),
            (
                "tokenizer.chat_template",
                v(Value::String("hi\n{{ y }}\n".into())),
            ),
            ("f", v(Value::F32(f32::NAN))),
        ];
        let refs = |l: &[(&'static str, Recorded)]| -> Vec<(&'static str, Recorded)> { l.to_vec() };
        let (o, n) = (refs(&o), refs(&n));
        let o: Vec<(&str, &Recorded)> = o.iter().map(|(k, v)| (*k, v)).collect();
        let n: Vec<(&str, &Recorded)> = n.iter().map(|(k, v)| (*k, v)).collect();
        let (keys, templates) = compare(&o, &n, &|_| true);
        let changes: Vec<(&str, Change)> =
            keys.iter().map(|k| (k.key.as_str(), k.change)).collect();
        assert_eq!(
            changes,
            [
                ("a", Change::Changed),
                ("b", Change::Unchanged),
                ("new", Change::Added),
                ("tokenizer.ggml.tokens", Change::Changed),
                ("f", Change::Unchanged),
                ("gone", Change::Removed),
            ]
        );
        assert!(keys[0].type_changed);
        let vocab = keys[3].array.as_ref().unwrap();
        assert_eq!(
            (
                vocab.changed,
                vocab.added,
                vocab.removed,
                vocab.first_difference
            ),
            (1, 1, 0, Some(1))
        );
        assert_eq!(vocab.examples[0].new.as_deref(), Some("\"Y\""));
        assert_eq!(templates.len(), 1);
        let text = text::to_text(templates[0].hunks.as_ref().unwrap());
        assert!(text.contains("-{{ x }}\n+{{ y }}\n"), "{text}");
        let e = templates[0].excerpt.as_ref().unwrap();
        assert_eq!(
            (e.offset, e.old.as_str(), e.new.as_str()),
            (6, "hi\n{{ x }}\n", "hi\n{{ y }}\n")
        );
        // A digest compares equal to the value it was made from.
        let long = Value::Array(Array::U8(vec![1; 100]));
        assert!(same(&Recorded::of(&long, 64, 64), &v(long.clone())));
    }
}
