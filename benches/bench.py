#!/usr/bin/env python3
"""Benchmarks that print ratios against reference tools measured in the same run.

    python3 benches/bench.py [--quick]

- fingerprint: gguf-gate vs `sha256sum` and `openssl speed -evp sha256` (GB/s) on a
  1 GiB file made of SmolLM2 copies, read from the page cache;
- inspect: gguf-gate `inspect --format json` vs gguf-py's `gguf-dump --json` on SmolLM2,
  wall time and peak RSS (/usr/bin/time -v).

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


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def best_of(n, args):
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t)
    return best


def peak_rss_mib(args):
    out = subprocess.run(["/usr/bin/time", "-v", *args], check=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out).group(1))
    return kb / 1024


def openssl_sha256_gbs():
    out = sh("openssl", "speed", "-evp", "sha256", "-bytes", str(1 << 20),
             "-seconds", "2" if QUICK else "4").stdout
    # last line: "sha256   <k/s for 1048576-byte blocks>k"
    line = [l for l in out.splitlines() if l.lower().startswith("sha256")][-1]
    kps = float(line.split()[-1].rstrip("k"))
    return kps * 1000 / 1e9


def main():
    models = Path(sh("bash", str(ROOT / "scripts/fetch-models.sh")).stdout.strip().splitlines()[-1])
    smollm = models / "SmolLM2-135M-Instruct.Q4_1.gguf"
    sh("cargo", "build", "--release", "--quiet", cwd=ROOT)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "gguf-gate-bench"
    work.mkdir(exist_ok=True)

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

    n = 2 if QUICK else 5
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


if __name__ == "__main__":
    main()
