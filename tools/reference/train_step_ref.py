#!/usr/bin/python3
"""Independent PyTorch reference of ONE training step of avat3r.c (train/step.c + train/optim.c),
written from docs/model.md, docs/render.md and the loss/optimizer definitions below; the network is
avat3r_ref.py's and the rasterizer raster_ref.py's (imported, not copied). Gradients come from autograd
only. Run with Debian's /usr/bin/python3 (torch 1.13).

  train_step_ref.py step      --ckpt MODEL.ckpt --batch BATCH.atb --hyper HYPER.atb --out OUT.atb
                              [--dtype float64|float32] [--threads N] [--margins]
  train_step_ref.py makebatch --ckpt MODEL.ckpt --out BATCH.atb [--B 2] [--seed 0]
  train_step_ref.py makehyper --out HYPER.atb [--lr 1e-3 --w-l1 0.8 --w-ssim 0.2 --w-mouth 0 --bg 1,1,1
                              --beta1 0.9 --beta2 0.95 --eps 1e-8 --weight-decay 0.05 --grad-clip 1.0]
  train_step_ref.py selftest  [--threads N] [--keep DIR]

The step (B samples, everything in the run dtype, float64 by default):
  1. gauss [B, V*H*W, 14] = avat3r_ref.forward(batch)      (pos 3, rgb 3, scale 3, rot 4 (w,x,y,z), opac 1)
  2. image [B, Vt, H, W, 3] = raster_ref.render(gauss split into means/colors/scales/quats/opacities,
     tgt_w2c, tgt_K, background = bg)
  3. loss = w_l1 * mean|image - tgt_rgb| + w_ssim * (1 - SSIM(image, tgt_rgb)); SSIM: 11x11 Gaussian
     window (sigma 1.5, sum 1), F.conv2d with zero padding 5 per channel, C1 = 0.01^2, C2 = 0.03^2,
     mean over all N*C*H*W map values (N = B*Vt, x = prediction, y = ground truth). No LPIPS term.
     With w_mouth > 0 also + w_mouth * mean(tgt_mouth[..., None] * |image - tgt_rgb|) over all B*Vt*H*W*3
     elements (docs/losses.md "Mouth term"; tgt_mouth [B,Vt,H,W] from the batch, zeros when absent).
  4. autograd to the 39 parameter tensors of docs/model.md.
  5. grad_norm = global L2 norm of all gradients; if grad_clip > 0 and grad_norm > grad_clip every
     gradient is scaled by grad_clip / grad_norm (no +1e-6); then one torch.optim.AdamW step (t = 1,
     zero moments) with weight decay only on tensors whose name ends in "_w" and does not start with
     "ln" (train/optim.c's param_decays). A non-finite grad_norm leaves the parameters unchanged (as
     trainer_update does).

BATCH bundle (any float dtype): the network inputs under avat3r_ref.py's / docs/model.md's names
  rgb [B,V,H,W,3], pos [B,V,H,W,3] + conf [B,V,H,W] (use_dust3r), sap [B,V,hs,ws,CS] (use_sapiens),
  w2c [B,V,3,4], K [B,V,3,3], expr [B,E]; and the targets tgt_rgb [B,Vt,H,W,3], tgt_w2c [B,Vt,3,4],
  tgt_K [B,Vt,3,3] (Vt must equal the config's views_target, as in the C trainer). Other tensors
  (e.g. avat3r_ref's test weights `w`) are ignored.
HYPER bundle (any float dtype, one value each unless said): w_l1, w_ssim, bg [3], lr, beta1, beta2,
  eps, weight_decay, grad_clip; optional w_mouth (0 when absent). `lr` is the rate of THIS step (the C loop's train_lr(tc, step)).
OUT bundle (float64): loss [1], l1 [1], ssim [1] (mean SSIM), l1_mouth [1] (when w_mouth > 0), image [B,Vt,H,W,3],
  gauss [B,V*H*W,14], grad_norm [1] (before clipping), clip_scale [1] (1 when not clipped),
  then per parameter tensor of non-zero size, in table order: grad.<name> [size] (unclipped
  dL/dparam, flat) and param.<name> [size] (after the AdamW step, flat); tensors of size 0 (a disabled
  feature's) are left out, as in avat3r_ref.py's debug state. With --margins also margin.<key> [1]:
  raster_ref.margins() of the rendered scene (distance from the rasterizer's knife edges, float64).
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

DEFAULT_THREADS = 1  # micro configs: more threads only add synchronisation (and spin on a busy machine)

if __name__ == "__main__":
    from preset_threads import preset_threads  # this script's folder is sys.path[0]

    preset_threads(sys.argv[1:], DEFAULT_THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import atb  # noqa: E402
import avat3r_ref  # noqa: E402
from loss_ref import C1 as SSIM_C1, ssim, ssim_map, window_2d  # noqa: E402  (docs/losses.md)
import raster_ref  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}

NET_INPUTS = ("rgb", "pos", "conf", "sap", "w2c", "K", "expr")     # avat3r_ref.forward's names
TARGETS = ("tgt_rgb", "tgt_w2c", "tgt_K")
HYPER_KEYS = ("w_l1", "w_ssim", "bg", "lr", "beta1", "beta2", "eps", "weight_decay", "grad_clip")

# ----------------------------------------------------------------------------- loss

def forward_loss(cfg, P, batch, hyper):
    """Steps 1-3. P: name -> parameter tensor; batch: name -> tensor (run dtype); hyper: dict."""
    gauss = avat3r_ref.forward(cfg, P, batch)["gauss"]                     # [B, V*H*W, 14]
    H, W = cfg["img_h"], cfg["img_w"]
    image, _, _, n_invalid, _ = raster_ref.render(
        gauss[..., 0:3], gauss[..., 9:13], gauss[..., 6:9], gauss[..., 13], gauss[..., 3:6],
        batch["tgt_w2c"], batch["tgt_K"], hyper["bg"], W, H)                # [B, Vt, H, W, 3]
    tgt = batch["tgt_rgb"]
    l1 = (image - tgt).abs().mean()
    s = ssim(image.reshape(-1, H, W, 3), tgt.reshape(-1, H, W, 3))
    loss = hyper["w_l1"] * l1 + hyper["w_ssim"] * (1 - s)
    out = dict(loss=loss, l1=l1, ssim=s, image=image, gauss=gauss, n_invalid=n_invalid)
    if hyper["w_mouth"] > 0:
        m = batch.get("tgt_mouth")
        l1m = (m.unsqueeze(-1) * (image - tgt).abs()).mean() if m is not None else l1 * 0
        out["loss"], out["l1_mouth"] = loss + hyper["w_mouth"] * l1m, l1m
    return out


# ----------------------------------------------------------------------------- optimizer

def decays(name):
    """train/optim.c's param_decays: weight matrices only (not LayerNorm gains, biases, pos_emb)."""
    return name.endswith("_w") and not name.startswith("ln")


