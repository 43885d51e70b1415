#!/usr/bin/python3
"""Self-tests of the PyTorch reference (not of the C code). Run: /usr/bin/python3 selftest.py
Prints one PASS/FAIL line per test; exits non-zero if any test fails."""
import math
import os
import subprocess
import sys
import tempfile
import traceback
import zlib

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep tools/reference free of __pycache__
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import atb  # noqa: E402
import avat3r_ref as ref  # noqa: E402

MICRO = dict(views_in=2, views_target=2, img_h=8, img_w=8, patch=4, width=8, heads=2, layers=1,
             mlp_ratio=2, expr_dim=6, expr_tokens=2, expr_hidden=5, sapiens_ch=3, sapiens_h=4,
             sapiens_w=4, init_std=0.5)


def micro_cfg(**kw):
    cfg = atb.default_config()
    cfg.update(MICRO, **kw)
    return atb.check_config(cfg)


def test_patchify_conv():
    """Unfold (py,px,c) + matmul == stride-p conv2d with the weight reshaped to [D, Cin, p, p]."""
    g = torch.Generator().manual_seed(1)
    B, V, H, W, C, p, D = 2, 3, 12, 8, 5, 4, 7
    X = torch.randn(B, V, H, W, C, generator=g, dtype=torch.float64)
    w = torch.randn(D, p * p * C, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    mine = F.linear(ref.patchify(X, p), w, b)                                 # [B, V*Hp*Wp, D]
    wc = w.reshape(D, p, p, C).permute(0, 3, 1, 2)                            # (dy,dx,c) -> (c,dy,dx)
    conv = F.conv2d(X.reshape(B * V, H, W, C).permute(0, 3, 1, 2), wc, b, stride=p)
    conv = conv.permute(0, 2, 3, 1).reshape(B, V * (H // p) * (W // p), D)   # token t = v*Hp*Wp+..
    assert torch.allclose(mine, conv, atol=1e-12), (mine - conv).abs().max()


def test_attention_naive():
    g = torch.Generator().manual_seed(2)
    B, Nq, Nk, D, nh = 2, 5, 3, 12, 3
    q, k, v = (torch.randn(B, n, D, generator=g, dtype=torch.float64) for n in (Nq, Nk, Nk))
    out = ref.attention(q, k, v, nh)
    hd = D // nh
    naive = torch.zeros_like(out)
    for bi in range(B):
        for h in range(nh):
            cols = slice(h * hd, (h + 1) * hd)
            for i in range(Nq):
                s = [float(q[bi, i, cols] @ k[bi, j, cols]) / math.sqrt(hd) for j in range(Nk)]
                m = max(s)
                e = [math.exp(x - m) for x in s]
                for j in range(Nk):
                    naive[bi, i, cols] += e[j] / sum(e) * v[bi, j, cols]
    assert torch.allclose(out, naive, atol=1e-12), (out - naive).abs().max()


def test_pixel_shuffle_order():
    """docs: out[2y+i, 2x+j, c] = in[y, x, 4c + 2i + j] (channel-last)."""
    h, w, C = 2, 3, 5
    x = torch.randn(1, h, w, 4 * C, dtype=torch.float64)
    out = F.pixel_shuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    for y in range(h):
        for xx in range(w):
            for i in range(2):
                for j in range(2):
                    for c in range(C):
                        assert out[0, 2 * y + i, 2 * xx + j, c] == x[0, y, xx, 4 * c + 2 * i + j]


def test_plucker():
    """Rays: o is the camera centre, o + d projects onto the pixel centre, |d| = 1, m = o x d."""
    cfg = micro_cfg(img_h=6, img_w=10, patch=2)
    b = {k: torch.as_tensor(v) for k, v in ref.make_batch(cfg, 2, 3).items()}
    rays, o, d = ref.plucker(b["w2c"], b["K"], 6, 10)
    R, t = b["w2c"][..., :3], b["w2c"][..., 3]
    pc = torch.einsum("bvij,bvhwj->bvhwi", R, o + d) + t[:, :, None, None, :]
    uv = torch.einsum("bvij,bvhwj->bvhwi", b["K"], pc)
    uv = uv[..., :2] / uv[..., 2:]
    ys, xs = torch.meshgrid(torch.arange(6.0) + 0.5, torch.arange(10.0) + 0.5, indexing="ij")
    assert torch.allclose(uv, torch.stack([xs, ys], -1).double().expand_as(uv), atol=1e-9)
    assert (pc[..., 2] > 0).all()  # in front of the camera
    assert torch.allclose(d.norm(dim=-1), torch.ones(()).double())
    assert torch.allclose(rays[..., :3], torch.cross(o, d, dim=-1)) and torch.equal(rays[..., 3:], d)


def gradcheck_config(use_dust3r, use_sapiens):
    cfg = micro_cfg(use_dust3r=use_dust3r, use_sapiens=use_sapiens)
    # random values everywhere (also biases / LN) so that every path carries a generic gradient
    flat = ref.init_params(cfg, 5) + 0.3 * np.random.default_rng(6).standard_normal(atb.n_params(cfg))
    batch = {k: torch.as_tensor(v) for k, v in ref.make_batch(cfg, 2, 7).items()}
    names = [n for n, _ in atb.param_table(cfg)]
    P0 = ref.params_from_flat(cfg, flat.astype(np.float32), torch.float64)
    live = [n for n in names if P0[n].numel()]

    def loss_fn(*ts):
        P = dict(P0)
        P.update(zip(live, ts))
        return (batch["w"] * ref.forward(cfg, P, batch)["gauss"]).sum()

    inputs = tuple(P0[n].detach().clone().requires_grad_(True) for n in live)
    assert torch.autograd.gradcheck(loss_fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    # every live parameter gets a non-zero gradient (nothing disconnected by mistake)
    gs = torch.autograd.grad(loss_fn(*inputs), inputs)
    dead = [n for n, g in zip(live, gs) if not g.abs().sum() > 0]
    assert not dead, "zero gradient for %s" % dead


def test_ckpt_roundtrip():
    cfg = micro_cfg(use_sapiens=False)
    flat = ref.init_params(cfg, 9)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.ckpt")
        atb.write_ckpt(path, cfg, flat)
        cfg2, flat2 = atb.read_ckpt(path)
        assert cfg2 == cfg and flat2.dtype == np.float32 and np.array_equal(flat, flat2)
        raw = open(path, "rb").read()
        off = int.from_bytes(raw[32:40], "little")
        assert off % 64 == 0 and off >= 64 + int.from_bytes(raw[24:32], "little")

        def refused(data, why):
            bad = os.path.join(d, "bad.ckpt")
            open(bad, "wb").write(data)
            try:
                atb.read_ckpt(bad)
            except ValueError as e:
                assert why in str(e), "expected '%s', got '%s'" % (why, e)
                return
            raise AssertionError("accepted a bad checkpoint (%s)" % why)

        refused(raw[:-4], "truncated")
        refused(raw + b"\0", "trailing")
        refused(raw[:40], "not an avat3r checkpoint")
        refused(b"AVT3TENS" + raw[8:], "not an avat3r checkpoint")
        refused(raw[:8] + (2).to_bytes(4, "little") + raw[12:], "version")
        refused(raw[:12] + (7).to_bytes(4, "little") + raw[16:], "kind")
        refused(raw[:-1] + bytes([raw[-1] ^ 1]), "payload CRC")
        refused(raw[:64] + b"W" + raw[65:], "config CRC")
        # a config that parses but implies another size: re-CRC it so only n_params is wrong
        text = raw[64:64 + int.from_bytes(raw[24:32], "little")].replace(b"width = 8", b"width = 4")
        hdr = bytearray(raw[:64])
        hdr[24:32] = len(text).to_bytes(8, "little")
        hdr[40:44] = (zlib.crc32(text) & 0xFFFFFFFF).to_bytes(4, "little")
        refused(bytes(hdr) + text + raw[64 + len(text):], "n_params")
        text = raw[64:off].rstrip(b"\0").replace(b"width", b"wodth")
        hdr[40:44] = (zlib.crc32(text) & 0xFFFFFFFF).to_bytes(4, "little")
        refused(bytes(hdr) + text + raw[64 + len(text):], "unknown key")
    # config text: any order / subset, unknown keys refused
    c = atb.parse_config_text("use_dust3r = 0 # c\nwidth=16\n\nln_eps = 1e-6\n")
    assert c["width"] == 16 and c["use_dust3r"] is False and c["ln_eps"] == 1e-6
    for bad, why in (("foo = 1", "unknown key"), ("width = 1.5", "integer"),
                     ("use_sapiens = yes", "true/false"), ("heads = 0", "expected a value in")):
        try:
            atb.parse_config_text(bad)
            raise AssertionError("accepted '%s'" % bad)
        except ValueError as e:
            assert why in str(e), str(e)


def test_atb_roundtrip():
    t = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.float64([1.5]),
         "c": np.int32([[[-1]]]), "empty": np.zeros((0, 4))}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.atb")
        atb.write_atb(path, t)
        r = atb.read_atb(path)
        assert list(r) == list(t)
        for k in t:
            assert r[k].dtype == t[k].dtype and r[k].shape == t[k].shape and np.array_equal(r[k], t[k])
        raw = open(path, "rb").read()
        for data in (raw[:-1], raw + b"x", b"AVT3CKPT" + raw[8:]):
            open(path, "wb").write(data)
            try:
                atb.read_atb(path)
                raise AssertionError("accepted a bad bundle")
            except ValueError:
                pass


def test_cli_end_to_end():
    """init -> makebatch -> step in both dtypes; the debug state has the documented contents."""
    cfg_txt = "".join("%s = %s\n" % (k, str(v).lower()) for k, v in MICRO.items() if k != "init_std")
    cfg = micro_cfg()
    script = os.path.join(HERE, "avat3r_ref.py")
    with tempfile.TemporaryDirectory() as d:
        j = lambda n: os.path.join(d, n)  # noqa: E731
        open(j("m.cfg"), "w").write(cfg_txt)
        run = lambda *a: subprocess.run([sys.executable, script] + list(a), check=True,  # noqa: E731
                                        capture_output=True, text=True).stdout
        run("init", "--config-text", j("m.cfg"), "--seed", "1", "--out", j("m.ckpt"))
        run("makebatch", "--ckpt", j("m.ckpt"), "--B", "2", "--seed", "2", "--out", j("b.atb"))
        run("step", "--ckpt", j("m.ckpt"), "--batch", j("b.atb"), "--out", j("d64.atb"))
        run("step", "--ckpt", j("m.ckpt"), "--batch", j("b.atb"), "--out", j("d32.atb"),
            "--dtype", "float32", "--threads", "1")
        out = run("bench", "--ckpt", j("m.ckpt"), "--batch", j("b.atb"), "--iters", "2", "--warmup", "1")
        assert '"fwd_bwd_ms"' in out
        s64, s32 = atb.read_atb(j("d64.atb")), atb.read_atb(j("d32.atb"))
        N, HW = 2 * 4, 2 * 64
        shapes = {"plucker": (2, 2, 8, 8, 6), "x0": (2, N, 8), "expr_tokens": (2, 2, 8),
                  "xf": (2, N, 8), "raw": (2, HW, 14), "gauss": (2, HW, 14), "loss": (1,)}
        shapes.update({"grad." + n: (int(np.prod(s)),) for n, s in atb.param_table(cfg) if np.prod(s)})
        assert list(s64) == list(shapes), list(s64)
        for k, s in shapes.items():
            assert s64[k].shape == s and s64[k].dtype == np.float64 and s32[k].dtype == np.float32, k
            err = np.abs(s64[k] - s32[k]).max() / (np.abs(s64[k]).max() + 1e-30)
            assert err < 1e-4, "%s: f32 vs f64 relative error %g" % (k, err)


def main():
    tests = [("patchify_unfold_equals_conv2d", test_patchify_conv),
             ("attention_equals_naive_loop", test_attention_naive),
             ("pixel_shuffle_channel_order", test_pixel_shuffle_order),
             ("plucker_rays_geometry", test_plucker)]
    for dust in (True, False):
        for sap in (True, False):
            tests.append(("gradcheck_f64_dust3r=%s_sapiens=%s" % (dust, sap),
                          lambda d=dust, s=sap: gradcheck_config(d, s)))
    tests += [("checkpoint_roundtrip_and_refusals", test_ckpt_roundtrip),
              ("atb_roundtrip_and_refusals", test_atb_roundtrip),
              ("cli_init_makebatch_step_bench", test_cli_end_to_end)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print("PASS", name, flush=True)
        except Exception:
            failed += 1
            print("FAIL", name, flush=True)
            traceback.print_exc()
    print("%d/%d passed" % (len(tests) - failed, len(tests)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
