#!/usr/bin/python3
"""Naive PyTorch reference Gaussian rasterizer of avat3r.c, written from docs/render.md only.

Forward only; every gradient comes from autograd (no hand-written backward), so this file is the
oracle the C rasterizer (forward and hand-written backward) is tested against. Run with Debian's
/usr/bin/python3 (torch 1.13).

  raster_ref.py render    --scene S.atb --out D.atb [--dtype float64|float32] [--threads N]
                          [--mode tile|dense]
  raster_ref.py bench     --scene S.atb [--iters N] [--warmup W] [--threads T] [--dtype ..]
  raster_ref.py makescene --out S.atb --kind random|aligned|invalid --seed S
                          [--B 1 --G 200 --Cm 2 --W 40 --H 32 --K 3] [--V 4 --in-w 16 --in-h 16]
                          [--margin 1e-4]
  raster_ref.py margins   --scene S.atb      (how far the scene is from the forward's knife edges)

Scene bundle (float64 unless said): means [B,G,3], quats [B,G,4], scales [B,G,3], opacities [B,G],
colors [B,G,K], w2c [B,Cm,3,4], K [B,Cm,3,3], background [K], size (int32 [2] = W, H) and the
test-loss weights wI [B,Cm,H,W,K], wA [B,Cm,H,W], wD [B,Cm,H,W].
Render bundle (run dtype): image [B,Cm,H,W,K], alpha [B,Cm,H,W], depth [B,Cm,H,W], loss [1]
(= sum wI*image + sum wA*alpha + sum wD*depth), grad.<means|quats|scales|opacities|colors|background>,
n_invalid (int32 [1], counted over all B*G Gaussians).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

DEFAULT_THREADS = 2


if __name__ == "__main__":
    sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from preset_threads import preset_threads

    preset_threads(sys.argv[1:], DEFAULT_THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import atb  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# ----------------------------------------------------------------------------- constants (render.md)
NEAR = 0.01
BLUR = 0.3
TILE = 16
ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
CLAMP_FOV = 1.3
QUAT_MIN = 1e-12   # a quaternion shorter than this makes the Gaussian invalid
# ONE_MINUS_ALPHA_MIN (1e-6) is a backward-only constant of the C code; autograd needs none.

GAUSS_KEYS = ("means", "quats", "scales", "opacities", "colors")
GRAD_KEYS = GAUSS_KEYS + ("background",)


def _c(x, like):
    """A constant in the run dtype (so float32 runs compare against float32-rounded constants,
    as C code with float constants does)."""
    return torch.tensor(x, dtype=like.dtype)


# ----------------------------------------------------------------------------- per-Gaussian part

def validity(means, quats, scales, opacities, colors):
    """[B,G] bool: render.md step 1. Invalid = any NaN/Inf input, any scale <= 0, |q| < 1e-12."""
    with torch.no_grad():
        ok = (torch.isfinite(means).all(-1) & torch.isfinite(quats).all(-1)
              & torch.isfinite(scales).all(-1) & torch.isfinite(opacities)
              & torch.isfinite(colors).all(-1))
        ok &= (scales > 0).all(-1)
        qlen = torch.sqrt((torch.nan_to_num(quats) ** 2).sum(-1))
        ok &= qlen >= _c(QUAT_MIN, quats)
    return ok


def quat_to_rotmat(q):
    """q [N,4] = (w,x,y,z), already normalised -> [N,3,3] (render.md step 3)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(-1, 3, 3)


def covariance3d(quats, scales):
    """Sigma = M M^T with M = Rq diag(s), q normalised inside. quats [N,4], scales [N,3]."""
    q = quats / torch.sqrt((quats * quats).sum(-1, keepdim=True))
    M = quat_to_rotmat(q) * scales[:, None, :]          # column j of Rq scaled by s_j
    return M @ M.transpose(1, 2)