def clip_and_adamw(P, grads, hyper):
    """Step 5. P, grads: name -> tensor (table order). Returns (new params dict, grad_norm, scale).
    Global-norm clipping (scale = clip / norm exactly), then one torch.optim.AdamW step from zero
    moments with two parameter groups (decayed / not decayed)."""
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))
    new = {k: p.detach().clone() for k, p in P.items()}
    if not math.isfinite(norm):
        return new, norm, 1.0
    clip = hyper["grad_clip"]
    scale = clip / norm if clip > 0 and norm > clip else 1.0
    groups = ([], [])
    for k, p in new.items():
        if p.numel() == 0:
            continue
        p.requires_grad_(True)
        p.grad = grads[k].detach().clone() * scale
        groups[0 if decays(k) else 1].append(p)
    param_groups = [{"params": groups[0], "weight_decay": hyper["weight_decay"]},
                    {"params": groups[1], "weight_decay": 0.0}]
    param_groups = [g for g in param_groups if g["params"]]
    if param_groups:
        opt = torch.optim.AdamW(param_groups, lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]),
                                eps=hyper["eps"], amsgrad=False, maximize=False, foreach=False)
        opt.step()
    return {k: p.detach() for k, p in new.items()}, norm, scale


def train_step(cfg, P, batch, hyper):
    """Steps 1-5. P: leaf tensors with requires_grad. Returns a dict of tensors / floats."""
    for t in P.values():
        t.grad = None
    out = forward_loss(cfg, P, batch, hyper)
    out["loss"].backward()
    grads = {k: (t.grad if t.grad is not None else torch.zeros_like(t)).detach() for k, t in P.items()}
    new, norm, scale = clip_and_adamw(P, grads, hyper)
    out.update(grads=grads, params=new, grad_norm=norm, clip_scale=scale)
    return out


# ----------------------------------------------------------------------------- I/O

