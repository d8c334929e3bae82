#!/usr/bin/env python3
"""Benchmarks that print ratios against reference tools measured in the same run.

    python3 benches/bench.py [--quick] [--diff] [--score] [--decode] [--ternary]
                                                            (only that section)

- fingerprint: gguf-gate vs `sha256sum` and `openssl speed -evp sha256` (GB/s) on a
  1 GiB file made of SmolLM2 copies, read from the page cache;
- inspect: gguf-gate `inspect --format json` vs gguf-py's `gguf-dump --json` on SmolLM2,
  wall time and peak RSS (/usr/bin/time -v);
- stats: gguf-gate `stats` (GB/s of file data) vs gguf-py dequantization + numpy RMS on
  SmolLM2 and on a synthetic 2 GiB GGUF of Q8_0/Q4_0/Q4_1 tensors; peak RSS on the 2 GiB file;
- check and run: the gate's wall time on SmolLM2 and greedy decode speed;
- diff: gguf-gate `diff` (GB/s of input: both files) on Qwen2.5-Coder 1.5B Q4_K_M (1.1 GB)
  against a copy with one tensor changed, next to `cmp -l` reading the same two files and
  `stats` on one of them; peak RSS there and on the 2 GiB synthetic GGUF against a copy;
  and SmolLM2 against its Q8_0 quantization vs gguf-py + numpy computing the same
  relative changes;
- decode and prompt (`--decode`): `gguf-gate run` against llama.cpp (llama-cpp-python,
  wall-clock around `eval`) on SmolLM2 and Qwen2.5, greedy, 64 tokens after
  "The capital of France is", 1 and 2 threads, runs alternating, medians;
- ternary (`--ternary`): the same on Qwen2.5 quantized to TQ2_0 and TQ1_0 by
  `gguf-gate quantize` (the BitNet b1.58 formats' kernels on both sides);
- score: `gguf-gate score` (teacher-forced logits of every position, batched) over the
  bundled text in chunks of 512, SmolLM2 and Qwen2.5, against llama.cpp
  (llama-cpp-python, the same chunks as batches with logits_all) on the same tokens.

Numbers quoted in docs/performance.md come from this script. Timings are best-of-N
wall-clock; run on an otherwise idle machine.
"""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/x86_64-unknown-linux-gnu/release/gguf-gate"
QUICK = "--quick" in sys.argv
ONLY_DIFF = "--diff" in sys.argv
ONLY_SCORE = "--score" in sys.argv
ONLY_DECODE = "--decode" in sys.argv
ONLY_TERNARY = "--ternary" in sys.argv


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def read_from_disk(path):
    """Drop `path` from the page cache and read it once, so that every run finds it as
    after a reboot: cached in the large folios a sequential read makes (Linux 6.x on ext4
    or tmpfs), which the tools may map with huge pages (gguf-gate asks for them with
    MADV_HUGEPAGE). A file cached as it was written (a fresh download) can sit in small
    folios instead: on this machine 135 MB of Qwen2.5's 1.1 GB were then mapped in 2 MiB
    pages, and decoding with one thread ran about 10 % slower."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)


def best_of(n, args):
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t)
    return best


def peak_rss_mib(args, ok=(0,)):
    run = subprocess.run(["/usr/bin/time", "-v", *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if run.returncode not in ok:
        raise SystemExit(f"{args}: exit {run.returncode}")
    out = run.stderr
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out).group(1))
    return kb / 1024


def openssl_sha256_gbs():
    out = sh("openssl", "speed", "-evp", "sha256", "-bytes", str(1 << 20),
             "-seconds", "2" if QUICK else "4").stdout
    # last line: "sha256   <k/s for 1048576-byte blocks>k"
    line = [l for l in out.splitlines() if l.lower().startswith("sha256")][-1]
    kps = float(line.split()[-1].rstrip("k"))
    return kps * 1000 / 1e9


GGUF_REF = """
import sys, time, numpy as np, gguf
r = gguf.GGUFReader(sys.argv[1])
t0 = time.perf_counter()
for t in r.tensors:
    x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64, copy=False)
    rms = float(np.sqrt(np.mean(x * x)))
