//! Which model families the engine runs, and their hyper-parameters read from GGUF
//! metadata — with the keys, defaults and per-family choices (RoPE pairing, FFN
//! activation, attention and embedding scales, sliding-window layers) of llama.cpp's
//! loader (`src/llama-model.cpp`) and graph builders (`src/models/<arch>.cpp`). A GGUF is
//! untrusted: every value is range-checked, and everything a family needs that the file
//! does not say, or says in a way the engine does not implement (a RoPE scaling type),
//! is an [`InferError`] naming it — never a silently wrong forward pass.

use super::kernels::RopeMode;
use super::InferError;
use crate::gguf::Header;

/// Upper bound on any single hyper-parameter that sizes a buffer (dimensions, heads,
/// layers, context): far above any real model, low enough that no product overflows.
pub const MAX_HPARAM: u64 = 1 << 24;

/// The model families the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `llama`: SmolLM2, TinyLlama, Llama 2/3, Mistral.
    Llama,
    /// `bitnet-b1.58` (bitnet.cpp) and `bitnet` (llama.cpp): sub-norms, squared ReLU.
    Bitnet,
    /// `qwen2`: Qwen2/Qwen2.5 — Q/K/V biases, NeoX RoPE.
    Qwen2,
    /// `qwen3`: per-head RMS norms on Q and K before RoPE, no biases.
    Qwen3,
    /// `gemma3`: scaled embeddings, Q/K norms, post-attention and post-FFN norms, GELU
    /// gate, sliding-window layers with their own RoPE base.
    Gemma3,
    /// `phi3`: fused QKV and fused gate/up projections.
    Phi3,
}

/// Every `general.architecture` the engine runs, and its family.
pub const SUPPORTED: &[(&str, Arch)] = &[
    ("llama", Arch::Llama),
    ("bitnet-b1.58", Arch::Bitnet),
    ("bitnet", Arch::Bitnet),
    ("qwen2", Arch::Qwen2),
    ("qwen3", Arch::Qwen3),
    ("gemma3", Arch::Gemma3),
    ("phi3", Arch::Phi3),
];

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        SUPPORTED.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// The architecture names, for messages.
    pub fn names() -> String {
        SUPPORTED
            .iter()
            .map(|(n, _)| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// llama.cpp's `llama_model_rope_type`: adjacent pairs for llama (its converter
    /// permutes Q/K), NeoX halves for the rest.
    fn rope_mode(self) -> RopeMode {
        match self {
            Arch::Llama => RopeMode::Normal,
            _ => RopeMode::Neox,
        }
    }

    fn ffn_act(self) -> FfnAct {
        match self {
            Arch::Bitnet => FfnAct::ReluSqr,
            Arch::Gemma3 => FfnAct::GeluTanh,
            _ => FfnAct::SwiGlu,
        }
    }
}

/// The feed-forward gate activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnAct {
    /// `silu(gate) * up` (SwiGLU).
    SwiGlu,
    /// `relu(gate)^2 * up` (BitNet b1.58).
    ReluSqr,
    /// `gelu_tanh(gate) * up` (GeGLU, Gemma).
    GeluTanh,
}

/// Hyper-parameters, validated against each other (shapes are checked per tensor).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `general.architecture` as written in the file.
    pub architecture: String,
    pub arch: Arch,
    pub n_layer: usize,
    /// Width of the residual stream (`embedding_length`).
    pub dim: usize,
    /// Hidden width of the feed-forward block (`feed_forward_length`).
    pub ffn_dim: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Size of each attention head (`attention.key_length`, else `dim / n_head`).
    pub head_dim: usize,
    /// Values of each head that RoPE rotates (`rope.dimension_count`).
    pub rope_dims: usize,
    pub rope_base: f32,
    /// `1 / rope.scaling.factor` for linear scaling, else 1.
    pub rope_freq_scale: f32,
    /// RoPE base of sliding-window layers (Gemma 3's local layers).
    pub rope_base_swa: f32,
    /// Multiplies RoPE's cos and sin (`rope.scaling.attn_factor`, 1 by default).
    pub rope_attn_factor: f32,
    pub rope_mode: RopeMode,
    pub rms_eps: f32,
    pub vocab: usize,
    pub context_length: usize,
    pub ffn_act: FfnAct,
    /// The logits use the token embedding matrix.
    pub tied_embeddings: bool,
    /// Multiplies Q after RoPE, before it is rounded for the `K·Q` product (Gemma 3,
    /// Phi-3 scale Q in the graph; 1 for the others).
    pub q_scale: f32,
    /// Multiplies `K·Q` before the softmax (`1/sqrt(head_dim)`, or 1 when Q was scaled).
    pub kq_scale: f32,
    /// Multiplies the embedding rows (Gemma: `sqrt(dim)`).
    pub embed_scale: Option<f32>,
    /// Keys at least this many positions behind the query are masked, in the layers
    /// `swa_layers` marks.
    pub sliding_window: Option<usize>,
    /// Per layer: whether it uses the sliding window (and the SWA RoPE base).
    pub swa_layers: Vec<bool>,
    /// `logits = c * tanh(logits / c)` (Gemma's `final_logit_softcapping`), when set.
    pub logit_softcap: Option<f32>,
}

