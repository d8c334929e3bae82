//! config.json -> the hyper-parameters the converter needs and the GGUF metadata llama.cpp
//! reads, with the exact key names and value types `convert_hf_to_gguf.py` writes
//! (`{arch}.context_length` u32, `{arch}.attention.layer_norm_rms_epsilon` f32, ...).
//! Every field is checked: a missing one names the field and the GGUF key it feeds, a
//! wrong one says what was expected. The families: llama (llama, mistral), BitNet b1.58,
//! qwen2, qwen3, gemma3 (text-only, `gemma3_text`) and phi3; any other `model_type` is
//! an error, never a guess.

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
    /// `model_type` qwen2 (Qwen2, Qwen2.5): Q/K/V biases, NeoX RoPE (no permutation).
    Qwen2,
    /// `model_type` qwen3: per-head Q/K norms, explicit head size.
    Qwen3,
    /// `model_type` gemma3_text (Gemma 3 text-only): four norms per layer, stored as
    /// `w - 1` by transformers and written as `w` (the converter adds 1).
    Gemma3,
    /// `model_type` phi3: fused QKV and gate/up projections, kept fused.
    Phi3,
}

impl Family {
    /// The family of a config.json `model_type` and its GGUF architecture.
    fn of(model_type: &str) -> Option<(Family, &'static str)> {
        Some(match model_type {
            "llama" | "mistral" => (Family::Llama, "llama"),
            "bitnet" => (Family::Bitnet, BITNET_ARCH),
            "qwen2" => (Family::Qwen2, "qwen2"),
            "qwen3" => (Family::Qwen3, "qwen3"),
            "gemma3_text" => (Family::Gemma3, "gemma3"),
            "phi3" => (Family::Phi3, "phi3"),
            _ => return None,
        })
    }
}

/// RoPE scaling as config.json's `rope_scaling` states it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (`{arch}.rope.scaling.type = linear`).
    Linear(f32),
    /// Llama 3.1+: per-frequency factors, written as the `rope_freqs.weight` tensor.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_context: f32,
    },
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
    /// `head_dim` was given at all (the converter then writes the key and value lengths
    /// for every family but llama, whose keys follow `explicit_head_dim`).
    pub head_dim_given: bool,
    pub eps: f32,
    pub rope_theta: Option<f32>,
    pub rope_scaling: RopeScaling,
    /// Values of each head RoPE rotates (Phi-3's `partial_rotary_factor`; else head_dim).
    pub rope_dims: u32,
    /// `sliding_window` (Gemma 3, Phi-3), when set.
    pub sliding_window: Option<u32>,
    /// `original_max_position_embeddings` (Phi-3), when set.
    pub original_context: Option<u32>,
    /// Gemma 3: `rope_local_base_freq`, the RoPE base of its sliding-window layers.
    pub rope_theta_swa: Option<f32>,
    /// Gemma 3: `final_logit_softcapping`, when set and non-zero.
    pub logit_softcap: Option<f32>,
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
    let Some((family, arch)) = Family::of(&model_type) else {
        return Err(ExportError::UnsupportedModelType {
            path: path.to_path_buf(),
            model_type: model_type.chars().take(100).collect(),
        });
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
    let head_dim_given = f.get("head_dim").is_some();
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

    let rope_scaling = rope_scaling(&f, family)?;
    let rope_dims = match f.get("partial_rotary_factor") {
        Some(v) if family == Family::Phi3 => {
            let p = f.positive("partial_rotary_factor", v)?;
            // convert_hf_to_gguf.py: int(partial_rotary_factor * hidden) // heads.
            let dims = ((p as f64 * f64::from(hidden)) as u64 / u64::from(heads)) as u32;
            if p > 1.0 || dims == 0 || !dims.is_multiple_of(2) {
                return Err(f.invalid(
                    "partial_rotary_factor",
                    "a fraction of the head that RoPE can rotate in pairs",
                    v,
                ));
            }
            dims
        }
        _ => head_dim,
    };
    let sliding_window = match family {
        Family::Gemma3 => match f.get("sliding_window") {
            Some(v) => Some(f.uint_value("sliding_window", v)?),
            None => None,
        },
        // Phi-3's converter writes 0 for "none" (which tells Phi-4 apart).
        Family::Phi3 => match f.get("sliding_window") {
            Some(v) => Some(f.uint_value("sliding_window", v)?),
            None => Some(0),
        },
        _ => None,
    };
    let original_context = match family {
        Family::Phi3 => Some(f.uint(
            "original_max_position_embeddings",
            "{arch}.rope.scaling.original_context_length",
        )?),
        _ => None,
    };
    let (rope_theta_swa, logit_softcap) = match family {
        Family::Gemma3 => {
            let swa = f
                .get("rope_local_base_freq")
                .map(|v| f.positive("rope_local_base_freq", v))
                .transpose()?;
            let cap = match f.get("final_logit_softcapping") {
                Some(v) if v.as_f64() == Some(0.0) => None,
                Some(v) => Some(f.positive("final_logit_softcapping", v)?),
                None => None,
            };
            (swa, cap)
        }
        _ => (None, None),
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
        head_dim_given,
        eps,
        rope_theta,
        rope_scaling,
        rope_dims,
        sliding_window,
        original_context,
        rope_theta_swa,
        logit_softcap,
        context,
        vocab,
        tie_embeddings,
        scale_mode,
    })
}

