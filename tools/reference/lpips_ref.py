#!/usr/bin/python3
"""Independent PyTorch reference of LPIPS v0.1 (pip `lpips` 0.1.4), written from the LPIPS spec
(shared/reference/pretrained_nets.md §3, restated in docs/lpips.md) and the torchvision layer lists,
not from the C code. nn.Conv2d / nn.MaxPool2d / nn.ReLU modules laid out as torchvision's
vgg16().features and alexnet().features (same indices, so `features.N.weight` keys load directly);
every gradient comes from autograd. Run with Debian's /usr/bin/python3 (torch 1.13).

  lpips_ref.py compare   --weights W.bin --images IN.atb --out OUT.atb [--dtype float64|float32]
  lpips_ref.py fromtorch --net vgg|alex --backbone B.pth --lin L.pth --images IN.atb --out OUT.atb [--dtype ..]
  lpips_ref.py fake      --net vgg|alex --backbone B.pth --lin L.pth [--seed S]
  lpips_ref.py selftest

Images bundle: x, y [N, H, W, 3] RGB in [0, 1] (any float dtype). Output bundle (float64): per [N]
(each pair's distance), mean [1], taps [5, N] (each tap's spatial mean), grad.x [N, H, W, 3] =
d(mean)/dx with y fixed. `fake` writes random state dicts with the real files' keys and shapes, in
PyTorch's legacy (non-zip) serialisation like the shipped files: the converter test's input.
"""
import argparse
import os
import struct
import sys
import tempfile
import zlib

# Debian's torch 1.13 hangs in float64 conv2d with 2 OpenMP threads (seen here: nn.Conv2d(3, 64, 3) on
# a [2, 3, 16, 18] double tensor never returns; float32 and 1 thread are fine), so one thread by default.
DEFAULT_THREADS = 1

