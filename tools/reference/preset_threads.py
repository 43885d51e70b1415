"""preset_threads.py — the PyTorch references' thread count, fixed before numpy or torch is imported.

Debian's torch 1.13 + OpenBLAS 0.3.21 (pthread) can hang in some float32 matmul shapes when the thread
count is lowered after start-up (torch.set_num_threads(1)). Setting OMP_NUM_THREADS from --threads
before either library loads avoids it. This module imports nothing but os for that reason."""
import os
import sys


def preset_threads(argv, default=None):
    """Sets OMP_NUM_THREADS from `--threads N` / `--threads=N` in argv, else from `default` (if given).
    Also keeps tools/reference free of __pycache__ (the scripts call this first thing)."""
    sys.dont_write_bytecode = True
    n = str(default) if default else None
    for i, a in enumerate(argv):
        v = a.split("=", 1)[1] if a.startswith("--threads=") else (
            argv[i + 1] if a == "--threads" and i + 1 < len(argv) else None)
        if v and v.isdigit() and int(v) > 0:
            n = v
    if n:
        os.environ["OMP_NUM_THREADS"] = n
