//! Python's spelling of values, so that a template renders here byte for byte as it does
//! in transformers (Jinja2 on Python): `tojson` is transformers' override,
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)` —
//! no HTML escaping (minijinja's own `tojson` escapes `<`, `>`, `&` and `'`, which would
//! change every tool definition a template prints) — and `{{ value }}` prints what Python's
//! `str()` prints: `None`, `True`, `['a', 1]`, `{'k': 'v'}` (minijinja would print `none`,
//! `true`, `["a", 1]`). Both walk values to a bounded depth and charge fuel for what they
//! write, so a template cannot use them to escape the render budget.

use std::fmt::Write as _;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Output, State, Value};

/// Containers nested deeper than this are refused (Python would recurse until its own
/// recursion limit; no chat template nests data this deep).
const MAX_DEPTH: usize = 64;

fn too_deep() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        "value nested too deeply to print",
    )
}

/// Python's `repr(float)`: shortest round-trip digits, `.0` on integral values,
/// exponent form outside [1e-4, 1e16) written `1e+16` / `1e-05`.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Rust's `{:e}` is shortest round-trip too: `1e16`, `1.5e-7`.
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn number_text(v: &Value, float: impl Fn(f64) -> String) -> String {
    if v.is_integer() {
        return v.to_string();
    }
    match f64::try_from(v.clone()) {
        Ok(x) => float(x),
        Err(_) => v.to_string(),
    }
}

/// Python's `repr(str)`: single quotes unless the text holds `'` and no `"`.
pub fn str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `repr()` of a template value (what `str()` shows inside a container).
fn repr(v: &Value, depth: usize, out: &mut String) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    match v.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&number_text(v, float_repr)),
        ValueKind::String => str_repr(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in v.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(&item, depth + 1, out)?;
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in v.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(&key, depth + 1, out)?;
                out.push_str(": ");
                repr(&v.get_item(&key)?, depth + 1, out)?;
            }
            out.push('}');
        }
        _ => out.push_str(&v.to_string()),
    }
    Ok(())
}

/// Python's `str()` of a template value: strings as they are, everything else as `repr`.
pub fn str_of(v: &Value) -> Result<String, Error> {
    match v.kind() {
        ValueKind::String => Ok(v.as_str().unwrap_or_default().to_string()),
        ValueKind::Undefined => Ok(String::new()),
        _ => {
            let mut s = String::new();
            repr(v, 0, &mut s)?;
            Ok(s)
        }
    }
}

/// The formatter behind `{{ value }}`: Python's `str()`, fuel charged for what is written.
pub fn format_value(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    let text = str_of(value)?;
    if !matches!(value.kind(), ValueKind::String | ValueKind::Undefined) {
        // Strings are charged by the engine as output; a container's spelling is ours.
        state.consume_fuel(text.len() as u64 / 64 + 1)?;
    }
    out.write_str(&text).map_err(Error::from)
}

/// Python's `str.splitlines()` line boundaries.
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Python's `str.splitlines()` (without keepends).
fn splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_line_break(c) {
            lines.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = chars.peek() {
                    chars.next();
                    end = j + 1;
                }
            }
            start = end;
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// Jinja2's `indent(width=4, first=False, blank=False)` filter, which keeps a trailing
/// newline (minijinja's drops it).
pub fn indent(
    state: &State,
    value: String,
    width: Option<Value>,
    first: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    // (minijinja passes at most five arguments: `blank` is a keyword here.)
    let width = kwargs.get::<Option<Value>>("width")?.or(width);
    let first = kwargs
        .get::<Option<bool>>("first")?
        .or(first)
        .unwrap_or(false);
    let blank = kwargs.get::<Option<bool>>("blank")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let indention = match &width {
        Some(w) if w.kind() == ValueKind::String => w.as_str().unwrap_or_default().to_string(),
        Some(w) => " ".repeat(w.as_i64().unwrap_or(4).clamp(0, 256) as usize),
        None => "    ".to_string(),
    };
    let text = format!("{value}\n");
    let lines = splitlines(&text);
    state.consume_fuel((text.len() + lines.len() * indention.len()) as u64 / 64 + 1)?;
    let mut rv = String::new();
    if blank {
        rv = lines.join(&format!("\n{indention}"));
    } else if let Some((head, rest)) = lines.split_first() {
        rv.push_str(head);
        if !rest.is_empty() {
            rv.push('\n');
            let body: Vec<String> = rest
                .iter()
                .map(|l| {
                    if l.is_empty() {
                        String::new()
                    } else {
                        format!("{indention}{l}")
                    }
                })
                .collect();
            rv.push_str(&body.join("\n"));
        }
    }
    if first {
        rv.insert_str(0, &indention);
    }
    Ok(Value::from(rv))
}

