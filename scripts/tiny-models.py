#!/usr/bin/env python3
"""Write tiny random-weight GGUF models, one per architecture gguf-gate runs.

Why: gguf-gate's inference engine must compute what llama.cpp computes for every
architecture it claims (llama, qwen2, qwen3, gemma3, phi3). Real checkpoints are large,
slow and share most code paths; these models are a few hundred KB, load in milliseconds
and are built so that every architecture-specific step of llama.cpp's graph matters:

  * GQA everywhere (n_head_kv < n_head);
  * qwen2: Q/K/V biases, tied embeddings (no output.weight);
  * qwen3: per-head Q/K RMS norms, head_dim (32) != n_embd / n_head (16), an untied
    output.weight;
  * gemma3: 6 layers so llama.cpp's default sliding-window pattern (5 local : 1 global)
    yields both kinds of layer, a sliding window of 8 tokens (shorter than the reference
    prompt), head_dim 32 != n_embd / n_head, n_head_kv = 1, a global RoPE base of 1e6
    with linear RoPE scaling x8 (as gemma-3-4b and larger ship it) against the local
    layers' fixed base 10000, embedding scaling by sqrt(n_embd), post-attention and
    post-FFN norms, GELU-gated FFN, norm weights stored with the +1 already added (as
    convert_hf_to_gguf.py writes them), tied embeddings;
  * phi3: fused attn_qkv and fused gate/up (ffn_up is 2 * n_ff wide), and a
    phi3.attention.sliding_window key that llama.cpp deliberately ignores;
  * llama: the control (NORM-style RoPE, separate Q/K/V, untied output).

One extra variant, tiny-qwen3-mixed.gguf, is tiny-qwen3 with the attention matrices in
F16 and the FFN matrices in Q8_0 (quantized by gguf-py, llama.cpp's reference
quantizer), so llama.cpp's quantized matmul paths are exercised too.

Weights are normal(0, sigma) with sigma chosen so activations stay O(1) and attention
is neither uniform nor one-hot; norm weights are 1 + normal(0, 0.1). The tied models
(qwen2, gemma3) get small embeddings and a final-norm gain of ~4, otherwise every
position would just predict its own input token. Everything is F32 unless stated.
general.name is a neutral "gguf-gate tiny random model": llama.cpp's vocabulary loader
keys tokenizer quirks on the name (one containing "phi3" would require a
"<|endoftext|>" token). Each architecture draws from its own numpy Generator seeded with a fixed
number, so the same script (with the same numpy and gguf-py) writes byte-identical
files every time - the sha256s it prints are recorded in tests/reference/tiny-*.json.

The vocabulary is a SentencePiece-style ("llama" tokenizer model) list of 320 tokens:
<unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then 61 word pieces, with scores
and token types; BOS = 1, EOS = 2, add_bos_token = true. It is not a realistic
tokenizer: the reference run (scripts/llama-logits-reference.py) feeds token ids.

The exact llama.cpp semantics these models exercise are written up in
scripts/arch-spec.md.

Usage: python3 scripts/tiny-models.py OUTDIR
       writes OUTDIR/tiny-<arch>.gguf (+ tiny-qwen3-mixed.gguf), prints each sha256.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import quants

N_CTX_TRAIN = 1024

# Word pieces after the 3 specials and 256 byte tokens: 320 tokens in all.
WORDS = (
    "the of and to in is that it for on was with as be at by this from or an are not "
    "but have they which one you were all we when there can has more if will out so "
    "up what about into than them only other new some could time these two may then "
    "do first any my now"
).split()
N_WORDS = 61


def vocab():
    toks, scores, types = [], [], []
    for t, ty in (("<unk>", gguf.TokenType.UNKNOWN), ("<s>", gguf.TokenType.CONTROL), ("</s>", gguf.TokenType.CONTROL)):
        toks.append(t)
        scores.append(0.0)
        types.append(ty)
    for b in range(256):
        toks.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(gguf.TokenType.BYTE)
    for i, w in enumerate(WORDS[:N_WORDS]):
        toks.append("\u2581" + w)
        scores.append(-float(i + 1))
        types.append(gguf.TokenType.NORMAL)
    assert len(toks) == 320 and len(set(toks)) == len(toks)
    return toks, scores, types


# Architecture table. head_dim is written as attention.key_length/value_length only where
# it differs from n_embd / n_head (qwen3, gemma3), as the converters do.
ARCHS = {
    "llama": dict(seed=1001, n_embd=64, n_layer=3, n_head=4, n_head_kv=2, head_dim=16, n_ff=128,
                  eps=1e-5, rope_base=10000.0, tied=False),
    "qwen2": dict(seed=1002, n_embd=64, n_layer=3, n_head=4, n_head_kv=2, head_dim=16, n_ff=160,
                  eps=1e-6, rope_base=1000000.0, tied=True, emb_sigma=0.1),
    "qwen3": dict(seed=1003, n_embd=64, n_layer=3, n_head=4, n_head_kv=2, head_dim=32, n_ff=128,
                  eps=1e-6, rope_base=1000000.0, tied=False),
    "gemma3": dict(seed=1004, n_embd=64, n_layer=6, n_head=4, n_head_kv=1, head_dim=32, n_ff=192,
                   eps=1e-6, rope_base=1000000.0, tied=True, emb_sigma=0.05, sliding_window=8,
                   rope_scale_linear=8.0),
    "phi3": dict(seed=1005, n_embd=64, n_layer=3, n_head=4, n_head_kv=2, head_dim=16, n_ff=128,
                 eps=1e-5, rope_base=10000.0, tied=False, sliding_window=8),
}


class Gen:
    """Seeded weight source: every tensor is drawn in a fixed order from one Generator."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def normal(self, shape, sigma):
        return (self.rng.standard_normal(shape) * sigma).astype(np.float32)

    def norm_weight(self, n):
        # RMS-norm gains around 1. For gemma3 this is the value as stored in the GGUF,
        # i.e. HF's (w) + 1 - llama.cpp multiplies by the stored value directly.
        return (1.0 + self.rng.standard_normal(n) * 0.1).astype(np.float32)


