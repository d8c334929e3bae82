"""Write the bytes `torch.save` writes, without torch, for tests/export_bin.rs.

A PyTorch >= 1.6 checkpoint is a zip archive (entries stored) holding
`<archive>/data.pkl` (a protocol-2 pickle of the state dict whose tensors are
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
OrderedDict())` and whose storages are persistent ids `('storage', torch.FloatStorage,
key, 'cpu', numel)`), `<archive>/byteorder`, `<archive>/data/<key>` (raw little-endian
elements) and `<archive>/version`. Stand-in `torch` and `torch._utils` modules give the
pickler the same global names torch's objects have.

Usage:
  torch_bin.py convert SRC.safetensors OUT_DIR [--shards N] [--one-storage]
      every tensor of SRC (dtype kept) as OUT_DIR/pytorch_model.bin, or as N shards
      pytorch_model-0000i-of-0000N.bin plus pytorch_model.bin.index.json; with
      --one-storage the tensors of a file share one storage per dtype, at offsets
  torch_bin.py hostile KIND OUT.bin [CANARY]
      a hostile or malformed file: os_system, builtins_eval, truncated, oversized_storage,
      legacy, strided, long_storage, compressed
"""

import collections
import io
import json
import pickle
import struct
import sys
import types
import zipfile

# ---- stand-ins with torch's global names ----

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
    raise AssertionError("not torch")


_rebuild_tensor_v2.__module__ = "torch._utils"
_rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


def _storage_type(name):
    cls = type(name, (), {})
    cls.__module__ = "torch"
    cls.__qualname__ = name
    setattr(torch, name, cls)
    return cls


STORAGE = {
    "F32": (_storage_type("FloatStorage"), 4),
    "F16": (_storage_type("HalfStorage"), 2),
    "BF16": (_storage_type("BFloat16Storage"), 2),
    "I64": (_storage_type("LongStorage"), 8),
}


class Storage:
    def __init__(self, key, dtype, data):
        self.key, self.dtype, self.data = key, dtype, data

    def numel(self):
        return len(self.data) // STORAGE[self.dtype][1]


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (
            _rebuild_tensor_v2,
            (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
             collections.OrderedDict()),
        )


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", STORAGE[obj.dtype][0], obj.key, "cpu", obj.numel())
        return None


def contiguous(shape):
    stride, acc = [], 1
    for d in reversed(shape):
        stride.append(acc)
        acc *= d
    return list(reversed(stride))


def pickle_bytes(obj):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_zip(path, archive, pkl, storages, method=zipfile.ZIP_STORED):
    """The entries in torch's order; fixed dates, so the bytes are reproducible."""
    def entry(z, name, data):
        info = zipfile.ZipInfo(f"{archive}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = method
        z.writestr(info, data)

    with zipfile.ZipFile(path, "w") as z:
        entry(z, "data.pkl", pkl)
        entry(z, "byteorder", b"little")
        for s in storages:
            entry(z, f"data/{s.key}", s.data)
        entry(z, "version", b"3\n")


def save(path, tensors, one_storage=False):
    """tensors: [(name, dtype, shape, raw bytes)] -> a torch.save file at `path`.

    As `Module.state_dict()` returns it: an OrderedDict carrying `_metadata` (pickled
    as BUILD). With `one_storage`, the tensors of each dtype are views at increasing
    offsets into one shared storage (as flattened parameters are)."""
    state = collections.OrderedDict()
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("model", {"version": 1})])
    storages = []
    shared = {}
    for name, dtype, shape, data in tensors:
        esz = STORAGE[dtype][1]
        if one_storage:
            if dtype not in shared:
                shared[dtype] = Storage(str(len(storages)), dtype, b"")
                storages.append(shared[dtype])
            s = shared[dtype]
            offset = len(s.data) // esz
            s.data += data
        else:
            s = Storage(str(len(storages)), dtype, data)
            storages.append(s)
            offset = 0
        state[name] = Tensor(s, offset, shape, contiguous(shape))
    archive = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    write_zip(path, archive, pickle_bytes(state), storages)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out.append((name, info["dtype"], info["shape"], raw[8 + n + a:8 + n + b]))
    return out


def convert(src, out_dir, shards, one_storage):
    tensors = read_safetensors(src)
    if shards <= 1:
        save(f"{out_dir}/pytorch_model.bin", tensors, one_storage)
        return
    weight_map = {}
    for i in range(shards):
        name = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        part = tensors[i::shards]
        for t in part:
            weight_map[t[0]] = name
        save(f"{out_dir}/{name}", part, one_storage)
    with open(f"{out_dir}/pytorch_model.bin.index.json", "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)


# ---- hostile files ----

class Eval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


def hostile(kind, path, canary):
    weight = ("model.norm.weight", "F32", [4], struct.pack("<4f", 1, 2, 3, 4))
    touch = f"open({canary!r}, 'w').write('executed')"
    if kind == "os_system":
        cmd = f"touch {canary}".encode()
        pkl = (b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(cmd)) + cmd
               + b"q\x01\x85q\x02Rq\x03.")
        write_zip(path, "pytorch_model", pkl, [])
    elif kind == "builtins_eval":
        state = collections.OrderedDict(x=Eval(touch))
        write_zip(path, "pytorch_model", pickle_bytes(state), [])
    elif kind == "truncated":
        save(path, [weight])
        with open(path, "rb") as f:
            raw = f.read()
        with open(path, "wb") as f:
            f.write(raw[: len(raw) // 2])
    elif kind == "oversized_storage":
        s = Storage("0", "F32", weight[3])
        s.numel = lambda: 1000
        state = collections.OrderedDict([(weight[0], Tensor(s, 0, [4], [1]))])
        write_zip(path, "pytorch_model", pickle_bytes(state), [s])
    elif kind == "legacy":
        # torch < 1.6: the magic number, protocol, sys info, then the pickle itself.
        buf = io.BytesIO()
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(obj, buf, protocol=2)
        buf.write(pickle_bytes(Eval(touch)))
        with open(path, "wb") as f:
            f.write(buf.getvalue())
    elif kind == "strided":
        s = Storage("0", "F32", struct.pack("<6f", *range(6)))
        state = collections.OrderedDict(
            [("model.layers.0.self_attn.q_proj.weight", Tensor(s, 0, [2, 3], [1, 2]))])
        write_zip(path, "pytorch_model", pickle_bytes(state), [s])
    elif kind == "long_storage":
        s = Storage("0", "I64", struct.pack("<4q", 1, 2, 3, 4))
        state = collections.OrderedDict([(weight[0], Tensor(s, 0, [4], [1]))])
        write_zip(path, "pytorch_model", pickle_bytes(state), [s])
    elif kind == "compressed":
        s = Storage("0", "F32", weight[3])
        state = collections.OrderedDict([(weight[0], Tensor(s, 0, [4], [1]))])
        write_zip(path, "pytorch_model", pickle_bytes(state), [s], zipfile.ZIP_DEFLATED)
    else:
        raise SystemExit(f"unknown kind {kind}")


def main(argv):
    if len(argv) >= 3 and argv[0] == "convert":
        shards = 1
        if "--shards" in argv:
            shards = int(argv[argv.index("--shards") + 1])
        convert(argv[1], argv[2], shards, "--one-storage" in argv)
    elif len(argv) >= 3 and argv[0] == "hostile":
        hostile(argv[1], argv[2], argv[3] if len(argv) > 3 else "/nonexistent/canary")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
