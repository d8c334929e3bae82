#!/usr/bin/env python3
"""Round-trip helper for tests/export.rs, using only gguf-py and numpy.

    hf_from_gguf.py build GGUF OUTDIR [--dtype f32|f16|bf16] [--shards N]
        Rebuild a Hugging Face-style llama checkpoint from a GGUF: every tensor
        dequantized by gguf-py, renamed back (token_embd -> model.embed_tokens, ...),
        reversed into PyTorch's dimension order, Q/K rows un-permuted (the inverse of
        convert_hf_to_gguf.py's permute), written as safetensors by hand (8-byte
        little-endian header length, JSON header, raw data) in one file or N shards
        with model.safetensors.index.json; plus config.json from the GGUF's llama.* keys.
        The tokenizer files are written by the Rust test (gguf-gate's own converter).

    hf_from_gguf.py compare ORIGINAL EXPORTED
        Read both files with gguf.GGUFReader and print, as JSON, how the exported
        tensors compare with the original's dequantized values: names, ggml shapes,
        types, max abs/rel difference, and how many elements differ from numpy's own
        round-to-nearest-even cast to the exported type; and which metadata differs.
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGMLQuantizationType as QT

TOP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LAYER = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
DTYPES = {"f32": ("F32", np.float32), "f16": ("F16", np.float16), "bf16": ("BF16", None)}


def hf_name(name):
    if name in TOP:
        return TOP[name]
    _, layer, rest = name.split(".", 2)
    return f"model.layers.{layer}.{LAYER[rest]}"


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def values(t):
    """A tensor's values as float32, in PyTorch order (ggml dims reversed)."""
    shape = tuple(int(d) for d in reversed(t.shape))
    if t.tensor_type in (QT.F32, QT.F16):
        data = np.asarray(t.data, dtype=np.float32)
    else:
        data = gguf.quants.dequantize(t.data, t.tensor_type)
    return np.ascontiguousarray(data.reshape(shape), dtype=np.float32)


def unpermute(w, n_head):
    """Inverse of convert_hf_to_gguf.py's permute(w, n_head)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def encode(w, dtype):
    if dtype == "bf16":
        bits = w.astype(np.float32).view(np.uint32)
        # round to nearest even, as torch does
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        return bits.tobytes()
    return w.astype(DTYPES[dtype][1]).tobytes()


def build(src, out, dtype, shards):
    r = GGUFReader(src)
    heads = int(field(r, "llama.attention.head_count"))
    kv = int(field(r, "llama.attention.head_count_kv"))
    os.makedirs(out, exist_ok=True)
    tensors = []  # (hf name, gguf tensor, hf shape)
    for t in r.tensors:
        tensors.append((hf_name(t.name), t, tuple(int(d) for d in reversed(t.shape))))
    tensors.sort(key=lambda x: x[0])
    itemsize = 4 if dtype == "f32" else 2
    groups = [tensors[i::shards] for i in range(shards)]
    weight_map = {}
    total = 0
    for si, group in enumerate(groups):
        fname = "model.safetensors" if shards == 1 else f"model-{si + 1:05d}-of-{shards:05d}.safetensors"
        header = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, _, shape in group:
            size = int(np.prod(shape)) * itemsize
            header[name] = {"dtype": DTYPES[dtype][0], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
            weight_map[name] = fname
        total += offset
        hbytes = json.dumps(header, separators=(",", ":")).encode()
        hbytes += b" " * (-len(hbytes) % 8)
        with open(os.path.join(out, fname), "wb") as f:
            f.write(len(hbytes).to_bytes(8, "little"))
            f.write(hbytes)
            for name, t, shape in group:
                w = values(t)
                if t.name.endswith("attn_q.weight"):
                    w = unpermute(w, heads)
                elif t.name.endswith("attn_k.weight"):
                    w = unpermute(w, kv)
                f.write(encode(w, dtype))
    if shards > 1:
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    eps = float(str(np.float32(field(r, "llama.attention.layer_norm_rms_epsilon"))))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": int(field(r, "llama.embedding_length")),
        "intermediate_size": int(field(r, "llama.feed_forward_length")),
        "num_hidden_layers": int(field(r, "llama.block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "rms_norm_eps": eps,
        "rope_theta": float(field(r, "llama.rope.freq_base")),
        "max_position_embeddings": int(field(r, "llama.context_length")),
        "vocab_size": int(field(r, "llama.vocab_size")),
        "tie_word_embeddings": not any(t.name == "output.weight" for t in r.tensors),
        "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dtype],
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(json.dumps({"tensors": len(tensors), "shards": shards, "bytes": total}))


def plain(v):
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8")
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def cast_like(x, ty):
    if ty == QT.F16:
        return x.astype(np.float16).astype(np.float32)
    if ty == QT.BF16:
        bits = x.view(np.uint32)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint32) << 16
        return bits.view(np.float32)
    return x


def compare(orig_path, exp_path):
    a = GGUFReader(orig_path)
    b = GGUFReader(exp_path)
    bt = {t.name: t for t in b.tensors}
    report = {"tensors": len(b.tensors), "missing": [], "extra": [], "shape_mismatch": [],
              "types": {}, "max_abs_diff": 0.0, "max_rel_diff": 0.0, "not_rounding": 0,
              "worst": None, "meta_diff": [], "meta": {}}
    names = set()
    for t in a.tensors:
        names.add(t.name)
        e = bt.get(t.name)
        if e is None:
            report["missing"].append(t.name)
            continue
        report["types"][t.name] = e.tensor_type.name
        if [int(d) for d in t.shape] != [int(d) for d in e.shape]:
            report["shape_mismatch"].append(t.name)
            continue
        want = values(t).reshape(-1)
        got = np.asarray(e.data).astype(np.float32).reshape(-1)
        if e.tensor_type == QT.BF16:
            got = (np.asarray(e.data).view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(-1)
        diff = np.abs(got - want)
        m = float(diff.max()) if diff.size else 0.0
        rel = float((diff / np.maximum(np.abs(want), 1e-30)).max()) if diff.size else 0.0
        if m > report["max_abs_diff"]:
            report["max_abs_diff"] = m
            report["worst"] = t.name
        report["max_rel_diff"] = max(report["max_rel_diff"], rel)
        report["not_rounding"] += int(np.count_nonzero(got != cast_like(want, e.tensor_type)))
    report["extra"] = sorted(set(bt) - names)
    skip = {"general.file_type", "general.name", "general.quantization_version"}
    for name, f in a.fields.items():
        if name.startswith("GGUF.") or name in skip or name.startswith("general."):
            continue
        g = b.fields.get(name)
        if g is None:
            report["meta_diff"].append(f"{name}: missing")
        elif f.types != g.types:
            report["meta_diff"].append(f"{name}: type {[x.name for x in f.types]} vs {[x.name for x in g.types]}")
        elif plain(f.contents()) != plain(g.contents()):
            report["meta_diff"].append(f"{name}: value differs")
    for name in ("general.architecture", "general.file_type", "general.name"):
        g = b.fields.get(name)
        report["meta"][name] = None if g is None else plain(g.contents())
    print(json.dumps(report))


def main():
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == "build":
        dtype, shards = "f32", 1
        rest = args[3:]
        while rest:
            if rest[0] == "--dtype":
                dtype = rest[1]
            elif rest[0] == "--shards":
                shards = int(rest[1])
            else:
                sys.exit(f"unknown option {rest[0]}")
            rest = rest[2:]
        build(args[1], args[2], dtype, shards)
    elif len(args) == 3 and args[0] == "compare":
        compare(args[1], args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
