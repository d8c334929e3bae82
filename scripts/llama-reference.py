#!/usr/bin/env python3
"""Record llama.cpp's behaviour on a GGUF model as a reference file for the tests.

llama.cpp (through llama-cpp-python, built from source on this machine) is the
independent reference for the probe: its tokenizer, its greedy tokens and its logits.
This script runs it and writes JSON under tests/reference/; the tests compare gguf-gate
with the committed file and never build llama.cpp themselves.

    pip install llama-cpp-python==0.3.36        # builds llama.cpp, 5-15 min on 2 cores
    python3 scripts/llama-reference.py MODEL.gguf OUT.json \
        [--prompt TEXT ...] [--max-tokens 32] [--threads 2] [--logits] [--tokenize-file F]

Recorded, per prompt: the prompt's token ids, 32 greedy token ids and their text, and at
each step llama.cpp's top-1 minus top-2 logit margin (a step with a small margin is a
near-tie another build may break the other way); for the first prompt the top-10 logits
of the first step. Also the tokenization of a fixed set of strings (plain ASCII, a
leading space, Unicode, digits, whitespace, code, contractions, mixed case), with parse_special off and no BOS
unless the model adds one. With --logits, every step's full logit row is stored
(float32, base64) for small models.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STRINGS = [
    "Hello world",
    " leading space",
    "Unicode: naïve café, 東京, emoji 🙂",
    "digits 1234567 and 3.14159",
    "tabs\tand\nnewlines\n\n  indented",
    "def f(x):\n    return x**2  # code",
    "it's don't we'll I'M",
    "MiXeD CaSe WORDS",
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--prompt", action="append", default=[])
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--logits", action="store_true", help="store every step's logits (small vocabularies only)")
    ap.add_argument("--tokenize-file", help="also store the tokenization of this text file (path recorded relative to the repository)")
    args = ap.parse_args()

    import llama_cpp
    import numpy as np

    prompts = args.prompt or ["The capital of France is"]
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=512,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=False,
        verbose=False,
        seed=0,
    )
    n_vocab = llm.n_vocab()
    # llama_tokenize adds BOS only when the vocabulary asks for it.
    add_bos = llm.tokenize(b"a", add_bos=True, special=False)[:1] == [llm.token_bos()]

    def last_logits():
        # The logits of the last evaluated position (llama-cpp-python >= 0.3 keeps no
        # score history unless logits_all is set).
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).astype(np.float32).copy()

    greedy = []
    first_top10 = None
    for p in prompts:
        llm.reset()
        prompt_tokens = llm.tokenize(p.encode(), add_bos=True, special=False)
        t0 = time.perf_counter()
        llm.eval(prompt_tokens)
        prompt_ms = (time.perf_counter() - t0) * 1e3
        tokens, margins, rows = [], [], []
        t1 = time.perf_counter()
        for step in range(args.max_tokens):
            logits = last_logits()
            order = np.argsort(-logits, kind="stable")
            if step == 0 and first_top10 is None:
                first_top10 = {
                    "prompt": p,
                    "ids": [int(i) for i in order[:10]],
                    "logits": [round(float(logits[i]), 4) for i in order[:10]],
                    "pieces": [llm.detokenize([int(i)]).decode("utf-8", "replace") for i in order[:10]],
                }
            if args.logits:
                rows.append(base64.b64encode(logits.tobytes()).decode())
            top = int(order[0])
            margins.append(round(float(logits[order[0]] - logits[order[1]]), 4))
            tokens.append(top)
            if llm.token_eos() == top:
                break
            llm.eval([top])
        decode_s = time.perf_counter() - t1
        entry = {
            "prompt": p,
            "prompt_tokens": prompt_tokens,
            "tokens": tokens,
            "text": llm.detokenize(tokens).decode("utf-8", "replace"),
            "margins": margins,
            "prompt_ms": round(prompt_ms, 1),
            "decode_tok_s": round(len(tokens) / decode_s, 1) if decode_s > 0 else None,
        }
        if args.logits:
            entry["logits_f32_b64"] = rows
        greedy.append(entry)

    tokenize = {s: llm.tokenize(s.encode(), add_bos=False, special=False) for s in STRINGS}
    tokenize_file = None
    if args.tokenize_file:
        with open(args.tokenize_file, "rb") as f:
            data = f.read()
        tokenize_file = {
            "path": os.path.relpath(os.path.abspath(args.tokenize_file), ROOT),
            "sha256": hashlib.sha256(data).hexdigest(),
            "ids": llm.tokenize(data, add_bos=False, special=False),
        }
    out = {
        "model": args.model.rsplit("/", 1)[-1],
        "model_sha256": sha256(args.model),
        "llama_cpp_python": llama_cpp.__version__,
        "threads": args.threads,
        "add_bos": add_bos,
        "recorded": time.strftime("%Y-%m-%d"),
        "script": "scripts/llama-reference.py",
        "greedy": greedy,
        "first_step_top10": first_top10,
        "tokenize": tokenize,
    }
    if tokenize_file:
        out["tokenize_file"] = tokenize_file
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
