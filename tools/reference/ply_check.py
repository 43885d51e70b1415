#!/usr/bin/env python3
"""ply_check.py — read a 3DGS PLY with numpy alone (an independent reader) and compare it field by
field with the raw values in a tensor bundle: xyz [n,3], f_dc [n,3], opacity [n], scale [n,3], rot [n,4].

usage: /usr/bin/python3 tools/reference/ply_check.py FILE.ply EXPECTED.atb
Exit 0 when every field matches bit for bit, 1 otherwise."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import atb  # noqa: E402


def read_ply(path):
    with open(path, "rb") as f:
        data = f.read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[0] == "ply" and "format binary_little_endian 1.0" in header, "not a binary little-endian PLY"
    names, count = [], None
    for line in header:
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            count = int(parts[2])
        elif parts[:1] == ["property"]:
            assert parts[1] == "float", line
            names.append(parts[2])
    rows = np.frombuffer(data[end:], dtype="<f4")
    assert rows.size == count * len(names), f"payload holds {rows.size} floats, header says {count}x{len(names)}"
    table = rows.reshape(count, len(names))
    return {n: table[:, i] for i, n in enumerate(names)}


def main():
    ply, expected = sys.argv[1], sys.argv[2]
    cols = read_ply(ply)
    ref = atb.read_atb(expected)
    groups = {"xyz": ["x", "y", "z"], "f_dc": ["f_dc_0", "f_dc_1", "f_dc_2"], "opacity": ["opacity"],
              "scale": ["scale_0", "scale_1", "scale_2"], "rot": ["rot_0", "rot_1", "rot_2", "rot_3"]}
    ok = True
    for key, names in groups.items():
        got = np.stack([cols[n] for n in names], axis=1).reshape(ref[key].shape)
        same = np.array_equal(got.view(np.uint32), np.asarray(ref[key], dtype="<f4").view(np.uint32))
        print(f"{'PASS' if same else 'FAIL'} {key}: {got.shape}")
        ok &= same
    for n in ("nx", "ny", "nz"):
        if n in cols and np.any(cols[n] != 0):
            print(f"FAIL normals {n} not zero")
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
