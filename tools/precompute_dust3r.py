#!/usr/bin/env python3
"""precompute_dust3r.py — DUSt3R position maps for Avat3r, written next to an ava256 capture as
`{capture}/decoder/aux/dust3r/cam{ID}.zip` with members `{frame:06d}.npy` (float32 (H, W, 4): the pixel's
surface point x, y, z in the WORLD frame in MILLIMETRES, then a confidence in [0, 1]; H x W = the image
size). Layout: data/ava256_write.h.

Method (avat3r_paper.md §11 defaults; pretrained_nets.md §1.4-1.5 option (c)), per frame:
  1. the selected cameras' images at that frame -> DUSt3R input exactly as dust3r's load_images (long side
     to --size with LANCZOS/BICUBIC, centre crop to multiples of 16), RGB normalised to [-1, 1];
  2. make_pairs(scene_graph='complete', symmetrize=True) -> N(N-1) ordered pairs -> inference;
  3. global_aligner(PointCloudOptimizer) with preset_pose (the calibration's camera->world, in metres),
     preset_focal and preset_principal_point (K scaled to the network input), then
     compute_global_alignment(init='known_poses', niter=300, schedule='cosine', lr=0.01): the scene comes out
     in the dataset's world frame at metric scale;
  4. the optimised depth maps are resampled (bilinear) to the full image and unprojected through the
     full-resolution K and pose (pixel centres at x + 0.5, like the C side), x 1000 -> mm; confidence is
     1 - 1/conf of the aligner's per-image confidence (max over its pairs; DUSt3R's conf is >= 1), bilinear,
     0 for pixels outside DUSt3R's centre crop. No threshold is applied (--conf-threshold is only reported).

On a GPU machine with the official code (nothing here is downloaded at run time):
  git clone --recursive https://github.com/naver/dust3r /opt/dust3r
  pip install -r /opt/dust3r/requirements.txt          # torch, torchvision, roma, opencv, huggingface_hub ...
  pip install pillow-avif-plugin                       # or: apt-get install libavif-bin (avifdec)
  # weights: DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth (download link in the dust3r README) or a local copy of
  # the Hugging Face repo naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt (config.json + model.safetensors)
  PYTHONPATH=/opt/dust3r python3 tools/precompute_dust3r.py \\
      --capture /data/ava256/20230405--1635--AAN112 \\
      --weights /opt/dust3r/checkpoints/DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth \\
      --cameras 401168,401875,402040,401031 --every 10
Cost: N(N-1) pairs per frame (12 for 4 cameras, 240 for 16) plus 300 alignment steps; choose --cameras.
Resumable: frames whose members already exist for every selected camera are skipped; finished maps are
appended every --flush-every frames (an interrupted append is rolled back). Use one process per capture.
Exit status: 0 done, 1 bad capture or arguments, 2 missing package, tool or weights (with what to install).
"""
import argparse
import functools
import os
import re
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import precompute_common as pc  # noqa: E402

INSTALL = ("DUSt3R is not importable ({err}). On a GPU machine: git clone --recursive "
           "https://github.com/naver/dust3r; pip install -r dust3r/requirements.txt; run with "
           "PYTHONPATH=/path/to/dust3r. Weights: DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth (dust3r README) or the "
           "Hugging Face repo naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt, passed with --weights.")


# ------------------------------------------------------------------------------------------- writer

def write_dust3r_maps(capture_dir, cam_id, frames_to_arrays, overwrite=False, image_hw=None):
    """Adds {frame id: float (H, W, 4) array} to {capture}/decoder/aux/dust3r/cam{cam_id}.zip.
    x, y, z: world-frame mm; channel 3: confidence in [0, 1]. Members already there are kept unless
    overwrite. Returns (written member names, skipped member names)."""
    members = {}
    for f, a in pc.items(frames_to_arrays):
        if a.ndim != 3 or a.shape[2] != 4:
            raise ValueError(f"dust3r map of frame {f}: shape {a.shape}, expected (H, W, 4)")
        if image_hw is not None and a.shape[:2] != tuple(image_hw):
            raise ValueError(f"dust3r map of frame {f}: {a.shape[:2]} is not the image size {tuple(image_hw)}")
        if not np.isfinite(a).all():
            raise ValueError(f"dust3r map of frame {f}: non-finite values")
        if a.size and (a[..., 3].min() < 0 or a[..., 3].max() > 1):
            raise ValueError(f"dust3r map of frame {f}: confidence outside [0, 1]")
        members[pc.member_npy(f)] = pc.npy_f32(a)
    path = os.path.join(pc.decoder_dir(capture_dir), "aux", "dust3r", f"cam{cam_id}.zip")
    return pc.zip_put(path, members, overwrite)


# ------------------------------------------------------------------------------------------- geometry

