#!/usr/bin/env python3
"""Exact-math first-step logits of SmolLM2-135M-Instruct Q4_1, for docs/probe.md.

Runs the llama forward pass in float64 with numpy on weights dequantized by gguf-py, with
no activation quantization, no f16 KV cache and libm-free math: the "noise-free" answer.
Prints the logits of llama.cpp's reference top-10 ids and their largest distance from
llama.cpp's values (tests/reference/smollm2-greedy.json), once with normal RoPE (what
llama uses) and once with NeoX RoPE (a wiring mistake), to show how large quantization
noise and a real bug are.

Usage: python3 scripts/smollm2-f64-logits.py [MODEL.gguf] [REFERENCE.json]   (~15 s)
"""
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cache = os.environ.get("GGUF_GATE_MODELS") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gguf-gate", "models")
model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")
ref_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "tests", "reference", "smollm2-greedy.json")

ref = json.load(open(ref_path))
top = ref["first_step_top10"]
tokens = ref["greedy"][0]["prompt_tokens"]

r = GGUFReader(model)
T = {t.name: t for t in r.tensors}
kv = {k: f.contents() for k, f in r.fields.items() if k.startswith("llama.")}
dim, n_layer = kv["llama.embedding_length"], kv["llama.block_count"]
n_head, n_kv = kv["llama.attention.head_count"], kv["llama.attention.head_count_kv"]
hd, eps, base = dim // n_head, kv["llama.attention.layer_norm_rms_epsilon"], kv["llama.rope.freq_base"]


def w(name):
    t = T[name]
    a = dequantize(t.data, t.tensor_type).astype(np.float64)
    return a.reshape([int(x) for x in reversed(t.shape)]) if len(t.shape) > 1 else a.reshape(-1)


emb = w("token_embd.weight")
layers = [{k: w(f"blk.{l}.{k}.weight") for k in
           ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]}
          for l in range(n_layer)]
out_norm = w("output_norm.weight")


def rms(x, g):
    return x / np.sqrt((x * x).mean() + eps) * g


def rope(v, pos, neox):
    v = v.copy().reshape(-1, hd)
    for i in range(hd // 2):
        th = pos * base ** (-2 * i / hd)
        c, s = np.cos(th), np.sin(th)
        a, b = (i, i + hd // 2) if neox else (2 * i, 2 * i + 1)
        x0, x1 = v[:, a].copy(), v[:, b].copy()
        v[:, a], v[:, b] = x0 * c - x1 * s, x0 * s + x1 * c
    return v.reshape(-1)


def run(neox):
    K = [[] for _ in range(n_layer)]
    V = [[] for _ in range(n_layer)]
    for pos, t in enumerate(tokens):
        x = emb[t].copy()
        for l, L in enumerate(layers):
            xb = rms(x, L["attn_norm"])
            q, k = rope(L["attn_q"] @ xb, pos, neox), rope(L["attn_k"] @ xb, pos, neox)
            K[l].append(k)
            V[l].append(L["attn_v"] @ xb)
            att = np.zeros(dim)
            for h in range(n_head):
                g = h // (n_head // n_kv)
                sc = np.array([kk[g * hd:(g + 1) * hd] @ q[h * hd:(h + 1) * hd] for kk in K[l]]) / np.sqrt(hd)
                p = np.exp(sc - sc.max())
                p /= p.sum()
                att[h * hd:(h + 1) * hd] = sum(pp * vv[g * hd:(g + 1) * hd] for pp, vv in zip(p, V[l]))
            x = x + L["attn_output"] @ att
            xb = rms(x, L["ffn_norm"])
            gt, up = L["ffn_gate"] @ xb, L["ffn_up"] @ xb
            x = x + L["ffn_down"] @ (gt / (1 + np.exp(-gt)) * up)
    return emb @ rms(x, out_norm)


for neox in (False, True):
    logits = run(neox)
    ours = [logits[i] for i in top["ids"]]
    diff = max(abs(a - b) for a, b in zip(ours, top["logits"]))
    print(f"{'neox' if neox else 'normal'} RoPE: top-10 {[round(float(v), 4) for v in ours]}  max |f64 - llama.cpp| = {diff:.4f}")
