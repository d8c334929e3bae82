#!/usr/bin/env python3
"""The reference side of the conformance tests: llama.cpp's own `gguf` package (gguf-py).

    gguf_reference.py dump FILE    print FILE as gguf.GGUFReader sees it, as JSON
    gguf_reference.py write FILE   write a file with gguf.GGUFWriter: every value type,
                                   several tensor types, a custom alignment (64)
    gguf_reference.py stats FILE   per-tensor statistics from gguf-py's dequantization,
                                   computed with numpy in float64
    gguf_reference.py relchange OLD NEW NAME...
                                   per named tensor: RMS of each side, RMS of new - old and
                                   |new - old| / |old| from gguf-py's dequantization (float64)

The Rust tests (tests/conformance.rs) compare these with what gguf-gate reads and writes.
"""
import hashlib
import json
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType as VT, GGMLQuantizationType as QT

NAMES = {
    VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16",
    VT.UINT32: "u32", VT.INT32: "i32", VT.FLOAT32: "f32", VT.BOOL: "bool",
    VT.STRING: "string", VT.ARRAY: "array", VT.UINT64: "u64", VT.INT64: "i64",
    VT.FLOAT64: "f64",
}


def plain(v):
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8")
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def dump(path):
    r = GGUFReader(path)
    meta = []
    version = None
    for name, field in r.fields.items():
        if name == "GGUF.version":
            version = int(field.parts[field.data[0]][0])
        if name.startswith("GGUF."):
            continue
        types = field.types
        if types[0] == VT.ARRAY:
            # parts: key length, key, value type, element type, length, elements...
            # (GGUFReader leaves `types` without the element type for empty arrays).
            ty = f"array[{NAMES[VT(int(field.parts[3][0]))]}]"
        else:
            ty = NAMES[types[0]]
        meta.append({"key": name, "type": ty, "value": plain(field.contents())})
    tensors = []
    for t in r.tensors:
        raw = np.ascontiguousarray(t.data).view(np.uint8).tobytes()
        tensors.append({
            "name": t.name,
            "type": QT(t.tensor_type).name,
            "dims": [int(d) for d in t.shape],
            "offset": int(t.data_offset),
            "bytes": int(t.n_bytes),
            "sha256": hashlib.sha256(raw).hexdigest(),
        })
    json.dump({"version": version, "alignment": int(r.alignment), "metadata": meta, "tensors": tensors},
              sys.stdout, ensure_ascii=False)


def write(path):
    w = gguf.GGUFWriter(path, arch="conformance")
    w.add_custom_alignment(64)
    w.add_key_value("t.u8", 200, VT.UINT8)
    w.add_key_value("t.i8", -100, VT.INT8)
    w.add_key_value("t.u16", 60000, VT.UINT16)
    w.add_key_value("t.i16", -30000, VT.INT16)
    w.add_key_value("t.u32", 4000000000, VT.UINT32)
    w.add_key_value("t.i32", -2000000000, VT.INT32)
    w.add_key_value("t.f32", 0.1, VT.FLOAT32)
    w.add_key_value("t.bool", True, VT.BOOL)
    w.add_key_value("t.string", "naïve café, 東京 🙂", VT.STRING)
    w.add_key_value("t.u64", 2**63 + 5, VT.UINT64)
    w.add_key_value("t.i64", -(2**62), VT.INT64)
    w.add_key_value("t.f64", 1e-300, VT.FLOAT64)
    w.add_key_value("t.arr.i32", [1, -2, 3], VT.ARRAY, sub_type=VT.INT32)
    w.add_key_value("t.arr.f32", [0.5, -1.25], VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_key_value("t.arr.str", ["a", "", "ü"], VT.ARRAY, sub_type=VT.STRING)
    w.add_key_value("t.arr.bool", [True, False], VT.ARRAY, sub_type=VT.BOOL)
    w.add_key_value("t.arr.u64", [0, 2**64 - 1], VT.ARRAY, sub_type=VT.UINT64)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 64)).astype(np.float32)
    w.add_tensor("f32.weight", x)
    w.add_tensor("f16.weight", x.astype(np.float16))
    for qt in (QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_1):
        q = gguf.quants.quantize(x, qt)
        w.add_tensor(f"{qt.name.lower()}.weight", q, raw_dtype=qt)
    w.add_tensor("norm.weight", np.ones(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def stats(path):
    r = GGUFReader(path)
    out = []
    for t in r.tensors:
        x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).ravel()
        finite = x[np.isfinite(x)]
        out.append({
            "name": t.name,
            "elements": int(x.size),
            "rms": float(np.sqrt(np.mean(finite * finite))),
            "mean": float(np.mean(finite)),
            "std": float(np.std(finite)),
            "min": float(np.min(finite)),
            "max": float(np.max(finite)),
            "nan": int(np.isnan(x).sum()),
            "inf": int(np.isinf(x).sum()),
            "zeros": int((x == 0).sum()),
        })
    json.dump({"tensors": out}, sys.stdout)


def relchange(old_path, new_path, names):
    def values(path):
        r = GGUFReader(path)
        return {t.name: t for t in r.tensors if t.name in names}
    old, new = values(old_path), values(new_path)
    out = []
    for name in names:
        a = gguf.quants.dequantize(old[name].data, old[name].tensor_type).astype(np.float64).ravel()
        b = gguf.quants.dequantize(new[name].data, new[name].tensor_type).astype(np.float64).ravel()
        d = b - a
        out.append({
            "name": name,
            "old_rms": float(np.sqrt(np.mean(a * a))),
            "new_rms": float(np.sqrt(np.mean(b * b))),
            "rms_diff": float(np.sqrt(np.mean(d * d))),
            "relative_change": float(np.linalg.norm(d) / np.linalg.norm(a)),
        })
    json.dump({"tensors": out}, sys.stdout)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "relchange":
        relchange(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        {"dump": dump, "write": write, "stats": stats}[cmd](sys.argv[2])
