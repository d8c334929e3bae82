#!/usr/bin/env python3
"""Record llama.cpp's distributions over a text as a gguf-gate base record.

The quality gate (`gguf-gate score`, policy `quality:`) compares a model's next-token
distributions with a base's at every position of a text. This script runs llama.cpp
(llama-cpp-python, built from source on this machine) over the text ONE TOKEN AT A TIME
with logits_all, and writes what gguf-gate needs to compare against it — the same JSON
format `gguf-gate score --record-base` writes (src/quality/record.rs): per scored position
the top-k logits (ids and values), log-sum-exp of the full row, and the NLL of the next
token; plus the token ids, the text's sha256 and the model's fingerprint. The tests then
hold gguf-gate's own logits to llama.cpp's on real models (tests/quality.rs) without
building llama.cpp.

    python3 scripts/llama-score-reference.py MODEL.gguf TEXT OUT.json [--top-k 16] [--threads 2]

The whole text is one chunk (it must fit the context); BOS is added when the model's
vocabulary asks for it, as gguf-gate does.
"""

import argparse
import base64
import hashlib
import json
import sys
import time


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("out")
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import llama_cpp
    import numpy as np

    data = open(args.text, "rb").read()
    # Tokenize with a vocabulary-only load, then size the context to the text: the
    # logits_all score matrix is n_ctx x n_vocab floats (2.5 GB for Qwen at 4096).
    vocab = llama_cpp.Llama(model_path=args.model, vocab_only=True, verbose=False)
    tokens = vocab.tokenize(data, add_bos=True, special=False)
    del vocab
    if len(tokens) > 4096:
        sys.exit(f"{len(tokens)} tokens do not fit the 4096-token context")
    n_ctx = len(tokens) + 8
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=n_ctx, n_batch=512, logits_all=True,
                          n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    n_vocab = llm.n_vocab()
    k = args.top_k
    ids, top_logits, log_norm, nll = [], [], [], []
    t0 = time.perf_counter()
    for i, t in enumerate(tokens):
        llm.eval([t])
        if i + 1 == len(tokens):
            break
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        order = np.lexsort((np.arange(n_vocab), -row))[:k]  # by logit, ties to the lower id
        ids.extend(int(j) for j in order)
        top_logits.extend(float(row[j]) for j in order)
        m = float(row.max())
        lse = m + float(np.log(np.exp(row.astype(np.float64) - m).sum()))
        log_norm.append(lse)
        nll.append(lse - float(row[tokens[i + 1]]))
    seconds = time.perf_counter() - t0

    def b64(values, dtype):
        return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode("ascii")

    record = {
        "format": "gguf-gate-base-record",
        "version": 1,
        "producer": f"llama-cpp-python {llama_cpp.__version__} (one token per llama_decode, logits_all, "
                    f"{args.threads} threads)",
        "base_fingerprint": "sha256-" + sha256_file(args.model),
        "text_sha256": hashlib.sha256(data).hexdigest(),
        "tokens": tokens,
        "n_vocab": n_vocab,
        "ctx": 4096,
        "top_k": k,
        "top_ids": b64(ids, "<u4"),
        "top_logits": b64(top_logits, "<f4"),
        "log_norm": b64(log_norm, "<f4"),
        "nll": b64(nll, "<f4"),
    }
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    ppl = float(np.exp(np.mean(nll)))
    print(f"wrote {args.out}: {len(tokens)} tokens, perplexity {ppl:.4f}, {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
