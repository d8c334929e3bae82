#!/usr/bin/env python3
"""Generate the dequantization reference vectors in fixtures/quant/.

Why: gguf-gate's `quant` module must decode every type bit for bit as llama.cpp does.
gguf-py (`pip install gguf`, llama.cpp's own Python package) mirrors ggml's reference
dequantizers in numpy, so its output is the ground truth that
`tests/quant_reference.rs` compares against with `f32::to_bits`.

What: one file per type, `fixtures/quant/<TYPE>.qref` (TYPE as gguf-py names it), holding
two kinds of blocks, concatenated into one tensor:

  * quantized blocks - seeded random f32 data plus edge cases (zeros, a constant block,
    an outlier, all-negative, tiny and huge magnitudes), quantized by gguf-py; only for
    types gguf-py can quantize;
  * raw blocks - seeded random bytes with every f16 scale field overwritten by a sane
    finite value (some zero, negative, subnormal or 65504). For types gguf-py can only
    dequantize (K-quants, IQ4_NL, IQ4_XS) these are all there is; for the others they
    reach code patterns the quantizer never writes (TQ2_0 code 3, TQ1_0 bytes > 242,
    MXFP4 exponents 0, 1, 255, ...).

Both are dequantized together by `gguf.quants.dequantize`, and the result is stored.

File layout (all integers little-endian u32):

    offset  0  magic  b"GGQREF01"
            8  ggml type id
           12  number of quantized blocks (gguf-py quantize)
           16  number of raw blocks (random bytes)
           20  elements  (= blocks * block size)
           24  byte count of the quantized data
           28  the quantized data, then `elements` little-endian f32 from gguf-py

For the one-element "block" types (F32, F16, BF16) a block is one element.

F16 raw values never include a signalling NaN: numpy widens one keeping it signalling,
while ggml (and the `half` crate) quiet it, so there the two references disagree.
Types gguf-py cannot dequantize at all (Q8_1, Q8_K, I2_S, I8/I16/I32, F64) are tested
with hand-built blocks in tests/quant_reference.rs instead.

Re-running the script rewrites identical files (fixed seeds) as long as gguf-py and
numpy compute the same; the versions used are printed and written to MANIFEST.txt.

Usage: python3 scripts/gen-quant-fixtures.py [OUTDIR]   (default: fixtures/quant)
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES

MAGIC = b"GGQREF01"
BASE_SEED = 20240531

# Offsets of the f16 scale fields in each block (d, dmin, m: every one gets a sane value).
F16_FIELDS: dict[T, tuple[int, ...]] = {
    T.Q4_0: (0,),
    T.Q4_1: (0, 2),
    T.Q5_0: (0,),
    T.Q5_1: (0, 2),
    T.Q8_0: (0,),
    T.Q2_K: (80, 82),
    T.Q3_K: (108,),
    T.Q4_K: (0, 2),
    T.Q5_K: (0, 2),
    T.Q6_K: (208,),
    T.IQ4_NL: (0,),
    T.IQ4_XS: (0,),
    T.TQ1_0: (52,),
    T.TQ2_0: (64,),
    T.MXFP4: (),  # E8M0 exponent: any byte is legal
}

# (type, quantized blocks, raw blocks). 4-16 blocks per type; one-element types use more.
PLAN: list[tuple[T, int, int]] = [
    (T.F32, 128, 128),
    (T.F16, 128, 128),
    (T.BF16, 128, 128),
    (T.Q4_0, 8, 8),
    (T.Q4_1, 8, 8),
    (T.Q5_0, 8, 8),
    (T.Q5_1, 8, 8),
    (T.Q8_0, 8, 8),
    (T.MXFP4, 8, 8),
    (T.TQ1_0, 4, 4),
    (T.TQ2_0, 4, 4),
    (T.IQ4_NL, 0, 16),
    (T.IQ4_XS, 0, 8),
    (T.Q2_K, 0, 8),
    (T.Q3_K, 0, 8),
    (T.Q4_K, 0, 8),
    (T.Q5_K, 0, 8),
    (T.Q6_K, 0, 8),
]


def rng_for(ty: T) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, zlib.crc32(ty.name.encode())])


def float_inputs(rng: np.random.Generator, n_blocks: int, block: int) -> np.ndarray:
    """f32 data for `n_blocks` blocks: edge-case blocks first, then random ones."""
    if block == 1:
        edges = np.array(
            [0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 1e5, -1e5, 6e-8, -6e-8, 3e-8, 1e-40,
             np.inf, -np.inf, np.nan, 0.1, 1.0 / 3.0, 3.4e38, -1.17549435e-38, 2.0 ** -14],
            dtype=np.float32,
        )
        rest = (rng.standard_normal(n_blocks - len(edges)) * rng.choice([1e-3, 1.0, 100.0], n_blocks - len(edges)))
        return np.concatenate([edges, rest.astype(np.float32)])

    shapes = [
        lambda: rng.standard_normal(block),
        lambda: np.zeros(block),
        lambda: np.full(block, 0.3),
        lambda: np.where(np.arange(block) == block // 3, 1000.0, rng.standard_normal(block) * 0.01),
        lambda: -np.abs(rng.standard_normal(block)) - 0.5,
        lambda: rng.standard_normal(block) * 1e-6,
        lambda: rng.uniform(-6e4, 6e4, block),
        lambda: rng.choice([-1.0, 0.0, 1.0], block) * 0.7,
    ]
    out = []
    for i in range(n_blocks):
        if i < len(shapes):
            out.append(shapes[i]())
        else:
            out.append(rng.standard_normal(block) * rng.uniform(0.01, 10))
    return np.concatenate(out).astype(np.float32)


def sane_f16(rng: np.random.Generator, n: int) -> np.ndarray:
    """Finite f16 scales: mostly ordinary magnitudes, some edge values."""
    vals = (np.abs(rng.standard_normal(n)) * rng.choice([1e-3, 1e-2, 0.1, 1.0], n)).astype(np.float16)
    edges = np.array([0.0, -0.0, 2.0 ** -24, -0.25, 65504.0, 6.1e-5], dtype=np.float16)
    pick = rng.random(n) < 0.25
    vals[pick] = rng.choice(edges, int(pick.sum()))
    neg = rng.random(n) < 0.2
    vals[neg] = -vals[neg]
    return vals


def raw_blocks(rng: np.random.Generator, ty: T, n_blocks: int) -> np.ndarray:
    block, size = GGML_QUANT_SIZES[ty]
    if ty == T.F32:
        return rng.integers(0, 2**32, n_blocks, dtype=np.uint32).view(np.uint8)
    if ty == T.BF16:
        return rng.integers(0, 2**16, n_blocks, dtype=np.uint16).view(np.uint8)
    if ty == T.F16:
        bits = rng.integers(0, 2**16, n_blocks, dtype=np.uint16)
        # No signalling NaNs (see the module docs): set the quiet bit of every NaN.
        is_nan = ((bits & 0x7C00) == 0x7C00) & ((bits & 0x03FF) != 0)
        bits[is_nan] |= 0x0200
        return bits.view(np.uint8)
    data = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for off in F16_FIELDS[ty]:
        data[:, off:off + 2] = sane_f16(rng, n_blocks).reshape(-1, 1).view(np.uint8)
    if ty == T.MXFP4:
        data[: min(4, n_blocks), 0] = np.array([0, 1, 254, 255], dtype=np.uint8)[: min(4, n_blocks)]
    return data.reshape(-1)


def build(ty: T, n_quant: int, n_raw: int) -> tuple[bytes, np.ndarray]:
    rng = rng_for(ty)
    block, size = GGML_QUANT_SIZES[ty]
    parts = []
    if n_quant:
        x = float_inputs(rng, n_quant, block).reshape(1, -1)
        q = quants.quantize(x, ty)
        parts.append(np.ascontiguousarray(q).view(np.uint8).reshape(-1))
    if n_raw:
        parts.append(raw_blocks(rng, ty, n_raw))
    data = np.concatenate(parts).astype(np.uint8)
    n_blocks = n_quant + n_raw
    assert data.size == n_blocks * size, (ty.name, data.size)
    y = quants.dequantize(data.reshape(1, -1), ty)
    y = np.ascontiguousarray(y, dtype=np.float32).reshape(-1)
    assert y.dtype == np.float32 and y.size == n_blocks * block, (ty.name, y.dtype, y.size)
    return data.tobytes(), y


def main() -> int:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "fixtures" / "quant"
    outdir.mkdir(parents=True, exist_ok=True)
    versions = f"gguf-py {getattr(gguf, '__version__', None) or _dist_version('gguf')}, numpy {np.__version__}"
    manifest = [f"# written by scripts/gen-quant-fixtures.py with {versions}",
                "# type  id  quantized_blocks  raw_blocks  elements  bytes"]
    total = 0
    with np.errstate(all="ignore"):
        for ty, n_quant, n_raw in PLAN:
            data, y = build(ty, n_quant, n_raw)
            header = MAGIC + struct.pack("<5I", int(ty), n_quant, n_raw, y.size, len(data))
            blob = header + data + y.astype("<f4").tobytes()
            path = outdir / f"{ty.name}.qref"
            path.write_bytes(blob)
            total += len(blob)
            manifest.append(f"{ty.name}  {int(ty)}  {n_quant}  {n_raw}  {y.size}  {len(data)}")
            print(f"{path}: {n_quant} quantized + {n_raw} raw blocks, {y.size} values, {len(blob)} bytes")
    (outdir / "MANIFEST.txt").write_text("\n".join(manifest) + "\n")
    print(f"total {total} bytes ({versions})")
    return 0


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
