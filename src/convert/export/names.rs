//! The tensor name map: Hugging Face checkpoint names (`model.layers.3.self_attn.q_proj.weight`)
//! to llama.cpp's GGUF names (`blk.3.attn_q.weight`), with the role each tensor plays
//! (norm, Q/K projection, embedding, ...) so the converter knows which tensors stay F32
//! and which rows to permute. The names follow gguf-py's `TensorNameMap` and
//! convert_hf_to_gguf.py for the llama (mistral), BitNet, Qwen2, Qwen3, Gemma 3 and
//! Phi-3 families; anything else is unmapped, never guessed.

use super::config::Family;

/// What a tensor is, as far as conversion cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `token_embd.weight`.
    Embedding,
    /// `output.weight` (the LM head).
    Output,
    /// A norm weight: always written as F32.
    Norm,
    /// The query projection: rows permuted with the attention head count (llama).
    Query,
    /// The key projection: rows permuted with the KV head count (llama).
    Key,
    /// Any other projection matrix (V, O, gate, up, down, fused QKV or gate/up).
    Projection,
    /// A projection's bias (Qwen2's Q/K/V): 1-D, written as F32.
    Bias,
}

/// A checkpoint tensor name resolved against the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// Written to the GGUF under `name`.
    Tensor {
        name: String,
        role: Role,
        /// `blk.N` layer, when the tensor belongs to one.
        layer: Option<u32>,
    },
    /// BitNet's per-matrix `weight_scale`: consumed while unpacking the weight named.
    Scale { weight: String },
    /// A buffer recomputed by every loader (`rotary_emb.inv_freq`): skipped.
    Ignored,
    /// Not a tensor this converter knows.
    Unmapped,
}

/// Per-layer suffixes: HF name after `model.layers.N.`, GGUF name after `blk.N.`, role.
const LAYER: &[Entry] = &[
    ("input_layernorm.weight", "attn_norm.weight", Role::Norm),
    ("self_attn.q_proj.weight", "attn_q.weight", Role::Query),
    ("self_attn.k_proj.weight", "attn_k.weight", Role::Key),
    ("self_attn.v_proj.weight", "attn_v.weight", Role::Projection),
    (
        "self_attn.o_proj.weight",
        "attn_output.weight",
        Role::Projection,
    ),
    (
        "post_attention_layernorm.weight",
        "ffn_norm.weight",
        Role::Norm,
    ),
    ("mlp.gate_proj.weight", "ffn_gate.weight", Role::Projection),
    ("mlp.up_proj.weight", "ffn_up.weight", Role::Projection),
    ("mlp.down_proj.weight", "ffn_down.weight", Role::Projection),
];

/// BitNet's extra per-layer norms.
const BITNET_LAYER: &[Entry] = &[
    (
        "self_attn.attn_sub_norm.weight",
        "attn_sub_norm.weight",
        Role::Norm,
    ),
    ("mlp.ffn_sub_norm.weight", "ffn_sub_norm.weight", Role::Norm),
];

/// Qwen2's attention biases (1-D, written as F32).
const QWEN2_BIASES: &[Entry] = &[
    ("self_attn.q_proj.bias", "attn_q.bias", Role::Bias),
    ("self_attn.k_proj.bias", "attn_k.bias", Role::Bias),
    ("self_attn.v_proj.bias", "attn_v.bias", Role::Bias),
];

/// The per-head RMS norms on Q and K (Qwen3, Gemma 3).
const QK_NORMS: &[Entry] = &[
    ("self_attn.q_norm.weight", "attn_q_norm.weight", Role::Norm),
    ("self_attn.k_norm.weight", "attn_k_norm.weight", Role::Norm),
];

/// Gemma 3's four norms per layer: around attention and around the feed-forward block.
const GEMMA3_NORMS: &[Entry] = &[
    (
        "post_attention_layernorm.weight",
        "post_attention_norm.weight",
        Role::Norm,
    ),
    (
        "pre_feedforward_layernorm.weight",
        "ffn_norm.weight",
        Role::Norm,
    ),
    (
        "post_feedforward_layernorm.weight",
        "post_ffw_norm.weight",
        Role::Norm,
    ),
];

