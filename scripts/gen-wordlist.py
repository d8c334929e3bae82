#!/usr/bin/env python3
"""Regenerate src/probe/words.txt, the English word list the probe measures text against.

Source: the English frequency dictionary of pyspellchecker (MIT licence, PyPI), fetched
with `pip download`. We keep the 60 000 most frequent purely alphabetic ASCII words,
lower-cased, sorted, front-coded (each line: the number of leading characters shared with
the previous word, 0-9, then the rest) to keep the committed file small.

    python3 scripts/gen-wordlist.py
"""
import glob
import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

KEEP = 60_000
OUT = Path(__file__).resolve().parent.parent / "src/probe/words.txt"

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp,
                    "pyspellchecker==0.9.1"], check=True)
    wheel = glob.glob(f"{tmp}/pyspellchecker-*.whl")[0]
    with zipfile.ZipFile(wheel) as z:
        freq = json.loads(gzip.decompress(z.read("spellchecker/resources/en.json.gz")))

words = [w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))
         if w.isascii() and w.isalpha()][:KEEP]
lines, prev = [], ""
for w in sorted(set(words)):
    k = 0
    while k < min(len(w), len(prev), 9) and w[k] == prev[k]:
        k += 1
    lines.append(f"{k}{w[k:]}")
    prev = w
OUT.write_text("\n".join(lines) + "\n")
print(f"{OUT}: {len(lines)} words, {OUT.stat().st_size} bytes")