if __name__ == "__main__":
    from preset_threads import preset_threads  # this script's folder is sys.path[0]

    preset_threads(sys.argv[1:], DEFAULT_THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import atb  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# ----------------------------------------------------------------------------- the spec (§3.2)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # added to the channel norm, outside the sqrt


def vgg16_features():
    """torchvision.models.vgg16().features (configuration "D", no batch norm), all 31 modules."""
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            c = v
    return nn.Sequential(*layers)


def alexnet_features():
    """torchvision.models.alexnet().features, all 13 modules."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2))


# lpips/pretrained_networks.py: slices end at these feature indices (exclusive); the tap is the ReLU
# just before each end. VGG uses features[0:30], AlexNet features[0:12].
NETS = {
    "vgg": dict(features=vgg16_features, ends=(4, 9, 16, 23, 30), chns=(64, 128, 256, 512, 512), id=1),
    "alex": dict(features=alexnet_features, ends=(2, 5, 8, 10, 12), chns=(64, 192, 384, 256, 256), id=2),
}
NET_BY_ID = {v["id"]: k for k, v in NETS.items()}


class LPIPS(nn.Module):
    def __init__(self, net):
        super().__init__()
        spec = NETS[net]
        self.net = net
        self.ends = spec["ends"]
        self.features = nn.Sequential(*list(spec["features"]())[: self.ends[-1]])
        self.lins = nn.ParameterList([nn.Parameter(torch.zeros(c)) for c in spec["chns"]])
        self.register_buffer("shift", torch.tensor(SHIFT, dtype=torch.float64).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE, dtype=torch.float64).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)

    def conv_keys(self):
        """[(torchvision index, conv module)] in order."""
        return [(i, m) for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]

    def taps(self, x):
        outs, h, start = [], x, 0
        for end in self.ends:
            for m in self.features[start:end]:
                h = m(h)
            outs.append(h)
            start = end
        return outs

    def forward(self, x, y, per_tap=False):
        """x, y: [N, 3, H, W] in [0, 1] -> [N] distances (and [5, N] per tap)."""
        def prep(t):
            return ((2 * t - 1) - self.shift.to(t.dtype)) / self.scale.to(t.dtype)

        fx, fy = self.taps(prep(x)), self.taps(prep(y))
        ds = []
        for k in range(5):
            a, b = fx[k], fy[k]
            na = a / (torch.sqrt(torch.sum(a ** 2, dim=1, keepdim=True)) + EPS)
            nb = b / (torch.sqrt(torch.sum(b ** 2, dim=1, keepdim=True)) + EPS)
            d = ((na - nb) ** 2 * self.lins[k].view(1, -1, 1, 1)).sum(1)  # the 1×1 "lin" conv, no bias
            ds.append(d.mean(dim=(1, 2)))
        ds = torch.stack(ds)
        return (ds.sum(0), ds) if per_tap else ds.sum(0)


def min_size(net):
    """Smallest square input whose last tap is non-empty (shape arithmetic on the modules)."""
    m = LPIPS(net)
    for n in range(1, 200):
        s = n
        for mod in m.features:
            if isinstance(mod, (nn.Conv2d, nn.MaxPool2d)):
                k = mod.kernel_size if isinstance(mod.kernel_size, int) else mod.kernel_size[0]
                st = mod.stride if isinstance(mod.stride, int) else mod.stride[0]
                p = mod.padding if isinstance(mod.padding, int) else mod.padding[0]
                s = (s + 2 * p - k) // st + 1 if s + 2 * p >= k else 0
                if s < 1:
                    break
        if s >= 1:
            return n
    raise ValueError("no size fits")


# ----------------------------------------------------------------------------- loading weights

def load_state_dicts(model, backbone, lin):
    """backbone: {'features.N.weight'/'bias': tensor, ...} (extra keys ignored); lin: {'lin{k}.model.1.weight':
    (1, C, 1, 1)}. Checks every shape."""
    with torch.no_grad():
        for i, conv in model.conv_keys():
            for part in ("weight", "bias"):
                key = "features.%d.%s" % (i, part)
                if key not in backbone:
                    raise ValueError("backbone: missing key %s" % key)
                t = backbone[key]
                dst = getattr(conv, part)
                if tuple(t.shape) != tuple(dst.shape):
                    raise ValueError("backbone: %s has shape %s, expected %s" % (key, tuple(t.shape), tuple(dst.shape)))
                dst.copy_(t)
        for k in range(5):
            key = "lin%d.model.1.weight" % k
            if key not in lin:
                raise ValueError("lin: missing key %s" % key)
            t = lin[key]
            if tuple(t.shape) != (1, model.lins[k].numel(), 1, 1):
                raise ValueError("lin: %s has shape %s" % (key, tuple(t.shape)))
            model.lins[k].copy_(t.reshape(-1))


LPIP_MAGIC = b"AVT3LPIP"
HDR = struct.Struct("<8sIIIIQ32s")  # docs/lpips.md: 64 bytes


def read_weights(path):
    """Reads an avat3r LPIPS weight file (docs/lpips.md) into a float64 LPIPS module."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 64 or buf[:8] != LPIP_MAGIC:
        raise ValueError("%s: not an avat3r LPIPS weight file" % path)
    _, ver, net_id, n_conv, crc, nf, reserved = HDR.unpack_from(buf)
    if ver != 1:
        raise ValueError("%s: version %d" % (path, ver))
    if net_id not in NET_BY_ID:
        raise ValueError("%s: unknown net id %d" % (path, net_id))
    if reserved != bytes(32):
        raise ValueError("%s: reserved header bytes not zero" % path)
    model = LPIPS(NET_BY_ID[net_id]).double()
    convs = model.conv_keys()
    if n_conv != len(convs):
        raise ValueError("%s: n_conv %d, expected %d" % (path, n_conv, len(convs)))
    nt = 6 * n_conv + 5
    if len(buf) != 64 + 4 * nt + 4 * nf:
        raise ValueError("%s: size %d, header implies %d" % (path, len(buf), 64 + 4 * nt + 4 * nf))
    if zlib.crc32(buf[64:]) & 0xFFFFFFFF != crc:
        raise ValueError("%s: CRC mismatch" % path)
    table = struct.unpack_from("<%di" % nt, buf, 64)
    data = np.frombuffer(buf, dtype="<f4", offset=64 + 4 * nt).astype(np.float64)
    off = 0
    with torch.no_grad():
        for j, (_, conv) in enumerate(convs):
            want = (conv.out_channels, conv.in_channels, conv.kernel_size[0], conv.kernel_size[1],
                    conv.stride[0], conv.padding[0])
            if tuple(table[6 * j:6 * j + 6]) != want:
                raise ValueError("%s: conv %d shape %s, expected %s" % (path, j, table[6 * j:6 * j + 6], want))
            for p in (conv.weight, conv.bias):
                p.copy_(torch.from_numpy(data[off:off + p.numel()].copy()).view_as(p))
                off += p.numel()
        for k in range(5):
            c = model.lins[k].numel()
            if table[6 * n_conv + k] != c:
                raise ValueError("%s: lin%d has %d channels, expected %d" % (path, k, table[6 * n_conv + k], c))
            model.lins[k].copy_(torch.from_numpy(data[off:off + c].copy()))
            off += c
    if off != nf:
        raise ValueError("%s: %d floats, the net has %d" % (path, nf, off))
    if any((model.lins[k] < 0).any() for k in range(5)):
        raise ValueError("%s: negative lin weight" % path)
    return model


# ----------------------------------------------------------------------------- verbs

def run(model, images, out, dtype):
    b = atb.read_atb(images)
    x = torch.from_numpy(np.asarray(b["x"], dtype=np.float64)).permute(0, 3, 1, 2).to(dtype)
    y = torch.from_numpy(np.asarray(b["y"], dtype=np.float64)).permute(0, 3, 1, 2).to(dtype)
    model = model.to(dtype)
    x.requires_grad_(True)
    per, taps = model(x, y, per_tap=True)
    mean = per.mean()
    mean.backward()
    atb.write_atb(out, [
        ("per", per.detach().double().numpy()),
        ("mean", mean.detach().double().reshape(1).numpy()),
        ("taps", taps.detach().double().numpy()),
        ("grad.x", x.grad.permute(0, 2, 3, 1).double().numpy()),
    ])
    print("lpips_ref: %s N=%d %dx%d mean %.10g" % (model.net, x.shape[0], x.shape[2], x.shape[3], mean.item()))


def cmd_compare(args):
    run(read_weights(args.weights), args.images, args.out, DTYPES[args.dtype])


def cmd_fromtorch(args):
    model = LPIPS(args.net).double()
    load_state_dicts(model, torch.load(args.backbone, map_location="cpu"), torch.load(args.lin, map_location="cpu"))
    run(model, args.images, args.out, DTYPES[args.dtype])


def fake_state_dicts(net, seed):
    """Random weights with the real files' keys and shapes (+ a classifier key the converter must skip)."""
    g = torch.Generator().manual_seed(seed)
    model = LPIPS(net)
    sd = {}
    for i, conv in model.conv_keys():
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        sd["features.%d.weight" % i] = torch.randn(conv.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
        sd["features.%d.bias" % i] = 0.1 * torch.randn(conv.bias.shape, generator=g)
    sd["classifier.6.weight"] = torch.randn(10, 16, generator=g)  # not part of `features`
    sd["classifier.6.bias"] = torch.randn(10, generator=g)
    lin = {"lin%d.model.1.weight" % k: torch.randn(1, c, 1, 1, generator=g).abs()
           for k, c in enumerate(NETS[net]["chns"])}
    return sd, lin


def cmd_fake(args):
    sd, lin = fake_state_dicts(args.net, args.seed)
    # the shipped files are pre-1.6 (non-zip) pickles; write that format so the converter sees it
    torch.save(sd, args.backbone, _use_new_zipfile_serialization=False)
    torch.save(lin, args.lin, _use_new_zipfile_serialization=False)
    print("lpips_ref: wrote fake %s backbone %s and lin %s" % (args.net, args.backbone, args.lin))


# ----------------------------------------------------------------------------- self-tests

def write_weights(model, path):
    """Writes docs/lpips.md's format (used only by the self-test round trip)."""
    convs = model.conv_keys()
    table, data = [], []
    for _, conv in convs:
        table += [conv.out_channels, conv.in_channels, conv.kernel_size[0], conv.kernel_size[1],
                  conv.stride[0], conv.padding[0]]
        data += [conv.weight.detach().reshape(-1), conv.bias.detach().reshape(-1)]
    table += [l.numel() for l in model.lins]
    data += [l.detach().reshape(-1) for l in model.lins]
    body = struct.pack("<%di" % len(table), *table) + torch.cat(data).float().numpy().astype("<f4").tobytes()
    nf = sum(t.numel() for t in data)
    hdr = HDR.pack(LPIP_MAGIC, 1, NETS[model.net]["id"], len(convs), zlib.crc32(body) & 0xFFFFFFFF, nf, bytes(32))
    with open(path, "wb") as f:
        f.write(hdr + body)


def random_model(net, seed):
    sd, lin = fake_state_dicts(net, seed)
    m = LPIPS(net).double()
    load_state_dicts(m, sd, lin)
    return m


def cmd_selftest(args):
    failures = 0

    def check(name, ok, detail=""):
        nonlocal failures
        print("%s %s %s" % ("PASS" if ok else "FAIL", name, detail))
        failures += 0 if ok else 1

    g = torch.Generator().manual_seed(5)
    # architecture against torchvision's own modules, when this python has torchvision
    try:
        import torchvision
    except ImportError:
        torchvision = None
        print("SKIP architecture_matches_torchvision (no torchvision here; Debian: python3-torchvision)")
    if torchvision:
        for net, fn in (("vgg", torchvision.models.vgg16), ("alex", torchvision.models.alexnet)):
            tv = fn().features.double()
            mine = NETS[net]["features"]().double()
            # same modules and indices (ours are not in-place, for autograd's sake) ...
            same = repr(tv).replace("inplace=True", "") == repr(mine).replace("inplace=False", "")
            # ... and the same function with the same weights
            mine.load_state_dict(tv.state_dict())
            x = torch.randn(1, 3, 64, 64, generator=g, dtype=torch.float64)
            with torch.no_grad():
                e = (tv(x) - mine(x)).abs().max().item()
            check("architecture_matches_torchvision_" + net, same and e == 0, "max abs %.1e" % e)
    check("min_size", (min_size("vgg"), min_size("alex")) == (16, 31), str((min_size("vgg"), min_size("alex"))))
    # odd sizes use floor mode: VGG 33×21 -> relu5_3 is 2×1; Alex 45×50 -> relu5 is 1×2
    for net, (H, W), want in (("vgg", (33, 21), (2, 1)), ("alex", (45, 50), (1, 2))):
        m = random_model(net, 1)
        t = m.taps(torch.zeros(1, 3, H, W, dtype=torch.float64))
        check("floor_mode_grid_" + net, tuple(t[-1].shape[2:]) == want, str(tuple(t[-1].shape[2:])))
    for net, H, W in (("vgg", 16, 18), ("alex", 31, 33)):
        m = random_model(net, 2)
        x = torch.rand(2, 3, H, W, generator=g, dtype=torch.float64)
        y = torch.rand(2, 3, H, W, generator=g, dtype=torch.float64)
        # LPIPS(x, x) = 0 exactly, with a zero gradient
        xx = x.clone().requires_grad_(True)
        d0 = m(xx, x.clone())
        d0.sum().backward()
        check("identical_is_zero_" + net, bool((d0 == 0).all()) and bool((xx.grad == 0).all()))
        # symmetry of the distance
        check("symmetric_" + net, torch.allclose(m(x, y), m(y, x), rtol=1e-12, atol=0))
        # autograd is the oracle; check it once against numerical differences (random projections)
        xr = x.clone().requires_grad_(True)
        ok = torch.autograd.gradcheck(lambda a: m(a, y), (xr,), eps=1e-6, atol=1e-8, rtol=1e-5, fast_mode=True)
        check("gradcheck_" + net, ok)
        # our file format: write, read back, same distances
        with tempfile.TemporaryDirectory() as td:
            p = os.path.join(td, "w.bin")
            write_weights(m, p)
            m2 = read_weights(p)
            d1, d2 = m(x, y), m2(x, y)
            # the file stores float32: compare against the model rounded to float32
            m32 = LPIPS(net).double()
            m32.load_state_dict({k: v if k in ("shift", "scale") else v.float().double()
                                 for k, v in m.state_dict().items()})
            check("file_round_trip_" + net, torch.equal(m32(x, y), d2), "%.3g" % (d1 - d2).abs().max().item())
            buf = bytearray(open(p, "rb").read())
            buf[100] ^= 1
            open(p, "wb").write(bytes(buf))
            try:
                read_weights(p)
                check("file_crc_refused_" + net, False)
            except ValueError as e:
                check("file_crc_refused_" + net, "CRC" in str(e), str(e))
    if failures:
        sys.exit("lpips_ref selftest: %d failed" % failures)
    print("lpips_ref selftest: all passed")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("compare")
    s.add_argument("--weights", required=True)
    s.add_argument("--images", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--dtype", choices=DTYPES, default="float64")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    s = sub.add_parser("fromtorch")
    s.add_argument("--net", choices=NETS, required=True)
    s.add_argument("--backbone", required=True)
    s.add_argument("--lin", required=True)
    s.add_argument("--images", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--dtype", choices=DTYPES, default="float64")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    s = sub.add_parser("fake")
    s.add_argument("--net", choices=NETS, required=True)
    s.add_argument("--backbone", required=True)
    s.add_argument("--lin", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    s = sub.add_parser("selftest")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    args = ap.parse_args(argv)
    try:
        {"compare": cmd_compare, "fromtorch": cmd_fromtorch, "fake": cmd_fake, "selftest": cmd_selftest}[args.cmd](args)
    except (ValueError, OSError, KeyError) as e:
        sys.exit("lpips_ref: %s" % e)


if __name__ == "__main__":
    main()
