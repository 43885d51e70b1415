#!/usr/bin/env python3
"""precompute_sapiens.py — Sapiens feature maps for Avat3r, written next to an ava256 capture as
`{capture}/decoder/aux/sapiens/cam{ID}.zip` with members `{frame:06d}.npy` (float32 (hs, ws, C): the
last layer's feature map, channels last) and `aux/sapiens/channels.txt` (`feat_0` ... `feat_{C-1}`, one a
line). Layout: data/ava256_write.h. Cell (i, j) of the grid covers the image uniformly: rows
[i H/hs, (i+1) H/hs), columns [j W/ws, (j+1) W/ws), because the whole image is resized (not padded or
cropped) to the network input.

Method (avat3r_paper.md §2.3 and §11 defaults): Sapiens-2B pretrain (MAE) backbone, RGB resized bilinearly
to --input-size (default 1024x1024) and normalised with the checkpoint's mean/std (lite TorchScript/export:
mean 123.5, 116.5, 103.5, std 58.5, 57.0, 57.5; original mmpretrain: 123.675, 116.28, 103.53 /
58.395, 57.12, 57.375), last layer's LayerNorm'd tokens without the cls token as C x 64 x 64 (C = 1920 for
2B), optionally average-pooled by --pool, stored float32 (31 MB per image at 64x64x1920).

On a GPU machine (nothing here is downloaded at run time):
  pip install torch                                    # and: pip install pillow-avif-plugin, or
                                                       #      apt-get install libavif-bin (avifdec)
  # weights: sapiens_2b_epoch_660_torchscript.pt2 from the Hugging Face repo
  #          facebook/sapiens-pretrain-2b-torchscript (or ..._bfloat16.pt2 from ...-2b-bfloat16, torch >= 2.2)
  python3 tools/precompute_sapiens.py --capture /data/ava256/20230405--1635--AAN112 \\
      --weights /models/sapiens_2b_epoch_660_torchscript.pt2 --cameras 401168,401875,402040,401031 --every 10
  # or the original checkpoint through the sapiens repo's mmpretrain (github.com/facebookresearch/sapiens,
  # its install steps for engine/ and pretrain/):
  python3 tools/precompute_sapiens.py --capture ... --weights sapiens_2b_epoch_660_clean.pth \\
      --config sapiens/pretrain/configs/sapiens_mae/humans_300m_test/mae_sapiens_2b-p16_8xb512-coslr-1600e_humans_300m_test.py
Resumable: members already written are skipped; maps are appended every --flush-every images of a camera
(an interrupted append is rolled back). Use one process per capture (or disjoint --cameras).
Exit status: 0 done, 1 bad capture or arguments, 2 missing package, tool or weights (with what to install).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import precompute_common as pc  # noqa: E402

LITE_MEAN, LITE_STD = (123.5, 116.5, 103.5), (58.5, 57.0, 57.5)              # lite/demo/extract_feature.py
FULL_MEAN, FULL_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)     # pretrain configs
WEIGHTS_HINT = ("a Sapiens pretrain checkpoint: sapiens_2b_epoch_660_torchscript.pt2 (Hugging Face repo "
                "facebook/sapiens-pretrain-2b-torchscript), the _bfloat16.pt2 export, or "
                "sapiens_2b_epoch_660_clean.pth with --config (needs the sapiens repo's mmpretrain)")


# ------------------------------------------------------------------------------------------- writer

def write_sapiens_maps(capture_dir, cam_id, frames_to_arrays, channels=None, overwrite=False):
    """Adds {frame id: float (hs, ws, C) array} to {capture}/decoder/aux/sapiens/cam{cam_id}.zip and writes
    aux/sapiens/channels.txt (default names feat_0 ... feat_{C-1}). A channels.txt that lists other names
    is an error (remove aux/sapiens to switch models). Returns (written names, skipped names)."""
    rows = pc.items(frames_to_arrays)
    shapes = {a.shape for _, a in rows}
    if not rows:
        return [], []
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"sapiens maps of camera {cam_id}: shapes {sorted(shapes)}, expected one (hs, ws, C)")
    C = next(iter(shapes))[2]
    names = list(channels) if channels is not None else [f"feat_{i}" for i in range(C)]
    if len(names) != C or any(not n or "\n" in n for n in names):
        raise ValueError(f"sapiens maps of camera {cam_id}: {len(names)} channel names for {C} channels")
    for f, a in rows:
        if not np.isfinite(a).all():
            raise ValueError(f"sapiens map of frame {f}: non-finite values")
    dec = pc.decoder_dir(capture_dir)
    ch_path = os.path.join(dec, "aux", "sapiens", "channels.txt")
    text = "".join(n + "\n" for n in names)
    if os.path.exists(ch_path):
        with open(ch_path) as fh:
            old = fh.read()
        if old != text:
            raise ValueError(f"{ch_path} lists {len(old.splitlines())} other channels than these {C}; remove "
                             f"{os.path.dirname(ch_path)} to start over with another model")
    else:
        pc.write_text_atomic(ch_path, text)
    members = {pc.member_npy(f): pc.npy_f32(a) for f, a in rows}
    return pc.zip_put(os.path.join(dec, "aux", "sapiens", f"cam{cam_id}.zip"), members, overwrite)


# ------------------------------------------------------------------------------------------- network

class SapiensFeatures:
    """uint8 (B, H, W, 3) RGB -> float32 (B, hs, ws, C) last-layer features."""

    def __init__(self, torch, device, weights, config=None, dtype="auto", input_size=(1024, 1024), pool=1):
        self.torch, self.device, self.size, self.pool = torch, device, input_size, pool
        if not weights:
            raise pc.MissingDependency("--weights is required: " + WEIGHTS_HINT)
        if not os.path.isfile(weights):
            raise pc.MissingDependency(f"--weights {weights}: no such file; expected " + WEIGHTS_HINT)
        mean, std = LITE_MEAN, LITE_STD
        if weights.endswith(".pth"):
            if not config:
                raise pc.MissingDependency("a .pth checkpoint needs --config: the matching mae_sapiens_*.py under "
                                           "sapiens/pretrain/configs/sapiens_mae/")
            try:
                from mmpretrain.apis import get_model
            except ImportError as e:
                raise pc.MissingDependency(f"mmpretrain is not importable ({e}): install the sapiens repo's "
                                           "engine/ and pretrain/ packages, or use the TorchScript .pt2 instead")
            model = get_model(config, pretrained=weights, device=str(device)).eval()
            model.backbone.out_type = "featmap"  # drop the cls token, tokens -> C x h x w
            self.fwd, mean, std, native = model.extract_feat, FULL_MEAN, FULL_STD, "float32"
        else:
            try:
                model, native = torch.jit.load(weights, map_location=device).eval(), "float32"
            except Exception as e_jit:
                if not hasattr(torch, "export") or not hasattr(torch.export, "load"):
                    raise pc.MissingDependency(f"{weights} is not TorchScript ({e_jit}); a torch.export .pt2 "
                                               f"needs torch >= 2.2 (this is {torch.__version__})")
                model, native = torch.export.load(weights).module().to(device), "bfloat16"
            self.fwd = model
        self.dtype = getattr(torch, native if dtype == "auto" else dtype)
        model.to(self.dtype)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def __call__(self, rgb):
        torch = self.torch
        F = torch.nn.functional
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(self.size[1], self.size[0]), mode="bilinear", align_corners=False)
        x = ((x - self.mean) / self.std).to(self.dtype)
        with torch.no_grad():
            y = self.fwd(x)
        if isinstance(y, (tuple, list)):
            y = y[-1]
        if y.ndim != 4:
            raise RuntimeError(f"Sapiens output has shape {tuple(y.shape)}; expected B x C x h x w")
        y = y.float()
        if self.pool > 1:
            y = F.avg_pool2d(y, self.pool)
        return y.permute(0, 2, 3, 1).contiguous().cpu().numpy()


# ------------------------------------------------------------------------------------------- driver

def process_capture(net, cap, cams, frames, args):
    nmaps = 0
    print(f"sapiens: {cap.dir}: {len(cams)} cameras, {len(frames)} frames")
    for cid in cams:
        done = pc.zip_names(cap.aux_zip("sapiens", cid))
        todo = [f for f in frames if f in cap.image_members(cid) and (args.overwrite or pc.member_npy(f) not in done)]
        t0, pending = time.time(), {}
        for b in range(0, len(todo), args.batch_size):
            batch = todo[b:b + args.batch_size]
            imgs = [cap.read_image(cid, f) for f in batch]
            if args.color_correct:
                imgs = [pc.color_correct(im) for im in imgs]
            for f, feat in zip(batch, net(np.stack(imgs))):
                pending[f] = feat
            if len(pending) >= args.flush_every or b + args.batch_size >= len(todo):
                nmaps += len(write_sapiens_maps(cap.dir, cid, pending, overwrite=args.overwrite)[0])
                pending = {}
        if todo:
            print(f"  camera {cid}: {len(todo)} images, {time.time() - t0:.1f} s", flush=True)
    print(f"sapiens: {cap.dir}: wrote {nmaps} maps")


def parse_size(s):
    w, _, h = s.lower().partition("x")
    return int(w), int(h or w)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    pc.add_common_args(p)
    p.add_argument("--config", help="mmpretrain config, only for a .pth checkpoint")
    p.add_argument("--input-size", type=parse_size, default=(1024, 1024), metavar="WxH",
                   help="network input (default 1024x1024: a 64x64 grid with patch 16)")
    p.add_argument("--pool", type=int, default=1, help="average-pool the feature grid by this factor (1)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="compute dtype (auto: float32 for TorchScript and .pth, bfloat16 for a torch.export .pt2)")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass (4)")
    args = p.parse_args(argv)
    jobs = pc.jobs_from_args(args)
    if jobs is None:
        return 1
    try:
        torch, device = pc.torch_device(args.device)
        net = SapiensFeatures(torch, device, args.weights, args.config, args.dtype, args.input_size, args.pool)
        for cap, cams, frames in jobs:
            process_capture(net, cap, cams, frames, args)
    except pc.MissingDependency as e:
        pc.die_missing(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
