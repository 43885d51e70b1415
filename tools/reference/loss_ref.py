#!/usr/bin/python3
"""PyTorch reference of avat3r.c's image losses (L1, SSIM, MSE/PSNR), written from docs/losses.md only.

Forward only; gradients come from autograd, so this file is the oracle for the C forward and its
hand-written backward (train/loss_image.c). SSIM is the one 3D Gaussian Splatting trains with: an 11x11
Gaussian window (sigma 1.5, normalised to sum 1) applied with F.conv2d(padding=5, groups=C), i.e. zero
padding, C1 = 0.01^2, C2 = 0.03^2, mean of the map over all pixels and channels. Run with Debian's
/usr/bin/python3 (torch 1.13).

  loss_ref.py compare  --in IN.atb --out OUT.atb [--dtype float64|float32] [--threads N]
  loss_ref.py selftest [--threads N]

IN bundle: x [N,H,W,C] (prediction), y [N,H,W,C] (ground truth), any float dtype; optional w [N,H,W], a
per-pixel weight (the mouth region of docs/losses.md).
OUT bundle (run dtype): l1 [1], ssim [1], ssim_per [N], ssim_map [N,H,W,C], mse [1], psnr [1],
grad.l1 [N,H,W,C] = d(l1)/dx, grad.ssim [N,H,W,C] = d(mean SSIM)/dx (y fixed); with w also
l1w [1] = mean over all N*H*W*C elements of w*|x - y| (w broadcast over C) and grad.l1w = d(l1w)/dx.
"""
import argparse
import math
import os
import sys

DEFAULT_THREADS = 1  # tiny tensors: more threads only add synchronisation

if __name__ == "__main__":
    from preset_threads import preset_threads  # this script's folder is sys.path[0]

    preset_threads(sys.argv[1:], DEFAULT_THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import atb  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}

WINDOW = 11
SIGMA = 1.5
C1 = 0.01 ** 2
C2 = 0.03 ** 2