impl Config {
    /// Width of K and V per token (`n_head_kv * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of Q and of the attention output (`n_head * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
}

/// Reads typed hyper-parameters under an architecture prefix, naming the key in errors.
pub(super) struct Keys<'h> {
    pub header: &'h Header,
    pub prefix: String,
}

impl Keys<'_> {
    pub fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    pub fn uint(&self, name: &str, default: Option<u64>) -> Result<usize, InferError> {
        let key = self.key(name);
        let value = match self.header.get(&key) {
            None => default.ok_or(InferError::MissingKey { key: key.clone() })?,
            Some(v) => v.as_u64().ok_or_else(|| InferError::BadKey {
                key: key.clone(),
                problem: format!("has type {}; it must be an unsigned integer", v.type_name()),
            })?,
        };
        if value == 0 || value > MAX_HPARAM {
            return Err(InferError::BadKey {
                key,
                problem: format!("is {value}; it must be between 1 and {MAX_HPARAM}"),
            });
        }
        Ok(value as usize)
    }

    pub fn float(&self, name: &str, default: Option<f32>) -> Result<f32, InferError> {
        let key = self.key(name);
        let value = match self.header.get(&key) {
            None => default.ok_or(InferError::MissingKey { key: key.clone() })?,
            Some(v) => v.as_f64().ok_or_else(|| InferError::BadKey {
                key: key.clone(),
                problem: format!("has type {}; it must be a number", v.type_name()),
            })? as f32,
        };
        if !(value.is_finite() && value > 0.0) {
            return Err(InferError::BadKey {
                key,
                problem: format!("is {value}; it must be a positive finite number"),
            });
        }
        Ok(value)
    }

    fn string(&self, name: &str) -> Option<&str> {
        self.header.get(&self.key(name)).and_then(|v| v.as_str())
    }
}

fn bad_key(key: String, problem: String) -> InferError {
    InferError::BadKey { key, problem }
}

/// The attention geometry: heads, KV heads, head size, rotated dims.
struct Heads {
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    rope_dims: usize,
}

fn read_heads(keys: &Keys<'_>, dim: usize) -> Result<Heads, InferError> {
    let n_head = keys.uint("attention.head_count", None)?;
    let n_head_kv = keys.uint("attention.head_count_kv", Some(n_head as u64))?;
    let default_head = dim.is_multiple_of(n_head).then_some((dim / n_head) as u64);
    let head_dim = match keys.header.get(&keys.key("attention.key_length")) {
        Some(_) => keys.uint("attention.key_length", None)?,
        None => default_head.ok_or_else(|| {
            bad_key(
                keys.key("attention.head_count"),
                format!("is {n_head}, which does not divide embedding_length {dim}"),
            )
        })? as usize,
    };
    let value_len = keys.uint("attention.value_length", Some(head_dim as u64))?;
    if value_len != head_dim {
        return Err(bad_key(
            keys.key("attention.value_length"),
            format!("is {value_len}; the engine needs it equal to key_length {head_dim}"),
        ));
    }
    if n_head_kv > n_head || n_head % n_head_kv != 0 {
        return Err(bad_key(
            keys.key("attention.head_count_kv"),
            format!("is {n_head_kv}; it must divide attention.head_count {n_head}"),
        ));
    }
    if head_dim % 2 != 0 {
        return Err(bad_key(
            keys.key("attention.key_length"),
            format!("gives an odd head size {head_dim}; RoPE needs pairs"),
        ));
    }
    let rope_dims = keys.uint("rope.dimension_count", Some(head_dim as u64))?;
    if rope_dims > head_dim || rope_dims % 2 != 0 {
        return Err(bad_key(
            keys.key("rope.dimension_count"),
            format!("is {rope_dims}; it must be even and at most the head size {head_dim}"),
        ));
    }
    Ok(Heads {
        n_head,
        n_head_kv,
        head_dim,
        rope_dims,
    })
}

/// `1 / factor` for linear RoPE scaling; 1 for none; an error naming any other type.
fn rope_freq_scale(keys: &Keys<'_>) -> Result<f32, InferError> {
    match keys.string("rope.scaling.type") {
        None | Some("none") => Ok(1.0),
        Some("linear") => Ok(1.0 / keys.float("rope.scaling.factor", Some(1.0))?),
        Some(other) => Err(InferError::Unsupported {
            what: format!(
                "RoPE scaling type {other:?} ({}): the engine implements none, linear and \
                 per-frequency factors (rope_freqs)",
                keys.key("rope.scaling.type")
            ),
        }),
    }
}

