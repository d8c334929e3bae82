//! config.json -> the hyper-parameters the converter needs and the GGUF metadata llama.cpp
//! reads, with the exact key names and value types `convert_hf_to_gguf.py` writes
//! (`{arch}.context_length` u32, `{arch}.attention.layer_norm_rms_epsilon` f32, ...).
//! Every field is checked: a missing one names the field and the GGUF key it feeds, a
//! wrong one says what was expected. Only the llama family (llama, mistral) and BitNet
//! b1.58 are supported; any other `model_type` is an error, never a guess.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::error::ExportError;
use crate::gguf::Value;

/// The architecture name BitNet models get: what the `bitnet-b1.58` policy preset and
/// bitnet.cpp expect (`general.architecture = bitnet-b1.58`, `bitnet-b1.58.*` keys).
pub const BITNET_ARCH: &str = "bitnet-b1.58";

/// The model families the converter knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `model_type` llama or mistral -> GGUF architecture `llama`.
    Llama,
    /// `model_type` bitnet -> GGUF architecture `bitnet-b1.58`.
    Bitnet,
}

/// How a packed BitNet weight's `weight_scale` applies (transformers' BitNet integration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleMode {
    /// `BitLinear` (the default, `linear_class: bitlinear`): y = (x·W) / weight_scale.
    Divide,
    /// `AutoBitLinear` (`linear_class: autobitlinear`): y = (x·W) · weight_scale.
    Multiply,
}

/// The hyper-parameters of one checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub path: PathBuf,
    pub model_type: String,
    pub family: Family,
    /// `general.architecture`.
    pub arch: &'static str,
    pub hidden: u32,
    pub ffn: u32,
    pub layers: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    /// `head_dim` was given and differs from `hidden / heads`.
    pub explicit_head_dim: bool,
    pub eps: f32,
    pub rope_theta: Option<f32>,
    /// A linear RoPE scaling factor.
    pub rope_linear: Option<f32>,
    pub context: u32,
    pub vocab: u32,
    pub tie_embeddings: bool,
    pub scale_mode: ScaleMode,
}

/// config.json files larger than this are refused (real ones are a few KB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

struct Fields<'a> {
    path: &'a Path,
    json: &'a Json,
    arch: &'a str,
}

impl Fields<'_> {
    fn missing(&self, field: &str, key: &str) -> ExportError {
        ExportError::ConfigMissing {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            key: key.replace("{arch}", self.arch),
        }
    }

    fn invalid(&self, field: &str, expected: &str, found: &Json) -> ExportError {
        let mut shown = found.to_string();
        if shown.len() > 80 {
            shown = format!("{}…", shown.chars().take(80).collect::<String>());
        }
        ExportError::ConfigInvalid {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            expected: expected.to_string(),
            found: shown,
        }
    }

    fn get(&self, field: &str) -> Option<&Json> {
        self.json.get(field).filter(|v| !v.is_null())
    }

    /// A positive integer that fits a u32 (GGUF writes these keys as u32).
    fn uint(&self, field: &str, key: &str) -> Result<u32, ExportError> {
        let v = self.get(field).ok_or_else(|| self.missing(field, key))?;
        self.uint_value(field, v)
    }

    fn uint_or(&self, field: &str, default: u32) -> Result<u32, ExportError> {
        match self.get(field) {
            Some(v) => self.uint_value(field, v),
            None => Ok(default),
        }
    }

    fn uint_value(&self, field: &str, v: &Json) -> Result<u32, ExportError> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| self.invalid(field, "a positive integer below 2^32", v))
    }

    /// A finite positive number (written as f32).
    fn positive(&self, field: &str, v: &Json) -> Result<f32, ExportError> {
        v.as_f64()
            .map(|x| x as f32)
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| self.invalid(field, "a finite positive number", v))
    }

    fn bool_or(&self, field: &str, default: bool) -> Result<bool, ExportError> {
        match self.get(field) {
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.invalid(field, "true or false", v)),
            None => Ok(default),
        }
    }
}