def window_2d(C, dtype):
    """[C,1,11,11] depthwise weight: outer product of the normalised 1-D Gaussian, one copy per channel.
    Built in float64 and rounded once to the run dtype."""
    i = torch.arange(WINDOW, dtype=torch.float64)
    g = torch.exp(-((i - WINDOW // 2) ** 2) / (2 * SIGMA ** 2))
    g = g / g.sum()
    w2 = torch.outer(g, g)
    return w2.to(dtype).expand(C, 1, WINDOW, WINDOW).contiguous()


def ssim_map(x, y):
    """x, y [N,H,W,C] -> SSIM map [N,H,W,C] (zero-padded 'same' convolution per channel)."""
    C = x.shape[-1]
    xc, yc = x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)
    w = window_2d(C, x.dtype).to(x.device)

    def blur(t):
        return F.conv2d(t, w, padding=WINDOW // 2, groups=C)

    mu_x, mu_y = blur(xc), blur(yc)
    sxx = blur(xc * xc) - mu_x * mu_x
    syy = blur(yc * yc) - mu_y * mu_y
    sxy = blur(xc * yc) - mu_x * mu_y
    m = ((2 * mu_x * mu_y + C1) * (2 * sxy + C2)) / ((mu_x * mu_x + mu_y * mu_y + C1) * (sxx + syy + C2))
    return m.permute(0, 2, 3, 1)


def ssim(x, y):
    return ssim_map(x, y).mean()


def l1(x, y):
    return (x - y).abs().mean()


def l1_weighted(x, y, w):
    """w [N,H,W]: each pixel's weight, shared by its channels; normalised by all elements, as l1."""
    return (w.unsqueeze(-1) * (x - y).abs()).mean()


def mse(x, y):
    return ((x - y) ** 2).mean()


def compare(args):
    dt = DTYPES[args.dtype]
    b = atb.read_atb(args.inp)
    for k in ("x", "y"):
        if k not in b:
            raise SystemExit("%s: tensor '%s' missing" % (args.inp, k))
        if b[k].ndim != 4:
            raise SystemExit("%s: tensor '%s' must be [N,H,W,C], got shape %s" % (args.inp, k, b[k].shape))
    if b["x"].shape != b["y"].shape:
        raise SystemExit("%s: x %s and y %s differ in shape" % (args.inp, b["x"].shape, b["y"].shape))
    y = torch.tensor(b["y"], dtype=dt)
    x1 = torch.tensor(b["x"], dtype=dt, requires_grad=True)
    v_l1 = l1(x1, y)
    (g_l1,) = torch.autograd.grad(v_l1, x1)
    x2 = torch.tensor(b["x"], dtype=dt, requires_grad=True)
    m = ssim_map(x2, y)
    v_ssim = m.mean()
    (g_ssim,) = torch.autograd.grad(v_ssim, x2)
    with torch.no_grad():
        v_mse = mse(x2, y)
        per = m.mean(dim=(1, 2, 3))
    npd = np.float64 if dt == torch.float64 else np.float32
    psnr = 10 * math.log10(1 / v_mse.item()) if v_mse.item() > 0 else math.inf

    def a(t):
        return np.asarray(t.detach().numpy(), dtype=npd)

    out = [
        ("l1", a(v_l1).reshape(1)), ("ssim", a(v_ssim).reshape(1)), ("ssim_per", a(per)),
        ("ssim_map", a(m)), ("mse", a(v_mse).reshape(1)), ("psnr", np.array([psnr], npd)),
        ("grad.l1", a(g_l1)), ("grad.ssim", a(g_ssim)),
    ]
    if "w" in b:
        if b["w"].shape != b["x"].shape[:3]:
            raise SystemExit("%s: w %s must be x's [N,H,W] %s" % (args.inp, b["w"].shape, b["x"].shape[:3]))
        x3 = torch.tensor(b["x"], dtype=dt, requires_grad=True)
        v_l1w = l1_weighted(x3, y, torch.tensor(b["w"], dtype=dt))
        (g_l1w,) = torch.autograd.grad(v_l1w, x3)
        out += [("l1w", a(v_l1w).reshape(1)), ("grad.l1w", a(g_l1w))]
    atb.write_atb(args.out, out)


# ----------------------------------------------------------------------------- self-tests

def _naive_ssim_map(x, y):
    """Direct loops over the 2-D window (numpy, float64): the definition with no convolution library."""
    N, H, W, C = x.shape
    i = np.arange(WINDOW)
    g = np.exp(-((i - 5) ** 2) / (2 * SIGMA ** 2))
    g /= g.sum()
    w2 = np.outer(g, g)
    out = np.zeros_like(x)

    def blur(t, n, c, r, q):
        acc = 0.0
        for dy in range(WINDOW):
            for dx in range(WINDOW):
                rr, qq = r + dy - 5, q + dx - 5
                if 0 <= rr < H and 0 <= qq < W:
                    acc += w2[dy, dx] * t[n, rr, qq, c]
        return acc

    for n in range(N):
        for c in range(C):
            for r in range(H):
                for q in range(W):
                    mx, my = blur(x, n, c, r, q), blur(y, n, c, r, q)
                    exx, eyy, exy = blur(x * x, n, c, r, q), blur(y * y, n, c, r, q), blur(x * y, n, c, r, q)
                    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
                    out[n, r, q, c] = ((2 * mx * my + C1) * (2 * sxy + C2)) / (
                        (mx * mx + my * my + C1) * (sxx + syy + C2))
    return out


def selftest(args):
    torch.manual_seed(0)
    F64 = torch.float64
    fails = 0

    def report(name, ok, detail):
        nonlocal fails
        print("%s %-28s %s" % ("PASS" if ok else "FAIL", name, detail))
        fails += 0 if ok else 1

    # the 1-D window: symmetric, sums to 1, sigma 1.5
    w = window_2d(1, F64)[0, 0]
    report("window", abs(w.sum().item() - 1) < 1e-15 and torch.equal(w, w.t()) and torch.equal(w, w.flip(0)),
           "sum-1 = %.1e, centre %.6f" % (w.sum().item() - 1, w[5, 5].item()))
    # SSIM(x, x) = 1 exactly in the map (A1 = B1, A2 = B2) up to rounding; its gradient vanishes
    x = torch.rand(2, 9, 12, 3, dtype=F64, requires_grad=True)
    v = ssim(x, x.detach())
    (gx,) = torch.autograd.grad(v, x)
    report("ssim(x,x)=1", abs(v.item() - 1) < 1e-14 and gx.abs().max().item() < 1e-13,
           "1-ssim = %.1e, max|grad| = %.1e" % (1 - v.item(), gx.abs().max().item()))
    # conv2d against the direct loops, including an image smaller than the window
    for shape in ((1, 6, 8, 2), (2, 13, 7, 3)):
        a = torch.rand(*shape, dtype=F64)
        b = (a + 0.2 * torch.randn(*shape, dtype=F64)).clamp(0, 1)
        e = np.abs(ssim_map(a, b).numpy() - _naive_ssim_map(a.numpy(), b.numpy())).max()
        report("conv2d=loops %s" % (shape,), e < 1e-13, "max abs %.1e" % e)
    # gradcheck of the three losses on tiny images (borders everywhere: 7x6 < 11x11)
    a = torch.rand(2, 7, 6, 2, dtype=F64, requires_grad=True)
    b = torch.rand(2, 7, 6, 2, dtype=F64)
    wgt = torch.rand(2, 7, 6, dtype=F64)
    for name, fn in (("ssim", ssim), ("l1", l1), ("mse", mse), ("l1w", lambda s, t: l1_weighted(s, t, wgt))):
        ok = torch.autograd.gradcheck(lambda t: fn(t, b), (a,), eps=1e-6, atol=1e-8, rtol=1e-6)
        report("gradcheck %s" % name, ok, "")
    # the compare verb end to end on a small bundle
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        xa = np.random.default_rng(1).random((2, 5, 6, 3))
        ya = np.random.default_rng(2).random((2, 5, 6, 3))
        atb.write_atb(os.path.join(d, "in.atb"), {"x": xa, "y": ya})
        compare(argparse.Namespace(inp=os.path.join(d, "in.atb"), out=os.path.join(d, "out.atb"), dtype="float64"))
        o = atb.read_atb(os.path.join(d, "out.atb"))
        ok = (abs(o["l1"][0] - np.abs(xa - ya).mean()) < 1e-15 and o["grad.ssim"].shape == xa.shape
              and abs(o["ssim_per"].mean() - o["ssim"][0]) < 1e-15
              and abs(o["psnr"][0] - 10 * math.log10(1 / ((xa - ya) ** 2).mean())) < 1e-12)
        report("compare verb", ok, "keys %s" % ",".join(o))
    print("%d failed" % fails)
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--in", dest="inp", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    c.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    s = sub.add_parser("selftest")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    args = ap.parse_args()
    if args.verb == "compare":
        compare(args)
        return 0
    return selftest(args)


if __name__ == "__main__":
    sys.exit(main())
