//! A release recorded for later comparison: the baseline summary `check --record-baseline`
//! writes and `diff` and the `baseline:` policy section read in place of the previous
//! release's GGUF. It holds what a comparison needs and nothing of the weights: the GGUF
//! version and alignment, every metadata key with its type and value (long arrays and very
//! long strings as a length and a SHA-256 of their GGUF encoding), and per tensor its
//! dtype, shape, the SHA-256 of its data and the RMS of its dequantized values.
//!
//! The file is JSON with one key or tensor per line, so that a recorded baseline kept in
//! a repository reads well in a code review. Reading it is bounded and validated: every
//! problem names the file and the entry.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value as Json};
use sha2::{Digest as _, Sha256};

use crate::fingerprint::Fingerprint;
use crate::gguf::{encode_value, Array, GgmlType, GgufFile, Value, MAX_DIMS};

/// The `gguf_gate_baseline` format version this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;
/// Recorded summaries larger than this are refused before parsing.
pub const MAX_SUMMARY_BYTES: u64 = 64 << 20;

/// Arrays longer than this, and strings longer than [`RECORD_STRING_BYTES`], are
/// recorded as a digest. Chat templates (a few KiB) stay whole, so their text can be diffed.
pub const RECORD_ARRAY_ELEMENTS: usize = 64;
/// See [`RECORD_ARRAY_ELEMENTS`].
pub const RECORD_STRING_BYTES: usize = 64 << 10;

/// A metadata value as known: whole, or as the digest of its GGUF encoding.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    Value(Value),
    Digest(ValueDigest),
}

/// A value known only by its type, length and the SHA-256 of its GGUF encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueDigest {
    /// `string`, `array[i32]`, … as `Value::type_name` spells it.
    pub ty: String,
    /// Elements of an array, bytes of a string; `None` for a scalar.
    pub len: Option<u64>,
    pub sha256: [u8; 32],
}

impl ValueDigest {
    pub fn of(v: &Value) -> ValueDigest {
        ValueDigest {
            ty: v.type_name(),
            len: match v {
                Value::Array(a) => Some(a.len() as u64),
                Value::String(s) => Some(s.len() as u64),
                _ => None,
            },
            sha256: Sha256::digest(encode_value(v)).into(),
        }
    }
}

impl Recorded {
    /// `v` whole when it is short enough (and, for JSON, finite), else its digest.
    pub fn of(v: &Value, max_elements: usize, max_string_bytes: usize) -> Recorded {
        let short = match v {
            Value::Array(Array::String(s)) => {
                s.len() <= max_elements
                    && s.iter().map(String::len).sum::<usize>() <= max_string_bytes
            }
            Value::Array(a) => a.len() <= max_elements,
            Value::String(s) => s.len() <= max_string_bytes,
            _ => true,
        };
        if short && all_finite(v) {
            Recorded::Value(v.clone())
        } else {
            Recorded::Digest(ValueDigest::of(v))
        }
    }

    pub fn type_name(&self) -> String {
        match self {
            Recorded::Value(v) => v.type_name(),
            Recorded::Digest(d) => d.ty.clone(),
        }
    }

    pub fn digest(&self) -> ValueDigest {
        match self {
            Recorded::Value(v) => ValueDigest::of(v),
            Recorded::Digest(d) => d.clone(),
        }
    }

    /// The JSON object `{"type", "value"}` or `{"type", "len", "sha256"}` (without a key).
    pub fn to_json(&self) -> Json {
        match self {
            Recorded::Value(v) => json!({"type": v.type_name(), "value": value_json(v)}),
            Recorded::Digest(d) => {
                let mut o = json!({"type": d.ty});
                if let Some(len) = d.len {
                    o["len"] = json!(len);
                }
                o["sha256"] = json!(hex(&d.sha256));
                o
            }
        }
    }
}

/// Whether every float in `v` is finite (JSON has no NaN or infinity).
fn all_finite(v: &Value) -> bool {
    match v {
        Value::F32(x) => x.is_finite(),
        Value::F64(x) => x.is_finite(),
        Value::Array(Array::F32(a)) => a.iter().all(|x| x.is_finite()),
        Value::Array(Array::F64(a)) => a.iter().all(|x| x.is_finite()),
        _ => true,
    }
}

/// The f64 whose shortest decimal form is the f32's (`1e-5`, not `9.999999747378752e-6`):
/// it reads back to the same f32.
fn f32_as_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// A value as plain JSON (numbers, strings, booleans, arrays of them).
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::F32(x) => json!(f32_as_f64(*x)),
        Value::Bool(x) => json!(x),
        Value::String(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Array(a) => Json::Array(
            (0..a.len())
                .filter_map(|i| a.get(i))
                .map(|x| value_json(&x))
                .collect(),
        ),
    }
}