def read_hyper(path):
    h = atb.read_atb(path)
    missing = [k for k in HYPER_KEYS if k not in h]
    if missing:
        raise ValueError("%s: hyper bundle lacks %s" % (path, ", ".join(missing)))
    out = {"w_mouth": float(np.asarray(h["w_mouth"], dtype=np.float64).reshape(-1)[0]) if "w_mouth" in h else 0.0}
    for k in HYPER_KEYS:
        v = np.asarray(h[k], dtype=np.float64).reshape(-1)
        want = 3 if k == "bg" else 1
        if v.size != want:
            raise ValueError("%s: '%s' must hold %d value(s), has %d" % (path, k, want, v.size))
        out[k] = v if k == "bg" else float(v[0])
    return out


def load_inputs(ckpt, batch_path, hyper_path, dtype):
    """Returns (cfg, P, batch, hyper) in the run dtype, with the shapes checked against the config."""
    cfg, flat = atb.read_ckpt(ckpt)                       # avat3r_ref.py's loader (atb.read_ckpt +
    P = avat3r_ref.params_from_flat(cfg, flat, dtype)     # params_from_flat)
    b = atb.read_atb(batch_path)
    need = ["rgb", "w2c", "K", "expr"] + (["pos", "conf"] if cfg["use_dust3r"] else []) \
        + (["sap"] if cfg["use_sapiens"] else []) + list(TARGETS)
    missing = [k for k in need if k not in b]
    if missing:
        raise ValueError("%s: batch lacks %s" % (batch_path, ", ".join(missing)))
    batch = {k: torch.as_tensor(np.asarray(b[k], dtype=np.float64)).to(dtype) for k in need}
    if "tgt_mouth" in b:
        batch["tgt_mouth"] = torch.as_tensor(np.asarray(b["tgt_mouth"], dtype=np.float64)).to(dtype)
    B, V, H, W = batch["rgb"].shape[:4]
    Vt, E = cfg["views_target"], cfg["expr_dim"]
    want = {"rgb": (B, V, H, W, 3), "w2c": (B, V, 3, 4), "K": (B, V, 3, 3), "expr": (B, E),
            "pos": (B, V, H, W, 3), "conf": (B, V, H, W),
            "sap": (B, V, cfg["sapiens_h"], cfg["sapiens_w"], cfg["sapiens_ch"]),
            "tgt_rgb": (B, Vt, H, W, 3), "tgt_w2c": (B, Vt, 3, 4), "tgt_K": (B, Vt, 3, 3)}
    if (V, H, W) != (cfg["views_in"], cfg["img_h"], cfg["img_w"]):
        raise ValueError("%s: rgb %s does not match the config (views_in %d, %dx%d)"
                         % (batch_path, tuple(batch["rgb"].shape), cfg["views_in"], cfg["img_h"],
                            cfg["img_w"]))
    for k in need:
        if tuple(batch[k].shape) != want[k]:
            raise ValueError("%s: '%s' has shape %s, expected %s (views_target = %d)"
                             % (batch_path, k, tuple(batch[k].shape), want[k], Vt))
    hyper = read_hyper(hyper_path)
    hyper["bg"] = torch.as_tensor(hyper["bg"]).to(dtype)
    return cfg, P, batch, hyper


def out_bundle(out, margins=None):
    f64 = lambda t: np.asarray(t.detach().numpy() if torch.is_tensor(t) else t, dtype=np.float64)  # noqa
    items = [("loss", f64(out["loss"]).reshape(1)), ("l1", f64(out["l1"]).reshape(1)),
             ("ssim", f64(out["ssim"]).reshape(1)), ("image", f64(out["image"])),
             ("gauss", f64(out["gauss"])), ("grad_norm", np.array([out["grad_norm"]])),
             ("clip_scale", np.array([out["clip_scale"]]))]
    if "l1_mouth" in out:
        items.append(("l1_mouth", f64(out["l1_mouth"]).reshape(1)))
    for k, g in out["grads"].items():
        if g.numel():
            items.append(("grad." + k, f64(g).reshape(-1)))
            items.append(("param." + k, f64(out["params"][k]).reshape(-1)))
    for k, v in (margins or {}).items():
        items.append(("margin." + k, np.array([v], dtype=np.float64)))
    return items


def scene_margins(cfg, gauss, batch, bg):
    """raster_ref.margins() of the rendered scene (the Gaussians the step produced)."""
    g = gauss.detach().double().numpy()
    sc = dict(means=g[..., 0:3], colors=g[..., 3:6], scales=g[..., 6:9], quats=g[..., 9:13],
              opacities=g[..., 13], background=bg.detach().double().numpy(),
              w2c=batch["tgt_w2c"].double().numpy(), K=batch["tgt_K"].double().numpy(),
              size=np.array([cfg["img_w"], cfg["img_h"]], dtype=np.int32))
    best, _ = raster_ref.margins(sc)
    return best