print(time.perf_counter() - t0)
"""


GGUF_DIFF_REF = """
import sys, time, numpy as np, gguf
t0 = time.perf_counter()
old = {t.name: t for t in gguf.GGUFReader(sys.argv[1]).tensors}
for t in gguf.GGUFReader(sys.argv[2]).tensors:
    o = old.get(t.name)
    if o is None or list(o.shape) != list(t.shape):
        continue
    a = gguf.quants.dequantize(o.data, o.tensor_type).astype(np.float64).ravel()
    b = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).ravel()
    na = np.linalg.norm(a)
    rel = np.linalg.norm(b - a) / na if na else 0.0
print(time.perf_counter() - t0)
"""


def one_tensor_changed(src, dst, name):
    """A copy of `src` with one byte of tensor `name`'s data flipped."""
    import gguf
    if dst.exists() and dst.stat().st_size == src.stat().st_size:
        return
    offset = [t for t in gguf.GGUFReader(str(src)).tensors if t.name == name][0].data_offset
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.seek(offset + 100)
        b = f.read(1)
        f.seek(offset + 100)
        f.write(bytes([b[0] ^ 0xFF]))


def diff_benchmarks(n, models, smollm, work):
    qwen = models / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    copy = work / "qwen-one-tensor.gguf"
    one_tensor_changed(qwen, copy, "blk.10.ffn_up.weight")
    size = qwen.stat().st_size + copy.stat().st_size
    for f in (qwen, copy):
        subprocess.run(["cat", str(f)], stdout=subprocess.DEVNULL, check=True)
    diff = [str(BIN), "diff", str(qwen), str(copy), "--format", "json"]
    t_diff = best_of_status(n, diff, 1)
    t_cmp = best_of_status(n, ["cmp", "-l", str(qwen), str(copy)], 1)
    t_stats = best_of(n, [str(BIN), "stats", "--format", "json", str(qwen)])
    print(f"diff Qwen2.5-Coder 1.5B Q4_K_M vs a copy with one tensor changed ({size / 1e9:.2f} GB of input):"
          f" gguf-gate {size / t_diff / 1e9:.2f} GB/s ({t_diff:.2f} s) | cmp -l {size / t_cmp / 1e9:.2f} GB/s"
          f" ({t_cmp:.2f} s) | stats on one file {qwen.stat().st_size / t_stats / 1e9:.2f} GB/s ({t_stats:.2f} s)")
    print(f"  peak RSS: diff {peak_rss_mib(diff, ok=(1,)):.0f} MiB | stats on one file"
          f" {peak_rss_mib([str(BIN), 'stats', '--format', 'json', str(qwen)]):.0f} MiB")
    synth = work / "stats-2gib.gguf"
    synth_copy = work / "stats-2gib-one-tensor.gguf"
    one_tensor_changed(synth, synth_copy, "blk.3.ffn_up.weight")
    print(f"  peak RSS of diff on the 2 GiB synthetic vs a copy (4 GiB of input):"
          f" {peak_rss_mib([str(BIN), 'diff', str(synth), str(synth_copy)], ok=(1,)):.0f} MiB")
    q8 = work / "smollm2-q8_0.gguf"
    if not q8.exists():
        sh(str(BIN), "quantize", str(smollm), "--type", "q8_0", "--out", str(q8), "--force")
    size = smollm.stat().st_size + q8.stat().st_size
    t_ours = best_of_status(n, [str(BIN), "diff", str(smollm), str(q8), "--format", "json"], 1)
    t_ref = float(sh(sys.executable, "-c", GGUF_DIFF_REF, str(smollm), str(q8)).stdout.strip())
    print(f"diff SmolLM2 Q4_1 vs its Q8_0 ({size / 1e6:.0f} MB): gguf-gate {t_ours * 1000:.0f} ms"
          f" | gguf-py + numpy relative changes {t_ref:.1f} s | ratio {t_ref / t_ours:.0f}x")


