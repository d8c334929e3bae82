//! A tiny llama Hugging Face checkpoint written by hand (safetensors bytes, sharded
//! index, a byte-level BPE tokenizer, config.json), shared by the export tests of
//! safetensors (tests/export.rs) and of PyTorch `.bin` files (tests/export_bin.rs).

use std::path::Path;

use serde_json::{json, Value as Json};

use super::Rng;

/// One tensor for a hand-written safetensors file.
#[derive(Clone)]
pub struct T {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

pub fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> T {
    T {
        name: name.into(),
        dtype: "F32",
        shape: shape.to_vec(),
        data: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// safetensors by hand: 8-byte little-endian header length, JSON header padded with
/// spaces to 8 bytes, then the data in order.
pub fn safetensors_bytes(tensors: &[T]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0;
    for t in tensors {
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.data.len()]}),
        );
        offset += t.data.len();
    }
    let mut h = serde_json::to_vec(&Json::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

pub fn write_safetensors(path: &Path, tensors: &[T]) {
    std::fs::write(path, safetensors_bytes(tensors)).unwrap();
}

/// Write `tensors` as `shards` files plus model.safetensors.index.json.
pub fn write_sharded(dir: &Path, tensors: &[T], shards: usize) {
    let mut map = serde_json::Map::new();
    for s in 0..shards {
        let name = format!("model-{:05}-of-{shards:05}.safetensors", s + 1);
        let part: Vec<T> = tensors.iter().skip(s).step_by(shards).cloned().collect();
        for t in &part {
            map.insert(t.name.clone(), json!(name));
        }
        write_safetensors(&dir.join(&name), &part);
    }
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_vec_pretty(&json!({"metadata": {}, "weight_map": map})).unwrap(),
    )
    .unwrap();
}

/// A small byte-level BPE tokenizer: 30 tokens (the model's vocabulary is padded to 32).
pub fn write_tokenizer(dir: &Path) {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|endoftext|>".into(), json!(0));
    for (i, c) in ('a'..='z').enumerate() {
        vocab.insert(c.to_string(), json!(i + 1));
    }
    vocab.insert("ab".into(), json!(27));
    vocab.insert("\u{120}".into(), json!(28));
    vocab.insert("\u{120}a".into(), json!(29));
    let tok = json!({
        "version": "1.0",
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "vocab": vocab, "merges": ["a b", "\u{120} a"]}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let config = json!({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                        "add_bos_token": false, "chat_template": "{{ messages }}"});
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

pub const HIDDEN: usize = 64;
pub const FFN: usize = 128;
pub const LAYERS: usize = 2;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const VOCAB: usize = 32;

pub fn tiny_config(model_type: &str) -> Json {
    json!({
        "model_type": model_type, "hidden_size": HIDDEN, "intermediate_size": FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
        "vocab_size": VOCAB, "tie_word_embeddings": true
    })
}

/// The tensors of a healthy tiny llama checkpoint, in a scrambled order: F32, or with
/// `f16` the matrices F16 (norms stay F32).
pub fn tiny_llama_tensors(f16: bool) -> Vec<T> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut t = Vec::new();
    let mut add = |name: String, shape: &[usize], scale: f32, offset: f32| {
        let n = shape.iter().product();
        let values = rng.fill(n, scale, offset);
        t.push(if f16 && shape.len() == 2 {
            T {
                name,
                dtype: "F16",
                shape: shape.to_vec(),
                data: values
                    .iter()
                    .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                    .collect(),
            }
        } else {
            f32_tensor(&name, shape, &values)
        });
    };
    add(
        "model.embed_tokens.weight".into(),
        &[VOCAB, HIDDEN],
        0.2,
        0.0,
    );
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        add(format!("{p}.input_layernorm.weight"), &[HIDDEN], 0.1, 0.3);
        add(
            format!("{p}.self_attn.q_proj.weight"),
            &[HIDDEN, HIDDEN],
            0.1,
            0.0,
        );
        add(
            format!("{p}.self_attn.k_proj.weight"),
            &[32, HIDDEN],
            0.1,
            0.0,
        );
        add(
            format!("{p}.self_attn.v_proj.weight"),
            &[32, HIDDEN],
            0.1,
            0.0,
        );
        add(
            format!("{p}.self_attn.o_proj.weight"),
            &[HIDDEN, HIDDEN],
            0.1,
            0.0,
        );
        add(
            format!("{p}.post_attention_layernorm.weight"),
            &[HIDDEN],
            0.1,
            0.3,
        );
        add(
            format!("{p}.mlp.gate_proj.weight"),
            &[FFN, HIDDEN],
            0.1,
            0.0,
        );
        add(format!("{p}.mlp.up_proj.weight"), &[FFN, HIDDEN], 0.1, 0.0);
        add(
            format!("{p}.mlp.down_proj.weight"),
            &[HIDDEN, FFN],
            0.1,
            0.0,
        );
    }
    add("model.norm.weight".into(), &[HIDDEN], 0.2, 1.5);
    t.reverse();
    t
}