def net_geometry(H, W, size, square_ok=False):
    """dust3r.utils.image.load_images: resized size (Wr, Hr), crop offset (left, top), input (Wn, Hn)."""
    long = round(size * max(W / H, H / W)) if size == 224 else size
    S = max(W, H)
    Wr, Hr = int(round(W * long / S)), int(round(H * long / S))
    cx, cy = Wr // 2, Hr // 2
    if size == 224:
        halfw = halfh = min(cx, cy)
    else:
        halfw, halfh = ((2 * cx) // 16) * 8, ((2 * cy) // 16) * 8
        if not square_ok and Wr == Hr:
            halfh = 3 * halfw // 4
    return types.SimpleNamespace(W=W, H=H, Wr=Wr, Hr=Hr, left=cx - halfw, top=cy - halfh,
                                 Wn=2 * halfw, Hn=2 * halfh, sx=Wr / W, sy=Hr / H, upscale=S <= long)


def K_net(K_img, g):
    """K of the full image (continuous pixel coordinates) -> K of the cropped network input."""
    K = K_img.copy()
    K[0] *= g.sx
    K[1] *= g.sy
    K[0, 2] -= g.left
    K[1, 2] -= g.top
    return K


def _bilinear(img, ys, xs):
    """img (h, w) sampled at index coordinates ys (H,) x xs (W,), clamped at the border."""
    h, w = img.shape
    y, x = np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (y - y0)[:, None], (x - x0)[None, :]
    top = img[np.ix_(y0, x0)] * (1 - wx) + img[np.ix_(y0, x1)] * wx
    bot = img[np.ix_(y1, x0)] * (1 - wx) + img[np.ix_(y1, x1)] * wx
    return top * (1 - wy) + bot * wy


def dust3r_map(depth, conf, g, K_img, R, t_mm):
    """Aligned network-resolution z-depth (metres) and raw confidence (>= 1) -> (H, W, 4) float32 map:
    world points in mm through the full-resolution pixel centres, and 1 - 1/conf (0 outside the crop)."""
    xs = (np.arange(g.W) + 0.5) * g.sx - g.left  # continuous network coordinates of the pixel centres
    ys = (np.arange(g.H) + 0.5) * g.sy - g.top
    d = _bilinear(np.asarray(depth, np.float64), ys - 0.5, xs - 0.5)
    c = _bilinear(1 - 1 / np.maximum(np.asarray(conf, np.float64), 1), ys - 0.5, xs - 0.5)
    c *= ((ys >= 0) & (ys <= g.Hn))[:, None] & ((xs >= 0) & (xs <= g.Wn))[None, :]
    u = (np.arange(g.W) + 0.5 - K_img[0, 2]) / K_img[0, 0]
    v = (np.arange(g.H) + 0.5 - K_img[1, 2]) / K_img[1, 1]
    Xc = np.stack([u[None, :] * d, v[:, None] * d, d], -1) * 1000.0  # camera frame, mm
    Xw = (Xc - t_mm) @ R                                               # R^T (x_cam - t), row vectors
    return np.concatenate([Xw, c[..., None]], -1).astype(np.float32)


# ------------------------------------------------------------------------------------------- network

def import_dust3r():
    try:
        from dust3r.cloud_opt import GlobalAlignerMode, global_aligner
        from dust3r.image_pairs import make_pairs
        from dust3r.inference import inference
        from dust3r.model import AsymmetricCroCo3DStereo
    except ImportError as e:
        raise pc.MissingDependency(INSTALL.format(err=e))
    return types.SimpleNamespace(Model=AsymmetricCroCo3DStereo, make_pairs=make_pairs, inference=inference,
                                 global_aligner=global_aligner, Mode=GlobalAlignerMode)


def load_model(dust, weights, torch, device):
    if not weights:
        raise pc.MissingDependency("--weights is required: DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth (dust3r "
                                   "README) or a local copy of naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt")
    if not os.path.exists(weights) and not re.fullmatch(r"[\w.-]+/[\w.-]+", weights):
        raise pc.MissingDependency(f"--weights {weights}: no such file or folder")
    try:
        model = dust.Model.from_pretrained(weights)
    except Exception as e:
        if "weights_only" not in str(e) or not os.path.isfile(weights):
            raise pc.MissingDependency(f"cannot load DUSt3R weights {weights}: {type(e).__name__}: {e}")
        load = torch.load  # torch >= 2.6 refuses the .pth's pickled args by default; the file is trusted
        torch.load = functools.partial(load, weights_only=False)
        try:
            model = dust.Model.from_pretrained(weights)
        finally:
            torch.load = load
    return model.to(device).eval()


def net_input(rgb, g, torch):
    import PIL.Image
    im = PIL.Image.fromarray(rgb)
    im = im.resize((g.Wr, g.Hr), PIL.Image.BICUBIC if g.upscale else PIL.Image.LANCZOS)
    im = im.crop((g.left, g.top, g.left + g.Wn, g.top + g.Hn))
    x = torch.from_numpy(np.asarray(im, np.float32) / 255).permute(2, 0, 1)
    return ((x - 0.5) / 0.5)[None]


def run_frame(dust, model, torch, device, cap, frame, cams, args):
    """All cameras of one frame through DUSt3R + known-pose global alignment -> {camera id: map}."""
    views, geo = [], []
    for i, cid in enumerate(cams):
        rgb = cap.read_image(cid, frame)
        if args.color_correct:
            rgb = pc.color_correct(rgb)
        g = net_geometry(rgb.shape[0], rgb.shape[1], args.size)
        views.append(dict(img=net_input(rgb, g, torch), true_shape=np.int32([[g.Hn, g.Wn]]), idx=i, instance=str(i)))
        geo.append(g)
    pairs = dust.make_pairs(views, scene_graph=args.scene_graph, prefilter=None, symmetrize=True)
    out = dust.inference(pairs, model, device, batch_size=args.batch_size, verbose=False)
    scene = dust.global_aligner(out, device=device, mode=dust.Mode.PointCloudOptimizer)
    cam = [cap.cameras[c] for c in cams]
    Kn = [K_net(c.K_image(g.W, g.H), g) for c, g in zip(cam, geo)]
    scene.preset_pose([c.cam2world_m().astype(np.float32) for c in cam])
    scene.preset_focal([float((K[0, 0] + K[1, 1]) / 2) for K in Kn])
    scene.preset_principal_point([np.float32([K[0, 2] - 0.5, K[1, 2] - 0.5]) for K in Kn])  # index coords
    with torch.enable_grad():
        loss = scene.compute_global_alignment(init="known_poses", niter=args.niter, schedule=args.schedule,
                                              lr=args.lr)
    depths = [d.detach().float().cpu().numpy() for d in scene.get_depthmaps()]
    confs = [c.detach().float().cpu().numpy() for c in scene.get_conf(mode="none")]
    maps = {cid: dust3r_map(depths[i], confs[i], geo[i], cam[i].K_image(geo[i].W, geo[i].H), cam[i].R, cam[i].t)
            for i, cid in enumerate(cams)}
    return maps, len(pairs), float(loss) if loss is not None else float("nan")


# ------------------------------------------------------------------------------------------- driver

def process_capture(dust, model, torch, device, cap, cams, frames, args):
    done = {c: pc.zip_names(cap.aux_zip("dust3r", c)) for c in cams}
    pending, npend, nmaps = {c: {} for c in cams}, 0, 0

    def flush():
        nonlocal npend, nmaps
        for c, d in pending.items():
            if d:
                hw = next(iter(d.values())).shape[:2]
                nmaps += len(write_dust3r_maps(cap.dir, c, d, overwrite=args.overwrite, image_hw=hw)[0])
                d.clear()
        npend = 0

    print(f"dust3r: {cap.dir}: {len(cams)} cameras, {len(frames)} frames")
    if len(cams) > 16 and args.scene_graph == "complete":
        print(f"  warning: {len(cams)} cameras = {len(cams) * (len(cams) - 1)} pairs per frame; choose --cameras "
              "or a sparser --scene-graph (swin-K, oneref-I)", flush=True)
    for k, f in enumerate(frames):
        have = [c for c in cams if f in cap.image_members(c)]
        todo = [c for c in have if args.overwrite or pc.member_npy(f) not in done[c]]
        if not todo:
            continue
        if len(have) < 2:
            print(f"  frame {f}: only {len(have)} camera(s) have an image; skipped (DUSt3R needs 2)")
            continue
        t0 = time.time()
        maps, npairs, loss = run_frame(dust, model, torch, device, cap, f, have, args)
        for c in todo:
            pending[c][f] = maps[c]
        conf = np.concatenate([maps[c][..., 3].ravel() for c in have])
        print(f"  frame {f} ({k + 1}/{len(frames)}): {len(have)} views, {npairs} pairs, loss {loss:.4g}, "
              f"conf > {args.conf_threshold:g}: {100 * np.mean(conf > args.conf_threshold):.1f}%, "
              f"{time.time() - t0:.1f} s", flush=True)
        npend += 1
        if npend >= args.flush_every:
            flush()
    flush()
    print(f"dust3r: {cap.dir}: wrote {nmaps} maps")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    pc.add_common_args(p)
    p.add_argument("--size", type=int, default=512, help="DUSt3R input: long side (512; 224 = square crop)")
    p.add_argument("--scene-graph", default="complete", help="make_pairs graph: complete, swin-K, oneref-I, ...")
    p.add_argument("--niter", type=int, default=300, help="global-alignment iterations (300)")
    p.add_argument("--lr", type=float, default=0.01, help="global-alignment learning rate (0.01)")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "linear"])
    p.add_argument("--batch-size", type=int, default=8, help="pairs per inference batch (8)")
    p.add_argument("--conf-threshold", type=float, default=0.5,
                   help="NOT applied (the maps store the normalised confidence); only reported per frame")
    args = p.parse_args(argv)
    jobs = pc.jobs_from_args(args)
    if jobs is None:
        return 1
    try:
        torch, device = pc.torch_device(args.device)
        dust = import_dust3r()
        model = load_model(dust, args.weights, torch, device)
        for cap, cams, frames in jobs:
            process_capture(dust, model, torch, device, cap, cams, frames, args)
    except pc.MissingDependency as e:
        pc.die_missing(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