/// `json.dumps` options transformers' `tojson` accepts.
struct Dumps {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

/// transformers' `tojson` filter: `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`.
pub fn tojson(state: &State, value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let indent: Option<Value> = kwargs.get("indent")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().into()),
        Some(v) => {
            let n = v.as_i64().unwrap_or(0).clamp(0, 64) as usize;
            Some(" ".repeat(n))
        }
    };
    let (item_sep, key_sep) = match separators {
        Some(s) if !s.is_none() => {
            let item = s.get_item_by_index(0)?;
            let key = s.get_item_by_index(1)?;
            (str_of(&item)?, str_of(&key)?)
        }
        _ if indent.is_some() => (",".into(), ": ".into()),
        _ => (", ".into(), ": ".into()),
    };
    let opts = Dumps {
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    dump(value, &opts, ensure_ascii.unwrap_or(false), 0, &mut out)?;
    state.consume_fuel(out.len() as u64 / 4 + 1)?;
    Ok(Value::from(out))
}

fn newline_indent(opts: &Dumps, depth: usize, out: &mut String) {
    if let Some(ind) = &opts.indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(ind);
        }
    }
}

fn dump(v: &Value, opts: &Dumps, ascii: bool, depth: usize, out: &mut String) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    match v.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&number_text(v, |x| {
            if x.is_nan() {
                "NaN".into()
            } else if x.is_infinite() {
                if x > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                }
            } else {
                float_repr(x)
            }
        })),
        ValueKind::String => json_string(v.as_str().unwrap_or_default(), ascii, out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline_indent(opts, depth + 1, out);
                dump(item, opts, ascii, depth + 1, out)?;
            }
            newline_indent(opts, depth, out);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if opts.sort_keys {
                keys.sort();
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline_indent(opts, depth + 1, out);
                let name = match key.kind() {
                    ValueKind::String => key.as_str().unwrap_or_default().to_string(),
                    ValueKind::None => "null".into(),
                    ValueKind::Bool => if key.is_true() { "true" } else { "false" }.into(),
                    _ => str_of(key)?,
                };
                json_string(&name, ascii, out);
                out.push_str(&opts.key_sep);
                dump(&v.get_item(key)?, opts, ascii, depth + 1, out)?;
            }
            newline_indent(opts, depth, out);
            out.push('}');
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("Object of type {kind} is not JSON serializable"),
            ))
        }
    }
    Ok(())
}

/// A JSON string as Python's `json` module writes it.
fn json_string(s: &str, ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_as_python() {
        assert_eq!(splitlines("a\nb\r\nc\n"), vec!["a", "b", "c"]);
        assert_eq!(splitlines("a\n\n"), vec!["a", ""]);
        assert_eq!(splitlines(""), Vec::<&str>::new());
    }

    #[test]
    fn floats_print_as_python_does() {
        assert_eq!(float_repr(1.0), "1.0");
        assert_eq!(float_repr(0.1), "0.1");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1.5e-7), "1.5e-07");
        assert_eq!(float_repr(123456.789), "123456.789");
    }

    #[test]
    fn values_print_as_python_str() {
        let v = Value::from(minijinja::value::Serde(
            serde_json::json!({"a": [1, "it's", null, true, 2.5]}),
        ));
        assert_eq!(str_of(&v).unwrap(), "{'a': [1, \"it's\", None, True, 2.5]}");
        assert_eq!(str_of(&Value::from("x")).unwrap(), "x");
    }
}