def run_step_files(ckpt, batch_path, hyper_path, out_path, dtype_name="float64", margins=False):
    dtype = DTYPES[dtype_name]
    cfg, P, batch, hyper = load_inputs(ckpt, batch_path, hyper_path, dtype)
    out = train_step(cfg, P, batch, hyper)
    mg = scene_margins(cfg, out["gauss"], batch, hyper["bg"]) if margins else None
    atb.write_atb(out_path, out_bundle(out, mg))
    return cfg, out, mg


# ----------------------------------------------------------------------------- batches

def make_train_batch(cfg, B, seed):
    """Network inputs from avat3r_ref.make_batch (its test weights `w` dropped; DUSt3R points spread
    to +-0.3 m so the Gaussians cover the target images) plus Vt random target views around the head
    (distance ~1 m, focal ~1.05*max(H,W)) and uniform random target colours."""
    b = avat3r_ref.make_batch(cfg, B, seed)
    b.pop("w", None)
    rng = np.random.default_rng(seed + 7919)
    V, H, W, Vt = cfg["views_in"], cfg["img_h"], cfg["img_w"], cfg["views_target"]
    if cfg["use_dust3r"]:
        b["pos"] = rng.uniform(-0.3, 0.3, (B, V, H, W, 3))
    tw, tk = np.zeros((B, Vt, 3, 4)), np.zeros((B, Vt, 3, 3))
    for i in range(B):
        for j in range(Vt):
            az, el, r = rng.uniform(-1.2, 1.2), rng.uniform(-0.4, 0.4), rng.uniform(0.9, 1.1)
            cam = r * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
            tw[i, j] = avat3r_ref.look_at(cam)
            f = rng.uniform(0.95, 1.15) * max(H, W)
            tk[i, j] = [[f, 0, W / 2 + rng.uniform(-1, 1)], [0, f, H / 2 + rng.uniform(-1, 1)], [0, 0, 1]]
    b["tgt_rgb"] = rng.uniform(0, 1, (B, Vt, H, W, 3))
    b["tgt_w2c"], b["tgt_K"] = tw, tk
    # a mouth region in every target view but the last (the w_mouth term)
    b["tgt_mouth"] = np.zeros((B, Vt, H, W))
    for i in range(B):
        for j in range(Vt):
            if (i, j) != (B - 1, Vt - 1):
                y0, x0 = H // 2 + j, W // 3 + i
                b["tgt_mouth"][i, j, y0:y0 + max(2, H // 4), x0:x0 + max(3, W // 3)] = 1
    return {k: np.asarray(v, dtype=np.float64) for k, v in b.items()}


def hyper_bundle(lr=1e-3, w_l1=0.8, w_ssim=0.2, bg=(1.0, 1.0, 1.0), beta1=0.9, beta2=0.95, eps=1e-8,
                 weight_decay=0.05, grad_clip=1.0, w_mouth=0.0):
    one = lambda v: np.array([v], dtype=np.float64)  # noqa: E731
    return [("w_l1", one(w_l1)), ("w_ssim", one(w_ssim)), ("bg", np.asarray(bg, dtype=np.float64)),
            ("lr", one(lr)), ("beta1", one(beta1)), ("beta2", one(beta2)), ("eps", one(eps)),
            ("weight_decay", one(weight_decay)), ("grad_clip", one(grad_clip)), ("w_mouth", one(w_mouth))]


# ----------------------------------------------------------------------------- self-test

MICRO_CONFIG = """views_in = 2
views_target = 2
img_h = 16
img_w = 16
patch = 4
width = 16
heads = 2
layers = 1
mlp_ratio = 2
expr_dim = 8
expr_tokens = 2
expr_hidden = 16
sapiens_ch = 4
sapiens_h = 4
sapiens_w = 4
init_std = 0.1
scale_bias = -4
"""


def selftest_ssim():
    """(a) the SSIM this step uses (loss_ref.py's): gradcheck on tiny images (smaller and larger than
    the window), and its value against closed forms: the window sums to 1, SSIM(x, x) = 1, and for
    constant images a, b the map is (2ab + C1) / (a^2 + b^2 + C1) where the window sees no padding."""
    torch.manual_seed(0)
    for shape in ((1, 5, 4, 3), (2, 13, 12, 2)):
        x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
        y = torch.rand(shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(ssim, (x, y), eps=1e-6, atol=1e-8, rtol=1e-6), shape
    x = torch.rand(2, 9, 7, 3, dtype=torch.float64)
    e_same = abs(float(ssim(x, x)) - 1)
    assert e_same < 1e-12, e_same
    w = window_2d(2, torch.float64)
    e_sum = float((w.sum(dim=(1, 2, 3)) - 1).abs().max())
    assert e_sum < 1e-15, "window does not sum to 1"
    a, b = 0.3, 0.7
    big_a = torch.full((1, 31, 31, 1), a, dtype=torch.float64)
    big_b = torch.full((1, 31, 31, 1), b, dtype=torch.float64)
    want = (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)       # the sigma factor is C2 / C2
    m = ssim_map(big_a, big_b)[0, :, :, 0]                        # loss_ref's map is [N, H, W, C]
    e_const = abs(float(m[15, 15]) - want)                         # the window lies fully inside
    assert e_const < 1e-11, e_const
    return dict(ssim_same=e_same, ssim_const=e_const)


def adamw_by_hand(p, g, name, h, scale):
    """The C rule (train/optim.h), in numpy: m = (1-b1) g, v = (1-b2) g^2 (t = 1, zero moments),
    p -= lr (m/(1-b1) / (sqrt(v/(1-b2)) + eps) + wd p), wd only where decays(name); g scaled first."""
    g = g * scale
    m, v = (1 - h["beta1"]) * g, (1 - h["beta2"]) * g * g
    c1, c2 = 1 / (1 - h["beta1"]), 1 / (1 - h["beta2"])
    wd = h["weight_decay"] if decays(name) else 0.0
    return p - h["lr"] * (m * c1 / (np.sqrt(v * c2) + h["eps"]) + wd * p)


def selftest_adamw():
    """(b) clip_and_adamw against adamw_by_hand on a few numbers, with and without clipping, over
    names on both sides of the decay rule."""
    rng = np.random.default_rng(3)
    names = ["patch_w", "patch_b", "pos_emb", "ln1_w", "ln1_b", "qkv_w", "lnf_w", "up_w", "head_b",
             "sap_w"]
    shapes = {"patch_w": (3, 2), "patch_b": (3,), "pos_emb": (2, 2), "ln1_w": (1, 3), "ln1_b": (1, 3),
              "qkv_w": (1, 2, 3), "lnf_w": (3,), "up_w": (5,), "head_b": (2,), "sap_w": (0, 4)}
    want_decay = {"patch_w", "qkv_w", "up_w", "sap_w"}
    assert {n for n in names if decays(n)} == want_decay, "decay rule"
    worst = 0.0
    for clip in (0.0, 1e9, 0.3):
        h = dict(lr=0.01, beta1=0.9, beta2=0.95, eps=1e-3, weight_decay=0.1, grad_clip=clip)
        P = {n: torch.tensor(rng.normal(0, 1, shapes[n])) for n in names}
        G = {n: torch.tensor(rng.normal(0, 0.2, shapes[n])) for n in names}
        G["patch_b"][0] = 0.0                         # zero gradient: only the decay (none here) acts
        G["patch_w"][0, 0] = 0.0                      # zero gradient on a decayed tensor: pure decay
        new, norm, scale = clip_and_adamw(P, G, h)
        n_hand = math.sqrt(sum(float((G[n].numpy() ** 2).sum()) for n in names))
        s_hand = clip / n_hand if clip > 0 and n_hand > clip else 1.0
        assert abs(norm - n_hand) <= 1e-15 * n_hand and scale == s_hand
        assert (clip == 0.3) == (scale < 1), (clip, scale)
        for n in names:
            ref = adamw_by_hand(P[n].numpy(), G[n].numpy(), n, h, s_hand)
            if ref.size:
                worst = max(worst, float(np.abs(new[n].numpy() - ref).max() / np.abs(ref).max()))
        pw = P["patch_w"].numpy()[0, 0]
        assert abs(float(new["patch_w"][0, 0]) - pw * (1 - 0.01 * 0.1)) < 1e-15
        assert float(new["patch_b"][0]) == float(P["patch_b"][0])
    assert worst < 1e-14, worst
    # non-finite norm: nothing changes
    h = dict(lr=0.01, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.0)
    P = {"a_w": torch.ones(2)}
    new, norm, _ = clip_and_adamw(P, {"a_w": torch.tensor([1.0, math.nan], dtype=torch.float64)}, h)
    assert not math.isfinite(norm) and torch.equal(new["a_w"], P["a_w"])
    return dict(adamw_rel_err=worst)


def selftest_step(tmp, dust3r, sapiens):
    """(c) the step end to end through the files on a random micro config and batch: finite loss,
    bundle names/shapes, AdamW applied to the written parameters, and the loss (re-evaluated with the
    written parameters, same batch) goes down."""
    tag = "d%d_s%d" % (dust3r, sapiens)
    cfg_text = MICRO_CONFIG + "use_dust3r = %s\nuse_sapiens = %s\n" % (
        "true" if dust3r else "false", "true" if sapiens else "false")
    cfg_path = os.path.join(tmp, "micro_%s.cfg" % tag)
    with open(cfg_path, "w") as f:
        f.write(cfg_text)
    ckpt, bpath = os.path.join(tmp, "micro_%s.ckpt" % tag), os.path.join(tmp, "batch_%s.atb" % tag)
    hpath, opath = os.path.join(tmp, "hyper_%s.atb" % tag), os.path.join(tmp, "out_%s.atb" % tag)
    cfg = atb.check_config(atb.parse_config_file(cfg_path))
    atb.write_ckpt(ckpt, cfg, avat3r_ref.init_params(cfg, 5))
    atb.write_atb(bpath, make_train_batch(cfg, 2, 11))
    atb.write_atb(hpath, hyper_bundle(lr=1e-4, grad_clip=1e-3, bg=(1.0, 0.5, 0.25)))
    t0 = time.perf_counter()
    cfg, out, mg = run_step_files(ckpt, bpath, hpath, opath, "float64", margins=True)
    t_step = time.perf_counter() - t0

    o = atb.read_atb(opath)
    B, V, H, W, Vt = 2, cfg["views_in"], cfg["img_h"], cfg["img_w"], cfg["views_target"]
    shapes = {"loss": (1,), "l1": (1,), "ssim": (1,), "image": (B, Vt, H, W, 3),
              "gauss": (B, V * H * W, 14), "grad_norm": (1,), "clip_scale": (1,)}
    for k, s in shapes.items():
        assert o[k].shape == s and o[k].dtype == np.float64, (k, o[k].shape)
    table = atb.param_table(cfg)
    for name, shape in table:
        n = int(np.prod(shape))
        if n == 0:
            assert "grad." + name not in o and "param." + name not in o, name
            continue
        assert o["grad." + name].shape == (n,) and o["param." + name].shape == (n,), name
    for k in ("loss", "l1", "ssim", "grad_norm"):
        assert np.isfinite(o[k]).all(), k
    assert np.isfinite(o["image"]).all() and np.isfinite(o["gauss"]).all()
    loss0, l1, s = float(o["loss"][0]), float(o["l1"][0]), float(o["ssim"][0])
    assert abs(loss0 - (0.8 * l1 + 0.2 * (1 - s))) < 1e-14, "loss != w_l1*l1 + w_ssim*(1-ssim)"
    # grad_norm and the AdamW step of the written bundle, by hand from the written gradients
    gn = math.sqrt(sum(float((o["grad." + n] ** 2).sum()) for n, sh in table if np.prod(sh)))
    assert abs(gn - o["grad_norm"][0]) <= 1e-13 * gn and gn > 1e-3, (gn, o["grad_norm"][0])
    scale = 1e-3 / gn
    assert abs(o["clip_scale"][0] - scale) <= 1e-15 * scale
    h = dict(lr=1e-4, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.05)
    _, flat0 = atb.read_ckpt(ckpt)
    off, worst = 0, 0.0
    for name, shape in table:
        n = int(np.prod(shape))
        p0 = flat0[off:off + n].astype(np.float64)
        off += n
        if n == 0:
            continue
        ref = adamw_by_hand(p0, o["grad." + name], name, h, scale)
        worst = max(worst, float(np.abs(o["param." + name] - ref).max()))
        # exactly the elements with a gradient move, and on a decayed tensor the non-zero ones too
        should = (o["grad." + name] != 0) | ((p0 != 0) if decays(name) else False)
        moved = o["param." + name] != p0
        assert np.array_equal(moved, should), (name, int(moved.sum()), int(should.sum()))
    assert worst < 1e-15, worst
    # the gauss tensor is what the network gives (independent call of avat3r_ref.forward)
    P = avat3r_ref.params_from_flat(cfg, flat0, torch.float64)
    bt = atb.read_atb(bpath)
    bt = {k: torch.as_tensor(v) for k, v in bt.items()}
    with torch.no_grad():
        g_net = avat3r_ref.forward(cfg, P, bt)["gauss"].numpy()
    assert np.array_equal(g_net, o["gauss"])
    # the loss with the updated parameters, same batch, must be lower
    P1 = {name: torch.as_tensor(o["param." + name]).reshape(shape) if int(np.prod(shape)) else
          torch.zeros(shape, dtype=torch.float64) for name, shape in table}
    hyper = read_hyper(hpath)
    hyper["bg"] = torch.as_tensor(hyper["bg"])
    with torch.no_grad():
        loss1 = float(forward_loss(cfg, P1, bt, hyper)["loss"])
        loss0_again = float(forward_loss(cfg, P, bt, hyper)["loss"])
    assert loss0_again == loss0, (loss0_again, loss0)
    assert math.isfinite(loss1) and loss1 < loss0, (loss0, loss1)
    # the written gradient against a central difference of the loss along a random direction (float64,
    # a step small enough to stay clear of the rasterizer's knife edges reported by the margins)
    rng = np.random.default_rng(17)
    dirs = {n: torch.as_tensor(rng.standard_normal(P[n].shape)) for n in P}
    dot = sum(float((torch.as_tensor(o["grad." + n]).reshape(P[n].shape) * dirs[n]).sum())
              for n in P if P[n].numel())
    h_fd = 1e-7
    with torch.no_grad():
        lp = float(forward_loss(cfg, {n: P[n] + h_fd * dirs[n] for n in P}, bt, hyper)["loss"])
        lm = float(forward_loss(cfg, {n: P[n] - h_fd * dirs[n] for n in P}, bt, hyper)["loss"])
    fd = (lp - lm) / (2 * h_fd)
    e_fd = abs(fd - dot) / abs(dot)
    assert e_fd < 1e-5, (fd, dot)
    # the image is not trivial: the Gaussians cover a good part of the target views
    bgv = np.array([1.0, 0.5, 0.25])
    covered = float((np.abs(o["image"] - bgv).max(-1) > 1e-3).mean())
    assert covered > 0.2, covered
    return {tag: dict(loss=loss0, loss_after=loss1, drop=loss0 - loss1, l1=l1, ssim=s, grad_norm=gn,
                      covered=round(covered, 3), adamw_max_abs_err=worst, fd_rel_err=e_fd, step_s=round(t_step, 2),
                      n_invalid=out["n_invalid"],
                      margins={k: float("%.3g" % v) for k, v in mg.items()})}


def cmd_selftest(args):
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads or DEFAULT_THREADS)
    res = {}
    res.update(selftest_ssim())
    print("(a) ssim (loss_ref.py's) gradcheck ok; |ssim(x,x)-1| %.1e, constant images %.1e"
          % (res["ssim_same"], res["ssim_const"]))
    res.update(selftest_adamw())
    print("(b) AdamW + clipping vs the hand-written C rule: max rel err %.1e" % res["adamw_rel_err"])
    tmp = args.keep or tempfile.mkdtemp(prefix="train_step_ref_")
    os.makedirs(tmp, exist_ok=True)
    try:
        for dust3r, sapiens in ((True, True), (False, False)):
            r = selftest_step(tmp, dust3r, sapiens)
            res.update(r)
            (tag, v), = r.items()
            print("(c) step %s: loss %.9f -> %.9f (drop %.2e), l1 %.6f ssim %.6f |g| %.4g, covered %.2f, "
                  "AdamW err %.1e, FD %.1e, %.2fs, margins %s" % (tag, v["loss"], v["loss_after"], v["drop"], v["l1"],
                                                        v["ssim"], v["grad_norm"], v["covered"],
                                                        v["adamw_max_abs_err"], v["fd_rel_err"], v["step_s"],
                                                        json.dumps(v["margins"])))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print("selftest ok (%.1fs)" % (time.perf_counter() - t0))


# ----------------------------------------------------------------------------- CLI

def cmd_step(args):
    torch.set_num_threads(args.threads or DEFAULT_THREADS)
    t0 = time.perf_counter()
    cfg, out, mg = run_step_files(args.ckpt, args.batch, args.hyper, args.out, args.dtype, args.margins)
    print("loss %.17g l1 %.17g ssim %.17g grad_norm %.17g clip_scale %.17g dtype %s (%.2fs) -> %s"
          % (float(out["loss"]), float(out["l1"]), float(out["ssim"]), out["grad_norm"],
             out["clip_scale"], args.dtype, time.perf_counter() - t0, args.out))
    if mg is not None:
        print("margins " + json.dumps({k: float("%.3g" % v) for k, v in mg.items()}))


def cmd_bench(args):
    """The training step minus the rasterizer, for `avat3r bench train`: network forward, L1 + SSIM on
    stand-in images (the Gaussians' colours of the first Vt views' pixels, the same tensor sizes as
    the rendered images), backward, global-norm clip and a torch.optim.AdamW step; float32. There is no
    CPU PyTorch Gaussian rasterizer at these sizes (gsplat is CUDA-only; raster_ref.py is the naive
    oracle), so the C side reports its rasterizer separately. --device cuda: the same on the GPU (eager
    mode, float32 without TF32), timed with synchronisation. Prints one JSON line."""
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    cfg, flat = atb.read_ckpt(args.ckpt)
    P = {k: v.detach().to(dev).requires_grad_(True)
         for k, v in avat3r_ref.params_from_flat(cfg, flat, torch.float32).items()}
    b = make_train_batch(cfg, args.B, 0)
    batch = {k: torch.as_tensor(v).float().to(dev) for k, v in b.items()}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    H, W, Vt, B = cfg["img_h"], cfg["img_w"], cfg["views_target"], args.B
    tgt = batch["tgt_rgb"].reshape(-1, H, W, 3)
    groups = ([p for k, p in P.items() if p.numel() and decays(k)],
              [p for k, p in P.items() if p.numel() and not decays(k)])
    opt = torch.optim.AdamW([{"params": groups[0], "weight_decay": 0.05}, {"params": groups[1], "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    times = []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        gauss = avat3r_ref.forward(cfg, P, batch)["gauss"]
        img = gauss[:, :Vt * H * W, 3:6].reshape(-1, H, W, 3)
        loss = 0.8 * (img - tgt).abs().mean() + 0.2 * (1 - ssim(img, tgt))
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g], 1.0)
        opt.step()
        sync()
        if i >= args.warmup:
            times.append(1e3 * (time.perf_counter() - t0))
    times.sort()
    print(json.dumps({"fwd_bwd_ms": round(times[len(times) // 2], 3), "threads": threads,
                      "torch": torch.__version__.split("a")[0], "B": B, "iters": args.iters}))


def cmd_makebatch(args):
    cfg, _ = atb.read_ckpt(args.ckpt)
    atb.write_atb(args.out, make_train_batch(cfg, args.B, args.seed))
    print("wrote %s (B=%d)" % (args.out, args.B))


def cmd_makehyper(args):
    bg = [float(v) for v in args.bg.split(",")]
    if len(bg) != 3:
        raise ValueError("--bg must be r,g,b")
    atb.write_atb(args.out, hyper_bundle(args.lr, args.w_l1, args.w_ssim, bg, args.beta1, args.beta2,
                                         args.eps, args.weight_decay, args.grad_clip, args.w_mouth))
    print("wrote %s" % args.out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("step")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--batch", required=True)
    s.add_argument("--hyper", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--dtype", choices=DTYPES, default="float64")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    s.add_argument("--margins", action="store_true",
                   help="also measure the rendered scene's distance from the rasterizer's knife edges")
    s = sub.add_parser("bench")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--B", type=int, default=1)
    s.add_argument("--iters", type=int, default=5)
    s.add_argument("--warmup", type=int, default=1)
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    s = sub.add_parser("makebatch")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--B", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("makehyper")
    s.add_argument("--out", required=True)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--w-l1", type=float, default=0.8)
    s.add_argument("--w-ssim", type=float, default=0.2)
    s.add_argument("--w-mouth", type=float, default=0.0)
    s.add_argument("--bg", default="1,1,1")
    s.add_argument("--beta1", type=float, default=0.9)
    s.add_argument("--beta2", type=float, default=0.95)
    s.add_argument("--eps", type=float, default=1e-8)
    s.add_argument("--weight-decay", type=float, default=0.05)
    s.add_argument("--grad-clip", type=float, default=1.0)
    s = sub.add_parser("selftest")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    s.add_argument("--keep", default="", help="write the self-test's files here and keep them")
    args = ap.parse_args(argv)
    try:
        {"step": cmd_step, "bench": cmd_bench, "makebatch": cmd_makebatch, "makehyper": cmd_makehyper,
         "selftest": cmd_selftest}[args.cmd](args)
    except (ValueError, OSError) as e:
        sys.exit("train_step_ref: %s" % e)


if __name__ == "__main__":
    main()