/// Phi-3's fused projections, kept fused as llama.cpp keeps them (its loader splits
/// them): QKV in place of Q, K and V; gate/up in place of gate and up.
const PHI3_FUSED: &[Entry] = &[
    (
        "self_attn.qkv_proj.weight",
        "attn_qkv.weight",
        Role::Projection,
    ),
    ("mlp.gate_up_proj.weight", "ffn_up.weight", Role::Projection),
];

/// One per-layer entry: HF suffix, GGUF suffix, role.
type Entry = (&'static str, &'static str, Role);

/// Insert `entries` right after the entry written as `gguf` (at the end when absent).
fn insert_after(v: &mut Vec<Entry>, gguf: &str, entries: &[Entry]) {
    let at = v
        .iter()
        .position(|e| e.1 == gguf)
        .map_or(v.len(), |i| i + 1);
    v.splice(at..at, entries.iter().copied());
}

/// The per-layer entries of a family, in the order they are written to the GGUF.
pub fn layer_entries(family: Family) -> Vec<Entry> {
    let mut v: Vec<Entry> = LAYER.to_vec();
    match family {
        Family::Llama => {}
        Family::Bitnet => {
            // Written right after the tensor each one normalises the output of.
            insert_after(&mut v, "attn_output.weight", &BITNET_LAYER[..1]);
            v.push(BITNET_LAYER[1]);
        }
        Family::Qwen2 => insert_after(&mut v, "attn_v.weight", QWEN2_BIASES),
        Family::Qwen3 => insert_after(&mut v, "attn_k.weight", QK_NORMS),
        Family::Gemma3 => {
            v.retain(|e| e.1 != "ffn_norm.weight");
            insert_after(&mut v, "attn_k.weight", QK_NORMS);
            insert_after(&mut v, "attn_output.weight", &GEMMA3_NORMS[..2]);
            insert_after(&mut v, "ffn_down.weight", &GEMMA3_NORMS[2..]);
        }
        Family::Phi3 => {
            let split = [
                "attn_q.weight",
                "attn_k.weight",
                "attn_v.weight",
                "ffn_gate.weight",
                "ffn_up.weight",
            ];
            v.retain(|e| !split.contains(&e.1));
            insert_after(&mut v, "attn_norm.weight", &PHI3_FUSED[..1]);
            insert_after(&mut v, "ffn_norm.weight", &PHI3_FUSED[1..]);
        }
    }
    v
}

/// Map one checkpoint tensor name. `layers` is `num_hidden_layers`: a layer index at or
/// above it is unmapped (the checkpoint does not match its config).
pub fn map_name(family: Family, layers: u32, hf: &str) -> Mapped {
    let top = |name: &str, role| Mapped::Tensor {
        name: name.to_string(),
        role,
        layer: None,
    };
    match hf {
        "model.embed_tokens.weight" => return top("token_embd.weight", Role::Embedding),
        "model.norm.weight" => return top("output_norm.weight", Role::Norm),
        "lm_head.weight" => return top("output.weight", Role::Output),
        _ => {}
    }
    let Some((layer, rest)) = split_layer(hf) else {
        return Mapped::Unmapped;
    };
    if layer >= layers {
        return Mapped::Unmapped;
    }
    if rest == "self_attn.rotary_emb.inv_freq" {
        return Mapped::Ignored;
    }
    let entries = layer_entries(family);
    if family == Family::Bitnet {
        if let Some(base) = rest.strip_suffix(".weight_scale") {
            let weight = format!("{base}.weight");
            return match entries.iter().find(|(h, _, _)| *h == weight) {
                Some((_, _, role)) if *role != Role::Norm => Mapped::Scale {
                    weight: format!("model.layers.{layer}.{weight}"),
                },
                _ => Mapped::Unmapped,
            };
        }
    }
    match entries.iter().find(|(h, _, _)| *h == rest) {
        Some((_, g, role)) => Mapped::Tensor {
            name: format!("blk.{layer}.{g}"),
            role: *role,
            layer: Some(layer),
        },
        None => Mapped::Unmapped,
    }
}