LLAMA_CHUNKS = r"""
import sys, time, llama_cpp
model, text, ctx, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
llm = llama_cpp.Llama(model_path=model, n_ctx=ctx + 8, n_batch=ctx, n_ubatch=ctx, logits_all=True,
                      n_threads=2, n_threads_batch=2, verbose=False)
toks = llm.tokenize(open(text, "rb").read(), add_bos=True, special=False)
best = 1e9
for _ in range(runs):
    t = time.perf_counter()
    for at in range(0, len(toks), ctx):
        llm.reset()
        llm.eval(toks[at:at + ctx])
    best = min(best, time.perf_counter() - t)
print(len(toks), best)
"""


def score_benchmarks(n, models):
    """gguf-gate score vs llama.cpp on the same tokens (the bundled text) in the same
    chunks of 512, each from an empty context, every position's logits, 2 threads each,
    best of n; model loading excluded on both sides."""
    import json
    text = ROOT / "fixtures" / "text" / "eval.txt"
    for path in (models / "SmolLM2-135M-Instruct.Q4_1.gguf",
                 models / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"):
        read_from_disk(path)
        ours = []
        for _ in range(n):
            out = json.loads(sh(str(BIN), "score", str(path), "--ctx", "512", "--threads", "2",
                                "--format", "json").stdout)
            ours.append(out["score"]["seconds"])
        tokens = out["score"]["tokens"]
        ref_tokens, ref_secs = sh(sys.executable, "-c", LLAMA_CHUNKS, str(path), str(text), "512",
                                  str(n)).stdout.split()
        if int(ref_tokens) != tokens:
            raise SystemExit(f"token counts differ: gguf-gate {tokens}, llama.cpp {ref_tokens}")
        ours_tps, ref_tps = tokens / min(ours), tokens / float(ref_secs)
        print(f"score {path.name}, {tokens} tokens in chunks of 512: gguf-gate {ours_tps:.1f} tokens/s"
              f" | llama.cpp (logits_all) {ref_tps:.1f} tokens/s | ratio {ours_tps / ref_tps:.2f}x")


LLAMA_RUN = r"""
import sys, time
import numpy as np
from llama_cpp import Llama
path, threads, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=threads, n_threads_batch=threads,
            verbose=False)
prompt = llm.tokenize(b"The capital of France is", add_bos=True)
llm.eval(prompt)  # warm-up: the first evaluation pays for page faults and allocations
llm.reset()
t = time.perf_counter()
llm.eval(prompt)
prompt_ms = (time.perf_counter() - t) * 1000
t = time.perf_counter()
for _ in range(tokens):
    llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
print(prompt_ms, tokens / (time.perf_counter() - t))
"""


def decode_benchmarks(n, paths):
    """gguf-gate `run` vs llama.cpp, greedy decoding of 64 tokens after a 6-token prompt:
    prompt milliseconds and decode tokens/s (gguf-gate's own timings; llama.cpp's
    wall-clock around `eval`, after a warm-up evaluation — its perf counters are not
    synchronous), model loading excluded on both sides, 1 and 2 threads, n runs
    alternating, medians."""
    import json
    import statistics
    for path in paths:
        read_from_disk(path)
        for threads in (2, 1):
            ours, ref = [], []
            for _ in range(n):
                out = json.loads(sh(str(BIN), "run", str(path), "--prompt", "The capital of France is",
                                    "--max-tokens", "64", "--threads", str(threads),
                                    "--format", "json").stdout)
                ours.append((out["timings"]["prompt_ms"], out["timings"]["decode_tok_s"]))
                ms, tps = sh(sys.executable, "-c", LLAMA_RUN, str(path), str(threads), "64").stdout.split()
                ref.append((float(ms), float(tps)))
            o_ms, o_tps = (statistics.median(v) for v in zip(*ours))
            r_ms, r_tps = (statistics.median(v) for v in zip(*ref))
            print(f"run {path.name}, {threads} thread(s): decode gguf-gate {o_tps:.1f} tok/s |"
                  f" llama.cpp {r_tps:.1f} tok/s | ratio {o_tps / r_tps:.2f}x;"
                  f" prompt gguf-gate {o_ms:.1f} ms | llama.cpp {r_ms:.1f} ms | ratio {r_ms / o_ms:.2f}x")


def decode_models(models):
    return [models / "SmolLM2-135M-Instruct.Q4_1.gguf",
            models / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"]


def ternary_models(models, work):
    """Qwen2.5-Coder 1.5B quantized by `gguf-gate quantize` to TQ2_0 and to TQ1_0 (the
    BitNet b1.58 formats llama.cpp runs; its rows are whole 256-element blocks), made once
    into the work directory. The weights are not ternary models' weights, so the text is
    nonsense, but every matrix but the embeddings and the output runs the ternary kernels
    on both sides: a same-run speed reference for them."""
    qwen = models / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    out = []
    for ty in ("tq2_0", "tq1_0"):
        path = work / f"qwen2.5-coder-1.5b-{ty}.gguf"
        if not path.exists():
            sh(str(BIN), "quantize", str(qwen), "--type", ty, "--out", str(path))
        out.append(path)
    return out


def best_of_status(n, args, status):
    """best_of for commands that exit with `status` on success (diff: 1 = different)."""
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        code = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        best = min(best, time.perf_counter() - t)
        if code != status:
            raise SystemExit(f"{args[0]} {args[1]}: exit {code}, expected {status}")
    return best


def synthetic_gguf(path, total_bytes):
    """A valid GGUF of Q8_0, Q4_0 and Q4_1 tensors (random codes, sane f16 scales)."""
    import struct
    import numpy as np
    kinds = [(8, 32, 34, [0]), (2, 32, 18, [0]), (3, 32, 20, [0, 2])]  # id, block, bytes, f16 fields
    per_tensor = 128 << 20
    n = max(1, total_bytes // per_tensor)
    infos, sizes = [], []
    for i in range(n):
        ty, block, bpb, _ = kinds[i % 3]
        rows = per_tensor // bpb // (4096 // block)
        sizes.append(rows * (4096 // block) * bpb)
        infos.append((f"blk.{i}.ffn_up.weight", [4096, rows], ty))
    head = bytearray(b"GGUF" + struct.pack("<IQQ", 3, n, 1))
    key = b"general.architecture"
    head += struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, 5) + b"bench"
    offset = 0
    for (name, dims, ty), size in zip(infos, sizes):
        nb = name.encode()
        head += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(dims))
        head += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ty, offset)
        offset += (size + 31) // 32 * 32
    head += b"\0" * (-len(head) % 32)
    rng = np.random.default_rng(0)
    scale = np.frombuffer(np.float16(0.01).tobytes(), dtype=np.uint8)
    with open(path, "wb") as out:
        out.write(head)
        for i, size in enumerate(sizes):
            _, _, bpb, fields = kinds[i % 3]
            data = rng.integers(0, 256, size, dtype=np.uint8).reshape(-1, bpb)
            for f in fields:
                data[:, f:f + 2] = scale
            out.write(data.tobytes())
            out.write(b"\0" * (-size % 32))


def main():
    models = Path(sh("bash", str(ROOT / "scripts/fetch-models.sh")).stdout.strip().splitlines()[-1])
    smollm = models / "SmolLM2-135M-Instruct.Q4_1.gguf"
    sh("cargo", "build", "--release", "--quiet", cwd=ROOT)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "gguf-gate-bench"
    work.mkdir(exist_ok=True)
    n = 2 if QUICK else 5
    if ONLY_SCORE:
        score_benchmarks(n, models)
        return
    if ONLY_DECODE:
        decode_benchmarks(n + 1, decode_models(models))
        return
    if ONLY_TERNARY:
        decode_benchmarks(n + 1, ternary_models(models, work))
        return
    synth = work / "stats-2gib.gguf"
    if not synth.exists():
        synthetic_gguf(synth, 2 << 30)
    if ONLY_DIFF:
        diff_benchmarks(n, models, smollm, work)
        return

    big = work / "hash-1gib.bin"
    if not big.exists() or big.stat().st_size < 1 << 30:
        with open(big, "wb") as out:
            written = 0
            while written < 1 << 30:
                with open(smollm, "rb") as src:
                    chunk = src.read()
                out.write(chunk[: (1 << 30) - written])
                written += min(len(chunk), (1 << 30) - written)
    size = big.stat().st_size
    subprocess.run(["cat", str(big)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    ours = best_of(n, [str(BIN), "fingerprint", str(big)])
    sha256sum = best_of(n, ["sha256sum", str(big)])
    openssl = openssl_sha256_gbs()
    ours_gbs, sum_gbs = size / ours / 1e9, size / sha256sum / 1e9
    print(f"fingerprint  1 GiB: gguf-gate {ours_gbs:.2f} GB/s | sha256sum {sum_gbs:.2f} GB/s"
          f" | openssl speed -evp sha256 {openssl:.2f} GB/s")
    print(f"  ratio vs openssl: {ours_gbs / openssl:.2f}x   vs sha256sum: {ours_gbs / sum_gbs:.2f}x")

    inspect = [str(BIN), "inspect", "--format", "json", str(smollm)]
    dump = [shutil.which("gguf-dump") or "gguf-dump", "--json", str(smollm)]
    t_ours = best_of(n * 2, inspect)
    t_ref = best_of(max(2, n // 2), dump)
    print(f"inspect SmolLM2: gguf-gate {t_ours * 1000:.1f} ms | gguf-dump --json {t_ref * 1000:.0f} ms"
          f" | ratio {t_ref / t_ours:.0f}x faster")
    print(f"  peak RSS: gguf-gate {peak_rss_mib(inspect):.1f} MiB | gguf-dump {peak_rss_mib(dump):.1f} MiB")

    for label, model in (("SmolLM2 (Q4_1+Q8_0)", smollm), ("synthetic 2 GiB (Q8_0/Q4_0/Q4_1)", synth)):
        size = model.stat().st_size
        subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True)
        t_ours = best_of(n, [str(BIN), "stats", "--format", "json", str(model)])
        t_ref = float(sh(sys.executable, "-c", GGUF_REF, str(model)).stdout.strip())
        print(f"stats {label}: gguf-gate {size / t_ours / 1e9:.2f} GB/s ({t_ours:.2f} s)"
              f" | gguf-py+numpy RMS {size / t_ref / 1e9:.3f} GB/s ({t_ref:.1f} s) | ratio {t_ref / t_ours:.0f}x")
    rss = peak_rss_mib([str(BIN), "stats", "--format", "json", str(synth)])
    print(f"  peak RSS of stats on the 2 GiB file: {rss:.1f} MiB")

    gate = [str(BIN), "check", str(smollm)]
    print(f"check SmolLM2 (default policy, probe on): {best_of(n, gate):.2f} s,"
          f" peak RSS {peak_rss_mib(gate):.0f} MiB")
    import json
    for threads in (2, 1):
        out = sh(str(BIN), "run", str(smollm), "--prompt", "The capital of France is",
                 "--max-tokens", "32", "--format", "json", "--threads", str(threads)).stdout
        t = json.loads(out)["timings"]
        print(f"run SmolLM2, {threads} thread(s): prompt {t['prompt_ms']:.0f} ms,"
              f" decode {t['decode_tok_s']:.0f} tok/s")

    diff_benchmarks(n, models, smollm, work)
    decode_benchmarks(n + 1, decode_models(models))
    decode_benchmarks(n + 1, ternary_models(models, work))
    score_benchmarks(n, models)


if __name__ == "__main__":
    main()
