#!/usr/bin/env python3
"""Converts the official LPIPS v0.1 weights into avat3r's LPIPS weight file (docs/lpips.md).

  python3 tools/convert_lpips.py --net vgg  --backbone vgg16-397923af.pth      --lin vgg.pth  --out lpips_vgg.bin
  python3 tools/convert_lpips.py --net alex --backbone alexnet-owt-7be5be79.pth --lin alex.pth --out lpips_alex.bin

--backbone: torchvision's ImageNet state dict (only the `features.N.weight` / `features.N.bias` keys are
used; the classifier is ignored). --lin: the lpips package's lpips/weights/v0.1/{vgg,alex}.pth (keys
`lin{k}.model.1.weight`, shape (1, C, 1, 1); PyTorch's legacy non-zip format, which torch.load reads).
Needs torch (Debian: python3-torch). The weights are licensed separately and never enter the repo.
"""
import argparse
import os
import struct
import sys
import zlib

MAGIC = b"AVT3LPIP"
VERSION = 1
# (net id, [(torchvision features index, OC, IC, k, stride, pad)], lin channels) — docs/lpips.md
NETS = {
    "vgg": (1, [(0, 64, 3, 3, 1, 1), (2, 64, 64, 3, 1, 1),
                (5, 128, 64, 3, 1, 1), (7, 128, 128, 3, 1, 1),
                (10, 256, 128, 3, 1, 1), (12, 256, 256, 3, 1, 1), (14, 256, 256, 3, 1, 1),
                (17, 512, 256, 3, 1, 1), (19, 512, 512, 3, 1, 1), (21, 512, 512, 3, 1, 1),
                (24, 512, 512, 3, 1, 1), (26, 512, 512, 3, 1, 1), (28, 512, 512, 3, 1, 1)],
            (64, 128, 256, 512, 512)),
    "alex": (2, [(0, 64, 3, 11, 4, 2), (3, 192, 64, 5, 1, 2), (6, 384, 192, 3, 1, 1),
                 (8, 256, 384, 3, 1, 1), (10, 256, 256, 3, 1, 1)],
             (64, 192, 384, 256, 256)),
}


def fail(msg):
    sys.exit("convert_lpips: " + msg)


def load(path, what):
    import torch

    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many kinds for a file that is not a checkpoint
        fail("%s: cannot read the %s file: %s" % (path, what, e))
    if hasattr(sd, "state_dict") and not isinstance(sd, dict):
        sd = sd.state_dict()  # a whole pickled module
    if not isinstance(sd, dict):
        fail("%s: the %s file holds a %s, not a state dict" % (path, what, type(sd).__name__))
    # DataParallel checkpoints prefix every key with "module."
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def tensor(sd, path, key, shape):
    import numpy as np

    if key not in sd:
        fail("%s: missing key %s" % (path, key))
    a = sd[key].detach().cpu().double().numpy()
    if tuple(a.shape) != tuple(shape):
        fail("%s: %s has shape %s, expected %s" % (path, key, tuple(a.shape), tuple(shape)))
    if not np.isfinite(a).all():
        fail("%s: %s holds non-finite values" % (path, key))
    return a.astype("<f4").reshape(-1)


def convert(net, backbone, lin, out):
    import numpy as np

    net_id, convs, chns = NETS[net]
    bb, ln = load(backbone, "backbone"), load(lin, "lin")
    table, parts = [], []
    for idx, oc, ic, k, s, p in convs:
        table += [oc, ic, k, k, s, p]
        parts.append(tensor(bb, backbone, "features.%d.weight" % idx, (oc, ic, k, k)))  # PyTorch order
        parts.append(tensor(bb, backbone, "features.%d.bias" % idx, (oc,)))
    for k, c in enumerate(chns):
        table.append(c)
        w = tensor(ln, lin, "lin%d.model.1.weight" % k, (1, c, 1, 1))
        if (w < 0).any():
            fail("%s: lin%d has negative weights (min %g); LPIPS v0.1 lin weights are all >= 0"
                 % (lin, k, float(w.min())))
        parts.append(w)
    payload = np.concatenate(parts)
    body = struct.pack("<%di" % len(table), *table) + payload.tobytes()
    header = struct.pack("<8sIIIIQ", MAGIC, VERSION, net_id, len(convs), zlib.crc32(body) & 0xFFFFFFFF,
                         payload.size)
    header += bytes(64 - len(header))
    tmp = "%s.tmp.%d" % (out, os.getpid())  # never leave a half-written file under the final name
    with open(tmp, "wb") as f:
        f.write(header + body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print("convert_lpips: wrote %s (LPIPS-%s, %d convs, %d floats, %.1f MB)"
          % (out, net, len(convs), payload.size, (len(header) + len(body)) / 1e6))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--net", choices=sorted(NETS), required=True)
    ap.add_argument("--backbone", required=True, help="torchvision vgg16 / alexnet ImageNet .pth")
    ap.add_argument("--lin", required=True, help="lpips/weights/v0.1/{vgg,alex}.pth")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    convert(args.net, args.backbone, args.lin, args.out)


if __name__ == "__main__":
    main()