/// One tensor as a comparison knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorFacts {
    pub name: String,
    pub ty: GgmlType,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    /// SHA-256 of the tensor's data bytes.
    pub sha256: [u8; 32],
    /// RMS of the finite dequantized values; `None` when the type cannot be decoded or no
    /// value is finite.
    pub rms: Option<f64>,
}

/// A recorded release.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Where it was read from, or the file it summarizes (not itself recorded).
    pub path: String,
    pub fingerprint: Option<Fingerprint>,
    /// Size of the recorded file.
    pub bytes: u64,
    pub version: u32,
    pub alignment: u64,
    pub metadata: Vec<(String, Recorded)>,
    pub tensors: Vec<TensorFacts>,
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Summary {
    /// The summary of `file`, given its fingerprint and the facts of all its tensors.
    pub fn of(file: &GgufFile, fingerprint: Fingerprint, tensors: Vec<TensorFacts>) -> Summary {
        let h = &file.header;
        Summary {
            path: file.path().display().to_string(),
            fingerprint: Some(fingerprint),
            bytes: h.file_len,
            version: h.version,
            alignment: h.alignment,
            metadata: h
                .metadata
                .iter()
                .map(|e| {
                    let r = Recorded::of(&e.value, RECORD_ARRAY_ELEMENTS, RECORD_STRING_BYTES);
                    (e.key.clone(), r)
                })
                .collect(),
            tensors,
        }
    }

    /// The JSON text: an object with one metadata key or tensor per line.
    pub fn to_json_text(&self) -> String {
        let line = |v: Json| serde_json::to_string(&v).unwrap_or_default();
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"gguf_gate_baseline\": {FORMAT_VERSION},");
        if let Some(f) = &self.fingerprint {
            let _ = writeln!(out, "  \"fingerprint\": {},", line(json!(f.to_string())));
        }
        let _ = writeln!(out, "  \"bytes\": {},", self.bytes);
        let _ = writeln!(out, "  \"gguf_version\": {},", self.version);
        let _ = writeln!(out, "  \"alignment\": {},", self.alignment);
        out.push_str("  \"metadata\": [\n");
        for (i, (key, r)) in self.metadata.iter().enumerate() {
            let mut o = json!({"key": key});
            if let (Some(o), Json::Object(r)) = (o.as_object_mut(), r.to_json()) {
                o.extend(r);
            }
            let comma = if i + 1 < self.metadata.len() { "," } else { "" };
            let _ = writeln!(out, "    {}{comma}", line(o));
        }
        out.push_str("  ],\n  \"tensors\": [\n");
        for (i, t) in self.tensors.iter().enumerate() {
            let o = json!({
                "name": t.name,
                "type": t.ty.name(),
                "dims": t.dims,
                "sha256": hex(&t.sha256),
                "rms": t.rms,
            });
            let comma = if i + 1 < self.tensors.len() { "," } else { "" };
            let _ = writeln!(out, "    {}{comma}", line(o));
        }
        out.push_str("  ]\n}\n");
        crate::escape::json_text(out)
    }

    /// Read and validate a recorded summary.
    pub fn read(path: &Path) -> Result<Summary, String> {
        let text = crate::input::read_text_bounded(path, MAX_SUMMARY_BYTES, "baseline summary")
            .map_err(|e| e.to_string())?;
        let mut s = Summary::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        s.path = path.display().to_string();
        Ok(s)
    }

    /// Parse and validate the JSON text of a summary.
    pub fn parse(text: &str) -> Result<Summary, String> {
        let doc: Json =
            serde_json::from_str(text).map_err(|e| format!("not a baseline summary: {e}"))?;
        let obj = doc
            .as_object()
            .ok_or("not a baseline summary: expected a JSON object")?;
        match obj.get("gguf_gate_baseline").and_then(Json::as_u64) {
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "baseline format {v} is not supported; this gguf-gate reads {FORMAT_VERSION}"
                ))
            }
            None => return Err("not a baseline summary: no \"gguf_gate_baseline\" version".into()),
        }
        let fingerprint = match obj.get("fingerprint") {
            None | Some(Json::Null) => None,
            Some(f) => Some(
                f.as_str()
                    .ok_or("\"fingerprint\" is not a string")?
                    .parse::<Fingerprint>()
                    .map_err(|e| e.to_string())?,
            ),
        };
        let uint = |k: &str| {
            obj.get(k)
                .and_then(Json::as_u64)
                .ok_or(format!("\"{k}\" is missing or not an unsigned integer"))
        };
        let version =
            u32::try_from(uint("gguf_version")?).map_err(|_| "\"gguf_version\" is out of range")?;
        let list = |k: &str| {
            obj.get(k)
                .and_then(Json::as_array)
                .ok_or(format!("\"{k}\" is missing or not a list"))
        };
        let mut metadata = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, m) in list("metadata")?.iter().enumerate() {
            let (key, r) = parse_key(m).map_err(|e| format!("metadata entry {i}: {e}"))?;
            if !seen.insert(key.clone()) {
                return Err(format!("metadata entry {i}: key {key:?} is recorded twice"));
            }
            metadata.push((key, r));
        }
        let mut tensors = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, t) in list("tensors")?.iter().enumerate() {
            let t = parse_tensor(t).map_err(|e| format!("tensor entry {i}: {e}"))?;
            if !names.insert(t.name.clone()) {
                return Err(format!(
                    "tensor entry {i}: tensor {:?} is recorded twice",
                    t.name
                ));
            }
            tensors.push(t);
        }
        Ok(Summary {
            path: String::new(),
            fingerprint,
            bytes: uint("bytes")?,
            version,
            alignment: uint("alignment")?,
            metadata,
            tensors,
        })
    }
}

