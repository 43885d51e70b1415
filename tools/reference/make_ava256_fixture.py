#!/usr/bin/env python3
"""make_ava256_fixture.py — the deterministic synthetic ava256 fixture of
/work/shared/reference/ava256_format.md §10: 2 subjects x 8 cameras x 10 frames, 42x64 (W x H) images,
in the real on-disk layout (STORED zips with the real member names, transposed K and T in millimetres,
head poses, expression pickle, foreground masks, background plates). Fully synthetic: a sphere of radius
100 mm at the head-pose translation, rendered with 8x8 supersampling over a per-camera background plate.

usage: /usr/bin/python3 tools/reference/make_ava256_fixture.py OUTDIR

Writes
  OUTDIR/ava256_tiny/256_ids.csv and OUTDIR/ava256_tiny/{mcd}--{mct}--{sid}/decoder/...
  OUTDIR/expected.json                   the numbers the tests need (colours, formula, special cases)
  OUTDIR/expected/{sid}.rgb              uint8 [cams, frames, H, W, 3]: what went into avifenc
  OUTDIR/expected/{sid}.mask             uint8 [cams, frames, H, W]
  OUTDIR/expected/{sid}.bg               uint8 [cams, H, W, 3] background plates
Special cases: (TST002, 400105, 20027) has no image and no mask member (a dropped frame); (TST001, 400102,
20015) is lossy YUV 4:2:0, BT.709 matrix, limited range (chroma upsampling, CICP); calibration camera
400109 has no zip. TST001's pickle has int keys and numpy values, TST002's str keys and list values.
Needs avifenc (libavif-bin 0.11: `-l` = lossless, YUV 4:4:4 + identity matrix + quantizer 0)."""
import json
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

W, H = 42, 64                    # decoded image size (portrait, like the 667x1024 release)
NATIVE_W, NATIVE_H = 2668, 4096  # the implicit sensor size K refers to
FX = FY = 8000.0
CX, CY = 1334.0, 2048.0
HC = np.array([0.0, 0.0, 1000.0])  # head centre, world mm
DOME_R = 1100.0
SPHERE_R = 100.0
SUBJECTS = [("20240101", "TST001", "0900"), ("20240102", "TST002", "1030")]
CAMS = [f"{400101 + i}" for i in range(8)]
EXTRA_CAM = "400109"  # in the calibration, no zip
FRAMES = [20000 + 3 * k for k in range(10)]
SEQS = ["EXP_neutral_peak"] * 4 + ["EXP_free_face"] * 6
AZ = [-60.0, -20.0, 20.0, 60.0]
EL = [-10.0, 15.0]
DISTORTION = [-0.07, 0.04, -0.003, 0.003]
MISSING = ("TST002", "400105", 20027)
LOSSY = ("TST001", "400102", 20015)
SS = 8  # supersampling per axis


def disc_colour(s, c):
    return [40 + 25 * c, 200 - 60 * s, 120 + 10 * c]


def frame_colour(k):
    return [250, 20 * k, 250 - 20 * k]


