#!/usr/bin/env python3
"""Round-trip helper for tests/export.rs, using only gguf-py and numpy (and, for
check-spm only, the sentencepiece package).

    hf_from_gguf.py build GGUF OUTDIR [--dtype f32|f16|bf16] [--shards N]
                                      [--llama3-rope] [--tokenizer-model]
        Rebuild a Hugging Face checkpoint from a GGUF whose general.architecture is
        llama, qwen2, qwen3, gemma3 or phi3, as the exact inverse of llama.cpp's
        convert_hf_to_gguf.py for that family: every tensor dequantized by gguf-py,
        renamed back (table below), reversed into PyTorch's dimension order, written as
        safetensors by hand (8-byte little-endian header length, JSON header, raw data)
        in one file or N shards with model.safetensors.index.json, plus config.json.
          * llama: Q/K rows (and Q/K biases) un-permuted, the inverse of the converter's
            LlamaModel.permute; no other family is permuted.
          * gemma3: the converter adds 1 to every tensor whose HF name ends in
            "norm.weight" (input/post_attention/pre_feedforward/post_feedforward
            layernorms, q_norm, k_norm, model.norm); here 1 is subtracted in float32
            before the cast to --dtype.
          * No output.weight: tie_word_embeddings true and no lm_head.weight.
          * rope_freqs.weight (llama3 RoPE) and phi3's rope_factors_long/short are not
            tensors of a HF checkpoint: they are skipped (phi3's become rope_scaling
            long_factor/short_factor; for llama use --llama3-rope).
        config.json is what transformers writes for the model_type (llama, qwen2,
        qwen3, gemma3_text, phi3), with every field the converter reads for the GGUF
        keys present: hidden_size, intermediate_size, num_hidden_layers,
        num_attention_heads, num_key_value_heads, head_dim (where the GGUF has
        attention.key_length; always for qwen3 and gemma3), rms_norm_eps (the float32
        printed shortest), rope_theta, max_position_embeddings, vocab_size (llama's
        vocab_size key, else token_embd's rows), tie_word_embeddings, torch_dtype,
        rope_scaling (GGUF linear/yarn scaling), sliding_window (gemma3, phi3), and:
        gemma3 query_pre_attn_scalar (= head_dim), rope_local_base_freq (from
        rope.freq_base_swa), final_logit_softcapping, sliding_window_pattern 6 and
        layer_types; phi3 original_max_position_embeddings (rope.scaling.
        original_context_length, else context_length) and partial_rotary_factor
        (only when rope.dimension_count != hidden_size / num_attention_heads). The llama
        config is exactly the one this script always wrote (tests/export.rs asserts it
        verbatim), plus head_dim / rope_scaling / attention_bias only when they apply.
        --llama3-rope (llama only): add "rope_scaling": {"rope_type": "llama3",
        "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}; no rope_freqs tensor is written.
        --tokenizer-model: when tokenizer.ggml.model is "llama" (SentencePiece), write
        OUTDIR/tokenizer.model (a SentencePiece ModelProto serialized by hand: pieces
        from tokenizer.ggml.tokens/scores/token_type, trainer_spec model_type BPE,
        byte_fallback when the vocab has BYTE tokens, normalizer_spec "identity" with
        add_dummy_prefix = tokenizer.ggml.add_space_prefix, default true) and
        OUTDIR/tokenizer_config.json (bos/eos/unk/pad token strings, add_bos_token,
        add_eos_token, chat_template, as the GGUF has them); config.json then also
        carries bos/eos/unk/sep/pad/mask_token_id (the converter's SpecialVocab
        falls back to them when there is no tokenizer.json). Without the option, no
        tokenizer file is written (tests/export.rs writes them with gguf-gate's own
        converter) and config.json has no token ids.
        Prints {"tensors", "shards", "bytes", "architecture", "tokenizer_model"}.

        GGUF name                       HF name (model.layers.N. prefix for blk.N.)
        token_embd.weight               model.embed_tokens.weight
        output_norm.weight              model.norm.weight
        output.weight                   lm_head.weight
        blk.N.attn_norm.weight          input_layernorm.weight
        blk.N.attn_{q,k,v}.weight       self_attn.{q,k,v}_proj.weight   (not phi3)
        blk.N.attn_{q,k,v}.bias         self_attn.{q,k,v}_proj.bias     (qwen2; llama)
        blk.N.attn_output.weight        self_attn.o_proj.weight
        blk.N.attn_output.bias          self_attn.o_proj.bias           (llama)
        blk.N.attn_qkv.weight           self_attn.qkv_proj.weight       (phi3)
        blk.N.attn_q_norm.weight        self_attn.q_norm.weight         (qwen3, gemma3)
        blk.N.attn_k_norm.weight        self_attn.k_norm.weight         (qwen3, gemma3)
        blk.N.ffn_norm.weight           post_attention_layernorm.weight (llama, qwen2,
                                        qwen3, phi3); pre_feedforward_layernorm.weight
                                        (gemma3)
        blk.N.post_attention_norm.weight post_attention_layernorm.weight (gemma3)
        blk.N.post_ffw_norm.weight      post_feedforward_layernorm.weight (gemma3)
        blk.N.ffn_{gate,down}.weight    mlp.{gate,down}_proj.weight     (phi3: no gate)
        blk.N.ffn_up.weight             mlp.up_proj.weight; phi3: mlp.gate_up_proj.weight
                                        (gate rows first, then up: 2 * ffn rows)

    hf_from_gguf.py compare ORIGINAL EXPORTED [--norm-via f32|f16|bf16]
        Read both files with gguf.GGUFReader and print, as JSON, how the exported
        tensors compare with the original's dequantized values: names, ggml shapes,
        types, max abs/rel difference, and how many elements differ from numpy's own
        round-to-nearest-even cast to the exported type; and which metadata differs.
        Tensors only in EXPORTED (e.g. rope_freqs.weight) are listed under "extra".
        gemma3 norms (HF name ending "norm.weight") are rebuilt as w - 1 and re-added
        + 1 by the exporter, so they are left out of max_abs_diff / max_rel_diff / worst
        and reported as "norm_plus_one_max_abs_diff" (max |exported - original|); they
        count in not_rounding only where the exported value differs from the expected
        round trip: f32 (default) np.float32(np.float32(w - 1) + 1); bf16: w - 1 rounded
        to bf16 then + 1 in float32 (the converter upcasts bf16); f16: w - 1 rounded to
        f16, + 1 in float32 and rounded to f16 (the converter adds in f16), i.e. the
        --dtype the checkpoint was built with.

    hf_from_gguf.py rope-freqs CONFIG_JSON
        Print, as a JSON list, the float32 values convert_hf_to_gguf.py's LlamaModel
        writes to rope_freqs.weight for that config (llama3 rope type; [] otherwise),
        computed step by step as the converter does: torch float32 steps with numpy
        float32 (Python-scalar operands cast to float32, a / t as reciprocal(t) * a as
        torch's __rtruediv__ does), Python float steps with Python float. Note: torch
        computes base ** t with SLEEF's powf on vector lanes, numpy with libm's powf;
        they can differ in the last bit.

    hf_from_gguf.py check-spm TOKENIZER_MODEL GGUF
        Load TOKENIZER_MODEL with sentencepiece and check, for every id, that
        id_to_piece / get_score / is_control / is_unknown / is_byte / is_unused agree
        with the GGUF's tokens / scores / token_type (and the piece count, unk/bos/eos
        ids). Prints {"pieces": n, "mismatches": [...first 100...], "mismatch_count": m};
        exits 0 either way.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGMLQuantizationType as QT

ARCHS = {
    # arch: (architectures[0], model_type)
    "llama": ("LlamaForCausalLM", "llama"),
    "qwen2": ("Qwen2ForCausalLM", "qwen2"),
    "qwen3": ("Qwen3ForCausalLM", "qwen3"),
    "gemma3": ("Gemma3ForCausalLM", "gemma3_text"),
    "phi3": ("Phi3ForCausalLM", "phi3"),
}
TOP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
# Not tensors of a HF checkpoint: the converter generates them from config.json.
GENERATED = {"rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"}
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
BIASES = {
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
}
QK_NORM = {
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
}
LAYER_BY_ARCH = {
    "llama": {**LAYER, **BIASES, "attn_output.bias": "self_attn.o_proj.bias"},
    "qwen2": {**LAYER, **BIASES},
    "qwen3": {**LAYER, **QK_NORM},
    "gemma3": {**LAYER, **QK_NORM,
               "ffn_norm.weight": "pre_feedforward_layernorm.weight",
               "post_attention_norm.weight": "post_attention_layernorm.weight",
               "post_ffw_norm.weight": "post_feedforward_layernorm.weight"},
    "phi3": {k: v for k, v in {**LAYER,
                               "attn_qkv.weight": "self_attn.qkv_proj.weight",
                               "ffn_up.weight": "mlp.gate_up_proj.weight"}.items()
             if k not in ("attn_q.weight", "attn_k.weight", "attn_v.weight", "ffn_gate.weight")},
}
DTYPES = {"f32": ("F32", np.float32), "f16": ("F16", np.float16), "bf16": ("BF16", None)}
TORCH_DTYPE = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
# (config.json key, GGUF key): what gguf.SpecialVocab reads from config.json.
TOKEN_IDS = [("bos_token_id", "tokenizer.ggml.bos_token_id"), ("eos_token_id", "tokenizer.ggml.eos_token_id"),
             ("unk_token_id", "tokenizer.ggml.unknown_token_id"), ("sep_token_id", "tokenizer.ggml.seperator_token_id"),
             ("pad_token_id", "tokenizer.ggml.padding_token_id"), ("mask_token_id", "tokenizer.ggml.mask_token_id")]


def hf_name(arch, name):
    """The HF name of GGUF tensor `name`, or None for a tensor HF checkpoints lack."""
    if name in TOP:
        return TOP[name]
    if name in GENERATED:
        return None
    parts = name.split(".", 2)
    table = LAYER_BY_ARCH[arch]
    if len(parts) != 3 or parts[0] != "blk" or parts[2] not in table:
        sys.exit(f"{arch}: no Hugging Face name for tensor {name}")
    return f"model.layers.{parts[1]}.{table[parts[2]]}"


def is_gemma_norm(arch, gguf_name):
    """Tensors Gemma3Model.modify_tensors adds 1 to: every HF name ending in norm.weight."""
    return arch == "gemma3" and gguf_name.endswith("norm.weight")


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def f32_short(v):
    """A float32 value as the Python float its shortest repr spells (1e-06, not 9.99e-07)."""
    return float(str(np.float32(v)))


def values(t):
    """A tensor's values as float32, in PyTorch order (ggml dims reversed)."""
    shape = tuple(int(d) for d in reversed(t.shape))
    if t.tensor_type in (QT.F32, QT.F16):
        data = np.asarray(t.data, dtype=np.float32)
    elif t.tensor_type == QT.BF16:
        data = (np.asarray(t.data).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        data = gguf.quants.dequantize(t.data, t.tensor_type)
    return np.ascontiguousarray(data.reshape(shape), dtype=np.float32)


def unpermute(w, n_head):
    """Inverse of convert_hf_to_gguf.py's permute(w, n_head)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def bf16_bits(w):
    bits = w.astype(np.float32).view(np.uint32)
    # round to nearest even, as torch does
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def encode(w, dtype):
    if dtype == "bf16":
        return bf16_bits(w).tobytes()
    return w.astype(DTYPES[dtype][1]).tobytes()


def hf_values(arch, t, heads, kv):
    """Tensor t's values as the HF checkpoint holds them (float32, PyTorch order)."""
    w = values(t)
    if arch == "llama":
        if t.name.endswith(("attn_q.weight", "attn_q.bias")):
            w = unpermute(w, heads)
        elif t.name.endswith(("attn_k.weight", "attn_k.bias")):
            w = unpermute(w, kv)
    if is_gemma_norm(arch, t.name):
        w = (w - np.float32(1.0)).astype(np.float32)
    return w


def rope_scaling_from_gguf(r, a):
    ty = field(r, f"{a}.rope.scaling.type")
    factor = field(r, f"{a}.rope.scaling.factor")
    if ty in (None, "none") or factor is None:
        return None
    if ty == "linear":
        return {"rope_type": "linear", "factor": f32_short(factor)}
    if ty == "yarn":
        rs = {"rope_type": "yarn", "factor": f32_short(factor)}
        orig = field(r, f"{a}.rope.scaling.original_context_length")
        if orig is not None:
            rs["original_max_position_embeddings"] = int(orig)
        for hf_key, key in (("extrapolation_factor", "rope.scaling.yarn_ext_factor"),
                            ("attention_factor", "rope.scaling.yarn_attn_factor"),
                            ("beta_fast", "rope.scaling.yarn_beta_fast"),
                            ("beta_slow", "rope.scaling.yarn_beta_slow")):
            v = field(r, f"{a}.{key}")
            if v is not None:
                rs[hf_key] = f32_short(v)
        return rs
    sys.exit(f"{a}: rope scaling type {ty!r} has no Hugging Face equivalent here")


def make_config(r, arch, dtype, llama3_rope, token_ids):
    a = arch
    names = {t.name: t for t in r.tensors}
    hidden = int(field(r, f"{a}.embedding_length"))
    heads = int(field(r, f"{a}.attention.head_count"))
    kv_f = field(r, f"{a}.attention.head_count_kv")
    kv = heads if kv_f is None else int(kv_f)
    key_length = field(r, f"{a}.attention.key_length")
    rope_dim = field(r, f"{a}.rope.dimension_count")
    vocab = field(r, f"{a}.vocab_size")
    if vocab is None:
        vocab = int(names["token_embd.weight"].shape[1])
    eps = field(r, f"{a}.attention.layer_norm_rms_epsilon")
    theta = field(r, f"{a}.rope.freq_base")
    tied = "output.weight" not in names
    hf_arch, model_type = ARCHS[arch]
    c = {
        "architectures": [hf_arch],
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": int(field(r, f"{a}.feed_forward_length")),
        "num_hidden_layers": int(field(r, f"{a}.block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
    }
    head_dim = None
    if key_length is not None:
        head_dim = int(key_length)
    elif arch == "llama" and rope_dim is not None and int(rope_dim) != hidden // heads:
        head_dim = int(rope_dim)  # LlamaModel writes rope.dimension_count = head_dim
    elif arch in ("qwen3", "gemma3"):
        head_dim = hidden // heads  # their transformers defaults (128, 256) are not this
    if head_dim is not None and arch != "phi3":
        c["head_dim"] = head_dim
    if arch != "llama":
        c["hidden_activation" if arch == "gemma3" else "hidden_act"] = \
            "gelu_pytorch_tanh" if arch == "gemma3" else "silu"
    if eps is not None:
        c["rms_norm_eps"] = f32_short(eps)
    if theta is not None:
        c["rope_theta"] = f32_short(theta)
    elif arch == "llama":
        c["rope_theta"] = 10000.0
    c["max_position_embeddings"] = int(field(r, f"{a}.context_length"))
    c["vocab_size"] = int(vocab)
    c["tie_word_embeddings"] = tied
    c["torch_dtype"] = TORCH_DTYPE[dtype]

    rope_scaling = None if arch == "phi3" else rope_scaling_from_gguf(r, a)
    if llama3_rope:
        if arch != "llama":
            sys.exit("--llama3-rope is for llama GGUFs only")
        if rope_scaling is not None:
            sys.exit("--llama3-rope: the GGUF already has rope scaling")
        rope_scaling = dict(LLAMA3_ROPE)
    if arch == "llama":
        if any(n.endswith(("attn_q.bias", "attn_output.bias")) for n in names):
            c["attention_bias"] = True
    elif arch == "qwen3":
        c["attention_bias"] = False
        c["use_sliding_window"] = False
    elif arch == "qwen2":
        c["use_sliding_window"] = False
    elif arch == "gemma3":
        c["query_pre_attn_scalar"] = head_dim
        sw = field(r, f"{a}.attention.sliding_window")
        if sw is not None:
            c["sliding_window"] = int(sw)
            pattern = 6  # llama.cpp's default for gemma3 (5 local : 1 global)
        else:
            c["sliding_window"] = None
            pattern = 1  # the converter writes no sliding window only for pattern 1
        c["sliding_window_pattern"] = pattern
        c["layer_types"] = ["sliding_attention" if (i + 1) % pattern else "full_attention"
                            for i in range(c["num_hidden_layers"])]
        swa = field(r, f"{a}.rope.freq_base_swa")
        if swa is not None:
            c["rope_local_base_freq"] = f32_short(swa)
        cap = field(r, f"{a}.final_logit_softcapping")
        c["final_logit_softcapping"] = None if cap is None else f32_short(cap)
        c["attn_logit_softcapping"] = None
    elif arch == "phi3":
        orig = field(r, f"{a}.rope.scaling.original_context_length")
        c["original_max_position_embeddings"] = c["max_position_embeddings"] if orig is None else int(orig)
        if rope_dim is not None and int(rope_dim) != hidden // heads:
            rot = int(rope_dim) * heads / hidden
            assert int(rot * hidden) // heads == int(rope_dim), (rot, rope_dim)
            c["partial_rotary_factor"] = rot
        sw = field(r, f"{a}.attention.sliding_window")
        c["sliding_window"] = None if sw is None or int(sw) == 0 else int(sw)
        if "rope_factors_long.weight" in names:
            rope_scaling = {
                "rope_type": "longrope",
                "long_factor": [float(x) for x in values(names["rope_factors_long.weight"]).reshape(-1)],
                "short_factor": [float(x) for x in values(names["rope_factors_short.weight"]).reshape(-1)],
            }
    if rope_scaling is not None:
        c["rope_scaling"] = rope_scaling
    if token_ids:
        for hf_key, key in TOKEN_IDS:
            v = field(r, key)
            if v is not None:
                c[hf_key] = int(v)
    return c


def build(src, out, dtype, shards, llama3_rope=False, tokenizer_model=False):
    r = GGUFReader(src)
    arch = field(r, "general.architecture")
    if arch not in ARCHS:
        sys.exit(f"unsupported general.architecture {arch!r} (want one of {', '.join(ARCHS)})")
    heads = int(field(r, f"{arch}.attention.head_count"))
    kv_f = field(r, f"{arch}.attention.head_count_kv")
    kv = heads if kv_f is None else int(kv_f)
    if "rope_freqs.weight" in {t.name for t in r.tensors} and not llama3_rope:
        print("warning: the GGUF has rope_freqs.weight; it is not written (see --llama3-rope)",
              file=sys.stderr)
    os.makedirs(out, exist_ok=True)
    tensors = []  # (hf name, gguf tensor, hf shape)
    for t in r.tensors:
        name = hf_name(arch, t.name)
        if name is not None:
            tensors.append((name, t, tuple(int(d) for d in reversed(t.shape))))
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
                f.write(encode(hf_values(arch, t, heads, kv), dtype))
    if shards > 1:
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    wrote_spm = False
    if tokenizer_model:
        wrote_spm = write_tokenizer(r, out)
    config = make_config(r, arch, dtype, llama3_rope, token_ids=wrote_spm)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(json.dumps({"tensors": len(tensors), "shards": shards, "bytes": total, "architecture": arch,
                      "tokenizer_model": os.path.join(out, "tokenizer.model") if wrote_spm else None}))


# ---- SentencePiece ModelProto, by hand (sentencepiece_model.proto field numbers) ----

def _varint(n):
    if n < 0:
        n += 1 << 64
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        if n:
            b.append(x | 0x80)
        else:
            b.append(x)
            return bytes(b)


def _key(field_no, wire):
    return _varint((field_no << 3) | wire)


def _len(field_no, payload):
    return _key(field_no, 2) + _varint(len(payload)) + payload


def _int(field_no, v):
    return _key(field_no, 0) + _varint(int(v))


def _f32(field_no, v):
    return _key(field_no, 5) + struct.pack("<f", v)


def spm_model_proto(tokens, scores, types, model_type, add_dummy_prefix, specials):
    """ModelProto{1: pieces, 2: trainer_spec, 3: normalizer_spec}."""
    byte_fallback = any(t == 6 for t in types)
    out = bytearray()
    for piece, score, ty in zip(tokens, scores, types):
        if ty not in (1, 2, 3, 4, 5, 6):
            sys.exit(f"token {piece!r}: GGUF token type {ty} has no SentencePiece type")
        # SentencePiece{1: piece, 2: score (float), 3: type (NORMAL=1 UNKNOWN=2 CONTROL=3
        # USER_DEFINED=4 UNUSED=5 BYTE=6)}: the same numbers as GGUF's token types
        out += _len(1, _len(1, piece.encode("utf-8")) + _f32(2, score) + _int(3, ty))
    # TrainerSpec{3: model_type (UNIGRAM=1, BPE=2), 4: vocab_size, 35: byte_fallback,
    # 40-43: unk/bos/eos/pad_id, 45-48: unk/bos/eos/pad_piece}
    ts = _int(3, model_type) + _int(4, len(tokens))
    if byte_fallback:
        ts += _int(35, 1)
    for i, (kind, tid) in enumerate(specials):  # unk, bos, eos, pad
        if tid is not None:
            ts += _int(40 + i, tid) + _len(45 + i, tokens[tid].encode("utf-8"))
        elif kind == "pad":
            pass  # default pad_id -1
        else:
            ts += _int(40 + i, -1)
    out += _len(2, ts)
    # NormalizerSpec{1: name, 3: add_dummy_prefix, 4: remove_extra_whitespaces,
    # 5: escape_whitespaces}: llama's, no normalization rules
    ns = _len(1, b"identity") + _int(3, bool(add_dummy_prefix)) + _int(4, 0) + _int(5, 1)
    out += _len(3, ns)
    return bytes(out)


def gguf_vocab(r):
    tokens = [str(x) for x in field(r, gguf.Keys.Tokenizer.LIST)]
    scores = field(r, gguf.Keys.Tokenizer.SCORES)
    scores = [0.0] * len(tokens) if scores is None else [float(x) for x in scores]
    types = field(r, gguf.Keys.Tokenizer.TOKEN_TYPE)
    types = [1] * len(tokens) if types is None else [int(x) for x in types]
    return tokens, scores, types


def write_tokenizer(r, out):
    model = field(r, gguf.Keys.Tokenizer.MODEL)
    if model != "llama":
        print(f"warning: tokenizer.ggml.model is {model!r}, not SentencePiece: no tokenizer.model written",
              file=sys.stderr)
        return False
    tokens, scores, types = gguf_vocab(r)
    ids = {k: field(r, key) for k, key in (("unk", gguf.Keys.Tokenizer.UNK_ID), ("bos", gguf.Keys.Tokenizer.BOS_ID),
                                            ("eos", gguf.Keys.Tokenizer.EOS_ID), ("pad", gguf.Keys.Tokenizer.PAD_ID))}
    ids = {k: (None if v is None else int(v)) for k, v in ids.items()}
    add_space = field(r, gguf.Keys.Tokenizer.ADD_PREFIX)
    blob = spm_model_proto(tokens, scores, types, 2,  # llama.cpp's "llama" vocab: SentencePiece BPE
                           True if add_space is None else bool(add_space),
                           [(k, ids[k]) for k in ("unk", "bos", "eos", "pad")])
    with open(os.path.join(out, "tokenizer.model"), "wb") as f:
        f.write(blob)
    tc = {}
    for k in ("add_bos_token", "add_eos_token"):
        v = field(r, getattr(gguf.Keys.Tokenizer, k.upper().replace("_TOKEN", "")))
        if v is not None:
            tc[k] = bool(v)
    for k in ("bos", "eos", "unk", "pad"):
        if ids[k] is not None:
            tc[f"{k}_token"] = tokens[ids[k]]
    tmpl = field(r, gguf.Keys.Tokenizer.CHAT_TEMPLATE)
    if tmpl is not None:
        tc["chat_template"] = tmpl
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2, ensure_ascii=False)
    return True


def check_spm(model_path, gguf_path):
    r = GGUFReader(gguf_path)
    tokens, scores, types = gguf_vocab(r)
    mismatches = []
    try:
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor()
        if not sp.Load(model_path):
            raise RuntimeError("Load returned false")
    except Exception as e:  # noqa: BLE001 - reported, not raised
        print(json.dumps({"pieces": 0, "mismatches": [f"load: {e}"], "mismatch_count": 1}))
        return
    n = sp.get_piece_size()
    if n != len(tokens):
        mismatches.append(f"piece count {n} != GGUF token count {len(tokens)}")
    for i in range(min(n, len(tokens))):
        got = (sp.id_to_piece(i), float(np.float32(sp.get_score(i))), bool(sp.is_unknown(i)),
               bool(sp.is_control(i)), bool(sp.is_unused(i)), bool(sp.is_byte(i)))
        t = types[i]
        want = (tokens[i], float(np.float32(scores[i])), t == 2, t == 3, t == 5, t == 6)
        if got != want:
            mismatches.append({"id": i, "spm": list(got), "gguf": list(want)})
    for k, key, fn in (("unk", gguf.Keys.Tokenizer.UNK_ID, sp.unk_id), ("bos", gguf.Keys.Tokenizer.BOS_ID, sp.bos_id),
                       ("eos", gguf.Keys.Tokenizer.EOS_ID, sp.eos_id)):
        v = field(r, key)
        if v is not None and fn() != int(v):
            mismatches.append(f"{k}_id {fn()} != GGUF {int(v)}")
    print(json.dumps({"pieces": n, "mismatches": mismatches[:100], "mismatch_count": len(mismatches)}))


# ---- rope_freqs.weight as LlamaModel.generate_extra_tensors computes it ----

def rope_freqs(config_path):
    with open(config_path, encoding="utf-8") as f:
        hparams = json.load(f)
    # TextModel.__init__: rope_parameters, with rope_theta / rope_type mirrored in
    rope_parameters = dict(hparams.get("rope_parameters", hparams.get("rope_scaling")) or {})
    rope_theta = next((hparams[k] for k in ("global_rope_theta", "rope_global_theta", "rope_theta_global",
                                             "rope_theta", "rotary_emb_base") if k in hparams), None)
    if "full_attention" not in rope_parameters and "sliding_attention" not in rope_parameters:
        if "rope_theta" not in rope_parameters and rope_theta is not None:
            rope_parameters["rope_theta"] = rope_theta
        if "rope_type" not in rope_parameters and rope_parameters.get("type") is not None:
            rope_parameters["rope_type"] = rope_parameters["type"]
    rope_params = rope_parameters.get("full_attention", rope_parameters)
    if not rope_params or rope_params.get("rope_type", "").lower() != "llama3":
        return []
    f32 = np.float32
    base = rope_params.get("rope_theta", 10000.0)
    dim = hparams.get("head_dim")
    if dim is None:
        dim = hparams["hidden_size"] // hparams["num_attention_heads"]
    # freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    exps = np.arange(0, dim, 2, dtype=f32) / f32(dim)
    powed = np.power(f32(base), exps, dtype=f32)
    freqs = (f32(1.0) / powed).astype(f32) * f32(1.0)  # 1.0 / t is reciprocal(t) * 1.0
    factor = rope_params.get("factor", 8.0)
    low_freq_factor = rope_params.get("low_freq_factor", 1.0)
    high_freq_factor = rope_params.get("high_freq_factor", 4.0)
    old_context_len = hparams.get("original_max_position_embeddings", 8192)
    low_freq_wavelen = old_context_len / low_freq_factor  # Python floats
    high_freq_wavelen = old_context_len / high_freq_factor
    out = []
    for freq in freqs:
        freq = f32(freq)
        wavelen = f32(f32(1.0) / freq) * f32(2 * math.pi)  # 2 * math.pi / freq
        if wavelen < f32(high_freq_wavelen):
            out.append(f32(1))
        elif wavelen > f32(low_freq_wavelen):
            out.append(f32(factor))
        else:
            # (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            smooth = (f32(f32(1.0) / wavelen) * f32(old_context_len) - f32(low_freq_factor)) \
                / f32(high_freq_factor - low_freq_factor)
            smooth = f32(smooth)
            # 1 / ((1 - smooth) / factor + smooth)
            d = f32(f32(f32(f32(1) - smooth) / f32(factor)) + smooth)
            out.append(f32(f32(1.0) / d) * f32(1))
    return [float(f32(v)) for v in out]


# ---- compare ----

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
        return (bf16_bits(x).astype(np.uint32) << 16).view(np.float32)
    return x


def norm_round_trip(w, via):
    """What the exporter writes for a gemma3 norm w rebuilt as w - 1 in `via`."""
    d = (w - np.float32(1.0)).astype(np.float32)
    if via == "f16":
        d16 = d.astype(np.float16)
        return (d16.astype(np.float32) + np.float32(1.0)).astype(np.float16).astype(np.float32)
    if via == "bf16":
        d = (bf16_bits(d).astype(np.uint32) << 16).view(np.float32)
    return (d + np.float32(1.0)).astype(np.float32)


def compare(orig_path, exp_path, norm_via="f32"):
    a = GGUFReader(orig_path)
    b = GGUFReader(exp_path)
    arch = field(a, "general.architecture")
    bt = {t.name: t for t in b.tensors}
    report = {"tensors": len(b.tensors), "missing": [], "extra": [], "shape_mismatch": [],
              "types": {}, "max_abs_diff": 0.0, "max_rel_diff": 0.0, "not_rounding": 0,
              "worst": None, "meta_diff": [], "meta": {}}
    if arch == "gemma3":
        report["norm_plus_one_max_abs_diff"] = 0.0
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
        got = values(e).reshape(-1)
        diff = np.abs(got - want)
        m = float(diff.max()) if diff.size else 0.0
        if is_gemma_norm(arch, t.name):
            report["norm_plus_one_max_abs_diff"] = max(report["norm_plus_one_max_abs_diff"], m)
            expect = cast_like(norm_round_trip(want, norm_via), e.tensor_type)
            report["not_rounding"] += int(np.count_nonzero(got != expect))
            continue
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
        dtype, shards, llama3, spm_out = "f32", 1, False, False
        rest = args[3:]
        while rest:
            if rest[0] == "--dtype" and len(rest) > 1 and rest[1] in DTYPES:
                dtype, rest = rest[1], rest[2:]
            elif rest[0] == "--shards" and len(rest) > 1:
                shards, rest = int(rest[1]), rest[2:]
            elif rest[0] == "--llama3-rope":
                llama3, rest = True, rest[1:]
            elif rest[0] == "--tokenizer-model":
                spm_out, rest = True, rest[1:]
            else:
                sys.exit(f"unknown option {rest[0]}")
        build(args[1], args[2], dtype, shards, llama3, spm_out)
    elif len(args) in (3, 5) and args[0] == "compare":
        via = "f32"
        if len(args) == 5:
            if args[3] != "--norm-via" or args[4] not in DTYPES:
                sys.exit(__doc__)
            via = args[4]
        compare(args[1], args[2], via)
    elif len(args) == 2 and args[0] == "rope-freqs":
        print(json.dumps(rope_freqs(args[1])))
    elif len(args) == 3 and args[0] == "check-spm":
        check_spm(args[1], args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