/// `model.layers.N.rest` -> (N, rest). N is plain decimal digits without a leading zero.
fn split_layer(hf: &str) -> Option<(u32, &str)> {
    let tail = hf.strip_prefix("model.layers.")?;
    let (n, rest) = tail.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    Some((n.parse().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(m: Mapped) -> String {
        match m {
            Mapped::Tensor { name, .. } => name,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn llama_names() {
        let f = Family::Llama;
        for (hf, gguf) in [
            ("model.embed_tokens.weight", "token_embd.weight"),
            ("model.norm.weight", "output_norm.weight"),
            ("lm_head.weight", "output.weight"),
            (
                "model.layers.0.input_layernorm.weight",
                "blk.0.attn_norm.weight",
            ),
            (
                "model.layers.1.self_attn.q_proj.weight",
                "blk.1.attn_q.weight",
            ),
            (
                "model.layers.1.self_attn.k_proj.weight",
                "blk.1.attn_k.weight",
            ),
            (
                "model.layers.1.self_attn.v_proj.weight",
                "blk.1.attn_v.weight",
            ),
            (
                "model.layers.1.self_attn.o_proj.weight",
                "blk.1.attn_output.weight",
            ),
            (
                "model.layers.29.post_attention_layernorm.weight",
                "blk.29.ffn_norm.weight",
            ),
            (
                "model.layers.2.mlp.gate_proj.weight",
                "blk.2.ffn_gate.weight",
            ),
            ("model.layers.2.mlp.up_proj.weight", "blk.2.ffn_up.weight"),
            (
                "model.layers.2.mlp.down_proj.weight",
                "blk.2.ffn_down.weight",
            ),
        ] {
            assert_eq!(name(map_name(f, 30, hf)), gguf, "{hf}");
        }
    }

    #[test]
    fn roles() {
        let role = |hf| match map_name(Family::Llama, 4, hf) {
            Mapped::Tensor { role, .. } => Some(role),
            _ => None,
        };
        assert_eq!(
            role("model.layers.0.self_attn.q_proj.weight"),
            Some(Role::Query)
        );
        assert_eq!(
            role("model.layers.0.self_attn.k_proj.weight"),
            Some(Role::Key)
        );
        assert_eq!(
            role("model.layers.0.input_layernorm.weight"),
            Some(Role::Norm)
        );
        assert_eq!(role("model.norm.weight"), Some(Role::Norm));
        assert_eq!(role("model.embed_tokens.weight"), Some(Role::Embedding));
        assert_eq!(role("lm_head.weight"), Some(Role::Output));
    }

    #[test]
    fn bitnet_sub_norms_and_scales() {
        let f = Family::Bitnet;
        assert_eq!(
            name(map_name(
                f,
                2,
                "model.layers.1.self_attn.attn_sub_norm.weight"
            )),
            "blk.1.attn_sub_norm.weight"
        );
        assert_eq!(
            name(map_name(f, 2, "model.layers.0.mlp.ffn_sub_norm.weight")),
            "blk.0.ffn_sub_norm.weight"
        );
        assert_eq!(
            map_name(f, 2, "model.layers.0.self_attn.q_proj.weight_scale"),
            Mapped::Scale {
                weight: "model.layers.0.self_attn.q_proj.weight".into()
            }
        );
        // A scale for a norm, or sub-norms in a llama model, are not known tensors.
        assert_eq!(
            map_name(f, 2, "model.layers.0.input_layernorm.weight_scale"),
            Mapped::Unmapped
        );
        assert_eq!(
            map_name(Family::Llama, 2, "model.layers.0.mlp.ffn_sub_norm.weight"),
            Mapped::Unmapped
        );
        assert_eq!(
            map_name(Family::Llama, 2, "model.layers.0.mlp.up_proj.weight_scale"),
            Mapped::Unmapped
        );
    }

    #[test]
    fn unmapped_and_ignored() {
        let f = Family::Llama;
        for hf in [
            "model.layers.0.self_attn.q_proj.bias",
            "model.layers.2.input_layernorm.weight", // layer 2 of 2
            "model.layers.01.input_layernorm.weight",
            "model.layers.-1.input_layernorm.weight",
            "model.layers..input_layernorm.weight",
            "model.layers.99999999999.input_layernorm.weight",
            "transformer.h.0.attn.weight",
            "",
        ] {
            assert_eq!(map_name(f, 2, hf), Mapped::Unmapped, "{hf}");
        }
        assert_eq!(
            map_name(f, 2, "model.layers.1.self_attn.rotary_emb.inv_freq"),
            Mapped::Ignored
        );
    }

    #[test]
    fn layer_order() {
        let names: Vec<&str> = layer_entries(Family::Bitnet).iter().map(|e| e.1).collect();
        assert_eq!(
            names,
            [
                "attn_norm.weight",
                "attn_q.weight",
                "attn_k.weight",
                "attn_v.weight",
                "attn_output.weight",
                "attn_sub_norm.weight",
                "ffn_norm.weight",
                "ffn_gate.weight",
                "ffn_up.weight",
                "ffn_down.weight",
                "ffn_sub_norm.weight",
            ]
        );
        assert_eq!(layer_entries(Family::Llama).len(), 9);
    }

    #[test]
    fn family_layers() {
        let gguf = |f: Family| -> Vec<&str> { layer_entries(f).iter().map(|e| e.1).collect() };
        assert_eq!(
            gguf(Family::Qwen2)[..7],
            [
                "attn_norm.weight",
                "attn_q.weight",
                "attn_k.weight",
                "attn_v.weight",
                "attn_q.bias",
                "attn_k.bias",
                "attn_v.bias"
            ]
        );
        assert!(gguf(Family::Qwen3).contains(&"attn_q_norm.weight"));
        assert!(!gguf(Family::Qwen3).contains(&"attn_q.bias"));
        assert_eq!(
            gguf(Family::Phi3),
            [
                "attn_norm.weight",
                "attn_qkv.weight",
                "attn_output.weight",
                "ffn_norm.weight",
                "ffn_up.weight",
                "ffn_down.weight"
            ]
        );
        assert_eq!(
            gguf(Family::Gemma3),
            [
                "attn_norm.weight",
                "attn_q.weight",
                "attn_k.weight",
                "attn_q_norm.weight",
                "attn_k_norm.weight",
                "attn_v.weight",
                "attn_output.weight",
                "post_attention_norm.weight",
                "ffn_norm.weight",
                "ffn_gate.weight",
                "ffn_up.weight",
                "ffn_down.weight",
                "post_ffw_norm.weight"
            ]
        );
        let gemma = gguf(Family::Gemma3);
        assert_eq!(gemma.len(), 13);
        for n in [
            "post_attention_norm.weight",
            "ffn_norm.weight",
            "post_ffw_norm.weight",
            "attn_k_norm.weight",
        ] {
            assert!(gemma.contains(&n), "{n}");
        }
        assert_eq!(
            name(map_name(
                Family::Gemma3,
                2,
                "model.layers.1.pre_feedforward_layernorm.weight"
            )),
            "blk.1.ffn_norm.weight"
        );
        assert_eq!(
            name(map_name(
                Family::Gemma3,
                2,
                "model.layers.1.post_attention_layernorm.weight"
            )),
            "blk.1.post_attention_norm.weight"
        );
        assert_eq!(
            name(map_name(
                Family::Phi3,
                2,
                "model.layers.0.self_attn.qkv_proj.weight"
            )),
            "blk.0.attn_qkv.weight"
        );
        assert_eq!(
            name(map_name(
                Family::Phi3,
                2,
                "model.layers.0.mlp.gate_up_proj.weight"
            )),
            "blk.0.ffn_up.weight"
        );
        assert_eq!(
            map_name(Family::Phi3, 2, "model.layers.0.self_attn.q_proj.weight"),
            Mapped::Unmapped
        );
        assert_eq!(
            name(map_name(
                Family::Qwen2,
                2,
                "model.layers.0.self_attn.k_proj.bias"
            )),
            "blk.0.attn_k.bias"
        );
    }
}
