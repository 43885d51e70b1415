#!/usr/bin/python3
"""Independent PyTorch reference of the Avat3r network of avat3r.c, written from docs/model.md only.

Gradients come from autograd alone: this file is the oracle the hand-written C backward is tested
against. Run with Debian's /usr/bin/python3 (torch 1.13).

  avat3r_ref.py step      --ckpt C --batch B.atb --out D.atb [--dtype float64|float32] [--threads N]
  avat3r_ref.py bench     --ckpt C --batch B.atb [--iters N] [--warmup W] [--threads T] [--dtype ..]
  avat3r_ref.py init      --config-text FILE --seed S --out C.ckpt
  avat3r_ref.py makebatch --ckpt C --B n --seed S --out B.atb
"""
import argparse
import json
import math
import os
import statistics
import sys
import time


if __name__ == "__main__":
    sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from preset_threads import preset_threads

    preset_threads(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import atb  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ----------------------------------------------------------------------------- parameters

def params_from_flat(cfg, flat, dtype):
    """Cuts the flat float32 checkpoint vector into leaf tensors, walking the table in order."""
    flat = torch.as_tensor(np.asarray(flat, dtype=np.float32)).to(dtype)
    params, off = {}, 0
    for name, shape in atb.param_table(cfg):
        n = int(np.prod(shape))
        params[name] = flat[off:off + n].reshape(shape).clone().requires_grad_(True)
        off += n
    assert off == flat.numel(), "checkpoint size does not match the parameter table"
    return params


def init_params(cfg, seed):
    """Own initialisation (not the C Philox stream): N(0, s), N(0, s/sqrt(2L)) for the residual
    projections, 1 for LN weights, 0 for biases. Only needs to be a valid checkpoint."""
    g = torch.Generator().manual_seed(seed)
    s = cfg["init_std"]
    s_r = s / math.sqrt(2 * cfg["layers"]) if cfg["layers"] else s
    out = []
    for name, shape in atb.param_table(cfg):
        n = int(np.prod(shape))
        if name.startswith("ln") and name.endswith("_w"):
            t = torch.ones(n)
        elif name.endswith("_b"):
            t = torch.zeros(n)
        else:
            std = s_r if name in ("attproj_w", "cproj_w", "fcproj_w") else s
            t = torch.randn(n, generator=g, dtype=torch.float64) * std
        out.append(t.to(torch.float64))
    return torch.cat(out).to(torch.float32).numpy()


# ----------------------------------------------------------------------------- building blocks

def plucker(w2c, K, H, W):
    """Step 1. Returns (rays [B,V,H,W,6] = (o x d, d), o, d) with unit d, pixel centres at +0.5."""
    R, t = w2c[..., :3], w2c[..., 3]
    Rt = R.transpose(-1, -2)
    o = -(Rt @ t.unsqueeze(-1)).squeeze(-1)                                   # [B,V,3]
    ys, xs = torch.meshgrid(torch.arange(H, dtype=w2c.dtype, device=w2c.device) + 0.5,
                            torch.arange(W, dtype=w2c.dtype, device=w2c.device) + 0.5, indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1)                      # [H,W,3] = (u,v,1)
    M = Rt @ torch.linalg.inv(K)                                              # R^T K^-1, [B,V,3,3]
    d = torch.einsum("bvij,hwj->bvhwi", M, pix)
    d = d / d.norm(dim=-1, keepdim=True)
    o = o[:, :, None, None, :].expand_as(d)
    return torch.cat([torch.cross(o, d, dim=-1), d], -1), o, d


def patchify(X, p):
    """Step 3 unfold: [B,V,H,W,C] -> [B, V*Hp*Wp, p*p*C], row ordered (dy, dx, c)."""
    B, V, H, W, C = X.shape
    X = X.reshape(B, V, H // p, p, W // p, p, C).permute(0, 1, 2, 4, 3, 5, 6)  # B,V,ty,tx,dy,dx,c
    return X.reshape(B, V * (H // p) * (W // p), p * p * C)


def attention(q, k, v, nh):
    """Multi-head softmax attention, written out: q [B,Nq,D], k/v [B,Nk,D] -> [B,Nq,D].
    Head h uses columns h*hd .. h*hd+hd-1; heads are concatenated back in the same order."""
    B, Nq, D = q.shape
    Nk, hd = k.shape[1], D // nh
    q = q.reshape(B, Nq, nh, hd).transpose(1, 2)                              # [B,nh,Nq,hd]
    k = k.reshape(B, Nk, nh, hd).transpose(1, 2)
    v = v.reshape(B, Nk, nh, hd).transpose(1, 2)
    a = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(hd), dim=-1)
    return (a @ v).transpose(1, 2).reshape(B, Nq, D)


def gelu(x):
    return F.gelu(x, approximate="tanh")


def resample_sapiens(sap, Hp, Wp):
    """Step 4: bilinear, align_corners=False, on channel-first, back to channel-last."""
    B, V, hs, ws, CS = sap.shape
    x = sap.reshape(B * V, hs, ws, CS).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(Hp, Wp), mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1).reshape(B, V * Hp * Wp, CS)


# ----------------------------------------------------------------------------- the network

def forward(cfg, P, batch):
    """P: name -> parameter tensor (table shapes); batch: name -> tensor in the run dtype.
    Returns a dict with the debug-state intermediates, including 'gauss'."""
    B, V, H, W, _ = batch["rgb"].shape
    p, D, NH, L = cfg["patch"], cfg["width"], cfg["heads"], cfg["layers"]
    Hp, Wp, S = H // p, W // p, cfg["expr_tokens"]
    eps, dust = cfg["ln_eps"], cfg["use_dust3r"]

    rays, o, d = plucker(batch["w2c"], batch["K"], H, W)                      # 1
    X = torch.cat([batch["rgb"]] + ([batch["pos"]] if dust else []) + [rays], -1)  # 2
    tok = F.linear(patchify(X, p), P["patch_w"], P["patch_b"])               # 3
    if cfg["use_sapiens"]:                                                   # 4 (features: no grad)
        feat = resample_sapiens(batch["sap"].detach(), Hp, Wp)
        tok = F.linear(torch.cat([tok, feat], -1), P["sap_w"], P["sap_b"])
    x0 = tok + P["pos_emb"].repeat(V, 1)                                     # 5 shared over views

    e = F.relu(F.linear(batch["expr"], P["expr1_w"], P["expr1_b"]))          # 6
    e = F.relu(F.linear(e, P["expr2_w"], P["expr2_b"]))
    e = F.linear(e, P["expr3_w"], P["expr3_b"]).reshape(B, S, D)
    if cfg["expr_norm"]:                                                     # unit-scale tokens
        e = F.layer_norm(e, (D,), P["lne_w"], P["lne_b"], eps)

    x = x0
    for l in range(L):                                                       # 7
        h = F.layer_norm(x, (D,), P["ln1_w"][l], P["ln1_b"][l], eps)
        q, k, v = F.linear(h, P["qkv_w"][l], P["qkv_b"][l]).split(D, dim=-1)
        x = x + F.linear(attention(q, k, v, NH), P["attproj_w"][l], P["attproj_b"][l])
        h = F.layer_norm(x, (D,), P["ln2_w"][l], P["ln2_b"][l], eps)
        q = F.linear(h, P["cq_w"][l], P["cq_b"][l])
        k, v = F.linear(e, P["ckv_w"][l], P["ckv_b"][l]).split(D, dim=-1)
        x = x + F.linear(attention(q, k, v, NH), P["cproj_w"][l], P["cproj_b"][l])
        h = F.layer_norm(x, (D,), P["ln3_w"][l], P["ln3_b"][l], eps)
        x = x + F.linear(gelu(F.linear(h, P["fc_w"][l], P["fc_b"][l])),
                         P["fcproj_w"][l], P["fcproj_b"][l])
    xf = F.layer_norm(x, (D,), P["lnf_w"], P["lnf_b"], eps)                  # 8

    u = xf.reshape(B * V, Hp, Wp, D)                                          # 9
    C, ow, ob = D, 0, 0
    for _ in range(int(math.log2(p))):
        Cn = C // 2
        w = P["up_w"][ow:ow + 4 * Cn * C].reshape(4 * Cn, C)                  # stage slices of the
        b = P["up_b"][ob:ob + 4 * Cn]                                         # concatenated buffers
        ow, ob = ow + 4 * Cn * C, ob + 4 * Cn
        u = F.linear(u, w, b).permute(0, 3, 1, 2)                             # channel-first for
        u = gelu(F.pixel_shuffle(u, 2).permute(0, 2, 3, 1))                   # torch's channel order
        C = Cn
    raw = F.linear(u, P["head_w"], P["head_b"]).reshape(B, V, H, W, 14)      # 10

    dpos, drgb, rs, rq, ro = raw.split([3, 3, 3, 4, 1], dim=-1)              # 11
    if dust:
        gpos = batch["pos"] + cfg["pos_offset_max"] * torch.tanh(dpos)
    else:
        near, far = cfg["depth_near"], cfg["depth_far"]
        gpos = o + d * (near + (far - near) * torch.sigmoid(dpos[..., :1]))
    grgb = batch["rgb"] + drgb
    gscale = torch.exp(torch.clamp(rs + cfg["scale_bias"],
                                   math.log(cfg["scale_min"]), math.log(cfg["scale_max"])))
    unit = torch.zeros(4, dtype=raw.dtype, device=raw.device)
    unit[0] = 1
    grot = F.normalize(rq + unit, dim=-1, eps=1e-12)                          # q / max(|q|, 1e-12)
    gop = torch.sigmoid(ro) * (batch["conf"].unsqueeze(-1) if dust else 1)
    gauss = torch.cat([gpos, grgb, gscale, grot, gop], -1).reshape(B, V * H * W, 14)
    return {"plucker": rays, "x0": x0, "expr_tokens": e, "xf": xf,
            "raw": raw.reshape(B, V * H * W, 14), "gauss": gauss}


# ----------------------------------------------------------------------------- CLI helpers

def load(args):
    dtype = DTYPES[args.dtype]
    cfg, flat = atb.read_weights(args.ckpt)  # a checkpoint, or an `avat3r export` .safetensors
    P = params_from_flat(cfg, flat, dtype)
    b = atb.read_atb(args.batch)
    need = ["rgb", "w2c", "K", "expr", "w"] + (["pos", "conf"] if cfg["use_dust3r"] else []) \
        + (["sap"] if cfg["use_sapiens"] else [])
    missing = [k for k in need if k not in b]
    if missing:
        sys.exit("%s: batch lacks %s" % (args.batch, ", ".join(missing)))
    batch = {k: torch.as_tensor(v).to(dtype) for k, v in b.items()}
    B, V, H, W, _ = batch["rgb"].shape
    if (V, H, W) != (cfg["views_in"], cfg["img_h"], cfg["img_w"]):
        sys.exit("batch shape %s does not match the config" % (tuple(batch["rgb"].shape),))
    return cfg, P, batch


def step_once(cfg, P, batch):
    for t in P.values():
        t.grad = None
    out = forward(cfg, P, batch)
    loss = (batch["w"] * out["gauss"]).sum()
    loss.backward()
    return out, loss


def cmd_step(args):
    torch.set_num_threads(args.threads or os.cpu_count())
    cfg, P, batch = load(args)
    out, loss = step_once(cfg, P, batch)
    state = {k: out[k].detach().numpy() for k in
             ("plucker", "x0", "expr_tokens", "xf", "raw", "gauss")}
    state["loss"] = loss.detach().reshape(1).numpy()
    for name, t in P.items():
        if t.numel():
            g = t.grad if t.grad is not None else torch.zeros_like(t)
            state["grad." + name] = g.reshape(-1).numpy()
    atb.write_atb(args.out, state)
    print("loss %.17g params %d dtype %s -> %s" % (loss.item(), sum(t.numel() for t in P.values()),
                                                   args.dtype, args.out))


def cmd_bench(args):
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    cfg, P, batch = load(args)
    fwd, full = [], []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        out = forward(cfg, P, batch)
        loss = (batch["w"] * out["gauss"]).sum()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        for t in P.values():
            t.grad = None
        if i >= args.warmup:
            fwd.append(1e3 * (t1 - t0))
            full.append(1e3 * (t2 - t0))
    print(json.dumps({"fwd_bwd_ms": round(statistics.median(full), 3),
                      "fwd_ms": round(statistics.median(fwd), 3), "threads": threads,
                      "torch": torch.__version__.split("a")[0], "dtype": args.dtype,
                      "iters": args.iters}))


def cmd_init(args):
    cfg = atb.check_config(atb.parse_config_file(args.config_text))
    atb.write_ckpt(args.out, cfg, init_params(cfg, args.seed))
    print("wrote %s (%d params)" % (args.out, atb.n_params(cfg)))


def look_at(cam, up=(0.0, 1.0, 0.0)):
    """OpenCV world-to-camera [R|t] for a camera at `cam` looking at the origin (y down)."""
    z = -cam / np.linalg.norm(cam)
    x = np.cross(-np.asarray(up), z)   # right-handed x = y * z with camera y ~ world down
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return np.concatenate([R, (-R @ cam)[:, None]], 1)


def make_batch(cfg, B, seed):
    rng = np.random.default_rng(seed)
    V, H, W = cfg["views_in"], cfg["img_h"], cfg["img_w"]
    b = {"rgb": rng.uniform(0, 1, (B, V, H, W, 3))}
    if cfg["use_dust3r"]:
        b["pos"] = rng.uniform(-0.1, 0.1, (B, V, H, W, 3))
        b["conf"] = rng.uniform(0, 1, (B, V, H, W))
    if cfg["use_sapiens"]:
        b["sap"] = rng.standard_normal((B, V, cfg["sapiens_h"], cfg["sapiens_w"], cfg["sapiens_ch"]))
    w2c, K = np.zeros((B, V, 3, 4)), np.zeros((B, V, 3, 3))
    for i in range(B):
        for j in range(V):
            az, el = rng.uniform(-1.2, 1.2), rng.uniform(-0.4, 0.4)
            r = rng.uniform(0.9, 1.1)
            cam = r * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
            w2c[i, j] = look_at(cam)
            f = rng.uniform(0.9, 1.2) * max(H, W)
            K[i, j] = [[f, 0, W / 2 + rng.uniform(-1, 1)], [0, f, H / 2 + rng.uniform(-1, 1)], [0, 0, 1]]
    b["w2c"], b["K"] = w2c, K
    b["expr"] = rng.standard_normal((B, cfg["expr_dim"]))
    b["w"] = rng.standard_normal((B, V * H * W, 14))
    return {k: np.asarray(v, dtype=np.float64) for k, v in b.items()}


def cmd_makebatch(args):
    cfg, _ = atb.read_ckpt(args.ckpt)
    atb.write_atb(args.out, make_batch(cfg, args.B, args.seed))
    print("wrote %s (B=%d)" % (args.out, args.B))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("step")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--batch", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--dtype", choices=DTYPES, default="float64")
    s.add_argument("--threads", type=int, default=0)
    s = sub.add_parser("bench")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--batch", required=True)
    s.add_argument("--iters", type=int, default=10)
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--dtype", choices=DTYPES, default="float32")
    s = sub.add_parser("init")
    s.add_argument("--config-text", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s = sub.add_parser("makebatch")
    s.add_argument("--ckpt", required=True)
    s.add_argument("--B", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        {"step": cmd_step, "bench": cmd_bench, "init": cmd_init, "makebatch": cmd_makebatch}[args.cmd](args)
    except (ValueError, OSError) as e:
        sys.exit("avat3r_ref: %s" % e)


if __name__ == "__main__":
    main()
