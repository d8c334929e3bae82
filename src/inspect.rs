//! `gguf-gate inspect`: a GGUF header as people and programs want to read it — the
//! version, every key with its type and value in file order, the tensor table, and a
//! summary (architecture, parameter count, bits per weight, file type).
//!
//! The JSON shape is documented in docs/inspect.md and kept stable.

use crate::escape::visible;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Map, Value as Json};

use crate::gguf::{file_type_name, Array, GgufFile, Header, Value};

/// Elements of an array shown before truncation (text always, JSON without `--full`).
pub const ARRAY_PREVIEW: usize = 8;
/// Characters of a string shown in text output without `--full`.
pub const STRING_PREVIEW: usize = 160;

/// Figures derived from the header.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub architecture: Option<String>,
    pub name: Option<String>,
    pub parameters: u64,
    pub tensor_bytes: u64,
    pub bits_per_weight: f64,
    pub file_type: Option<u64>,
    /// Tensor count per ggml type name, sorted by name.
    pub types: BTreeMap<&'static str, usize>,
}

pub fn summarize(header: &Header) -> Summary {
    let parameters: u64 = header.tensors.iter().map(|t| t.elements).sum();
    let tensor_bytes: u64 = header.tensors.iter().map(|t| t.size).sum();
    let mut types = BTreeMap::new();
    for t in &header.tensors {
        *types.entry(t.ty.name()).or_insert(0) += 1;
    }
    Summary {
        architecture: header.architecture().map(str::to_owned),
        name: header.get_str("general.name").map(str::to_owned),
        parameters,
        tensor_bytes,
        bits_per_weight: if parameters == 0 {
            0.0
        } else {
            tensor_bytes as f64 * 8.0 / parameters as f64
        },
        file_type: header.get_u64("general.file_type"),
        types,
    }
}

/// The documented JSON document for `inspect --format json`.
pub fn to_json(file: &GgufFile, full: bool) -> Json {
    let h = &file.header;
    let s = summarize(h);
    let metadata: Vec<Json> = h
        .metadata
        .iter()
        .map(|e| {
            json!({
                "key": e.key,
                "type": e.value.type_name(),
                "value": value_json(&e.value, full),
            })
        })
        .collect();
    let tensors: Vec<Json> = h
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ty.name(),
                "dims": t.dims,
                "elements": t.elements,
                "offset": h.data_offset + t.offset,
                "bytes": t.size,
            })
        })
        .collect();
    json!({
        "file": file.path().display().to_string(),
        "version": h.version,
        "alignment": h.alignment,
        "data_offset": h.data_offset,
        "file_size": h.file_len,
        "summary": {
            "architecture": s.architecture,
            "name": s.name,
            "parameters": s.parameters,
            "tensor_bytes": s.tensor_bytes,
            "bits_per_weight": s.bits_per_weight,
            "file_type": s.file_type.map(|id| json!({"id": id, "name": file_type_name(id)})),
            "tensor_types": s.types,
            "tensor_count": h.tensors.len(),
            "metadata_count": h.metadata.len(),
        },
        "metadata": metadata,
        "tensors": tensors,
    })
}

fn float_json(v: f64) -> Json {
    match serde_json::Number::from_f64(v) {
        Some(n) => Json::Number(n),
        // JSON has no NaN or infinity; spell them as strings.
        None => Json::String(format!("{v}")),
    }
}

fn scalar_json(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => float_json(f64::from(*x)),
        Value::F64(x) => float_json(*x),
        Value::Bool(x) => json!(x),
        Value::String(x) => json!(x),
        Value::Array(a) => array_json(a, true),
    }
}

fn array_json(a: &Array, full: bool) -> Json {
    let shown = if full {
        a.len()
    } else {
        a.len().min(ARRAY_PREVIEW)
    };
    let items: Vec<Json> = (0..shown)
        .filter_map(|i| a.get(i))
        .map(|v| scalar_json(&v))
        .collect();
    if full {
        Json::Array(items)
    } else {
        let mut m = Map::new();
        m.insert("len".into(), json!(a.len()));
        m.insert("type".into(), json!(a.element_type().name()));
        m.insert("head".into(), Json::Array(items));
        Json::Object(m)
    }
}

fn value_json(v: &Value, full: bool) -> Json {
    match v {
        Value::Array(a) => array_json(a, full),
        other => scalar_json(other),
    }
}

fn preview_string(s: &str, full: bool) -> String {
    let count = s.chars().count();
    if full || count <= STRING_PREVIEW {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(STRING_PREVIEW).collect();
        format!("{head:?}… ({count} chars)")
    }
}

fn value_text(v: &Value, full: bool) -> String {
    match v {
        Value::String(s) => preview_string(s, full),
        Value::Array(a) => {
            let shown = if full {
                a.len()
            } else {
                a.len().min(ARRAY_PREVIEW)
            };
            let items: Vec<String> = (0..shown)
                .filter_map(|i| a.get(i))
                .map(|x| value_text(&x, full))
                .collect();
            let more = a.len() - shown;
            if more > 0 {
                format!("[{}, … {more} more] (len {})", items.join(", "), a.len())
            } else {
                format!("[{}]", items.join(", "))
            }
        }
        other => other.to_string(),
    }
}

/// Human-readable parameter count ("134.5M").
pub fn human_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}K", n / 1e3)
    } else {
        format!("{n}")
    }
}

/// The text report for `inspect --format text`.
pub fn to_text(file: &GgufFile, full: bool) -> String {
    let h = &file.header;
    let s = summarize(h);
    let mut out = String::new();
    let _ = writeln!(out, "file: {}", visible(&file.path().display().to_string()));
    let _ = writeln!(
        out,
        "GGUF v{}, {} bytes, alignment {}, {} metadata keys, {} tensors, data at offset {}",
        h.version,
        h.file_len,
        h.alignment,
        h.metadata.len(),
        h.tensors.len(),
        h.data_offset
    );
    let ftype = match s.file_type {
        Some(id) => format!("{} ({id})", file_type_name(id).unwrap_or("unknown")),
        None => "not set".into(),
    };
    let types: Vec<String> = s.types.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    let _ = writeln!(
        out,
        "summary: architecture {}, name {}, {} parameters, {:.2} bits/weight, file type {}, tensor types {}",
        visible(s.architecture.as_deref().unwrap_or("(none)")),
        s.name.as_deref().map_or("(none)".to_string(), |n| format!("{n:?}")),
        human_count(s.parameters),
        s.bits_per_weight,
        ftype,
        types.join(" ")
    );
    let _ = writeln!(out, "\nmetadata:");
    let key_width = h.metadata.iter().map(|e| e.key.len()).max().unwrap_or(0);
    for e in &h.metadata {
        let _ = writeln!(
            out,
            "  {:key_width$}  {:15}  {}",
            visible(&e.key),
            e.value.type_name(),
            value_text(&e.value, full)
        );
    }
    let _ = writeln!(out, "\ntensors:");
    let name_width = h
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  {:name_width$}  {:8}  {:24}  {:>12}  {:>12}",
        "name", "type", "dims", "offset", "bytes"
    );
    for t in &h.tensors {
        let dims: Vec<String> = t.dims.iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "  {:name_width$}  {:8}  {:24}  {:>12}  {:>12}",
            visible(&t.name),
            t.ty.name(),
            format!("[{}]", dims.join(", ")),
            h.data_offset + t.offset,
            t.size
        );
    }
    out
}