def project(means, Sigma, opac, colors, gidx, w2c, K, W, H):
    """Per-Gaussian part of one image (render.md steps 2, 4-8) for the valid Gaussians of one scene.

    means [N,3], Sigma [N,3,3], opac [N] (already clamped to [0,1]), colors [N,Kc], gidx [N] (their
    Gaussian indices, ascending); w2c [3,4], K [3,3]. Culled Gaussians are dropped (differentiable
    boolean indexing, so they get zero gradient). Returns a dict of the kept Gaussians in compositing
    order (z ascending, ties by Gaussian index: a stable sort over index order), with the integer tile
    rectangle [x0,x1) x [y0,y1) (no gradient) and some diagnostics."""
    R, t = w2c[:, :3], w2c[:, 3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    p = means @ R.T + t                                   # camera space
    keep = (p[:, 2] >= _c(NEAR, p)).detach()              # step 2: z < NEAR is culled
    n_near = int((~keep).sum())
    p, Sigma, opac, colors, gidx = p[keep], Sigma[keep], opac[keep], colors[keep], gidx[keep]
    px, py, z = p.unbind(-1)

    u = fx * (px / z) + cx                                # step 4
    v = fy * (py / z) + cy

    # step 5: EWA Jacobian with the Inria frustum clamp; torch.clamp passes no gradient where active
    limx = (CLAMP_FOV * 0.5 * W / fx).item()              # exact value in the run dtype
    limy = (CLAMP_FOV * 0.5 * H / fy).item()
    tx = z * torch.clamp(px / z, -limx, limx)
    ty = z * torch.clamp(py / z, -limy, limy)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / (z * z),
                     zero, fy / z, -fy * ty / (z * z)], -1).reshape(-1, 2, 3)

    # step 6: Sigma2 = J R Sigma R^T J^T + BLUR I
    T = J @ R
    S2 = T @ Sigma @ T.transpose(1, 2)
    a = S2[:, 0, 0] + BLUR
    b = S2[:, 0, 1]
    c = S2[:, 1, 1] + BLUR
    det = a * c - b * b
    keep = (det > 0).detach()
    n_det = int((~keep).sum())

    # step 7: radius (no gradient)
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.1))
        r3 = 3 * torch.sqrt(lam)                           # kept for the margin diagnostics
        r = torch.ceil(r3)
        # step 8: tile rectangle, computed in the run dtype then clamped to the tile grid
        tiles_x, tiles_y = -(-W // TILE), -(-H // TILE)
        fx0, fx1 = torch.floor((u - r) / TILE), torch.floor((u + r + TILE - 1) / TILE)
        fy0, fy1 = torch.floor((v - r) / TILE), torch.floor((v + r + TILE - 1) / TILE)
        x0, x1 = fx0.clamp(0, tiles_x).long(), fx1.clamp(0, tiles_x).long()
        y0, y1 = fy0.clamp(0, tiles_y).long(), fy1.clamp(0, tiles_y).long()
        keep &= (x1 > x0) & (y1 > y0)                      # empty rectangle: culled
    n_rect = int((~keep).sum()) - n_det

    det = det[keep]
    g = dict(u=u[keep], v=v[keep], A=c[keep] / det, B=-b[keep] / det, C=a[keep] / det,
             o=opac[keep], z=z[keep], col=colors[keep], gidx=gidx[keep],
             x0=x0[keep], x1=x1[keep], y0=y0[keep], y1=y1[keep])
    diag = dict(r3=r3[keep], fx=torch.stack([(u - r) / TILE, (u + r + TILE - 1) / TILE], -1)[keep],
                fy=torch.stack([(v - r) / TILE, (v + r + TILE - 1) / TILE], -1)[keep],
                fovx=(px / z).detach()[keep] / limx, fovy=(py / z).detach()[keep] / limy,
                z=z.detach()[keep])
    order = torch.sort(g["z"].detach(), stable=True)[1]   # ties stay in Gaussian-index order
    g = {k: val[order] for k, val in g.items()}
    diag = {k: val[order] for k, val in diag.items()}
    g["diag"] = diag
    g["culled"] = dict(near=n_near, det=n_det, rect=n_rect)
    return g


# ----------------------------------------------------------------------------- per-pixel part

def composite(pxc, pyc, g, sel, background, cand_mask=None, diag=None):
    """Front-to-back compositing of the pixels with centres (pxc, pyc) [P] over the Gaussians
    g[...][sel] (already in compositing order). cand_mask [P,N'] (optional): which of them are
    candidates of each pixel (the tile rule, dense mode). Returns image [P,Kc], alpha [P], depth [P].

    Skipped Gaussians get alpha 0, i.e. a factor (1 - 0) = 1 exactly, so one cumulative product over
    the whole ordered list gives the T of the sequential loop of render.md. All masks (sigma < 0,
    alpha < ALPHA_MIN, the stop rule, the tile rule) are computed without gradient: they are
    constants for autograd, as the backward conventions of render.md require."""
    u, v, A, B, C = g["u"][sel], g["v"][sel], g["A"][sel], g["B"][sel], g["C"][sel]
    o, z, col = g["o"][sel], g["z"][sel], g["col"][sel]
    P, N = pxc.shape[0], u.shape[0]
    if N == 0:
        if diag is not None:
            diag.append(None)
        img = torch.ones(P, 1, dtype=background.dtype) * background
        zeros = torch.zeros(P, dtype=background.dtype)
        return img, zeros, zeros
    dx = pxc[:, None] - u[None, :]
    dy = pyc[:, None] - v[None, :]
    sigma = 0.5 * (A * dx * dx + C * dy * dy) + B * dx * dy
    raw = o * torch.exp(-sigma)
    alpha = torch.clamp(raw, max=ALPHA_MAX)                # no gradient where raw > ALPHA_MAX
    with torch.no_grad():
        cand = (sigma >= 0) & (alpha >= _c(ALPHA_MIN, alpha))
        if cand_mask is not None:
            cand &= cand_mask
        a0 = torch.where(cand, alpha, torch.zeros_like(alpha))
        T_incl = torch.cumprod(1 - a0, dim=1)              # T after each Gaussian (sequential product)
        # stop rule: the first Gaussian with T*(1-alpha) <= T_MIN and every later one do not
        # contribute. T is non-increasing along the list, so this inclusive mask is exactly that.
        contrib = cand & (T_incl > _c(T_MIN, alpha))
    if diag is not None:
        # raw material for margins(): the pairs that are reached (not behind the stop), whatever
        # their alpha, with alpha, raw alpha, T after them and the candidate mask
        with torch.no_grad():
            T_excl = torch.cat([torch.ones(P, 1, dtype=alpha.dtype), T_incl[:, :-1]], 1)
            reached = (sigma >= 0) & (T_excl > _c(T_MIN, alpha))
            if cand_mask is not None:
                reached &= cand_mask
            diag.append(dict(reached=reached, raw=raw.detach(), alpha=alpha.detach(), T=T_incl,
                             cand=cand, z=z.detach(), gidx=g["gidx"][sel]))
    a = torch.where(contrib, alpha, torch.zeros_like(alpha))
    T_incl = torch.cumprod(1 - a, dim=1)
    T_final = T_incl[:, -1]
    T_excl = torch.cat([torch.ones(P, 1, dtype=a.dtype), T_incl[:, :-1]], 1)
    w = a * T_excl                                         # alpha * T (T before this Gaussian)
    image = w @ col + T_final[:, None] * background
    return image, 1 - T_final, w @ z


def render(means, quats, scales, opacities, colors, w2c, K, background, W, H, mode="tile",
           diag=None):
    """The rasterizer of docs/render.md. Returns image [B,Cm,H,W,Kc], alpha [B,Cm,H,W],
    depth [B,Cm,H,W], n_invalid (int) and per-image statistics.

    mode 'tile': for each 16x16 tile, its pixels are composited over the Gaussians whose rectangle
    contains the tile (exactly the candidate list of render.md).
    mode 'dense': every pixel over every kept Gaussian, masked by the tile rule (same result)."""
    Bn, G = means.shape[:2]
    Cm = w2c.shape[1]
    Kc = colors.shape[-1]
    dt = means.dtype
    valid = validity(means, quats, scales, opacities, colors)
    n_invalid = int((~valid).sum())
    tiles_x, tiles_y = -(-W // TILE), -(-H // TILE)
    jj, ii = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    pxc_all = (ii.reshape(-1) + 0.5).to(dt)               # pixel centres, row-major (j, i)
    pyc_all = (jj.reshape(-1) + 0.5).to(dt)
    ptx_all, pty_all = ii.reshape(-1) // TILE, jj.reshape(-1) // TILE
    images, alphas, depths, stats = [], [], [], []
    for b in range(Bn):
        gidx = torch.nonzero(valid[b]).reshape(-1)         # ascending Gaussian index
        m, q, s = means[b][gidx], quats[b][gidx], scales[b][gidx]
        o = torch.clamp(opacities[b][gidx], 0.0, 1.0)      # (choice) clamp, gradient inside [0,1]
        col = colors[b][gidx]
        Sigma = covariance3d(q, s)
        im_b, al_b, de_b = [], [], []
        for c in range(Cm):
            g = project(m, Sigma, o, col, gidx, w2c[b, c], K[b, c], W, H)
            stats.append(dict(b=b, c=c, kept=int(g["u"].shape[0]), **g["culled"]))
            dimg = [] if diag is not None else None
            if mode == "dense":
                with torch.no_grad():
                    tm = ((g["x0"][None] <= ptx_all[:, None]) & (ptx_all[:, None] < g["x1"][None])
                          & (g["y0"][None] <= pty_all[:, None]) & (pty_all[:, None] < g["y1"][None]))
                allg = torch.ones(g["u"].shape[0], dtype=torch.bool)
                img, al, de = composite(pxc_all, pyc_all, g, allg, background, tm, dimg)
                img, al, de = img.reshape(H, W, Kc), al.reshape(H, W), de.reshape(H, W)
            else:
                img = torch.zeros(H, W, Kc, dtype=dt)
                al = torch.zeros(H, W, dtype=dt)
                de = torch.zeros(H, W, dtype=dt)
                for ty in range(tiles_y):
                    for tx in range(tiles_x):
                        sel = (g["x0"] <= tx) & (tx < g["x1"]) & (g["y0"] <= ty) & (ty < g["y1"])
                        xa, xb = tx * TILE, min(W, (tx + 1) * TILE)
                        ya, yb = ty * TILE, min(H, (ty + 1) * TILE)
                        jj_t, ii_t = torch.meshgrid(torch.arange(ya, yb), torch.arange(xa, xb),
                                                    indexing="ij")
                        pxc = (ii_t.reshape(-1) + 0.5).to(dt)
                        pyc = (jj_t.reshape(-1) + 0.5).to(dt)
                        bi, ba, bd = composite(pxc, pyc, g, sel, background, None, dimg)
                        img[ya:yb, xa:xb] = bi.reshape(yb - ya, xb - xa, Kc)
                        al[ya:yb, xa:xb] = ba.reshape(yb - ya, xb - xa)
                        de[ya:yb, xa:xb] = bd.reshape(yb - ya, xb - xa)
            if diag is not None:
                diag.append(dict(b=b, c=c, g=g, pix=dimg))
            im_b.append(img)
            al_b.append(al)
            de_b.append(de)
        images.append(torch.stack(im_b))
        alphas.append(torch.stack(al_b))
        depths.append(torch.stack(de_b))
    if Bn == 0:
        return (torch.zeros(0, Cm, H, W, Kc, dtype=dt), torch.zeros(0, Cm, H, W, dtype=dt),
                torch.zeros(0, Cm, H, W, dtype=dt), 0, [])
    return torch.stack(images), torch.stack(alphas), torch.stack(depths), n_invalid, stats


# ----------------------------------------------------------------------------- scenes

def scene_size(sc):
    W, H = (int(x) for x in np.asarray(sc["size"]).reshape(-1)[:2])
    return W, H


def scene_tensors(sc, dtype, requires_grad=True):
    """Leaf tensors of the Gaussians + background (with grad) and the cameras, in the run dtype."""
    t = {}
    for k in GRAD_KEYS:
        t[k] = torch.as_tensor(np.asarray(sc[k], dtype=np.float64)).to(dtype).clone()
        t[k].requires_grad_(requires_grad)
    for k in ("w2c", "K"):
        t[k] = torch.as_tensor(np.asarray(sc[k], dtype=np.float64)).to(dtype)
    return t


def run_scene(sc, dtype=torch.float64, mode="tile", backward=True):
    """Forward (+ backward of the test loss). Returns a dict ready for the output bundle."""
    W, H = scene_size(sc)
    t = scene_tensors(sc, dtype, backward)
    image, alpha, depth, n_invalid, stats = render(
        t["means"], t["quats"], t["scales"], t["opacities"], t["colors"], t["w2c"], t["K"],
        t["background"], W, H, mode)
    wI, wA, wD = (torch.as_tensor(np.asarray(sc[k], dtype=np.float64)).to(dtype)
                  for k in ("wI", "wA", "wD"))
    loss = (wI * image).sum() + (wA * alpha).sum() + (wD * depth).sum()
    out = dict(image=image, alpha=alpha, depth=depth, loss=loss.reshape(1))
    if backward:
        loss.backward()
        for k in GRAD_KEYS:
            out["grad." + k] = t[k].grad if t[k].grad is not None else torch.zeros_like(t[k])
    out = {k: v.detach().numpy() for k, v in out.items()}
    out["n_invalid"] = np.array([n_invalid], dtype=np.int32)
    return out, stats


STEP_FLAG = 1.0   # margins(): stop decisions that move the output by >= STEP_FLAG*T_MIN are flagged


def margins(sc, margin=None, zmargin=None):
    """Distances of a scene from the knife edges of the forward (evaluated in float64), where a tiny
    rounding difference (float32 vs float64, C vs PyTorch operation order) changes the output by a
    finite step or the gradient by a finite step. Returns (dict of the smallest margins, set of the
    (b, g) Gaussians closer than `margin` to one, when margin is given):
      alpha_min  |alpha/ALPHA_MIN - 1| over reached pairs (not behind the stop, sigma >= 0)
      alpha_max  |o*exp(-sigma)/ALPHA_MAX - 1| over reached pairs (gradient step of the clamp)
      t_min      |T_after/T_MIN - 1| over reached candidates whose stop would move the output by
                 alpha*T_before >= STEP_FLAG*T_MIN, i.e. alpha >= 0.5 (e.g. two saturated Gaussians:
                 T = 0.01^2 = T_MIN exactly); all the candidates of such a pixel are flagged.
                 t_min_any: the same over every candidate (not flagged: a wrong stop decision there
                 moves the output by < T_MIN*|colour - ...|)
      z_order    |z_next/z - 1| between consecutive reached candidates of a pixel (sort order;
                 checked against zmargin, default margin/100: z is only rounded, never thresholded)
      radius     |3*sqrt(lambda_max) - nearest integer| (px; the ceil)
      rect       |(u-r)/16 or (u+r+15)/16 - nearest integer in [1, tiles]| (tiles; the floor)
      fov        | |x/z| / lim - 1 | (gradient step of the frustum clamp)"""
    W, H = scene_size(sc)
    if margin is not None and zmargin is None:
        zmargin = margin / 100
    t = scene_tensors(sc, torch.float64, False)
    diag = []
    with torch.no_grad():
        render(t["means"], t["quats"], t["scales"], t["opacities"], t["colors"], t["w2c"], t["K"],
               t["background"], W, H, "tile", diag)
    tiles = {"fx": -(-W // TILE), "fy": -(-H // TILE)}
    best = dict(alpha_min=math.inf, alpha_max=math.inf, t_min=math.inf, t_min_any=math.inf,
                z_order=math.inf,
                radius=math.inf, rect=math.inf, fov=math.inf)
    bad = set()
    why = {}          # knife-edge kind -> number of flagged (pair or Gaussian) cases

    def note(key, vals, gids, b):
        if vals.numel() == 0:
            return
        best[key] = min(best[key], float(vals.min()))
        if margin is not None:
            for gi in gids[vals < margin].tolist():
                bad.add((b, int(gi)))
                why[key] = why.get(key, 0) + 1

    for d in diag:
        b, g = d["b"], d["g"]
        dg, gid = g["diag"], g["gidx"]
        r3 = dg["r3"]
        note("radius", (r3 - torch.round(r3)).abs(), gid, b)
        for key in ("fx", "fy"):
            f = dg[key]
            dist = (f - torch.round(f)).abs()
            matters = (f > 0.5) & (f < tiles[key] + 0.5)     # only integers 1..tiles move the clamp
            dist = torch.where(matters, dist, torch.full_like(dist, math.inf)).min(-1)[0]
            note("rect", dist, gid, b)
        for key in ("fovx", "fovy"):
            note("fov", (dg[key].abs() - 1).abs(), gid, b)
        for pd in d["pix"] or []:
            if pd is None:
                continue
            rch, gsel = pd["reached"], pd["gidx"]
            if not bool(rch.any()):
                continue
            cols = torch.nonzero(rch)[:, 1]
            note("alpha_min", (pd["alpha"][rch] / ALPHA_MIN - 1).abs(), gsel[cols], b)
            note("alpha_max", (pd["raw"][rch] / ALPHA_MAX - 1).abs(), gsel[cols], b)
            cr = pd["cand"] & rch
            if not bool(cr.any()):
                continue
            tm = torch.where(cr, (pd["T"] / T_MIN - 1).abs(), torch.full_like(pd["T"], math.inf))
            best["t_min_any"] = min(best["t_min_any"], float(tm.min()))
            # a stop decision only moves the output by this Gaussian's alpha*T_before (after it T
            # is ~T_MIN anyway): flag the steps >= STEP_FLAG*T_MIN (alpha >= 0.5); the smaller
            # ones are left alone (they are reported as t_min_any)
            step = pd["alpha"] * pd["T"] / (1 - pd["alpha"])
            tm = torch.where(step >= STEP_FLAG * T_MIN, tm, torch.full_like(tm, math.inf))
            best["t_min"] = min(best["t_min"], float(tm.min()))
            if margin is not None:
                rows = (tm < margin).any(1)
                for gi in gsel[torch.nonzero(cr & rows[:, None])[:, 1]].tolist():
                    bad.add((b, int(gi)))
                    why["t_min"] = why.get("t_min", 0) + 1
            rc = torch.nonzero(cr)                            # (pixel, column), row-major
            same = rc[1:, 0] == rc[:-1, 0]
            if bool(same.any()):
                z = pd["z"]
                z0, z1 = z[rc[:-1, 1][same]], z[rc[1:, 1][same]]
                gap = (z1 / z0 - 1).abs()
                best["z_order"] = min(best["z_order"], float(gap.min()))
                if margin is not None:
                    close = gap < zmargin
                    for gi in torch.cat([gsel[rc[:-1, 1][same][close]],
                                         gsel[rc[1:, 1][same][close]]]).tolist():
                        bad.add((b, int(gi)))
                        why["z_order"] = why.get("z_order", 0) + 1
    margins.why = why
    return best, bad


def look_at(centre, target, rng, roll=0.1):
    """OpenCV w2c [R|t]: rows of R = camera x (right), y (down), z (forward) in world coordinates."""
    f = target - centre
    f = f / np.linalg.norm(f)
    down = np.array([0.0, 1.0, 0.0]) + rng.normal(0, roll, 3)   # world y is "down", jittered (roll)
    x = np.cross(down, f)
    x /= np.linalg.norm(x)
    y = np.cross(f, x)
    R = np.stack([x, y, f])
    return np.concatenate([R, (-R @ centre)[:, None]], 1)


def random_camera(rng, W, H, dist=1.0, spread=1.0):
    az, el = rng.uniform(-spread, spread), rng.uniform(-0.4, 0.4)
    r = dist * rng.uniform(0.9, 1.1)
    centre = r * np.array([math.cos(el) * math.sin(az), math.sin(el), -math.cos(el) * math.cos(az)])
    w2c = look_at(centre, rng.normal(0, 0.02, 3), rng)
    fx = 1.2 * W * rng.uniform(0.95, 1.05)
    fy = fx * rng.uniform(0.97, 1.03)
    K = np.array([[fx, 0, W / 2], [0, fy, H / 2], [0, 0, 1.0]])
    return w2c, K


def random_quats(rng, n):
    q = rng.normal(0, 1, (n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q * rng.uniform(0.5, 2.0, (n, 1))          # any length: normalised inside


def make_scene(kind, seed, B=1, G=200, Cm=2, W=40, H=32, K=3, V=4, in_w=16, in_h=16, margin=1e-4,
               max_rounds=200, verbose=False):
    rng = np.random.default_rng(seed)
    w2c = np.zeros((B, Cm, 3, 4))
    Ks = np.zeros((B, Cm, 3, 3))
    if kind in ("random", "invalid"):
        means = rng.uniform(-0.15, 0.15, (B, G, 3))              # ~0.3 m cube around the origin
        quats = random_quats(rng, B * G).reshape(B, G, 4)
        scales = np.exp(rng.uniform(math.log(0.005), math.log(0.05), (B, G, 3)))
        opac = rng.uniform(0.05, 0.95, (B, G))
        nearly = rng.uniform(size=(B, G)) < 0.15
        opac[nearly] = rng.uniform(0.98, 0.999, int(nearly.sum()))  # some nearly opaque
        colors = rng.uniform(0, 1, (B, G, K))
        for b in range(B):
            for c in range(Cm):
                w2c[b, c], Ks[b, c] = random_camera(rng, W, H)
            if G >= 12:
                # special Gaussians, relative to camera 0 of the scene
                R, t = w2c[b, 0, :, :3], w2c[b, 0, :, 3]
                cen = -R.T @ t
                ex, ey, ez = R
                fx = Ks[b, 0, 0, 0]
                means[b, 0] = cen - 0.2 * ez + 0.01 * ex               # behind camera 0
                means[b, 1] = cen - 0.05 * ez - 0.02 * ey              # behind camera 0
                means[b, 2] = cen + 0.005 * ez                         # 0 < z < NEAR: culled
                means[b, 3] = cen + 1.0 * ez + 0.8 * ex                # far off-screen (clamped)
                means[b, 4] = cen + 1.0 * ez - 0.9 * ey                # far off-screen in y
                xz = (W / 2 + 2.0) / fx                                # just right of the image,
                means[b, 5] = cen + 1.0 * (ez + xz * ex)               # large, reaching into it
                scales[b, 5] = [0.04, 0.03, 0.05]
                opac[b, 5] = 0.9
    elif kind == "aligned":
        # "pixel-aligned" Gaussians as the model produces: one per pixel of V input cameras
        G = V * in_h * in_w
        means = np.zeros((B, G, 3))
        scales = np.zeros((B, G, 3))
        for b in range(B):
            incams = [random_camera(rng, in_w, in_h, spread=0.8) for _ in range(V)]
            for c in range(Cm):
                w2c[b, c], Ks[b, c] = random_camera(rng, W, H, spread=0.8)
            n = 0
            for (cw, ck) in incams:
                R, t = cw[:, :3], cw[:, 3]
                cen = -R.T @ t
                jj, ii = np.meshgrid(np.arange(in_h) + 0.5, np.arange(in_w) + 0.5, indexing="ij")
                pix = np.stack([ii.reshape(-1), jj.reshape(-1), np.ones(in_h * in_w)], 1)
                rays = pix @ np.linalg.inv(ck).T                      # camera-space ray, z = 1
                depth = 1.0 + 0.05 * np.cos(3 * rays[:, 0]) * np.cos(3 * rays[:, 1]) \
                    + rng.normal(0, 0.01, in_h * in_w)                # ~1 m, smooth + noise
                pc = rays * depth[:, None]
                means[b, n:n + len(pc)] = pc @ R + cen                # R^T p + centre
                foot = depth / ck[0, 0]                               # pixel footprint (m)
                scales[b, n:n + len(pc)] = foot[:, None] * rng.uniform(0.5, 1.5, (len(pc), 3))
                n += len(pc)
        quats = random_quats(rng, B * G).reshape(B, G, 4)
        opac = rng.uniform(0.05, 0.999, (B, G))
        colors = rng.uniform(0, 1, (B, G, K))
    else:
        raise ValueError("unknown scene kind '%s'" % kind)
    if kind == "invalid":
        if G < 20:
            raise ValueError("kind 'invalid' needs G >= 20")
        for b in range(B):
            means[b, 6, 1] = np.nan                  # NaN mean
            colors[b, 7, 0] = np.inf                 # Inf colour
            scales[b, 8, 2] = 0.0                    # zero scale
            scales[b, 9, 0] = -0.01                  # negative scale
            quats[b, 10] = 0.0                       # zero quaternion
            quats[b, 11] = 1e-13                     # |q| = 2e-13 < 1e-12
            opac[b, 12] = np.nan                     # NaN opacity
            quats[b, 13, 3] = -np.inf                # -Inf quaternion component
            opac[b, 14] = 1.5                        # valid, clamped to 1 (saturates)
            opac[b, 15] = -0.2                       # valid, clamped to 0 (never drawn)
            for gi in (14, 15):                      # put both in front of camera 0
                R, t = w2c[b, 0, :, :3], w2c[b, 0, :, 3]
                means[b, gi] = -R.T @ t + 0.8 * R[2] + 0.02 * (gi - 14.5) * R[0]
                scales[b, gi] = 0.02
    sc = dict(means=means, quats=quats, scales=scales, opacities=opac, colors=colors, w2c=w2c, K=Ks,
              background=rng.uniform(0, 1, K), size=np.array([W, H], dtype=np.int32),
              wI=rng.normal(0, 1, (B, Cm, H, W, K)), wA=rng.normal(0, 1, (B, Cm, H, W)),
              wD=rng.normal(0, 1, (B, Cm, H, W)))
    # Keep the scene away from the knife edges of the forward, so that float32/float64 and C/PyTorch
    # agree on every discrete decision: nudge the offending Gaussians until all margins are clear.
    best = None
    for rnd in range(max_rounds):
        best, bad = margins(sc, margin)
        if not bad:
            break
        for (b, gi) in sorted(bad):
            sc["scales"][b, gi] *= rng.uniform(0.97, 1.03, 3)
            sc["means"][b, gi] += rng.normal(0, 5e-4, 3)
            o = sc["opacities"][b, gi]
            if ALPHA_MAX < o < 1:        # saturating: step back below the clamp (two saturated
                sc["opacities"][b, gi] = rng.uniform(0.975, 0.989)   # ones make T = T_MIN)
            elif 0 < o <= ALPHA_MAX:
                sc["opacities"][b, gi] = o * rng.uniform(0.99, 1.0)
        if verbose:
            print("makescene: round %d nudged %d Gaussians %s" % (rnd, len(bad), margins.why))
    else:
        raise ValueError("could not clear the knife-edge margins in %d rounds" % max_rounds)
    sc = {k: (np.asarray(v, dtype=np.float64) if k != "size" else v) for k, v in sc.items()}
    return sc, best


# ----------------------------------------------------------------------------- commands

def load_scene(path):
    sc = atb.read_atb(path)
    need = ("means", "quats", "scales", "opacities", "colors", "w2c", "K", "background", "size",
            "wI", "wA", "wD")
    missing = [k for k in need if k not in sc]
    if missing:
        raise ValueError("%s: scene lacks %s" % (path, ", ".join(missing)))
    B, G = sc["means"].shape[:2]
    W, H = scene_size(sc)
    Cm, Kc = sc["w2c"].shape[1], sc["colors"].shape[-1]
    shapes = dict(means=(B, G, 3), quats=(B, G, 4), scales=(B, G, 3), opacities=(B, G),
                  colors=(B, G, Kc), w2c=(B, Cm, 3, 4), K=(B, Cm, 3, 3), background=(Kc,),
                  wI=(B, Cm, H, W, Kc), wA=(B, Cm, H, W), wD=(B, Cm, H, W))
    for k, s in shapes.items():
        if tuple(sc[k].shape) != s:
            raise ValueError("%s: %s has shape %s, expected %s" % (path, k, sc[k].shape, s))
    return sc


def cmd_render(args):
    sc = load_scene(args.scene)
    out, stats = run_scene(sc, DTYPES[args.dtype], args.mode)
    atb.write_atb(args.out, out)
    kept = sum(s["kept"] for s in stats)
    print("loss %.17g n_invalid %d kept(image-Gaussian pairs) %d dtype %s -> %s"
          % (float(out["loss"][0]), int(out["n_invalid"][0]), kept, args.dtype, args.out))


def cmd_bench(args):
    sc = load_scene(args.scene)
    dtype = DTYPES[args.dtype]
    W, H = scene_size(sc)
    wI, wA, wD = (torch.as_tensor(sc[k]).to(dtype) for k in ("wI", "wA", "wD"))
    fwd, full = [], []
    for i in range(args.warmup + args.iters):
        t = scene_tensors(sc, dtype, True)
        t0 = time.perf_counter()
        image, alpha, depth, _, _ = render(t["means"], t["quats"], t["scales"], t["opacities"],
                                           t["colors"], t["w2c"], t["K"], t["background"], W, H,
                                           args.mode)
        loss = (wI * image).sum() + (wA * alpha).sum() + (wD * depth).sum()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if i >= args.warmup:
            fwd.append(1e3 * (t1 - t0))
            full.append(1e3 * (t2 - t0))
    print(json.dumps({"fwd_bwd_ms": round(statistics.median(full), 3),
                      "fwd_ms": round(statistics.median(fwd), 3),
                      "threads": torch.get_num_threads(), "dtype": args.dtype, "mode": args.mode,
                      "iters": args.iters, "torch": torch.__version__.split("a")[0]}))


def cmd_makescene(args):
    sc, best = make_scene(args.kind, args.seed, args.B, args.G, args.Cm, args.W, args.H, args.K,
                          args.V, args.in_w, args.in_h, args.margin)
    atb.write_atb(args.out, sc)
    B, G = sc["means"].shape[:2]
    print("wrote %s (kind %s, B=%d G=%d Cm=%d %dx%d K=%d) margins %s"
          % (args.out, args.kind, B, G, args.Cm, args.W, args.H, args.K,
             json.dumps({k: float("%.3g" % v) for k, v in best.items()})))


def cmd_margins(args):
    best, _ = margins(load_scene(args.scene))
    print(json.dumps({k: float("%.3g" % v) for k, v in best.items()}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("render")
    s.add_argument("--scene", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--dtype", choices=DTYPES, default="float64")
    s.add_argument("--mode", choices=("tile", "dense"), default="tile")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    s = sub.add_parser("bench")
    s.add_argument("--scene", required=True)
    s.add_argument("--iters", type=int, default=10)
    s.add_argument("--warmup", type=int, default=1)
    s.add_argument("--dtype", choices=DTYPES, default="float32")
    s.add_argument("--mode", choices=("tile", "dense"), default="tile")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    s = sub.add_parser("makescene")
    s.add_argument("--out", required=True)
    s.add_argument("--kind", choices=("random", "aligned", "invalid"), default="random",
                   help="aligned: G = V*in_h*in_w (--G is ignored)")
    s.add_argument("--seed", type=int, default=0)
    for k, d in (("B", 1), ("G", 200), ("Cm", 2), ("W", 40), ("H", 32), ("K", 3), ("V", 4)):
        s.add_argument("--" + k, type=int, default=d)
    s.add_argument("--in-w", type=int, default=16, help="aligned: input camera width")
    s.add_argument("--in-h", type=int, default=16, help="aligned: input camera height")
    s.add_argument("--margin", type=float, default=1e-4,
                   help="smallest allowed distance from a knife edge (see margins)")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    s = sub.add_parser("margins")
    s.add_argument("--scene", required=True)
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    args = ap.parse_args(argv)
    try:
        {"render": cmd_render, "bench": cmd_bench, "makescene": cmd_makescene,
         "margins": cmd_margins}[args.cmd](args)
    except (ValueError, OSError) as e:
        sys.exit("raster_ref: %s" % e)


if __name__ == "__main__":
    main()
