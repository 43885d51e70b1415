#!/usr/bin/env python3
"""ava256_expr_codes.py — converts an ava256 capture's expression codes (a Python pickle, PR #19 of
facebookresearch/ava-256) into a flat little-endian sidecar that the C reader (data/ava256.h) loads.

usage: /usr/bin/python3 tools/ava256_expr_codes.py DIR [DIR ...]
  DIR: a capture's `decoder` folder or the capture folder above it ({mcd}--{mct}--{sid}).
  Reads  DIR/expression_codes/aeparams_1440000.pkl  (dict: frame id -> 256 floats)
  Writes DIR/expression_codes/aeparams_1440000.f32.bin  (docs/formats.md), atomically.

Keys may be int (or numpy integers) or decimal strings ("20000", "020000"); values numpy arrays,
torch tensors (anything with .numpy() or .tolist()) or plain lists, of any shape with the same
number of elements (16x4x4 is flattened in C order). Unpickling torch tensors needs torch; without it
the script says so and exits 1. A file written by torch.save (a zip) is read with torch.load.
Exit status: 0 written, 1 refused (the message names the file and the key)."""
import io
import os
import pickle
import struct
import sys

import numpy as np

PKL = os.path.join("expression_codes", "aeparams_1440000.pkl")
OUT = os.path.join("expression_codes", "aeparams_1440000.f32.bin")
MAGIC = b"AVT3EXPR"
VERSION = 1
HEADER = struct.Struct("<8sIIQQ")  # magic, version, dim, count, source_size (bytes of the .pkl)


class Refused(Exception):
    pass


class _Unpickler(pickle.Unpickler):
    """Resolves only numpy, torch and plain container types: a dataset file has no reason to run code."""

    SAFE_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes",
                     "bytearray", "bool", "slice", "range", "object"}

    def find_class(self, module, name):
        top = module.split(".")[0]
        if top == "builtins" and name not in self.SAFE_BUILTINS:
            raise pickle.UnpicklingError(f"refusing to load builtins.{name}")
        if top not in ("builtins", "numpy", "torch", "collections", "copyreg", "_codecs"):
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy/torch/containers)")
        return super().find_class(module, name)


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        if data[:4] == b"PK\x03\x04":  # torch.save's zip container, not a plain pickle
            import torch
            return torch.load(io.BytesIO(data), map_location="cpu")
        return _Unpickler(io.BytesIO(data)).load()
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "torch":
            raise Refused(f"{path}: the pickle holds torch tensors but torch is not importable by {sys.executable} "
                          f"({e}); install python3-torch (Debian) and run again")
        raise Refused(f"{path}: cannot unpickle: {e}")
    except Refused:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise Refused(f"{path}: cannot unpickle ({type(e).__name__}: {e}); expected a pickled dict frame id -> code")


def frame_key(path, k):
    if isinstance(k, (bool, np.bool_)):
        raise Refused(f"{path}: key {k!r}: expected a frame id (int or decimal string), got a bool")
    if isinstance(k, (int, np.integer)):
        v = int(k)
    elif isinstance(k, (str, bytes)):
        s = k.decode("ascii", "replace") if isinstance(k, bytes) else k
        if not s.strip().isdigit():
            raise Refused(f"{path}: key {k!r}: expected a frame id (int or decimal string)")
        v = int(s.strip())
    else:
        raise Refused(f"{path}: key {k!r}: expected a frame id (int or decimal string), got {type(k).__name__}")
    if v < 0 or v >= 2**63:
        raise Refused(f"{path}: key {k!r}: frame id out of range")
    return v


def code_array(path, k, v):
    if hasattr(v, "detach"):  # torch tensor
        v = v.detach()
    if hasattr(v, "cpu"):
        v = v.cpu()
    if hasattr(v, "numpy") and not isinstance(v, np.ndarray):
        v = v.numpy()
    elif hasattr(v, "tolist") and not isinstance(v, np.ndarray):
        v = v.tolist()
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise Refused(f"{path}: key {k!r}: value is not an array of numbers ({type(v).__name__}: {e})")
    if a.size == 0:
        raise Refused(f"{path}: key {k!r}: empty code")
    if not np.all(np.isfinite(a)):
        raise Refused(f"{path}: key {k!r}: code holds NaN or infinity")
    return a.reshape(-1).astype(np.float32)


def convert(arg):
    dec = arg
    if not os.path.exists(os.path.join(dec, PKL)) and os.path.exists(os.path.join(dec, "decoder", PKL)):
        dec = os.path.join(dec, "decoder")
    src = os.path.join(dec, PKL)
    if not os.path.exists(src):
        raise Refused(f"{src}: not found (expected the capture's decoder/ folder or the folder above it)")
    obj = load(src)
    if not isinstance(obj, dict):
        raise Refused(f"{src}: expected a dict frame id -> code, got {type(obj).__name__}")
    if not obj:
        raise Refused(f"{src}: the dict is empty")
    rows = {}
    for k, v in obj.items():
        fid = frame_key(src, k)
        if fid in rows:
            raise Refused(f"{src}: key {k!r}: frame id {fid} appears twice (int and string keys?)")
        rows[fid] = code_array(src, k, v)
    dims = {a.size for a in rows.values()}
    if len(dims) != 1:
        raise Refused(f"{src}: codes have different lengths {sorted(dims)}; expected one length (256)")
    dim = dims.pop()
    ids = sorted(rows)
    out = os.path.join(dec, OUT)
    tmp = f"{out}.tmp.{os.getpid()}"
    rec = np.zeros(len(ids), dtype=np.dtype([("id", "<i8"), ("code", "<f4", (dim,))]))
    rec["id"] = ids
    rec["code"] = np.stack([rows[i] for i in ids])
    with open(tmp, "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, dim, len(ids), os.path.getsize(src)))
        f.write(rec.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print(f"{out}: {len(ids)} codes of {dim} floats")


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    try:
        for d in sys.argv[1:]:
            convert(d)
    except Refused as e:
        print(f"ava256_expr_codes.py: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