fn field<'a>(o: &'a serde_json::Map<String, Json>, k: &str) -> Result<&'a Json, String> {
    o.get(k).ok_or_else(|| format!("no \"{k}\""))
}

fn string<'a>(o: &'a serde_json::Map<String, Json>, k: &str) -> Result<&'a str, String> {
    field(o, k)?
        .as_str()
        .ok_or_else(|| format!("\"{k}\" is not a string"))
}

fn parse_key(m: &Json) -> Result<(String, Recorded), String> {
    let o = m.as_object().ok_or("not an object")?;
    let key = string(o, "key")?.to_string();
    let ty = string(o, "type")?;
    let r = match o.get("value") {
        Some(v) => Recorded::Value(parse_value(ty, v).map_err(|e| format!("key {key:?}: {e}"))?),
        None => {
            let sha = unhex(string(o, "sha256")?)
                .ok_or_else(|| format!("key {key:?}: \"sha256\" is not 64 hex digits"))?;
            if parse_type(ty).is_none() {
                return Err(format!("key {key:?}: unknown type {ty:?}"));
            }
            let len =
                match o.get("len") {
                    None => None,
                    Some(l) => Some(l.as_u64().ok_or_else(|| {
                        format!("key {key:?}: \"len\" is not an unsigned integer")
                    })?),
                };
            Recorded::Digest(ValueDigest {
                ty: ty.to_string(),
                len,
                sha256: sha,
            })
        }
    };
    Ok((key, r))
}

/// `u32` -> (scalar type, None); `array[u32]` -> ("array", Some("u32")).
fn parse_type(ty: &str) -> Option<(&str, Option<&str>)> {
    const SCALARS: [&str; 12] = [
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "u64", "i64", "f64",
    ];
    match ty.strip_prefix("array[").and_then(|r| r.strip_suffix(']')) {
        Some(inner) => SCALARS.contains(&inner).then_some(("array", Some(inner))),
        None => SCALARS.contains(&ty).then_some((ty, None)),
    }
}

fn parse_value(ty: &str, v: &Json) -> Result<Value, String> {
    let (scalar, element) = parse_type(ty).ok_or_else(|| format!("unknown type {ty:?}"))?;
    if let Some(el) = element {
        let items = v.as_array().ok_or("the value is not a list")?;
        let values = items
            .iter()
            .map(|x| parse_value(el, x))
            .collect::<Result<Vec<Value>, String>>()?;
        return array_of(el, values);
    }
    let bad = || format!("{v} is not a {scalar}");
    let int = |v: &Json| {
        v.as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
    };
    let int = int(v);
    macro_rules! integer {
        ($variant:ident, $t:ty) => {
            Value::$variant(int.and_then(|i| <$t>::try_from(i).ok()).ok_or_else(bad)?)
        };
    }
    Ok(match scalar {
        "u8" => integer!(U8, u8),
        "i8" => integer!(I8, i8),
        "u16" => integer!(U16, u16),
        "i16" => integer!(I16, i16),
        "u32" => integer!(U32, u32),
        "i32" => integer!(I32, i32),
        "u64" => integer!(U64, u64),
        "i64" => integer!(I64, i64),
        // Written from an f32, so the nearest f32 is the value itself.
        "f32" => Value::F32(
            v.as_f64()
                .map(|x| x as f32)
                .filter(|x| x.is_finite())
                .ok_or_else(bad)?,
        ),
        "f64" => Value::F64(v.as_f64().ok_or_else(bad)?),
        "bool" => Value::Bool(v.as_bool().ok_or_else(bad)?),
        _ => Value::String(v.as_str().ok_or_else(bad)?.to_string()),
    })
}