def build(arch, a, out_path, mixed=False):
    """Return [(name, np.ndarray (numpy shape = reversed ggml dims), qtype or None)]."""
    g = Gen(a["seed"])
    E, L, H, HKV, D, F = a["n_embd"], a["n_layer"], a["n_head"], a["n_head_kv"], a["head_dim"], a["n_ff"]
    V = 320
    q_dim, kv_dim = H * D, HKV * D
    tensors = []

    def add(name, arr, qtype=None):
        tensors.append((name, arr, qtype))

    # With tied embeddings a large embedding makes every position predict its own input
    # token (e . e dominates), so tied models get small embeddings - gemma3's smallest,
    # as it multiplies them by sqrt(n_embd) = 8 - and a final-norm gain of 4 to keep
    # the logits spread out.
    emb_sigma = a.get("emb_sigma", 1.0)
    add("token_embd.weight", g.normal((V, E), emb_sigma))
    add("output_norm.weight", g.norm_weight(E) * (4.0 if a["tied"] else 1.0))
    if not a["tied"]:
        add("output.weight", g.normal((V, E), 0.25))

    attn_q = QT.F16 if mixed else None
    ffn_q = QT.Q8_0 if mixed else None
    for i in range(L):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", g.norm_weight(E))
        if arch == "phi3":
            # fused Q|K|V: output rows [0, q_dim) are Q, then K, then V
            add(p + "attn_qkv.weight", g.normal((q_dim + 2 * kv_dim, E), 0.1), attn_q)
        else:
            add(p + "attn_q.weight", g.normal((q_dim, E), 0.1), attn_q)
            add(p + "attn_k.weight", g.normal((kv_dim, E), 0.1), attn_q)
            add(p + "attn_v.weight", g.normal((kv_dim, E), 0.1), attn_q)
        if arch == "qwen2":
            add(p + "attn_q.bias", g.normal((q_dim,), 0.2))
            add(p + "attn_k.bias", g.normal((kv_dim,), 0.2))
            add(p + "attn_v.bias", g.normal((kv_dim,), 0.2))
        if arch in ("qwen3", "gemma3"):
            add(p + "attn_q_norm.weight", g.norm_weight(D))
            add(p + "attn_k_norm.weight", g.norm_weight(D))
        add(p + "attn_output.weight", g.normal((E, q_dim), 0.1), attn_q)
        if arch == "gemma3":
            add(p + "post_attention_norm.weight", g.norm_weight(E))
        add(p + "ffn_norm.weight", g.norm_weight(E))
        if arch == "phi3":
            # fused gate|up: output rows [0, n_ff) are the gate (SiLU'd), [n_ff, 2 n_ff) up
            add(p + "ffn_up.weight", g.normal((2 * F, E), 0.1), ffn_q)
        else:
            add(p + "ffn_gate.weight", g.normal((F, E), 0.1), ffn_q)
            add(p + "ffn_up.weight", g.normal((F, E), 0.1), ffn_q)
        add(p + "ffn_down.weight", g.normal((E, F), 0.1), ffn_q)
        if arch == "gemma3":
            add(p + "post_ffw_norm.weight", g.norm_weight(E))

    w = gguf.GGUFWriter(str(out_path), arch)
    # A neutral general.name: llama.cpp's vocab loader keys tokenizer quirks on it (a name
    # containing "phi3"/"phi-3" makes it look up "<|endoftext|>", which this vocab lacks).
    w.add_name("gguf-gate tiny random model")
    w.add_uint32(f"{arch}.context_length", N_CTX_TRAIN)
    w.add_uint32(f"{arch}.embedding_length", E)
    w.add_uint32(f"{arch}.block_count", L)
    w.add_uint32(f"{arch}.feed_forward_length", F)
    w.add_uint32(f"{arch}.attention.head_count", H)
    w.add_uint32(f"{arch}.attention.head_count_kv", HKV)
    if D != E // H:
        w.add_uint32(f"{arch}.attention.key_length", D)
        w.add_uint32(f"{arch}.attention.value_length", D)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", a["eps"])
    w.add_float32(f"{arch}.rope.freq_base", a["rope_base"])
    if arch in ("llama", "phi3"):
        w.add_uint32(f"{arch}.rope.dimension_count", D)
    if "sliding_window" in a:
        w.add_uint32(f"{arch}.attention.sliding_window", a["sliding_window"])
    if "rope_scale_linear" in a:
        w.add_string(f"{arch}.rope.scaling.type", "linear")
        w.add_float32(f"{arch}.rope.scaling.factor", a["rope_scale_linear"])
    w.add_uint32("general.file_type", 7 if mixed else 0)  # 7 = MOSTLY_Q8_0, 0 = ALL_F32

    toks, scores, types = vocab()
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    for name, arr, qtype in tensors:
        if qtype is None:
            w.add_tensor(name, arr)
        elif qtype == QT.F16:
            w.add_tensor(name, arr.astype(np.float16))
        else:
            data = quants.quantize(arr, qtype)
            w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(arch, f"tiny-{arch}.gguf", False) for arch in ARCHS]
    jobs.append(("qwen3", "tiny-qwen3-mixed.gguf", True))
    from importlib.metadata import version
    print(f"# numpy {np.__version__}, gguf-py {version('gguf')}")
    for arch, fname, mixed in jobs:
        path = out / fname
        build(arch, ARCHS[arch], path, mixed=mixed)
        print(f"{sha256(path)}  {path}")


if __name__ == "__main__":
    main()