/// `rope_scaling`: none, linear, or llama3 (llama family only); any other type is
/// refused by name.
fn rope_scaling(f: &Fields<'_>, family: Family) -> Result<RopeScaling, ExportError> {
    let Some(s) = f.get("rope_scaling") else {
        return Ok(RopeScaling::None);
    };
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Json::as_str);
    let number = |field: &str, default: Option<f32>| -> Result<f32, ExportError> {
        let name = format!("rope_scaling.{field}");
        match (s.get(field).filter(|v| !v.is_null()), default) {
            (Some(v), _) => f.positive(&name, v),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(f.missing(&name, "{arch}.rope.scaling.factor")),
        }
    };
    let scaling = match kind {
        Some("default") => RopeScaling::None,
        Some("linear") => RopeScaling::Linear(number("factor", None)?),
        // convert_hf_to_gguf.py's LlamaModel (its defaults for absent fields).
        Some("llama3") if family == Family::Llama => {
            let low_freq_factor = number("low_freq_factor", Some(1.0))?;
            let high_freq_factor = number("high_freq_factor", Some(4.0))?;
            if high_freq_factor <= low_freq_factor {
                return Err(f.invalid(
                    "rope_scaling.high_freq_factor",
                    "a number above low_freq_factor",
                    s,
                ));
            }
            RopeScaling::Llama3 {
                factor: number("factor", Some(8.0))?,
                low_freq_factor,
                high_freq_factor,
                original_context: number("original_max_position_embeddings", Some(8192.0))?,
            }
        }
        _ => {
            return Err(f.invalid(
                "rope_scaling",
                if family == Family::Llama {
                    "null, {\"rope_type\": \"linear\", \"factor\": ...} or {\"rope_type\": \"llama3\", ...} (yarn, dynamic and longrope scaling are not supported)"
                } else {
                    "null or {\"rope_type\": \"linear\", \"factor\": ...} (yarn, dynamic, longrope and llama3 scaling are not supported for this family)"
                },
                s,
            ))
        }
    };
    Ok(scaling)
}

