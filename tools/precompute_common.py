"""precompute_common.py — shared by tools/precompute_dust3r.py and tools/precompute_sapiens.py.

Reads an ava256 capture with plain Python (stdlib zipfile/json/csv + numpy) and writes the derived
aux maps in the layout of data/ava256_write.h:

  {capture}/decoder/aux/{kind}/cam{ID}.zip   members {frame:06d}.npy (.npy v1.0, '<f4', C order);
                                             STORED, no directory entries, fixed 1980-01-01 timestamps
  {capture}/decoder/aux/sapiens/channels.txt one channel name per line

Zips are never left half-written: a new or rewritten zip goes to `NAME.tmp.<pid>` and is renamed; new
members are appended in place behind a journal (`NAME.journal` = the old central directory and its
offset), so an interrupted append is rolled back to the previous zip the next time the file is touched.
An flock on the zip's folder keeps two processes from writing one zip at the same time.

AVIF decoding, first that works: Pillow with AVIF support (Pillow >= 11.2 or the pillow-avif-plugin
package); `avifdec` (Debian: apt-get install libavif-bin) to a temporary PNG read by Pillow or, without
Pillow, by the small zlib+numpy PNG reader below (8-bit, non-interlaced; slow: seconds per 1024-row image).
"""
import csv
import fcntl
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

import numpy as np

NATIVE_W, NATIVE_H = 2668, 4096  # the sensor size K in camera_calibration.json refers to (W x H)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # as data/ava256_write.c: byte-identical archives run to run


class MissingDependency(Exception):
    """A package, tool or weights file is missing; main() prints the message and exits with status 2."""


def die_missing(e):
    sys.stderr.write(f"error: {e}\n")
    sys.exit(2)


# ------------------------------------------------------------------------------------------- capture

def decoder_dir(capture):
    """`{mcd}--{mct}--{sid}` or its `decoder` folder -> the decoder folder."""
    capture = os.path.abspath(capture)
    sub = os.path.join(capture, "decoder")
    return sub if os.path.isdir(sub) else capture


def member_npy(frame):
    return f"{int(frame):06d}.npy"


class Camera:
    def __init__(self, cid, K, R, t):
        self.id, self.K, self.R, self.t = cid, K, R, t  # K native pixels; world->camera R, t in mm

    def K_image(self, W, H):
        """K for a W x H decode of the native 2668 x 4096 frame (per-axis scale, no half-pixel shift)."""
        S = np.diag([W / NATIVE_W, H / NATIVE_H, 1.0])
        return S @ self.K

    def cam2world_m(self):
        """4x4 camera->world pose with the translation in metres (DUSt3R's preset_pose convention)."""
        P = np.eye(4)
        P[:3, :3] = self.R.T
        P[:3, 3] = -self.R.T @ (self.t / 1000.0)
        return P