fn array_of(element: &str, values: Vec<Value>) -> Result<Value, String> {
    macro_rules! collect {
        ($variant:ident) => {
            Array::$variant(
                values
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::$variant(x) => Some(x),
                        _ => None,
                    })
                    .collect(),
            )
        };
    }
    Ok(Value::Array(match element {
        "u8" => collect!(U8),
        "i8" => collect!(I8),
        "u16" => collect!(U16),
        "i16" => collect!(I16),
        "u32" => collect!(U32),
        "i32" => collect!(I32),
        "f32" => collect!(F32),
        "bool" => collect!(Bool),
        "string" => collect!(String),
        "u64" => collect!(U64),
        "i64" => collect!(I64),
        "f64" => collect!(F64),
        other => return Err(format!("unknown element type {other:?}")),
    }))
}

fn parse_tensor(t: &Json) -> Result<TensorFacts, String> {
    let o = t.as_object().ok_or("not an object")?;
    let name = string(o, "name")?.to_string();
    let what = |e: String| format!("tensor {name:?}: {e}");
    let ty_name = string(o, "type")?;
    let ty =
        GgmlType::from_name(ty_name).ok_or_else(|| what(format!("unknown type {ty_name:?}")))?;
    let dims_json = field(o, "dims")?
        .as_array()
        .ok_or_else(|| what("\"dims\" is not a list".into()))?;
    if dims_json.is_empty() || dims_json.len() > MAX_DIMS as usize {
        return Err(what(format!(
            "{} dimensions (1 to {MAX_DIMS})",
            dims_json.len()
        )));
    }
    let dims = dims_json
        .iter()
        .map(|d| {
            d.as_u64()
                .ok_or_else(|| what(format!("dimension {d} is not an unsigned integer")))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    if dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .is_none()
    {
        return Err(what("the element count overflows".into()));
    }
    let sha256 = unhex(string(o, "sha256")?)
        .ok_or_else(|| what("\"sha256\" is not 64 hex digits".into()))?;
    let rms = match o.get("rms") {
        None | Some(Json::Null) => None,
        Some(r) => Some(
            r.as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| what(format!("\"rms\" {r} is not a non-negative number")))?,
        ),
    };
    Ok(TensorFacts {
        name,
        ty,
        dims,
        sha256,
        rms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_round_trips_and_bad_entries_are_named() {
        let s = Summary {
            path: String::new(),
            fingerprint: None,
            bytes: 10,
            version: 3,
            alignment: 32,
            metadata: vec![
                ("a.u64".into(), Recorded::Value(Value::U64(u64::MAX))),
                ("a.f32".into(), Recorded::Value(Value::F32(0.1))),
                (
                    "a.arr".into(),
                    Recorded::Value(Value::Array(Array::I32(vec![1, -2]))),
                ),
                ("a.nan".into(), Recorded::of(&Value::F32(f32::NAN), 64, 64)),
                (
                    "a.long".into(),
                    Recorded::of(&Value::Array(Array::U8(vec![0; 65])), 64, 64),
                ),
            ],
            tensors: vec![TensorFacts {
                name: "t".into(),
                ty: GgmlType::Q8_0,
                dims: vec![32, 2],
                sha256: [7; 32],
                rms: Some(0.5),
            }],
        };
        assert!(matches!(s.metadata[3].1, Recorded::Digest(_)));
        assert!(matches!(
            s.metadata[4].1,
            Recorded::Digest(ValueDigest { len: Some(65), .. })
        ));
        assert_eq!(Summary::parse(&s.to_json_text()).unwrap(), s);
        let bad = s.to_json_text().replace("\"Q8_0\"", "\"Q9_9\"");
        let e = Summary::parse(&bad).unwrap_err();
        assert!(e.contains("tensor entry 0") && e.contains("Q9_9"), "{e}");
        let bad = s.to_json_text().replace("18446744073709551615", "-1");
        assert!(Summary::parse(&bad)
            .unwrap_err()
            .contains("metadata entry 0"));
        assert!(Summary::parse("[]").is_err());
    }
}