/// The per-pair RoPE frequency factors convert_hf_to_gguf.py writes as
/// `rope_freqs.weight` for Llama 3 scaling, computed with its float32 steps: pairs whose
/// wavelength is short keep 1, long ones get `factor`, and the band between is smoothed.
/// Torch evaluates `a / t` for a tensor `t` as `reciprocal(t) * a` and compares a tensor
/// with a Python float in f32, so these do too.
pub fn llama3_rope_freqs(
    head_dim: u32,
    theta: f32,
    factor: f32,
    low_freq_factor: f32,
    high_freq_factor: f32,
    original_context: f32,
) -> Vec<f32> {
    let dim = head_dim as f32;
    let low_wavelen = (f64::from(original_context) / f64::from(low_freq_factor)) as f32;
    let high_wavelen = (f64::from(original_context) / f64::from(high_freq_factor)) as f32;
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0f32 / theta.powf((2 * i) as f32 / dim);
            let wavelen = (1.0 / freq) * two_pi;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = ((1.0 / wavelen) * original_context - low_freq_factor)
                    / (high_freq_factor - low_freq_factor);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
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
        let theta = match self.family {
            // Gemma 3's converter writes its default when config.json has none.
            Family::Gemma3 => Some(self.rope_theta.unwrap_or(1_000_000.0)),
            _ => self.rope_theta,
        };
        if let Some(theta) = theta {
            out.push((format!("{a}.rope.freq_base"), Value::F32(theta)));
        }
        out.push((
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(self.eps),
        ));
        let llama_like = matches!(self.family, Family::Llama | Family::Bitnet);
        if llama_like {
            out.push((format!("{a}.vocab_size"), Value::U32(self.vocab)));
        }
        if llama_like || self.family == Family::Phi3 {
            out.push((
                format!("{a}.rope.dimension_count"),
                Value::U32(self.rope_dims),
            ));
        }
        let key_lengths = if llama_like {
            self.explicit_head_dim
        } else {
            self.head_dim_given
        };
        if key_lengths {
            out.push((
                format!("{a}.attention.key_length"),
                Value::U32(self.head_dim),
            ));
            out.push((
                format!("{a}.attention.value_length"),
                Value::U32(self.head_dim),
            ));
        }
        if let Some(theta) = self.rope_theta_swa {
            out.push((format!("{a}.rope.freq_base_swa"), Value::F32(theta)));
        }
        if let Some(cap) = self.logit_softcap {
            out.push((format!("{a}.final_logit_softcapping"), Value::F32(cap)));
        }
        if let Some(window) = self.sliding_window {
            out.push((format!("{a}.attention.sliding_window"), Value::U32(window)));
        }
        if let Some(original) = self.original_context {
            out.push((
                format!("{a}.rope.scaling.original_context_length"),
                Value::U32(original),
            ));
        }
        let linear = match (self.family, self.rope_scaling) {
            (_, RopeScaling::Linear(factor)) => Some(factor),
            // convert_hf_to_gguf.py's BitnetModel always writes linear scaling, factor 1.
            (Family::Bitnet, _) => Some(1.0),
            _ => None,
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

    /// `rope_freqs.weight` when config.json asks for Llama 3 scaling.
    pub fn rope_freqs(&self) -> Option<Vec<f32>> {
        match self.rope_scaling {
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context,
            } => Some(llama3_rope_freqs(
                self.head_dim,
                self.rope_theta.unwrap_or(10_000.0),
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context,
            )),
            _ => None,
        }
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
                serde_json::json!({"rope_type": "yarn", "factor": 8.0}),
            ),
            (
                "rope_scaling",
                serde_json::json!({"rope_type": "llama3", "low_freq_factor": 4.0}),
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
        assert_eq!(c.rope_scaling, RopeScaling::Linear(2.0));
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

    #[test]
    fn families_and_their_keys() {
        let keys = |j: &Json| {
            let c = parse_json(j).unwrap();
            c.metadata()
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let qwen2 = keys(&with(smollm2(), "model_type", "qwen2".into()));
        assert!(qwen2.contains_key("qwen2.block_count"));
        assert!(!qwen2.contains_key("qwen2.vocab_size"));
        assert!(!qwen2.contains_key("qwen2.rope.dimension_count"));
        let qwen3 = keys(&with(
            with(smollm2(), "model_type", "qwen3".into()),
            "head_dim",
            64.into(),
        ));
        assert_eq!(
            qwen3.get("qwen3.attention.key_length"),
            Some(&Value::U32(64))
        );
        let gemma = keys(&with(
            with(
                with(smollm2(), "model_type", "gemma3_text".into()),
                "rope_local_base_freq",
                10000.0.into(),
            ),
            "sliding_window",
            512.into(),
        ));
        assert_eq!(
            gemma.get("gemma3.rope.freq_base_swa"),
            Some(&Value::F32(10000.0))
        );
        assert_eq!(
            gemma.get("gemma3.attention.sliding_window"),
            Some(&Value::U32(512))
        );
        let phi = with(smollm2(), "model_type", "phi3".into());
        assert!(matches!(
            parse_json(&phi),
            Err(ExportError::ConfigMissing { .. })
        ));
        let phi = keys(&with(phi, "original_max_position_embeddings", 4096.into()));
        assert_eq!(
            phi.get("phi3.attention.sliding_window"),
            Some(&Value::U32(0))
        );
        assert_eq!(
            phi.get("phi3.rope.scaling.original_context_length"),
            Some(&Value::U32(4096))
        );
        assert_eq!(phi.get("phi3.rope.dimension_count"), Some(&Value::U32(64)));
        let err = parse_json(&with(smollm2(), "model_type", "gemma3".into())).unwrap_err();
        assert!(matches!(err, ExportError::UnsupportedModelType { .. }));
        // Only llama takes llama3 scaling; yarn is refused by name everywhere.
        let yarn = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
        for ty in ["llama", "qwen2"] {
            let err = parse_json(&with(
                with(smollm2(), "model_type", ty.into()),
                "rope_scaling",
                yarn.clone(),
            ))
            .unwrap_err();
            assert!(err.to_string().contains("yarn"), "{err}");
        }
    }

    #[test]
    fn llama3_rope_factors() {
        let c = parse_json(&with(
            with(smollm2(), "rope_theta", 500000.0.into()),
            "rope_scaling",
            serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
        ))
        .unwrap();
        let f = c.rope_freqs().unwrap();
        assert_eq!(f.len(), 32);
        // Short wavelengths keep their frequency, long ones are divided by the factor,
        // and the band between rises monotonically.
        assert_eq!(f[0], 1.0);
        assert_eq!(f[31], 8.0);
        assert!(f.windows(2).all(|w| w[0] <= w[1]));
        assert!(f.iter().any(|&x| x > 1.0 && x < 8.0));
        assert!(c
            .metadata()
            .iter()
            .all(|(k, _)| !k.contains("rope.scaling")));
        assert_eq!(parse_json(&smollm2()).unwrap().rope_freqs(), None);
    }
}
