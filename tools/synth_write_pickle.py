#!/usr/bin/env python3
"""synth_write_pickle.py RAW OUT.pkl — write ava256's expression_codes/aeparams_1440000.pkl for `avat3r synth`.
synth_write_pickle.py --check — exit 0 when numpy imports (3 when it does not).

RAW (little-endian, written by data/ava256_write.c): b"AVSYCODE", u32 version = 1, u32 dim, u64 n,
n x int64 frame ids, n x dim float32. OUT is a pickle (protocol 4) of a dict {int frame_id: numpy float32[dim]},
in frame order, written to OUT.tmp.<pid> and renamed. Exit 3 when numpy is missing, 2 on a bad RAW file.
"""
import os
import pickle
import struct
import sys


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 2 and sys.argv[1] != "--check"):
        sys.stderr.write(__doc__)
        return 2
    try:
        import numpy as np
    except ImportError:
        sys.stderr.write("synth_write_pickle.py: numpy is required (apt-get install python3-numpy)\n")
        return 3
    if sys.argv[1] == "--check":
        return 0
    raw, out = sys.argv[1], sys.argv[2]
    with open(raw, "rb") as f:
        data = f.read()
    if len(data) < 24 or data[:8] != b"AVSYCODE":
        sys.stderr.write("synth_write_pickle.py: %s is not an AVSYCODE file\n" % raw)
        return 2
    version, dim = struct.unpack_from("<II", data, 8)
    (n,) = struct.unpack_from("<Q", data, 16)
    if version != 1 or len(data) != 24 + 8 * n + 4 * n * dim:
        sys.stderr.write("synth_write_pickle.py: %s: bad version or size\n" % raw)
        return 2
    frames = np.frombuffer(data, dtype="<i8", count=n, offset=24)
    codes = np.frombuffer(data, dtype="<f4", count=n * dim, offset=24 + 8 * n).reshape(n, dim)
    table = {int(frames[i]): np.array(codes[i], dtype=np.float32) for i in range(n)}
    tmp = "%s.tmp.%d" % (out, os.getpid())
    with open(tmp, "wb") as f:
        pickle.dump(table, f, protocol=4)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