/// Parse config.json's bytes.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<ModelConfig, ExportError> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| ExportError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if !json.is_object() {
        return Err(ExportError::Json {
            path: path.to_path_buf(),
            message: "the top level is not an object".into(),
        });
    }
    let pre = Fields {
        path,
        json: &json,
        arch: "",
    };
    let model_type = match pre.get("model_type") {
        None => return Err(pre.missing("model_type", "general.architecture")),
        Some(Json::String(s)) => s.clone(),
        Some(other) => return Err(pre.invalid("model_type", "a string", other)),
    };
    let (family, arch) = match model_type.as_str() {
        "llama" | "mistral" => (Family::Llama, "llama"),
        "bitnet" => (Family::Bitnet, BITNET_ARCH),
        _ => {
            return Err(ExportError::UnsupportedModelType {
                path: path.to_path_buf(),
                model_type: model_type.chars().take(100).collect(),
            })
        }
    };
    let f = Fields {
        path,
        json: &json,
        arch,
    };
    let hidden = f.uint("hidden_size", "{arch}.embedding_length")?;
    let ffn = f.uint("intermediate_size", "{arch}.feed_forward_length")?;
    let layers = f.uint("num_hidden_layers", "{arch}.block_count")?;
    let heads = f.uint("num_attention_heads", "{arch}.attention.head_count")?;
    let kv_heads = f.uint_or("num_key_value_heads", heads)?;
    let context = f.uint("max_position_embeddings", "{arch}.context_length")?;
    let vocab = f.uint("vocab_size", "{arch}.vocab_size")?;
    let eps_v = f
        .get("rms_norm_eps")
        .ok_or_else(|| f.missing("rms_norm_eps", "{arch}.attention.layer_norm_rms_epsilon"))?;
    let eps = f.positive("rms_norm_eps", eps_v)?;
    let rope_theta = f
        .get("rope_theta")
        .map(|v| f.positive("rope_theta", v))
        .transpose()?;
    let tie_embeddings = f.bool_or("tie_word_embeddings", false)?;

    if heads % kv_heads != 0 {
        return Err(f.invalid(
            "num_key_value_heads",
            &format!("a divisor of num_attention_heads ({heads})"),
            &Json::from(kv_heads),
        ));
    }
    let (head_dim, explicit_head_dim) = match f.get("head_dim") {
        Some(v) => {
            let d = f.uint_value("head_dim", v)?;
            (d, hidden % heads != 0 || d != hidden / heads)
        }
        None => {
            if hidden % heads != 0 {
                return Err(f.invalid(
                    "num_attention_heads",
                    &format!("a divisor of hidden_size ({hidden}) when head_dim is absent"),
                    &Json::from(heads),
                ));
            }
            (hidden / heads, false)
        }
    };
    if head_dim % 2 != 0 {
        return Err(f.invalid(
            "head_dim",
            "an even head size (RoPE rotates pairs)",
            &Json::from(head_dim),
        ));
    }
    // Every projection's row count must fit the u64 arithmetic of the plan.
    if heads.checked_mul(head_dim).is_none() {
        return Err(f.invalid(
            "head_dim",
            "num_attention_heads * head_dim below 2^32",
            &Json::from(head_dim),
        ));
    }

    let rope_linear = match f.get("rope_scaling") {
        None => None,
        Some(s) => {
            let kind = s
                .get("rope_type")
                .or_else(|| s.get("type"))
                .and_then(Json::as_str);
            match kind {
                Some("linear") => {
                    let factor = s
                        .get("factor")
                        .ok_or_else(|| f.missing("rope_scaling.factor", "{arch}.rope.scaling.factor"))?;
                    Some(f.positive("rope_scaling.factor", factor)?)
                }
                Some("default") => None,
                _ => {
                    return Err(f.invalid(
                        "rope_scaling",
                        "null or {\"type\": \"linear\", \"factor\": ...} (llama3, yarn and dynamic scaling are not supported)",
                        s,
                    ))
                }
            }
        }
    };

    let scale_mode = match json.pointer("/quantization_config/linear_class") {
        None | Some(Json::Null) => ScaleMode::Divide,
        Some(Json::String(s)) if s == "bitlinear" => ScaleMode::Divide,
        Some(Json::String(s)) if s == "autobitlinear" => ScaleMode::Multiply,
        Some(other) => {
            return Err(f.invalid(
                "quantization_config.linear_class",
                "\"bitlinear\" or \"autobitlinear\"",
                other,
            ))
        }
    };

    Ok(ModelConfig {
        path: path.to_path_buf(),
        model_type,
        family,
        arch,
        hidden,
        ffn,
        layers,
        heads,
        kv_heads,
        head_dim,
        explicit_head_dim,
        eps,
        rope_theta,
        rope_linear,
        context,
        vocab,
        tie_embeddings,
        scale_mode,
    })
}

