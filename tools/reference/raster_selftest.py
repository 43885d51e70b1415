#!/usr/bin/python3
"""Self-tests of the PyTorch reference rasterizer raster_ref.py (not of the C code).

Run: /usr/bin/python3 tools/reference/raster_selftest.py [--threads N] [-k NAME]
Prints one PASS/FAIL line per test; exits non-zero if any test fails."""
import math
import os
import sys
import time
import traceback


def _threads(argv):
    # OMP_NUM_THREADS before torch is imported (OpenBLAS hang with torch.set_num_threads(1))
    n = "2"
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv) and argv[i + 1].isdigit():
            n = argv[i + 1]
    os.environ["OMP_NUM_THREADS"] = n


_threads(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import raster_ref as rr  # noqa: E402

F64 = torch.float64


# ----------------------------------------------------------------------------- helpers

def scene(means, quats, scales, opac, colors, w2c, K, bg, W, H, seed=0):
    """A scene dict (float64 numpy) with random loss weights; B, G, Cm from the shapes."""
    means = np.asarray(means, np.float64)
    B, G = means.shape[:2]
    w2c = np.asarray(w2c, np.float64)
    Cm, Kc = w2c.shape[1], np.asarray(colors).shape[-1]
    rng = np.random.default_rng(seed)
    return dict(means=means, quats=np.asarray(quats, np.float64), scales=np.asarray(scales, np.float64),
                opacities=np.asarray(opac, np.float64), colors=np.asarray(colors, np.float64),
                w2c=w2c, K=np.asarray(K, np.float64), background=np.asarray(bg, np.float64),
                size=np.array([W, H], np.int32), wI=rng.normal(0, 1, (B, Cm, H, W, Kc)),
                wA=rng.normal(0, 1, (B, Cm, H, W)), wD=rng.normal(0, 1, (B, Cm, H, W)))


def ident_cam(f, W, H, cx=None, cy=None, fy=None):
    """Camera at the world origin looking down +z (w2c = [I|0])."""
    w2c = np.concatenate([np.eye(3), np.zeros((3, 1))], 1)
    K = np.array([[f, 0, W / 2 if cx is None else cx], [0, f if fy is None else fy,
                                                        H / 2 if cy is None else cy], [0, 0, 1.0]])
    return w2c, K


def fwd(sc, dtype=F64, mode="tile"):
    W, H = rr.scene_size(sc)
    t = rr.scene_tensors(sc, dtype, False)
    with torch.no_grad():
        im, al, de, nbad, _ = rr.render(t["means"], t["quats"], t["scales"], t["opacities"],
                                        t["colors"], t["w2c"], t["K"], t["background"], W, H, mode)
    return im.numpy(), al.numpy(), de.numpy(), nbad


def backproject(w2c, K, u, v, z):
    """World point that camera (w2c, K) sees at pixel coordinates (u, v) with camera depth z."""
    pc = np.array([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z])
    R, t = w2c[:, :3], w2c[:, 3]
    return R.T @ (pc - t)


def unit_quats(n, rng):
    q = rng.normal(0, 1, (n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True) * rng.uniform(0.6, 1.6, (n, 1))


def coverage(sc):
    """Counts of the non-smooth regimes a scene exercises (float64 forward)."""
    W, H = rr.scene_size(sc)
    t = rr.scene_tensors(sc, F64, False)
    diag = []
    with torch.no_grad():
        rr.render(t["means"], t["quats"], t["scales"], t["opacities"], t["colors"], t["w2c"], t["K"],
                  t["background"], W, H, "tile", diag)
    cov = dict(stop=0, saturated=0, below_alpha_min=0, fov_clamped=0)
    for d in diag:
        dg = d["g"]["diag"]
        cov["fov_clamped"] += int(((dg["fovx"].abs() > 1) | (dg["fovy"].abs() > 1)).sum())
        for pd in d["pix"]:
            if pd is None:
                continue
            r = pd["reached"]
            contrib = r & pd["cand"] & (pd["T"] > rr.T_MIN)
            cov["stop"] += int((r & pd["cand"] & (pd["T"] <= rr.T_MIN)).any(1).sum())
            cov["saturated"] += int((contrib & (pd["raw"] > rr.ALPHA_MAX)).sum())
            cov["below_alpha_min"] += int((r & (pd["alpha"] < rr.ALPHA_MIN)
                                           & (pd["alpha"] > 1e-4)).sum())
    return cov


# ----------------------------------------------------------------------------- tests

def gradcheck_scene(seed):
    """Two single-tile scenes (12x10, so the tile rectangle never moves) of 6 Gaussians seen by 2
    cameras, built in camera 0's pixel coordinates: a stack of three near-opaque Gaussians (the stop
    rule fires), a saturating one (alpha clamp), one beyond the frustum limit whose footprint
    reaches into the image (frustum clamp) and a plain one; K = 2 channels."""
    rng = np.random.default_rng(seed)
    W, H, B, G, Cm, Kc = 12, 10, 2, 6, 2, 2
    means, scales = np.zeros((B, G, 3)), np.zeros((B, G, 3))
    opac = np.zeros((B, G))
    w2c, Ks = np.zeros((B, Cm, 3, 4)), np.zeros((B, Cm, 3, 3))
    # (u, v, z, opacity) in camera 0; the stack sits on pixel (4, 3): T = 0.015*0.025*0.05 there
    base = [(4.5, 3.5, 1.00, 0.985), (4.5, 3.5, 1.05, 0.975), (4.5, 3.5, 1.10, 0.95),
            (8.5, 6.5, 0.95, 0.9995), (14.6, 5.2, 1.0, 0.8), (2.0, 8.0, 1.2, 0.6)]
    for b in range(B):
        cam0 = np.concatenate([np.eye(3), np.array([[0.0], [0.0], [1.0]])], 1)   # at (0,0,-1)
        K0 = np.array([[1.2 * W, 0, W / 2], [0, 1.25 * W, H / 2], [0, 0, 1]])
        cam1 = rr.look_at(np.array([0.35, -0.1, -0.95]), np.zeros(3), rng, roll=0.05)
        K1 = np.array([[1.15 * W, 0, W / 2 + 0.3], [0, 1.2 * W, H / 2 - 0.2], [0, 0, 1]])
        w2c[b], Ks[b] = [cam0, cam1], [K0, K1]
        for gi, (u, v, z, o) in enumerate(base):
            means[b, gi] = backproject(cam0, K0, u + rng.uniform(-0.1, 0.1),
                                       v + rng.uniform(-0.1, 0.1), z + rng.uniform(-0.02, 0.02))
            scales[b, gi] = rng.uniform(0.08, 0.15, 3)
            opac[b, gi] = o
    quats = unit_quats(B * G, rng).reshape(B, G, 4)
    colors = rng.uniform(0, 1, (B, G, Kc))
    return scene(means, quats, scales, opac, colors, w2c, Ks, rng.uniform(0, 1, Kc), W, H, seed)


def test_a_gradcheck():
    """torch.autograd.gradcheck (float64) of image/alpha/depth w.r.t. means, quats, scales,
    opacities, colors and background, on a scene >= 1e-3 (relative) away from every knife edge."""
    for seed in range(200):
        sc = gradcheck_scene(seed)
        best, bad = rr.margins(sc, 1e-3, 1e-3)
        cov = coverage(sc)
        if not bad and cov["stop"] and cov["saturated"] and cov["fov_clamped"] \
                and cov["below_alpha_min"]:
            break
    else:
        raise AssertionError("no clean gradcheck scene found")
    print("    scene seed %d, coverage %s" % (seed, cov))
    W, H = rr.scene_size(sc)
    t = rr.scene_tensors(sc, F64, True)
    inputs = tuple(t[k] for k in rr.GRAD_KEYS)

    def f(means, quats, scales, opacities, colors, background):
        im, al, de, _, _ = rr.render(means, quats, scales, opacities, colors, t["w2c"], t["K"],
                                     background, W, H)
        return torch.cat([im.reshape(-1), al.reshape(-1), de.reshape(-1)])

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    # the same through the dense (masked) formulation
    def fd(*xs):
        im, al, de, _, _ = rr.render(*xs[:5], t["w2c"], t["K"], xs[5], W, H, mode="dense")
        return torch.cat([im.reshape(-1), al.reshape(-1), de.reshape(-1)])

    assert torch.autograd.gradcheck(fd, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_b_point_projection():
    """A tiny Gaussian at a known 3D point lights the pixel it projects to (argmax within +-0.5 px of
    the projection, computed here with numpy), and depth/alpha there is its camera z."""
    rng = np.random.default_rng(11)
    B, W, H = 24, 40, 32
    w2c, Ks = np.zeros((B, 1, 3, 4)), np.zeros((B, 1, 3, 3))
    means = np.zeros((B, 1, 3))
    uv, zs = [], []
    for b in range(B):
        w2c[b, 0], Ks[b, 0] = rr.random_camera(rng, W, H)
        Ks[b, 0, 0, 2] += rng.uniform(-2, 2)       # off-centre principal point
        Ks[b, 0, 1, 2] += rng.uniform(-2, 2)
        u, v = rng.uniform(2, W - 2), rng.uniform(2, H - 2)
        z = rng.uniform(0.8, 1.3)
        means[b, 0] = backproject(w2c[b, 0], Ks[b, 0], u, v, z)
        # re-project with the world point (independent of backproject's algebra)
        p = w2c[b, 0, :, :3] @ means[b, 0] + w2c[b, 0, :, 3]
        uv.append((Ks[b, 0, 0, 0] * p[0] / p[2] + Ks[b, 0, 0, 2],
                   Ks[b, 0, 1, 1] * p[1] / p[2] + Ks[b, 0, 1, 2]))
        zs.append(p[2])
    sc = scene(means, unit_quats(B, rng).reshape(B, 1, 4), np.full((B, 1, 3), 1e-3),
               np.full((B, 1), 0.9), np.ones((B, 1, 3)), w2c, Ks, np.zeros(3), W, H)
    im, al, de, _ = fwd(sc)
    for b in range(B):
        j, i = np.unravel_index(np.argmax(im[b, 0, :, :, 0]), (H, W))
        u, v = uv[b]
        assert abs(i + 0.5 - u) <= 0.5 + 1e-9 and abs(j + 0.5 - v) <= 0.5 + 1e-9, \
            "scene %d: brightest pixel (%d,%d), projection (%.3f,%.3f)" % (b, i, j, u, v)
        assert abs(de[b, 0, j, i] / al[b, 0, j, i] - zs[b]) < 1e-12
        assert im[b, 0, j, i, 0] > 0.2


def test_c_occlusion_and_order():
    """An opaque front Gaussian hides one behind it whatever their index order; equal z is
    resolved by Gaussian index."""
    W, H, f = 32, 32, 32.0
    cam, K = ident_cam(f, W, H)
    red, green, bg = [1.0, 0, 0], [0, 1.0, 0], [0.2, 0.3, 0.4]
    for order in ((0, 1), (1, 0)):
        means = np.zeros((1, 2, 3))
        means[0, order[0]] = [0.5 / f, 0.5 / f, 1.0]         # front: centre of pixel (16,16)
        means[0, order[1]] = [0.5 / f * 1.3, 0.5 / f * 1.3, 1.3]   # behind, same ray
        cols = np.zeros((1, 2, 3))
        cols[0, order[0]], cols[0, order[1]] = red, green
        op = np.zeros((1, 2))
        op[0, order[0]], op[0, order[1]] = 1.0, 0.9
        sc = scene(means, np.tile([1.0, 0, 0, 0], (1, 2, 1)), np.full((1, 2, 3), 0.05), op, cols,
                   cam[None, None], K[None, None], bg, W, H)
        im, al, de, _ = fwd(sc)
        px = im[0, 0, 16, 16]
        assert np.abs(px - red).max() < 0.02, "order %s: pixel %s" % (order, px)
        # exact value: 0.99 red + 0.01*0.9 green + 0.001 bg (front saturates, back at o = 0.9)
        want = 0.99 * np.array(red) + 0.01 * 0.9 * np.array(green) + 0.01 * 0.1 * np.array(bg)
        assert np.abs(px - want).max() < 1e-12
    # ties: both at z = 1 exactly (identity camera), heavily overlapping; index 0 is drawn first
    for first in (0, 1):
        means = np.array([[[0.5 / f, 0.5 / f, 1.0], [0.6 / f, 0.4 / f, 1.0]]])
        cols = np.array([[red, green]]) if first == 0 else np.array([[green, red]])
        sc = scene(means, np.tile([1.0, 0, 0, 0], (1, 2, 1)), np.full((1, 2, 3), 0.05),
                   np.full((1, 2), 1.0), cols, cam[None, None], K[None, None], bg, W, H)
        im, _, _, _ = fwd(sc)
        want = cols[0, 0]
        assert np.abs(im[0, 0, 16, 16] - want).max() < 0.02, "tie: %s" % im[0, 0, 16, 16]


def test_d_empty():
    """No Gaussians (G = 0), or all culled/invalid: image == background exactly, alpha == depth == 0,
    and grad.background == sum of wI over the pixels."""
    rng = np.random.default_rng(3)
    W, H = 40, 32
    cam, K = ident_cam(48.0, W, H)
    bg = rng.uniform(0, 1, 3)
    cams = np.tile(cam, (2, 2, 1, 1)), np.tile(K, (2, 2, 1, 1))
    empty = scene(np.zeros((2, 0, 3)), np.zeros((2, 0, 4)), np.zeros((2, 0, 3)), np.zeros((2, 0)),
                  np.zeros((2, 0, 3)), *cams, bg, W, H)
    G = 5
    means = rng.uniform(-0.1, 0.1, (2, G, 3))
    means[..., 2] = -0.5                                        # behind the camera
    means[0, 0, 2] = 0.005                                      # in front, closer than NEAR
    culled = scene(means, unit_quats(2 * G, rng).reshape(2, G, 4), np.full((2, G, 3), 0.02),
                   np.full((2, G), 0.8), rng.uniform(0, 1, (2, G, 3)), *cams, bg, W, H)
    culled["scales"][1, 1, 0] = 0.0                             # and one invalid
    for name, sc, nbad in (("G=0", empty, 0), ("culled", culled, 1)):
        for dt in (torch.float64, torch.float32):
            out, _ = rr.run_scene(sc, dt)
            bgd = np.asarray(bg, dtype=out["image"].dtype)
            assert np.array_equal(out["image"], np.broadcast_to(bgd, out["image"].shape)), name
            assert not out["alpha"].any() and not out["depth"].any(), name
            assert int(out["n_invalid"][0]) == nbad, name
            for k in rr.GAUSS_KEYS:
                assert not out["grad." + k].any(), name
            gb = sc["wI"].sum((0, 1, 2, 3))
            assert np.abs(out["grad.background"] - gb).max() <= (1e-9 if dt == F64 else 1e-3), name


def test_e_alpha_range():
    """alpha in [0, 1], depth >= 0, image finite on random/aligned/invalid scenes, both dtypes;
    tile and dense modes agree; float32 agrees with float64 to float32 accuracy."""
    for kind, seed in (("random", 1), ("aligned", 2), ("invalid", 3)):
        sc, _ = rr.make_scene(kind, seed, B=2, G=150, Cm=2, W=36, H=28)
        o64, _ = rr.run_scene(sc, F64)
        o32, _ = rr.run_scene(sc, torch.float32)
        od, _ = rr.run_scene(sc, F64, mode="dense")
        for o in (o64, o32):
            assert o["alpha"].min() >= 0 and o["alpha"].max() <= 1, kind
            assert o["depth"].min() >= 0, kind
            assert all(np.isfinite(v).all() for v in o.values()), kind
        assert o64["alpha"].max() > 0.9, kind
        for k in o64:
            if k == "n_invalid":
                continue
            scale = max(1.0, np.abs(o64[k]).max())
            assert np.abs(od[k] - o64[k]).max() <= 1e-10 * scale, (kind, k, "dense")
            assert np.abs(o32[k] - o64[k]).max() <= 2e-5 * scale, (kind, k, "float32")


def test_f_invalid():
    """Invalid Gaussians (NaN mean, Inf colour, zero/negative scale, zero or tiny quaternion, NaN
    opacity, -Inf quaternion) are counted, produce no NaN, get zero gradient and change nothing;
    opacity 1.5 acts as 1 (zero gradient), -0.2 as 0 (never drawn, zero gradient)."""
    B = 2
    sc, _ = rr.make_scene("invalid", 4, B=B, G=60, Cm=2, W=40, H=32)
    bad = list(range(6, 14))
    for dt in (F64, torch.float32):
        out, _ = rr.run_scene(sc, dt)
        assert int(out["n_invalid"][0]) == len(bad) * B, out["n_invalid"]
        assert all(np.isfinite(v).all() for v in out.values())
        for k in rr.GAUSS_KEYS:
            assert not out["grad." + k][:, bad].any(), k
        assert not out["grad.opacities"][:, [14, 15]].any()
        assert out["alpha"].max() > 0.9
    out, _ = rr.run_scene(sc, F64)
    # the same scene with the invalid ones removed, opacity 1.5 -> 1 and -0.2 removed
    keep = [g for g in range(sc["means"].shape[1]) if g not in bad and g != 15]
    sc2 = dict(sc)
    for k in rr.GAUSS_KEYS:
        sc2[k] = sc[k][:, keep].copy()
    sc2["opacities"][:, keep.index(14)] = 1.0
    out2, _ = rr.run_scene(sc2, F64)
    assert int(out2["n_invalid"][0]) == 0
    for k in ("image", "alpha", "depth", "grad.background"):
        assert np.abs(out[k] - out2[k]).max() < 1e-12, k
    for k in rr.GAUSS_KEYS:
        d = np.abs(out["grad." + k][:, keep] - out2["grad." + k])
        if k == "opacities":      # o = 1.5 gets no gradient, o = 1.0 does (torch.clamp, inclusive)
            d[:, keep.index(14)] = 0
        assert d.max() < 1e-12, k
    # opacity 1.5 is drawn (it saturates in camera 0) and alone would differ from opacity 0
    sc3 = dict(sc2)
    sc3["opacities"] = sc2["opacities"].copy()
    sc3["opacities"][:, keep.index(14)] = 0.0
    out3, _ = rr.run_scene(sc3, F64)
    assert np.abs(out3["image"] - out2["image"]).max() > 0.1


def test_g_tile_rule():
    """A Gaussian whose rectangle ends at a tile edge does not reach the next tile, although its
    footprint (alpha >= 1/255 there, computed here from the conic) would; moved 1 px right, it does."""
    W, H, f = 48, 16, 40.0
    cam, K = ident_cam(f, W, H)
    s, z, o = 0.042, 1.0, 0.99            # 3*sqrt(lambda_max) ~ 5.6 px: r = 6

    def proj(x):
        t = rr.scene_tensors(scene(np.array([[[x, 0.0, z]]]), [[[1.0, 0, 0, 0]]], np.full((1, 1, 3), s),
                                   [[o]], [[[1.0, 1, 1]]], cam[None, None], K[None, None],
                                   np.zeros(3), W, H), F64, False)
        g = rr.project(t["means"][0], rr.covariance3d(t["quats"][0], t["scales"][0]),
                       t["opacities"][0], t["colors"][0], torch.arange(1), t["w2c"][0, 0],
                       t["K"][0, 0], W, H)
        return g

    # place it so that u + r = 16.9: x1 = floor((16.9 + 15)/16) = 1 (tile 0 only), although the
    # footprint's 3-sigma radius reaches past pixel 16 (centre 16.5)
    x = (10.0 - K[0, 2]) / f
    for _ in range(5):
        g = proj(x)
        u = float(g["u"][0])
        r = math.ceil(float(g["diag"]["r3"][0]))
        x += (16.9 - r - u) / f
    g = proj(x)
    u, r = float(g["u"][0]), math.ceil(float(g["diag"]["r3"][0]))
    assert abs(u + r - 16.9) < 1e-9 and int(g["x0"][0]) == 0 and int(g["x1"][0]) == 1, (u, r)
    # footprint at pixel (16, 8): alpha from the conic, independent of composite()
    A, Bc, C = (float(g[k][0]) for k in ("A", "B", "C"))
    dx, dy = 16.5 - u, 8.5 - float(g["v"][0])
    a16 = o * math.exp(-(0.5 * (A * dx * dx + C * dy * dy) + Bc * dx * dy))
    assert a16 > 1.5 * rr.ALPHA_MIN, a16
    print("    u = %.3f, r = %d, rectangle x [0, 1); footprint alpha at pixel 16 = %.4f (>= 1/255)"
          % (u, r, a16))
    sc = scene(np.array([[[x, 0.0, z]]]), [[[1.0, 0, 0, 0]]], np.full((1, 1, 3), s), [[o]],
               [[[1.0, 1, 1]]], cam[None, None], K[None, None], np.zeros(3), W, H)
    _, al, _, _ = fwd(sc)
    assert al[0, 0, 8, 15] > 0.01 and al[0, 0, :, 16:].max() == 0.0, (al[0, 0, 8, 14:18])
    # 1 px to the right: u + r = 17.9 -> x1 = 2, pixel 16 is lit with the footprint's alpha
    sc["means"][0, 0, 0] += 1.0 / f
    _, al, _, _ = fwd(sc)
    assert al[0, 0, 8, 16] > rr.ALPHA_MIN, al[0, 0, 8, 14:18]
    # left side: u - r = 16.3 -> x0 = 1, so tile 0 is not touched (pixels 0..15 stay empty)
    x = (16.3 + r - K[0, 2]) / f
    g = proj(x)
    assert math.ceil(float(g["diag"]["r3"][0])) == r and int(g["x0"][0]) == 1
    sc["means"][0, 0, 0] = x
    _, al, _, _ = fwd(sc)
    assert al[0, 0, :, :16].max() == 0.0 and al[0, 0, 8, 17] > 0.01


def test_h_stop_and_skip():
    """Compositing arithmetic at a pixel centre (sigma = 0 exactly, so alpha = o): the stop rule
    (the Gaussian taking T to <= T_MIN and all later ones are dropped) and the ALPHA_MIN skip."""
    W, H, f = 32, 32, 32.0
    cam, K = ident_cam(f, W, H)
    bg = np.array([0.25, 0.5, 0.75])
    c = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0.5, 0.5, 0.5]])
    zs = [1.0, 1.1, 1.2, 1.3, 1.4]
    means = np.array([[[0.5 / f * z, 0.5 / f * z, z] for z in zs]])     # all on pixel (16,16)
    for o, want_fn in (
            # 0.95, 0.95 -> T = 0.0025; the third (0.99) would take T to 2.5e-5 <= 1e-4: stop
            ([0.95, 0.95, 0.995, 0.5, 0.5],
             lambda: 0.95 * c[0] + 0.95 * 0.05 * c[1] + 0.05 * 0.05 * bg),
            # 0.5 then 0.0039 < 1/255 (skipped, T unchanged) then 0.004 >= 1/255 (drawn)
            ([0.5, 0.0039, 0.004, 0.0, 0.0],
             lambda: 0.5 * c[0] + 0.5 * 0.004 * c[2] + 0.5 * 0.996 * bg)):
        sc = scene(means, np.tile([1.0, 0, 0, 0], (1, 5, 1)), np.full((1, 5, 3), 0.03),
                   np.array([o]), c[None], cam[None, None], K[None, None], bg, W, H)
        im, al, de, _ = fwd(sc)
        assert np.abs(im[0, 0, 16, 16] - want_fn()).max() < 1e-12, (im[0, 0, 16, 16], want_fn())
    # a lone Gaussian below ALPHA_MIN leaves the background bit-exact everywhere
    sc = scene(means[:, :1], [[[1.0, 0, 0, 0]]], np.full((1, 1, 3), 0.03), [[0.0039]], c[None, :1],
               cam[None, None], K[None, None], bg, W, H)
    im, al, de, _ = fwd(sc)
    assert np.array_equal(im[0, 0], np.broadcast_to(bg, im[0, 0].shape)) and not al.any()


TESTS = [test_a_gradcheck, test_b_point_projection, test_c_occlusion_and_order, test_d_empty,
         test_e_alpha_range, test_f_invalid, test_g_tile_rule, test_h_stop_and_skip]


def main():
    sel = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    failed = 0
    for t in TESTS:
        if sel and sel not in t.__name__:
            continue
        t0 = time.perf_counter()
        try:
            t()
            print("PASS %s (%.1fs)" % (t.__name__, time.perf_counter() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
    print("%d failed" % failed if failed else "all passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