/// Sliding-window attention: the window and which layers use it.
fn sliding_window(
    keys: &Keys<'_>,
    arch: Arch,
    n_layer: usize,
) -> Result<(Option<usize>, Vec<bool>), InferError> {
    let none = (None, vec![false; n_layer]);
    // llama.cpp runs Phi-3 without its sliding window (it ignores the key), and only
    // Gemma 3 of these families has one.
    if arch != Arch::Gemma3
        || keys
            .header
            .get(&keys.key("attention.sliding_window"))
            .is_none()
    {
        return Ok(none);
    }
    let window = keys.uint("attention.sliding_window", None)?;
    // `sliding_window_pattern`: a period P (layer l slides when l % P < P - 1; default
    // 6: five local layers, then one global) or one flag per layer.
    let key = keys.key("attention.sliding_window_pattern");
    let layers = match keys.header.get(&key) {
        None => (0..n_layer).map(|l| l % 6 < 5).collect(),
        Some(v) => match v.as_array() {
            Some(flags) => {
                if flags.len() != n_layer {
                    return Err(bad_key(
                        key,
                        format!("has {} flags for {n_layer} layers", flags.len()),
                    ));
                }
                (0..n_layer)
                    .map(|l| flags.get(l).and_then(|f| f.as_bool()).unwrap_or(false))
                    .collect()
            }
            None => {
                let period = keys.uint("attention.sliding_window_pattern", None)?;
                (0..n_layer).map(|l| l % period < period - 1).collect()
            }
        },
    };
    Ok((Some(window), layers))
}

/// Read and cross-check the hyper-parameters (shapes are checked later, per tensor).
pub(super) fn read_config(header: &Header) -> Result<Config, InferError> {
    let architecture = header
        .architecture()
        .ok_or(InferError::MissingArchitecture)?
        .to_string();
    let arch =
        Arch::from_name(&architecture).ok_or_else(|| InferError::UnsupportedArchitecture {
            arch: architecture.clone(),
        })?;
    let keys = Keys {
        header,
        prefix: architecture.clone(),
    };
    let n_layer = keys.uint("block_count", None)?;
    let dim = keys.uint("embedding_length", None)?;
    let ffn_dim = keys.uint("feed_forward_length", None)?;
    let heads = read_heads(&keys, dim)?;
    let rms_eps = keys.float("attention.layer_norm_rms_epsilon", None)?;
    let rope_base = keys.float("rope.freq_base", Some(10000.0))?;
    let context_length = keys.uint("context_length", None)?;
    let (sliding_window, swa_layers) = sliding_window(&keys, arch, n_layer)?;
    // Gemma 3 and Phi-3 scale Q in the graph and attend with a scale of 1; Gemma 3 27B
    // scales by its model width per head, everything else by the head size.
    let head_scale = 1.0 / (heads.head_dim as f32).sqrt();
    let (q_scale, kq_scale) = match arch {
        Arch::Gemma3 if n_layer == 62 => (1.0 / ((dim / heads.n_head) as f32).sqrt(), 1.0),
        Arch::Gemma3 | Arch::Phi3 => (head_scale, 1.0),
        _ => (1.0, head_scale),
    };
    // llama.cpp's bitnet and gemma graphs always project with the embedding matrix;
    // the others tie only when `output.weight` is absent.
    let tied_embeddings =
        matches!(arch, Arch::Bitnet | Arch::Gemma3) || header.tensor("output.weight").is_none();
    Ok(Config {
        architecture,
        arch,
        n_layer,
        dim,
        ffn_dim,
        n_head: heads.n_head,
        n_head_kv: heads.n_head_kv,
        head_dim: heads.head_dim,
        rope_dims: heads.rope_dims,
        rope_base,
        rope_freq_scale: rope_freq_scale(&keys)?,
        rope_base_swa: keys.float("rope.freq_base_swa", Some(10000.0))?,
        rope_attn_factor: keys.float("rope.scaling.attn_factor", Some(1.0))?,
        rope_mode: arch.rope_mode(),
        rms_eps,
        // Set by `Model::load` from the embedding matrix.
        vocab: 0,
        context_length,
        ffn_act: arch.ffn_act(),
        tied_embeddings,
        q_scale,
        kq_scale,
        embed_scale: (arch == Arch::Gemma3).then(|| (dim as f32).sqrt()),
        sliding_window,
        swa_layers,
        logit_softcap: match arch {
            Arch::Gemma3 => match header.get(&keys.key("final_logit_softcapping")) {
                Some(_) => Some(keys.float("final_logit_softcapping", None)?),
                None => None,
            },
            _ => None,
        },
    })
}