def plate(s, c):
    """Background plate: dark, with a gentle per-camera gradient."""
    y, x = np.mgrid[0:H, 0:W]
    bg = np.stack([10 + x // 6, 12 + y // 8, 8 + c + 0 * x], axis=-1)
    return bg.astype(np.uint8)


def expr_code(s, frame_id):
    j = np.arange(256, dtype=np.float64)
    return (0.1 * np.sin(0.37 * j + 0.11 * frame_id + s)).astype(np.float32)


def look_at(C, target):
    """OpenCV world->camera R (rows: right, down, forward) for a camera at C looking at target."""
    fwd = target - C
    fwd /= np.linalg.norm(fwd)
    up = np.array([0.0, 1.0, 0.0])  # world +y up
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    return np.stack([right, down, fwd])


def cameras(s):
    """Per camera (R, t in mm, native K); subject s shifts the azimuths by 3 degrees so calibrations differ."""
    out = []
    for i in range(8):
        az = math.radians(AZ[i % 4] + 3.0 * s)
        el = math.radians(EL[i // 4])
        C = HC + DOME_R * np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
        R = look_at(C, HC)
        out.append((R, -R @ C))
    az = math.radians(180.0)  # the 9th camera, behind the head
    C = HC + DOME_R * np.array([math.sin(az), 0.0, math.cos(az)])
    R = look_at(C, HC)
    out.append((R, -R @ C))
    return out


def head_pose(k):
    a = math.radians(2.0 * k)  # yaw about the head's up axis (+y)
    R = np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    return R, HC + np.array([5.0 * k, 0.0, 0.0])


def K_img():
    return np.array([[FX * W / NATIVE_W, 0, CX * W / NATIVE_W], [0, FY * H / NATIVE_H, CY * H / NATIVE_H], [0, 0, 1]])


def coverage(R, t, centre):
    """Fraction of each pixel covered by the sphere (exact ray-sphere test at SS x SS subsamples)."""
    Kinv = np.linalg.inv(K_img())
    o = (np.arange(SS) + 0.5) / SS
    u = (np.arange(W)[:, None] + o[None, :]).reshape(-1)  # pixel centres at +0.5
    v = (np.arange(H)[:, None] + o[None, :]).reshape(-1)
    uu, vv = np.meshgrid(u, v)
    d = Kinv @ np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)])
    d = R.T @ d
    d /= np.linalg.norm(d, axis=0)
    C = -R.T @ t
    oc = C - centre
    b = d.T @ oc
    disc = b * b - (oc @ oc - SPHERE_R * SPHERE_R)
    hit = (disc > 0).reshape(H, SS, W, SS)
    return hit.mean(axis=(1, 3))


def png_bytes(a):
    a = np.ascontiguousarray(a, dtype=np.uint8)
    h, w = a.shape[:2]
    ctype = 0 if a.ndim == 2 else 2
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def avifenc(job):
    png_path, avif_path, args = job
    r = subprocess.run(["avifenc", *args, "-s", "8", png_path, avif_path], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"avifenc failed on {png_path}: {r.stdout}{r.stderr}")
    with open(avif_path, "rb") as f:
        return f.read()


def write_zip(path, members):
    """STORED, fixed timestamps, no directory entries: byte-identical on every run."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_ava256_fixture.py OUTDIR")
    if shutil.which("avifenc") is None:
        raise SystemExit("make_ava256_fixture.py: avifenc not found (apt-get install libavif-bin)")
    out = sys.argv[1]
    root = os.path.join(out, "ava256_tiny")
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(os.path.join(out, "expected"), exist_ok=True)
    os.makedirs(root)
    with open(os.path.join(root, "256_ids.csv"), "w") as f:
        f.write("mcd,sid,mct\n" + "".join(f"{m},{s},{t}\n" for m, s, t in SUBJECTS))
    work = tempfile.mkdtemp(prefix="ava256_fixture_")
    expected = {"image_w": W, "image_h": H, "native_w": NATIVE_W, "native_h": NATIVE_H,
                "fx": FX, "fy": FY, "cx": CX, "cy": CY, "head_centre_mm": HC.tolist(), "sphere_radius_mm": SPHERE_R,
                "cameras": CAMS, "excluded_camera": EXTRA_CAM, "frames": FRAMES, "seqs": SEQS,
                "missing": {"sid": MISSING[0], "camera": MISSING[1], "frame": MISSING[2]},
                "lossy": {"sid": LOSSY[0], "camera": LOSSY[1], "frame": LOSSY[2]},
                "expr": "code[j] = 0.1*sin(0.37*j + 0.11*frame_id + subject_index), float32",
                "frame_block": "pixels [0:2, 0:2] = frame_colour(k) = [250, 20k, 250-20k]",
                "subjects": []}
    jobs, placements = [], []
    for s, (mcd, sid, mct) in enumerate(SUBJECTS):
        dec = os.path.join(root, f"{mcd}--{mct}--{sid}", "decoder")
        os.makedirs(dec)
        cams = cameras(s)
        krt = []
        for i, cid in enumerate(CAMS + [EXTRA_CAM]):
            R, t = cams[i]
            K = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = R, t
            krt.append({"cameraId": cid, "projectionModel": "Pinhole", "distortionModel": "RadialAndTangential",
                        "K": K.T.tolist(), "distortion": DISTORTION, "T": T.T.tolist()})  # stored transposed
        with open(os.path.join(dec, "camera_calibration.json"), "w") as f:
            json.dump({"KRT": krt}, f, indent=1)
        with open(os.path.join(dec, "frame_list.csv"), "w") as f:
            f.write("seg_id,frame_id\n" + "".join(f"{q},{fid}\n" for q, fid in zip(SEQS, FRAMES)))
        poses = []
        for k, fid in enumerate(FRAMES):
            R, t = head_pose(k)
            M = np.concatenate([R, t[:, None]], axis=1)
            poses.append((f"{fid:06d}.txt", "".join(" ".join(f"{x:.9f}" for x in row) + "\n" for row in M).encode()))
        write_zip(os.path.join(dec, "head_pose", "head_pose.zip"), poses)
        codes = {fid: expr_code(s, fid) for fid in FRAMES}
        if s == 1:
            codes = {str(k): v.tolist() for k, v in codes.items()}
        os.makedirs(os.path.join(dec, "expression_codes"))
        with open(os.path.join(dec, "expression_codes", "aeparams_1440000.pkl"), "wb") as f:
            pickle.dump(codes, f, protocol=4)
        rgb = np.zeros((8, len(FRAMES), H, W, 3), np.uint8)
        mask = np.zeros((8, len(FRAMES), H, W), np.uint8)
        bgs = np.zeros((8, H, W, 3), np.uint8)
        subj = {"sid": sid, "folder": f"{mcd}--{mct}--{sid}", "index": s, "disc_colour": [], "centre_px": []}
        for c, cid in enumerate(CAMS):
            R, t = cams[c]
            bg = plate(s, c)
            bgs[c] = bg
            col = np.array(disc_colour(s, c), np.float64)
            subj["disc_colour"].append(disc_colour(s, c))
            centres = []
            for k, fid in enumerate(FRAMES):
                Rh, th = head_pose(k)
                cov = coverage(R, t, th)
                img = np.rint(bg * (1 - cov[..., None]) + col * cov[..., None]).astype(np.uint8)
                img[0:2, 0:2] = frame_colour(k)
                rgb[c, k], mask[c, k] = img, np.rint(255 * cov).astype(np.uint8)
                p = K_img() @ (R @ th + t)
                centres.append([p[0] / p[2], p[1] / p[2]])
                if (sid, cid, fid) == MISSING:
                    continue
                lossy = (sid, cid, fid) == LOSSY
                stem = os.path.join(work, f"{sid}_{cid}_{fid:06d}")
                with open(stem + ".png", "wb") as f:
                    f.write(png_bytes(img))
                with open(stem + "_m.png", "wb") as f:
                    f.write(png_bytes(mask[c, k]))
                lossy_args = ["-y", "420", "--min", "8", "--max", "16", "--cicp", "1/13/1", "-r", "limited"]
                args = lossy_args if lossy else ["-l"]
                jobs.append((stem + ".png", stem + ".avif", args))
                placements.append((dec, "image", cid, fid))
                jobs.append((stem + "_m.png", stem + "_m.avif", ["-l", "-y", "400"]))
                placements.append((dec, "mask", cid, fid))
            subj["centre_px"].append(centres)
            stem = os.path.join(work, f"{sid}_{cid}_bg")
            with open(stem + ".png", "wb") as f:
                f.write(png_bytes(bg))
            jobs.append((stem + ".png", stem + ".avif", ["-l"]))
            placements.append((dec, "bg", cid, 0))
        rgb.tofile(os.path.join(out, "expected", f"{sid}.rgb"))
        mask.tofile(os.path.join(out, "expected", f"{sid}.mask"))
        bgs.tofile(os.path.join(out, "expected", f"{sid}.bg"))
        expected["subjects"].append(subj)
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as ex:
        blobs = list(ex.map(avifenc, jobs))
    zips = {}  # the real member names: image zips have a cam{ID}/ prefix, masks none, plates {ID}.avif
    for (dec, kind, cid, fid), blob in zip(placements, blobs):
        if kind == "image":
            where, name = os.path.join("image", f"cam{cid}.zip"), f"cam{cid}/{fid:06d}.avif"
        elif kind == "mask":
            where, name = os.path.join("foreground_masks", f"cam{cid}.zip"), f"{fid:06d}.avif"
        else:
            where, name = os.path.join("background_image", "background_image.zip"), f"{cid}.avif"
        zips.setdefault(os.path.join(dec, where), []).append((name, blob))
    for path, members in zips.items():
        write_zip(path, members)
    shutil.rmtree(work)
    tmp = os.path.join(out, "expected.json.tmp")
    with open(tmp, "w") as f:
        json.dump(expected, f, indent=1)
    os.replace(tmp, os.path.join(out, "expected.json"))
    print(f"make_ava256_fixture.py: wrote {root} ({len(blobs)} AVIF files)")


if __name__ == "__main__":
    main()