class Capture:
    """One capture: cameras (calibration ∩ non-empty image zips), frame ids, image members by frame."""

    def __init__(self, path):
        self.dir = decoder_dir(path)
        calib = os.path.join(self.dir, "camera_calibration.json")
        if not os.path.isfile(calib):
            raise FileNotFoundError(f"{path}: no camera_calibration.json (expected a capture folder "
                                    f"{{mcd}}--{{mct}}--{{sid}} or its decoder/ folder)")
        with open(calib) as f:
            krt = json.load(f)["KRT"]
        self.cameras = {}
        for c in krt:
            K = np.array(c["K"], np.float64).T      # stored transposed
            T = np.array(c["T"], np.float64)        # stored transposed: rows 0..2 = R's columns, row 3 = (t, 1)
            self.cameras[str(c["cameraId"])] = Camera(str(c["cameraId"]), K, T[:3, :3].T.copy(), T[3, :3].copy())
        with open(os.path.join(self.dir, "frame_list.csv"), newline="") as f:
            self.frames = [int(r["frame_id"]) for r in csv.DictReader(f)]
        self._members = {}
        self.camera_ids = [cid for cid in sorted(self.cameras) if self.image_members(cid)]

    def image_zip(self, cid):
        return os.path.join(self.dir, "image", f"cam{cid}.zip")

    def image_members(self, cid):
        """{frame id: member name}, indexed by basename (image zips use a `cam{ID}/` prefix)."""
        if cid not in self._members:
            m = {}
            try:
                with zipfile.ZipFile(self.image_zip(cid)) as z:
                    for n in z.namelist():
                        b = n.rsplit("/", 1)[-1]
                        if not n.endswith("/") and b[:6].isdigit() and b.endswith(".avif"):
                            m[int(b.split(".")[0])] = n
            except (FileNotFoundError, zipfile.BadZipFile):
                pass
            self._members[cid] = m
        return self._members[cid]

    def read_image(self, cid, frame):
        """uint8 (H, W, 3) RGB of camera cid at frame id `frame`."""
        with zipfile.ZipFile(self.image_zip(cid)) as z:
            return decode_avif(z.read(self.image_members(cid)[frame]))

    def aux_zip(self, kind, cid):
        return os.path.join(self.dir, "aux", kind, f"cam{cid}.zip")


def parse_frames(spec, capture):
    """'20000,20003,20010-20030' (frame ids, ranges inclusive) -> ids in frame-list order."""
    if not spec:
        return list(capture.frames)
    want = set()
    for part in spec.split(","):
        a, _, b = part.strip().partition("-")
        lo, hi = int(a), int(b or a)
        hits = [f for f in capture.frames if lo <= f <= hi]
        if not hits:
            raise ValueError(f"--frames {part}: no such frame id in {capture.dir}/frame_list.csv")
        want.update(hits)
    return [f for f in capture.frames if f in want]


def select(capture, cameras, frames, every):
    cams = capture.camera_ids
    if cameras:
        cams = [c.strip() for c in cameras.split(",") if c.strip()]
        bad = [c for c in cams if c not in capture.camera_ids]
        if bad:
            raise ValueError(f"--cameras: {','.join(bad)} not in {capture.dir} (cameras with images: "
                             f"{','.join(capture.camera_ids)})")
    return cams, parse_frames(frames, capture)[::max(1, every)]


def jobs_from_args(args):
    """[(capture, cameras, frames)] for --capture/--cameras/--frames/--every, or None after printing why
    (a bad capture or selection: the caller exits 1)."""
    try:
        return [(cap,) + select(cap, args.cameras, args.frames, args.every) for cap in map(Capture, args.capture)]
    except (OSError, ValueError, KeyError) as e:
        sys.stderr.write(f"error: {e}\n")
        return None


def add_common_args(p):
    p.add_argument("--capture", nargs="+", required=True, metavar="DIR",
                   help="capture folder(s) {mcd}--{mct}--{sid} (or their decoder/ folders)")
    p.add_argument("--cameras", help="comma-separated camera ids (default: every camera with images)")
    p.add_argument("--frames", help="frame ids and inclusive id ranges, e.g. 20000,20010-20030 (default: all)")
    p.add_argument("--every", type=int, default=1, metavar="N", help="keep every N-th selected frame")
    p.add_argument("--device", default="cuda", help="torch device: cuda, cuda:1, cpu (default cuda)")
    p.add_argument("--weights", help="checkpoint (see the docstring)")
    p.add_argument("--overwrite", action="store_true", help="recompute and replace members already written")
    p.add_argument("--flush-every", type=int, default=8, metavar="F",
                   help="append finished maps to the zips every F frames (default 8)")
    p.add_argument("--color-correct", action="store_true",
                   help="apply the ad-hoc ava256 linear->display colour correction before the network")


def torch_device(name):
    """Imports torch and checks the device; MissingDependency with a hint otherwise."""
    try:
        import torch
    except ImportError as e:
        raise MissingDependency(f"PyTorch is not importable ({e}). Install it on the GPU machine "
                                "(pip install torch, matching its CUDA) and run again.")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MissingDependency(f"--device {name}: torch {torch.__version__} sees no CUDA device; "
                                "run on a GPU machine or pass --device cpu (very slow)")
    return torch, torch.device(name)