impl ModelConfig {
    /// The architecture keys, in the order convert_hf_to_gguf.py writes them, with
    /// llama.cpp's types. `general.*` and tokenizer keys are added by the caller.
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let a = self.arch;
        let mut out: Vec<(String, Value)> = vec![
            (format!("{a}.context_length"), Value::U32(self.context)),
            (format!("{a}.embedding_length"), Value::U32(self.hidden)),
            (format!("{a}.feed_forward_length"), Value::U32(self.ffn)),
            (format!("{a}.block_count"), Value::U32(self.layers)),
            (format!("{a}.attention.head_count"), Value::U32(self.heads)),
            (
                format!("{a}.attention.head_count_kv"),
                Value::U32(self.kv_heads),
            ),
        ];
        if let Some(theta) = self.rope_theta {
            out.push((format!("{a}.rope.freq_base"), Value::F32(theta)));
        }
        out.push((
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(self.eps),
        ));
        out.push((format!("{a}.vocab_size"), Value::U32(self.vocab)));
        out.push((
            format!("{a}.rope.dimension_count"),
            Value::U32(self.head_dim),
        ));
        if self.explicit_head_dim {
            out.push((
                format!("{a}.attention.key_length"),
                Value::U32(self.head_dim),
            ));
            out.push((
                format!("{a}.attention.value_length"),
                Value::U32(self.head_dim),
            ));
        }
        let linear = match self.family {
            // convert_hf_to_gguf.py's BitnetModel always writes linear scaling, factor 1.
            Family::Bitnet => Some(self.rope_linear.unwrap_or(1.0)),
            Family::Llama => self.rope_linear,
        };
        if let Some(factor) = linear {
            out.push((
                format!("{a}.rope.scaling.type"),
                Value::String("linear".into()),
            ));
            out.push((format!("{a}.rope.scaling.factor"), Value::F32(factor)));
        }
        if self.family == Family::Bitnet {
            // The strict keys release pipelines (and the bitnet-b1.58 preset) require.
            out.extend([
                ("bitnet.hidden_size".to_string(), Value::U32(self.hidden)),
                ("bitnet.num_layers".to_string(), Value::U32(self.layers)),
                ("bitnet.num_heads".to_string(), Value::U32(self.heads)),
                ("bitnet.vocab_size".to_string(), Value::U32(self.vocab)),
                (
                    "bitnet.context_length".to_string(),
                    Value::U32(self.context),
                ),
            ]);
        }
        out
    }

    /// Rows of the query projection.
    pub fn q_rows(&self) -> u64 {
        u64::from(self.heads) * u64::from(self.head_dim)
    }

    /// Rows of the key and value projections.
    pub fn kv_rows(&self) -> u64 {
        u64::from(self.kv_heads) * u64::from(self.head_dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> Json {
        serde_json::json!({
            "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "max_position_embeddings": 8192,
            "vocab_size": 49152, "tie_word_embeddings": true
        })
    }

    fn parse_json(j: &Json) -> Result<ModelConfig, ExportError> {
        parse(Path::new("config.json"), j.to_string().as_bytes())
    }

    fn with(mut j: Json, field: &str, v: Json) -> Json {
        j[field] = v;
        j
    }

    fn without(mut j: Json, field: &str) -> Json {
        j.as_object_mut().unwrap().remove(field);
        j
    }

    #[test]
    fn smollm2_metadata() {
        let c = parse_json(&smollm2()).unwrap();
        assert_eq!((c.family, c.arch, c.head_dim), (Family::Llama, "llama", 64));
        assert!(c.tie_embeddings);
        let m = c.metadata();
        let get = |k: &str| m.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("llama.context_length"), Some(Value::U32(8192)));
        assert_eq!(get("llama.embedding_length"), Some(Value::U32(576)));
        assert_eq!(get("llama.feed_forward_length"), Some(Value::U32(1536)));
        assert_eq!(get("llama.block_count"), Some(Value::U32(30)));
        assert_eq!(get("llama.attention.head_count"), Some(Value::U32(9)));
        assert_eq!(get("llama.attention.head_count_kv"), Some(Value::U32(3)));
        assert_eq!(get("llama.rope.freq_base"), Some(Value::F32(100000.0)));
        assert_eq!(
            get("llama.attention.layer_norm_rms_epsilon"),
            Some(Value::F32(1e-5))
        );
        assert_eq!(get("llama.vocab_size"), Some(Value::U32(49152)));
        assert_eq!(get("llama.rope.dimension_count"), Some(Value::U32(64)));
        assert_eq!(get("llama.attention.key_length"), None);
        assert_eq!(get("llama.rope.scaling.type"), None);
        assert_eq!(get("bitnet.hidden_size"), None);
    }

    #[test]
    fn mistral_is_llama_and_bitnet_has_strict_keys() {
        let c = parse_json(&with(smollm2(), "model_type", "mistral".into())).unwrap();
        assert_eq!(c.arch, "llama");
        let b = parse_json(&with(smollm2(), "model_type", "bitnet".into())).unwrap();
        assert_eq!((b.family, b.arch), (Family::Bitnet, "bitnet-b1.58"));
        assert_eq!(b.scale_mode, ScaleMode::Divide);
        let m = b.metadata();
        let get = |k: &str| m.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("bitnet-b1.58.block_count"), Some(Value::U32(30)));
        assert_eq!(get("bitnet.hidden_size"), Some(Value::U32(576)));
        assert_eq!(get("bitnet.num_layers"), Some(Value::U32(30)));
        assert_eq!(get("bitnet.num_heads"), Some(Value::U32(9)));
        assert_eq!(get("bitnet.vocab_size"), Some(Value::U32(49152)));
        assert_eq!(get("bitnet.context_length"), Some(Value::U32(8192)));
        assert_eq!(
            get("bitnet-b1.58.rope.scaling.type"),
            Some(Value::String("linear".into()))
        );
        let auto = with(
            with(smollm2(), "model_type", "bitnet".into()),
            "quantization_config",
            serde_json::json!({"quant_method": "bitnet", "linear_class": "autobitlinear"}),
        );
        assert_eq!(parse_json(&auto).unwrap().scale_mode, ScaleMode::Multiply);
    }

    #[test]
    fn defaults() {
        let c = parse_json(&without(
            without(
                without(smollm2(), "num_key_value_heads"),
                "tie_word_embeddings",
            ),
            "rope_theta",
        ))
        .unwrap();
        assert_eq!(c.kv_heads, 9);
        assert!(!c.tie_embeddings);
        assert_eq!(c.rope_theta, None);
        let c = parse_json(&with(smollm2(), "head_dim", 32.into())).unwrap();
        assert!(c.explicit_head_dim);
        assert_eq!(c.q_rows(), 288);
    }

    #[test]
    fn missing_fields_name_the_gguf_key() {
        for (field, key) in [
            ("hidden_size", "llama.embedding_length"),
            ("intermediate_size", "llama.feed_forward_length"),
            ("num_hidden_layers", "llama.block_count"),
            ("num_attention_heads", "llama.attention.head_count"),
            ("max_position_embeddings", "llama.context_length"),
            ("vocab_size", "llama.vocab_size"),
            ("rms_norm_eps", "llama.attention.layer_norm_rms_epsilon"),
            ("model_type", "general.architecture"),
        ] {
            let err = parse_json(&without(smollm2(), field)).unwrap_err();
            match &err {
                ExportError::ConfigMissing {
                    field: f, key: k, ..
                } => {
                    assert_eq!((f.as_str(), k.as_str()), (field, key));
                }
                other => panic!("{field}: {other}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(field) && msg.contains(key), "{msg}");
        }
    }

    #[test]
    fn invalid_fields() {
        for (field, v) in [
            ("hidden_size", Json::from(-1)),
            ("hidden_size", Json::from(576.5)),
            ("hidden_size", Json::from("576")),
            ("hidden_size", Json::from(1u64 << 33)),
            ("num_attention_heads", Json::from(0)),
            ("num_key_value_heads", Json::from(2)),
            ("num_attention_heads", Json::from(7)),
            ("rms_norm_eps", Json::from(-1e-5)),
            ("rms_norm_eps", Json::from("small")),
            ("rope_theta", Json::from(0)),
            ("tie_word_embeddings", Json::from("yes")),
            ("head_dim", Json::from(33)),
            (
                "rope_scaling",
                serde_json::json!({"rope_type": "llama3", "factor": 8.0}),
            ),
            ("model_type", Json::from(3)),
        ] {
            let err = parse_json(&with(smollm2(), field, v.clone())).unwrap_err();
            assert!(
                matches!(err, ExportError::ConfigInvalid { .. }),
                "{field} = {v}: {err}"
            );
        }
        let c = parse_json(&with(
            smollm2(),
            "rope_scaling",
            serde_json::json!({"type": "linear", "factor": 2.0}),
        ))
        .unwrap();
        assert_eq!(c.rope_linear, Some(2.0));
    }

    #[test]
    fn unsupported_model_type_and_bad_json() {
        let err = parse_json(&with(smollm2(), "model_type", "gpt2".into())).unwrap_err();
        assert!(matches!(err, ExportError::UnsupportedModelType { .. }));
        assert!(err.to_string().contains("\"gpt2\""), "{err}");
        for bad in [&b"{"[..], b"[]", b"", b"\xff"] {
            assert!(matches!(
                parse(Path::new("config.json"), bad),
                Err(ExportError::Json { .. })
            ));
        }
    }
}
