#!/usr/bin/env python3
"""Record llama.cpp's full logits on the tiny random-weight models as test references.

What: for every model scripts/tiny-models.py writes (tiny-llama, tiny-qwen2, tiny-qwen3,
tiny-gemma3, tiny-phi3, tiny-qwen3-mixed), load it with llama.cpp (through
llama-cpp-python, built from source on this machine), evaluate a fixed 24-token prompt
ONE TOKEN PER llama_decode call (llm.eval([t]): llama.cpp's single-token path, the one
gguf-gate's engine mirrors), and record the full logit row at every position; then
greedy-decode 16 tokens, recording each token, the top-1 minus top-2 logit margin that
chose it, and the logit row after it. One JSON per model:
tests/reference/tiny-<arch>.json.

Why: the tiny models make every architecture-specific step of llama.cpp's graph matter
(see scripts/arch-spec.md), and full logit rows at every position let a test compare
gguf-gate's engine with llama.cpp to ~1e-3 instead of only through a greedy token
sequence. The margins say where a greedy step is a near-tie another build (or an exact
reimplementation) may legitimately break the other way.

The prompt is the same for every model: BOS (id 1; every tiny model sets add_bos_token)
followed by 23 ids (7 i^2 + 13 i + 5) mod 317 + 3, i = 0..22 - all inside the 320-token
vocabulary and never a special token. Greedy decoding does not stop at EOS.

JSON fields: model (file name), architecture, model_sha256, generator (the commands that
recreate the file), llama_cpp_python (version), system_info (llama.cpp's CPU feature
line), n_ctx, n_threads, flash_attn (false: llama-cpp-python's default, so llama.cpp's
non-flash attention with its default F16 KV cache), evaluation, n_vocab, add_bos, prompt
(ids), logits_encoding, prompt_logits (one base64 row per prompt position: the logits
after evaluating prompt[0..=i]), greedy.tokens / greedy.margins (greedy.tokens[k] is the
argmax of row len(prompt)-1+k of prompt_logits ++ greedy.logits, margins[k] its top-1
minus top-2), greedy.logits (the row after evaluating greedy.tokens[k]), recorded (UTC
date).

    python3 scripts/tiny-models.py /tmp/tiny
    python3 scripts/llama-logits-reference.py /tmp/tiny [OUTDIR]   # default tests/reference
"""

import argparse
import base64
import datetime
import hashlib
import json
import sys
from importlib.metadata import version
from pathlib import Path

MODELS = [
    ("tiny-llama.gguf", "llama"),
    ("tiny-qwen2.gguf", "qwen2"),
    ("tiny-qwen3.gguf", "qwen3"),
    ("tiny-gemma3.gguf", "gemma3"),
    ("tiny-phi3.gguf", "phi3"),
    ("tiny-qwen3-mixed.gguf", "qwen3"),
]
BODY = [(7 * i * i + 13 * i + 5) % 317 + 3 for i in range(23)]
N_GREEDY = 16
N_CTX = 256


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# Strings for the tokenizer comparison: plain words, spaces, digits, punctuation, and
# characters outside the vocabulary (they fall back to byte tokens).
STRINGS = [
    "hello world",
    " leading space and  double  spaces",
    "digits 1234 and 3.5",
    "naïve café 東京 🙂",
    "tabs\tand\nnewlines",
    "",
]


def b64row(row):
    import numpy as np

    return base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode("ascii")


def record(path, arch, threads):
    import numpy as np
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=N_CTX,
        logits_all=True,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    n_vocab = llm.n_vocab()
    assert n_vocab >= 320, n_vocab
    bos = llm.token_bos()
    add_bos = llm.tokenize(b"a", add_bos=True, special=False)[:1] == [bos]
    prompt = ([bos] if add_bos else []) + BODY

    def last_row():
        return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)

    # The SentencePiece tokenizer on the tiny vocabulary (byte fallback, leading space,
    # BOS added), for gguf-gate's tokenizer tests.
    tokenize = {
        text: llm.tokenize(text.encode(), add_bos=True, special=False) for text in STRINGS
    }

    prompt_rows = []
    for t in prompt:
        llm.eval([t])
        prompt_rows.append(last_row())

    tokens, margins, rows = [], [], []
    row = prompt_rows[-1]
    for _ in range(N_GREEDY):
        order = np.argsort(-row, kind="stable")
        tok = int(order[0])
        tokens.append(tok)
        margins.append(round(float(row[order[0]] - row[order[1]]), 6))
        llm.eval([tok])
        row = last_row()
        rows.append(row)
    llm.close()

    allrows = np.stack(prompt_rows + rows)
    problems = []
    if not np.isfinite(allrows).all():
        problems.append("non-finite logits")
    if (allrows.max(axis=1) == allrows.min(axis=1)).any():
        problems.append("a row with all logits equal")
    if len(set(tokens)) == 1:
        problems.append("greedy output is a single repeated token")

    return {
        "model": path.name,
        "architecture": arch,
        "model_sha256": sha256(path),
        "generator": "python3 scripts/tiny-models.py DIR && python3 scripts/llama-logits-reference.py DIR",
        "llama_cpp_python": version("llama_cpp_python"),
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "n_ctx": N_CTX,
        "n_threads": threads,
        "flash_attn": False,
        "evaluation": "one token per llama_decode (llm.eval([t])), logits_all",
        "n_vocab": n_vocab,
        "add_bos": add_bos,
        "prompt": prompt,
        "tokenize_with_bos": tokenize,
        "logits_encoding": "base64 of little-endian float32, n_vocab values per row",
        "prompt_logits": [b64row(r) for r in prompt_rows],
        "greedy": {
            "tokens": tokens,
            "margins": margins,
            "logits": [b64row(r) for r in rows],
        },
        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modeldir", help="where scripts/tiny-models.py wrote tiny-*.gguf")
    ap.add_argument("outdir", nargs="?", default="tests/reference")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    bad = False
    for fname, arch in MODELS:
        path = Path(args.modeldir) / fname
        doc, problems = record(path, arch, args.threads)
        dst = out / fname.replace(".gguf", ".json")
        dst.write_text(json.dumps(doc, indent=1) + "\n")
        g = doc["greedy"]
        print(f"{dst}: sha256 {doc['model_sha256'][:12]}..., greedy {g['tokens']}, "
              f"min margin {min(g['margins']):.3f}, {dst.stat().st_size} bytes")
        for p in problems:
            print(f"  WARNING {fname}: {p}", file=sys.stderr)
            bad = bad or p != "greedy output is a single repeated token"
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