def color_correct(rgb):
    """The ad-hoc ava256 correction for linear camera RGB (ava256_format.md §3.3; third-party recollection):
    per-channel gain, black level, renormalise, clip, gamma 1/1.5254. uint8 in, uint8 out."""
    x = rgb.astype(np.float32) / 255 * np.float32([1.279545, 1.1059, 1.6]) / 1.1059
    black = np.float32([4.4, 3.1, 4.2]) / 255
    x = np.clip((x - black) / (1 - black), 0, 1) ** (1 / 1.5254)
    return np.round(x * 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------- images

def decode_avif(data):
    try:
        import PIL.Image
        try:
            import pillow_avif  # noqa: F401  (registers the AVIF plugin on older Pillow)
        except ImportError:
            pass
        try:
            return np.asarray(PIL.Image.open(io.BytesIO(data)).convert("RGB"))
        except Exception:
            pass  # no AVIF support in this Pillow: fall through to avifdec
    except ImportError:
        PIL = None
    exe = shutil.which("avifdec")
    if not exe:
        raise MissingDependency("cannot decode AVIF: install libavif-bin (apt-get install libavif-bin, for "
                                "avifdec) or pillow-avif-plugin")
    with tempfile.TemporaryDirectory(prefix="avifdec.") as d:
        src, dst = os.path.join(d, "in.avif"), os.path.join(d, "out.png")
        with open(src, "wb") as f:
            f.write(data)
        r = subprocess.run([exe, "-d", "8", src, dst], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise RuntimeError(f"avifdec failed: {r.stdout.decode(errors='replace').strip()}")
        with open(dst, "rb") as f:
            png = f.read()
    if PIL is not None:
        return np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGB"))
    img = read_png(png)
    return img[..., :3] if img.shape[2] >= 3 else np.repeat(img[..., :1], 3, axis=2)


def read_png(data):
    """Minimal PNG reader: 8-bit grey / grey+alpha / RGB / RGBA, non-interlaced -> uint8 (H, W, ch)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, hdr = 8, [], None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    W, H, depth, ctype, _, _, interlace = hdr
    ch = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or ch is None or interlace:
        raise ValueError(f"PNG with bit depth {depth}, colour type {ctype}, interlace {interlace} unsupported")
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(H, 1 + W * ch)
    out = np.zeros((H, W * ch), np.uint8)
    prev = np.zeros(W * ch, np.uint8)
    for y in range(H):
        ft, row = raw[y, 0], raw[y, 1:]
        if ft == 0:
            cur = row.copy()
        elif ft == 1:  # Sub: a running sum per channel (uint8 wraps)
            cur = np.cumsum(row.reshape(W, ch), axis=0, dtype=np.uint8).reshape(-1)
        elif ft == 2:
            cur = row + prev
        elif ft in (3, 4):  # Average, Paeth: sequential along the row
            r, p, c = row.tolist(), prev.tolist(), [0] * (W * ch)
            for i in range(W * ch):
                a = c[i - ch] if i >= ch else 0
                b = p[i]
                if ft == 3:
                    c[i] = (r[i] + ((a + b) >> 1)) & 255
                else:
                    cc = p[i - ch] if i >= ch else 0
                    pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                    c[i] = (r[i] + pred) & 255
            cur = np.array(c, np.uint8)
        else:
            raise ValueError(f"PNG row {y}: bad filter {ft}")
        out[y] = prev = cur
    return out.reshape(H, W, ch)


# ------------------------------------------------------------------------------------------- writing

def npy_f32(a):
    """.npy v1.0 bytes of a float32 little-endian C-order array, header padded to 64 bytes (the bytes
    data/ava256_write.c's avw_npy_f32 writes)."""
    a = np.ascontiguousarray(a, dtype="<f4")
    dims = ", ".join(str(d) for d in a.shape) + ("," if a.ndim == 1 else "")
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % dims
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode("latin1") + a.tobytes()


def _info(name):
    zi = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    zi.compress_type = zipfile.ZIP_STORED
    zi.create_system = 3
    zi.external_attr = 0o100644 << 16
    return zi


def _fsync_dir(path):
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _recover(path):
    """Roll an interrupted append back: truncate at the old central directory and restore it."""
    j = path + ".journal"
    if not os.path.exists(j):
        return
    with open(j, "rb") as f:
        blob = f.read()
    if len(blob) >= 8:  # a journal shorter than that never got renamed into place; nothing was appended
        (start,) = struct.unpack("<Q", blob[:8])
        with open(path, "r+b") as f:
            f.truncate(start)
            f.seek(start)
            f.write(blob[8:])
            f.flush()
            os.fsync(f.fileno())
        sys.stderr.write(f"note: {path}: rolled back an interrupted append\n")
    os.remove(j)


def zip_names(path):
    """Member names of an aux zip (after rolling back an interrupted append); empty if none."""
    if not os.path.exists(path):
        return set()
    with _Lock(path):
        _recover(path)
        with zipfile.ZipFile(path) as z:
            return set(z.namelist())


class _Lock:
    """An exclusive flock on the zip's folder (no lock files left behind); best effort where the file
    system has no flock."""

    def __init__(self, path):
        self.dir = os.path.dirname(os.path.abspath(path))

    def __enter__(self):
        self.fd = os.open(self.dir, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError:
            pass
        return self

    def __exit__(self, *a):
        os.close(self.fd)  # releases the lock


def zip_put(path, members, overwrite=False):
    """Adds {name: bytes} to the STORED zip at path. Existing names are kept (skipped) unless overwrite,
    which rewrites the zip without the old copies. Returns (written names, skipped names)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with _Lock(path):
        _recover(path)
        old = set()
        if os.path.exists(path):
            with zipfile.ZipFile(path) as z:
                old = set(z.namelist())
        clash = old & set(members)
        skipped = [] if overwrite else sorted(clash)
        if not overwrite:
            members = {n: b for n, b in members.items() if n not in clash}
        if not members:
            return [], skipped
        if not old or (clash and overwrite):  # new zip, or replacing members: write a full copy, rename it
            tmp = f"{path}.tmp.{os.getpid()}"
            try:
                with open(tmp, "wb") as fh:
                    with zipfile.ZipFile(fh, "w") as zo:
                        if old:
                            with zipfile.ZipFile(path) as zi:
                                for n in zi.namelist():
                                    if n not in members:
                                        zo.writestr(_info(n), zi.read(n))
                        for n in sorted(members):
                            zo.writestr(_info(n), members[n])
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
            _fsync_dir(path)
            return sorted(members), []
        # append in place behind a journal of the old central directory
        with open(path, "r+b") as fh:
            with zipfile.ZipFile(fh) as z:
                start = z.start_dir
            fh.seek(start)
            tail = fh.read()
            jt = f"{path}.journal.tmp"
            with open(jt, "wb") as jf:
                jf.write(struct.pack("<Q", start) + tail)
                jf.flush()
                os.fsync(jf.fileno())
            os.replace(jt, path + ".journal")
            _fsync_dir(path)
            fh.seek(0)
            with zipfile.ZipFile(fh, "a") as za:
                for n in sorted(members):
                    za.writestr(_info(n), members[n])
            fh.flush()
            os.fsync(fh.fileno())
        os.remove(path + ".journal")
        return sorted(members), skipped


def write_text_atomic(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def items(frames_to_arrays):
    """A {frame: array} mapping or an iterable of (frame, array) pairs -> list of (int frame, array)."""
    it = frames_to_arrays.items() if hasattr(frames_to_arrays, "items") else frames_to_arrays
    return [(int(f), np.asarray(a)) for f, a in it]
