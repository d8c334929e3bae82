#!/usr/bin/env python3
"""Dump llama.cpp's intermediate tensors and logits, and compare its logits with ours.

The engine computes in the arithmetic of ggml's x86 CPU build (docs/probe.md, "How it
follows llama.cpp"). This is how that was established and how to check it on another
model or machine: llama-cpp-python's `cb_eval` callback receives every node of
llama.cpp's graph after it is computed (`norm-0`, `attn_norm-0`, `Qcur-0`, `kq-0`,
`kq_soft_max-0`, `kqv-0`, `ffn_swiglu-0`, `l_out-0`, ..., `result_output`), so each
operation can be replayed from llama.cpp's own inputs and compared bit for bit.

    python3 scripts/llama-graph-dump.py MODEL.gguf TEXT N OUT.npz [--compare OURS.npy]

runs the first N tokens of TEXT (BOS added when the vocabulary asks for it) one token
per decode, as scripts/llama-score-reference.py does, with flash attention off and 2
threads, and writes OUT.npz: `tokens`, `logits` ([N, n_vocab]) and every F32/F16 node as
`"<token>:<name>"` (repeated names get `#1`, `#2`, ...). With --compare, OURS.npy is
`gguf-gate score MODEL --text TEXT --logits-out OURS.npy` over the same text; the script
prints, per position, how many of the n_vocab logits differ and the largest difference.
"""

import argparse
import ctypes
import sys


class GgmlTensor(ctypes.Structure):
    """The head of `struct ggml_tensor` (ggml.h) up to `name`."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--compare", metavar="OURS.npy")
    args = ap.parse_args()

    import numpy as np
    from llama_cpp import llama_cpp as L

    store = {}
    current = [0]

    def on_node(ptr, ask, _user):
        if ask:
            return True
        t = ctypes.cast(ptr, ctypes.POINTER(GgmlTensor)).contents
        if t.type not in (0, 1) or not t.data:  # F32, F16 on the CPU
            return True
        esz = 4 if t.type == 0 else 2
        ne, nb = list(t.ne), list(t.nb)
        span = sum((ne[i] - 1) * nb[i] for i in range(4)) + esz
        raw = np.frombuffer((ctypes.c_uint8 * span).from_address(t.data),
                            dtype=np.float32 if t.type == 0 else np.float16)
        values = np.lib.stride_tricks.as_strided(raw, shape=ne[::-1], strides=nb[::-1]).copy()
        key = f"{current[0]}:{t.name.decode(errors='replace')}"
        name, i = key, 1
        while name in store:
            name, i = f"{key}#{i}", i + 1
        store[name] = values
        return True

    callback = L.ggml_backend_sched_eval_callback(on_node)
    L.llama_backend_init()
    model = L.llama_model_load_from_file(args.model.encode(), L.llama_model_default_params())
    if not model:
        sys.exit(f"{args.model}: llama.cpp could not load it")
    cp = L.llama_context_default_params()
    cp.n_ctx = max(256, args.n + 8)
    cp.n_batch = cp.n_ctx
    cp.n_threads = cp.n_threads_batch = 2
    cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
    cp.cb_eval = callback
    ctx = L.llama_init_from_model(model, cp)
    vocab = L.llama_model_get_vocab(model)
    data = open(args.text, "rb").read()
    buf = (L.llama_token * (len(data) + 8))()
    n = L.llama_tokenize(vocab, data, len(data), buf, len(buf), True, False)
    if n < 0:
        sys.exit("tokenization failed")
    tokens = list(buf[: min(n, args.n)])
    n_vocab = L.llama_vocab_n_tokens(vocab)
    logits = []
    for i, t in enumerate(tokens):
        current[0] = i
        one = (L.llama_token * 1)(t)
        if L.llama_decode(ctx, L.llama_batch_get_one(one, 1)) != 0:
            sys.exit(f"llama_decode failed at token {i}")
        row = L.llama_get_logits_ith(ctx, -1)
        logits.append(np.ctypeslib.as_array(row, shape=(n_vocab,)).copy())
    store["tokens"] = np.array(tokens)
    store["logits"] = np.array(logits)
    np.savez(args.out, **store)
    print(f"wrote {args.out}: {len(tokens)} tokens, {len(store) - 2} graph tensors", file=sys.stderr)

    if args.compare:
        ours = np.load(args.compare, mmap_mode="r")
        for i, row in enumerate(logits):
            diff = np.abs(ours[i] - row)
            print(f"position {i}: {int((ours[i] != row).sum())} of {n_vocab} logits differ, max {float(diff.max()):.3g}")


if __name__ == "__main__":
    main()
