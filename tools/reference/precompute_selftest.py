#!/usr/bin/python3
"""Self-tests of tools/precompute_dust3r.py and tools/precompute_sapiens.py without DUSt3R or Sapiens.

Run: /usr/bin/python3 tools/reference/precompute_selftest.py [-k NAME] [--keep]
Needs python3-numpy, the built `avat3r` (build/avat3r, or $AVAT3R_BIN; built with ninja -C build when
missing; or $PRECOMPUTE_SELFTEST_SYNTH = a folder whose noaux/ and aux/ hold the two `avat3r synth` runs of
setup() below) and avifdec (libavif-bin). python3-torch is used where present: the stub-DUSt3R pipeline run and
the TorchScript Sapiens run are skipped without it.

What it checks: the capture reader against `avat3r synth` (calibration transposes, mm, K scaling, pixel
centres, the dropped member); the AVIF/PNG fallback decoders; the writers (member names, STORED, no
directory entries, fixed timestamps, .npy v1.0 headers byte-identical to the C writer's, dtype/shape/value
round trip, channels.txt) against what `avat3r synth` writes for the same capture; resume, --overwrite and
the roll-back of an interrupted append; the map geometry; the entry points end to end with a stub `dust3r`
package and a tiny TorchScript model; and that missing packages or weights give a clear message and exit
status 2, not a traceback. Prints one PASS/FAIL/SKIP line per test and 'N passed, N failed'."""
import glob
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
import zipfile
import zlib

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)
import precompute_common as pc  # noqa: E402
import precompute_dust3r as pd  # noqa: E402
import precompute_sapiens as ps  # noqa: E402

BIN = os.environ.get("AVAT3R_BIN", os.path.join(ROOT, "build", "avat3r"))
TMP = None
CAPS = {}  # 'noaux' / 'aux' -> capture folder written by avat3r synth


def have_torch():
    try:
        import torch  # noqa: F401
        return True
    except Exception:
        return False


class Skip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ------------------------------------------------------------------------------------------- fixture

def setup():
    global TMP
    TMP = tempfile.mkdtemp(prefix="precompute_selftest.")
    pre = os.environ.get("PRECOMPUTE_SELFTEST_SYNTH")  # a folder with noaux/ and aux/ made by avat3r synth
    if pre:
        for name in ("noaux", "aux"):
            (CAPS[name],) = [d for d in glob.glob(os.path.join(pre, name, "*--*--*")) if os.path.isdir(d)]
        return
    if not os.access(BIN, os.X_OK):
        subprocess.run(["ninja", "-C", os.path.join(ROOT, "build")], check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, AVAT3R_SOURCE_ROOT=ROOT)
    for name, extra in (("noaux", ["--no-aux"]), ("aux", [])):
        out = os.path.join(TMP, name)
        subprocess.run([BIN, "synth", "--out", out, "--subjects", "1", "--cameras", "3", "--frames", "3",
                        "--size", "48x64", "--seed", "1"] + extra, check=True, env=env, stdout=subprocess.DEVNULL)
        (cap,) = [d for d in glob.glob(os.path.join(out, "*--*--*")) if os.path.isdir(d)]
        CAPS[name] = cap


def fresh(tag):
    """A private copy of the --no-aux capture."""
    dst = os.path.join(TMP, "work", tag, os.path.basename(CAPS["noaux"]))
    shutil.copytree(CAPS["noaux"], dst)
    return dst


def members(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: (i, z.read(i.filename)) for i in z.infolist()}


def npy(b):
    return np.load(io.BytesIO(b), allow_pickle=False)


def check_zip(path, expect_names):
    """STORED, no directory entries, 1980 timestamps, unique names, CRCs, exact member set."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        check(z.testzip() is None, f"{path}: bad CRC")
        for i in z.infolist():
            check(i.compress_type == zipfile.ZIP_STORED, f"{i.filename}: not STORED")
            check(not i.filename.endswith("/") and "/" not in i.filename, f"{i.filename}: directory entry/prefix")
            check(i.date_time == (1980, 1, 1, 0, 0, 0), f"{i.filename}: timestamp {i.date_time}")
    check(len(names) == len(set(names)), f"{path}: duplicate members {names}")
    check(set(names) == set(expect_names), f"{path}: members {sorted(names)} != {sorted(expect_names)}")


def random_maps(cap, cid, shape, seed, conf=False):
    """{frame: random float32 array} for every frame camera cid has an image of."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in cap.image_members(cid):
        a = rng.normal(0, 500, shape).astype(np.float32)
        if conf:
            a[..., 3] = rng.uniform(0, 1, a.shape[:2])
        out[f] = a
    return out


def have_pil():
    try:
        import PIL.Image  # noqa: F401
        return True
    except Exception:
        return False


# ------------------------------------------------------------------------------------------- tests

def test_capture_reader():
    cap = pc.Capture(CAPS["aux"])
    check(sorted(cap.cameras) == ["400101", "400102", "400103", "400104"], f"calibration {sorted(cap.cameras)}")
    check(cap.camera_ids == ["400101", "400102", "400103"], f"cameras with images {cap.camera_ids}")
    check(len(cap.frames) == 3, f"frames {cap.frames}")
    n = sum(len(cap.image_members(c)) for c in cap.camera_ids)
    check(n == 8, f"{n} image members, expected 3 x 3 - 1 dropped")
    check(pc.Capture(os.path.join(CAPS["aux"], "decoder")).camera_ids == cap.camera_ids, "decoder/ path")
    # synth's aux points (world mm) must project onto the pixel centres with our reading of the calibration
    for cid in cap.camera_ids:
        c = cap.cameras[cid]
        a = npy(members(cap.aux_zip("dust3r", cid))["020000.npy"][1]).astype(np.float64)
        H, W = a.shape[:2]
        img = cap.read_image(cid, 20000)
        check(img.shape == (H, W, 3) and img.dtype == np.uint8, f"image {img.shape} {img.dtype}")
        K = c.K_image(W, H)
        Xc = a[..., :3] @ c.R.T + c.t
        uv = Xc[..., :2] / Xc[..., 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
        ref = np.stack(np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5), -1)
        fg = a[..., 3] > 0.5
        err = np.median(np.linalg.norm(uv - ref, axis=-1)[fg])
        check(fg.mean() > 0.2 and err < 0.5, f"cam {cid}: median reprojection error {err:.3f} px")
        P = c.cam2world_m()
        check(np.allclose(P[:3, :3] @ c.R, np.eye(3)) and np.allclose(c.R @ P[:3, 3] + c.t / 1000, 0),
              "cam2world_m is not the inverse of the calibration")
    check(pc.parse_frames("20000,20001-20004", cap) == cap.frames, "frame ranges")
    check(pc.select(cap, "400102", None, 2)[1] == [cap.frames[0], cap.frames[2]], "--every")
    for bad in ("400104", "999"):
        try:
            pc.select(cap, bad, None, 1)
            raise AssertionError(f"--cameras {bad} accepted")
        except ValueError:
            pass


def png_encode(img, filters):
    H, W, ch = img.shape
    raw, prev = bytearray(), np.zeros(W * ch, np.int64)
    for y in range(H):
        row = img[y].reshape(-1).astype(np.int64)
        a = np.concatenate([np.zeros(ch, np.int64), row[:-ch]])
        c = np.concatenate([np.zeros(ch, np.int64), prev[:-ch]])
        ft = filters[y % len(filters)]
        pa, pb, pc_ = np.abs(prev - c), np.abs(a - c), np.abs(a + prev - 2 * c)  # Paeth distances
        pred = [0, a, prev, (a + prev) // 2, np.where((pa <= pb) & (pa <= pc_), a, np.where(pb <= pc_, prev, c))][ft]
        raw += bytes([ft]) + ((row - pred) % 256).astype(np.uint8).tobytes()
        prev = row

    def chunk(k, d):
        return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[ch]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def test_png_reader():
    rng = np.random.default_rng(3)
    for ch in (1, 2, 3, 4):
        img = rng.integers(0, 256, (11, 7, ch), dtype=np.uint8)
        img[:, :3] = 200  # some flat area too
        got = pc.read_png(png_encode(img, [0, 1, 2, 3, 4]))
        check(np.array_equal(got, img), f"{ch}-channel PNG with all five filters differs")


def test_avif_decoders():
    if not shutil.which("avifdec"):
        raise Skip("no avifdec (apt-get install libavif-bin)")
    cap = pc.Capture(CAPS["noaux"])
    with zipfile.ZipFile(cap.image_zip("400101")) as z:
        data = z.read("cam400101/020001.avif")
    a = pc.decode_avif(data)
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "i.avif"), "wb").write(data)
        subprocess.run(["avifdec", "-d", "8", os.path.join(d, "i.avif"), os.path.join(d, "o.png")], check=True,
                       stdout=subprocess.DEVNULL)
        b = pc.read_png(open(os.path.join(d, "o.png"), "rb").read())[..., :3]
    check(a.shape == (64, 48, 3) and np.array_equal(a, b), "decode_avif and avifdec + read_png differ")
    # without Pillow and without avifdec: a MissingDependency naming the packages
    saved, path = {k: v for k, v in sys.modules.items() if k == "PIL" or k.startswith("PIL.")}, os.environ["PATH"]
    try:
        for k in saved:
            del sys.modules[k]
        sys.modules["PIL"] = None  # import PIL -> ImportError
        os.environ["PATH"] = ""
        try:
            pc.decode_avif(data)
            raise AssertionError("decoded without any decoder")
        except pc.MissingDependency as e:
            check("libavif-bin" in str(e), f"message: {e}")
    finally:
        os.environ["PATH"] = path
        del sys.modules["PIL"]
        sys.modules.update(saved)


def test_dust3r_writer():
    capdir, ref = fresh("dust3r_writer"), pc.Capture(CAPS["aux"])
    cap = pc.Capture(capdir)
    for cid in cap.camera_ids:
        maps = random_maps(cap, cid, (64, 48, 4), int(cid), conf=True)
        written, skipped = pd.write_dust3r_maps(capdir, cid, maps, image_hw=(64, 48))
        check(len(written) == len(maps) and not skipped, f"written {written} skipped {skipped}")
        path = os.path.join(capdir, "decoder", "aux", "dust3r", f"cam{cid}.zip")
        ours, theirs = members(path), members(ref.aux_zip("dust3r", cid))
        check_zip(path, theirs.keys())  # synth's naming, including the dropped member
        for name, (_, b) in ours.items():
            got, want = npy(b), maps[int(name[:6])]
            check(got.dtype == np.dtype("<f4") and got.flags.c_contiguous, f"{name}: dtype {got.dtype}")
            check(np.array_equal(got, want), f"{name}: values differ")
            theirs_b = theirs[name][1]
            hl = 10 + struct.unpack("<H", theirs_b[8:10])[0]
            check(b[:8] == b"\x93NUMPY\x01\x00" and hl % 64 == 0, f"{name}: not .npy v1.0 / padded")
            check(b[:hl] == theirs_b[:hl], f"{name}: header {b[:hl]!r} != synth's {theirs_b[:hl]!r}")
            check(got.shape == npy(theirs_b).shape, f"{name}: shape {got.shape} != synth's")
    check(len(os.listdir(os.path.join(capdir, "decoder", "aux", "dust3r"))) == 3, "temporary files left")


def test_sapiens_writer():
    capdir, ref = fresh("sapiens_writer"), pc.Capture(CAPS["aux"])
    cap = pc.Capture(capdir)
    shape = npy(members(ref.aux_zip("sapiens", "400101"))["020000.npy"][1]).shape
    for cid in cap.camera_ids:
        maps = random_maps(cap, cid, shape, int(cid) + 7)
        ps.write_sapiens_maps(capdir, cid, maps)
        path = os.path.join(capdir, "decoder", "aux", "sapiens", f"cam{cid}.zip")
        ours, theirs = members(path), members(ref.aux_zip("sapiens", cid))
        check_zip(path, theirs.keys())
        for name, (_, b) in ours.items():
            check(np.array_equal(npy(b), maps[int(name[:6])]), f"{name}: values differ")
            check(npy(b).shape == npy(theirs[name][1]).shape == shape, f"{name}: shape differs from synth's")
    ch = open(os.path.join(capdir, "decoder", "aux", "sapiens", "channels.txt")).read()
    synth_ch = open(os.path.join(ref.dir, "aux", "sapiens", "channels.txt")).read()
    check(ch == "".join(f"feat_{i}\n" for i in range(shape[2])), f"channels.txt {ch!r}")
    check(len(synth_ch.splitlines()) == len(ch.splitlines()) == shape[2] and synth_ch.endswith("\n"),
          "channels.txt line count differs from synth's")
    for bad in (np.zeros((4, 4, shape[2] + 1), np.float32), np.zeros((4, 4), np.float32)):
        try:
            ps.write_sapiens_maps(capdir, "400101", {20000: bad}, overwrite=True)
            raise AssertionError(f"accepted shape {bad.shape}")
        except ValueError:
            pass
    try:
        ps.write_sapiens_maps(capdir, "400101", {20000: np.zeros(shape, np.float32)},
                              channels=[f"c{i}" for i in range(shape[2])])
        raise AssertionError("accepted other channel names")
    except ValueError:
        pass


def test_writer_validation():
    capdir = fresh("validation")
    good = np.zeros((64, 48, 4), np.float32)
    bad = {"shape": np.zeros((64, 48, 3), np.float32), "size": np.zeros((32, 48, 4), np.float32),
           "conf": good + np.float32([0, 0, 0, 1.5]), "nan": good + np.float32([np.nan, 0, 0, 0])}
    for what, a in bad.items():
        try:
            pd.write_dust3r_maps(capdir, "400101", {20000: a}, image_hw=(64, 48))
            raise AssertionError(f"accepted a bad map ({what})")
        except ValueError:
            pass
    check(not os.path.exists(os.path.join(capdir, "decoder", "aux", "dust3r", "cam400101.zip")),
          "a refused map left a zip behind")
    pd.write_dust3r_maps(capdir, "400101", [(20000, good)])  # pairs are fine too
    check_zip(os.path.join(capdir, "decoder", "aux", "dust3r", "cam400101.zip"), ["020000.npy"])


def test_resume_overwrite():
    capdir = fresh("resume")
    path = os.path.join(capdir, "decoder", "aux", "dust3r", "cam400101.zip")
    a = {f: np.full((64, 48, 4), 0.25, np.float32) for f in (20000, 20001, 20004)}
    b = {f: np.full((64, 48, 4), 0.75, np.float32) for f in (20000, 20001, 20004)}
    pd.write_dust3r_maps(capdir, "400101", {20000: a[20000]})
    before = open(path, "rb").read()
    with zipfile.ZipFile(path) as z:
        start = z.start_dir  # the members end here, the central directory starts
    written, skipped = pd.write_dust3r_maps(capdir, "400101", b)  # appended, 020000 kept
    check(written == ["020001.npy", "020004.npy"] and skipped == ["020000.npy"], f"{written} {skipped}")
    check(open(path, "rb").read()[:start] == before[:start], "the append rewrote existing members")
    check_zip(path, ["020000.npy", "020001.npy", "020004.npy"])
    m = members(path)
    check(npy(m["020000.npy"][1])[0, 0, 0] == 0.25 and npy(m["020004.npy"][1])[0, 0, 0] == 0.75, "resume values")
    written, skipped = pd.write_dust3r_maps(capdir, "400101", b)
    check(written == [] and len(skipped) == 3, "a complete zip was written to again")
    pd.write_dust3r_maps(capdir, "400101", {20000: b[20000]}, overwrite=True)
    check_zip(path, ["020000.npy", "020001.npy", "020004.npy"])
    check(all(npy(v[1])[0, 0, 0] == 0.75 for v in members(path).values()), "overwrite did not replace")


def test_append_rollback():
    capdir = fresh("rollback")
    path = os.path.join(capdir, "decoder", "aux", "sapiens", "cam400102.zip")
    ps.write_sapiens_maps(capdir, "400102", {20000: np.ones((2, 3, 5), np.float32)})
    good = open(path, "rb").read()
    # an append that died half-way: journal in place, central directory overwritten by a partial member
    with zipfile.ZipFile(path) as z:
        start = z.start_dir
    with open(path + ".journal", "wb") as j:
        j.write(struct.pack("<Q", start) + good[start:])
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(b"PK\x03\x04" + b"\x00" * 300)
    try:
        zipfile.ZipFile(path).namelist()
        raise AssertionError("the simulated crash left a readable zip; the test is broken")
    except zipfile.BadZipFile:
        pass
    check(pc.zip_names(path) == {"020000.npy"}, "roll-back did not restore the members")
    check(open(path, "rb").read() == good and not os.path.exists(path + ".journal"), "roll-back not exact")
    ps.write_sapiens_maps(capdir, "400102", {20001: np.ones((2, 3, 5), np.float32)})
    check_zip(path, ["020000.npy", "020001.npy"])


def test_geometry():
    g = pd.net_geometry(1024, 667, 512)  # a 4TB ava256 image: dust3r gives 320 x 512 (W x H)
    check((g.Wn, g.Hn, g.Wr, g.Hr, g.left, g.top) == (320, 512, 334, 512, 7, 0), f"667x1024: {vars(g)}")
    g = pd.net_geometry(64, 48, 80)
    check((g.Wn, g.Hn, g.left, g.top, g.sx, g.sy) == (48, 80, 6, 0, 1.25, 1.25), f"48x64 at 80: {vars(g)}")
    check(pd.net_geometry(224, 224, 512).Hn == 384, "square inputs are cropped to 4:3 like dust3r")
    cap = pc.Capture(CAPS["noaux"])
    c = cap.cameras["400102"]
    K = c.K_image(48, 64)
    Kn = pd.K_net(K, g)
    check(np.allclose(Kn[0], [K[0, 0] * 1.25, 0, K[0, 2] * 1.25 - 6]) and np.allclose(Kn[1, 1:], [K[1, 1] * 1.25,
          K[1, 2] * 1.25]), f"K_net {Kn}")
    depth = np.full((80, 48), 1.1)
    conf = np.full((80, 48), 4.0)
    m = pd.dust3r_map(depth, conf, g, K, c.R, c.t)
    check(m.shape == (64, 48, 4) and m.dtype == np.float32, f"map {m.shape} {m.dtype}")
    Xc = m[..., :3].astype(np.float64) @ c.R.T + c.t
    uv = Xc[..., :2] / Xc[..., 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
    ref = np.stack(np.meshgrid(np.arange(48) + 0.5, np.arange(64) + 0.5), -1)
    check(np.abs(uv - ref).max() < 1e-3 and np.abs(Xc[..., 2] - 1100).max() < 1e-2, "unprojection")
    x = np.arange(48)
    inside = ((x + 0.5) * 1.25 - 6 >= 0) & ((x + 0.5) * 1.25 - 6 <= 48)
    check(np.allclose(m[..., 3], np.where(inside, 0.75, 0)[None, :]), "confidence: 1 - 1/conf, 0 off the crop")


def block_dir(names, stub_torch=False):
    """A PYTHONPATH folder where `import NAME` fails like a missing package (and torch is a stub)."""
    d = tempfile.mkdtemp(dir=TMP, prefix="block.")
    for n in names:
        with open(os.path.join(d, n + ".py"), "w") as f:
            f.write(f"raise ModuleNotFoundError(\"No module named '{n}'\", name='{n}')\n")
    if stub_torch:
        with open(os.path.join(d, "torch.py"), "w") as f:
            f.write("__version__ = '0-selftest-stub'\n"
                    "class cuda:\n    @staticmethod\n    def is_available():\n        return False\n"
                    "def device(name):\n    return name\n")
    return d


def run(script, args, pypath):
    env = dict(os.environ, PYTHONPATH=pypath, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, os.path.join(TOOLS, script)] + args, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    return r.returncode, r.stdout, r.stderr


def expect_exit(script, args, pypath, code, words):
    rc, out, err = run(script, args, pypath)
    check(rc == code and "Traceback" not in err and all(w in err for w in words),
          f"{script} {' '.join(args)}: exit {rc} (want {code}), stderr {err.strip()!r}, want {words}")


def test_missing_packages():
    cap = fresh("missing")
    no_torch = block_dir(["torch", "dust3r", "mmpretrain", "PIL"])
    stub_torch = block_dir(["dust3r", "mmpretrain"], stub_torch=True)
    base = ["--capture", cap, "--device", "cpu"]
    for script in ("precompute_dust3r.py", "precompute_sapiens.py"):
        rc, out, err = run(script, ["--help"], no_torch)
        check(rc == 0 and "--capture" in out and "On a GPU machine" in out, f"{script} --help: {rc} {err}")
        expect_exit(script, base + ["--weights", "w.pth"], no_torch, 2, ["PyTorch is not importable", "pip install"])
        expect_exit(script, ["--capture", os.path.join(TMP, "nowhere")], no_torch, 1, ["camera_calibration.json"])
        expect_exit(script, base + ["--cameras", "999"], no_torch, 1, ["--cameras"])
    expect_exit("precompute_dust3r.py", base + ["--weights", "w.pth"], stub_torch, 2,
                ["DUSt3R is not importable", "git clone", "naver/dust3r", "DUSt3R_ViTLarge_BaseDecoder_512_dpt"])
    expect_exit("precompute_sapiens.py", base, stub_torch, 2, ["--weights is required", "torchscript.pt2"])
    expect_exit("precompute_sapiens.py", base + ["--weights", os.path.join(TMP, "none.pt2")], stub_torch, 2,
                ["no such file"])
    pth = os.path.join(TMP, "sapiens_2b_epoch_660_clean.pth")
    open(pth, "wb").close()
    expect_exit("precompute_sapiens.py", base + ["--weights", pth], stub_torch, 2, ["needs --config"])
    expect_exit("precompute_sapiens.py", base + ["--weights", pth, "--config", "c.py"], stub_torch, 2,
                ["mmpretrain is not importable"])
    check(not os.path.exists(os.path.join(cap, "decoder", "aux")), "a failed run wrote aux files")


STUB_DUST3R = {
    "__init__.py": "",
    "model.py": """
import torch

class AsymmetricCroCo3DStereo:
    @classmethod
    def from_pretrained(cls, path):  # like dust3r.model.load_model: a plain torch.load of a pickled namespace
        ckpt = torch.load(path, map_location='cpu')
        assert ckpt['args'].model.startswith('AsymmetricCroCo3DStereo('), ckpt
        return cls()
    def to(self, device):
        return self
    def eval(self):
        return self
""",
    "image_pairs.py": """
def make_pairs(imgs, scene_graph='complete', prefilter=None, symmetrize=True):
    assert scene_graph == 'complete' and symmetrize
    pairs = [(imgs[i], imgs[j]) for i in range(len(imgs)) for j in range(i)]
    return pairs + [(b, a) for a, b in pairs]
""",
    "inference.py": """
def inference(pairs, model, device, batch_size=8, verbose=False):
    for a, b in pairs:
        for v in (a, b):
            assert v['img'].shape == (1, 3) + tuple(v['true_shape'][0]), (v['img'].shape, v['true_shape'])
            assert -1 <= float(v['img'].min()) and float(v['img'].max()) <= 1
    return dict(view1=[a for a, b in pairs], view2=[b for a, b in pairs], pred1=None, pred2=None)
""",
    "cloud_opt/__init__.py": """
import enum, json, os
import numpy as np
import torch

class GlobalAlignerMode(enum.Enum):
    PointCloudOptimizer = 'PointCloudOptimizer'

def global_aligner(out, device, mode=GlobalAlignerMode.PointCloudOptimizer):
    assert mode == GlobalAlignerMode.PointCloudOptimizer
    return Scene(out)

class Scene:
    def __init__(self, out):
        views = {v['idx']: v for v in out['view1'] + out['view2']}
        self.shapes = [tuple(int(s) for s in views[i]['true_shape'][0]) for i in range(len(views))]
        self.log = dict(n_pairs=len(out['view1']), shapes=self.shapes)
    def preset_pose(self, poses):
        self.log['poses'] = [np.asarray(p, np.float64).tolist() for p in poses]
    def preset_focal(self, focals):
        self.log['focals'] = [float(f) for f in focals]
    def preset_principal_point(self, pps):
        self.log['pps'] = [np.asarray(p, np.float64).tolist() for p in pps]
    def compute_global_alignment(self, init=None, niter=300, schedule='cosine', lr=0.01):
        assert torch.is_grad_enabled()
        self.log.update(init=init, niter=niter, schedule=schedule, lr=lr)
        with open(os.environ['STUB_DUST3R_LOG'], 'a') as f:
            f.write(json.dumps(self.log) + '\\n')
        return 0.125
    def get_depthmaps(self):
        return [torch.full(s, 1.0 + 0.1 * i) for i, s in enumerate(self.shapes)]
    def get_conf(self, mode=None):
        assert mode == 'none'
        return [torch.full(s, 2.0 + i) for i, s in enumerate(self.shapes)]
""",
}


def test_dust3r_entry_point_stub():
    if not have_torch() or not have_pil():
        raise Skip("no torch (python3-torch) or no Pillow (python3-pil; dust3r itself needs it)")
    stub = os.path.join(TMP, "stub_dust3r")
    for rel, text in STUB_DUST3R.items():
        os.makedirs(os.path.dirname(os.path.join(stub, "dust3r", rel)), exist_ok=True)
        open(os.path.join(stub, "dust3r", rel), "w").write(text)
    capdir, log = fresh("dust3r_stub"), os.path.join(TMP, "stub_dust3r.log")
    import argparse
    import torch
    # a .pth like the released one: an argparse namespace inside (torch >= 2.6 refuses it unless weights_only=False)
    torch.save({"model": {}, "args": argparse.Namespace(model="AsymmetricCroCo3DStereo(head_type='dpt')")},
               os.path.join(TMP, "fake.pth"))
    os.environ["STUB_DUST3R_LOG"] = log
    args = ["--capture", capdir, "--weights", os.path.join(TMP, "fake.pth"), "--device", "cpu", "--size", "80",
            "--flush-every", "2"]
    rc, out, err = run("precompute_dust3r.py", args, stub)
    check(rc == 0, f"exit {rc}: {err}")
    runs = [json.loads(line) for line in open(log)]
    check([r["n_pairs"] for r in runs] == [6, 6, 2], f"pairs per frame {[r['n_pairs'] for r in runs]}")
    cap, ref = pc.Capture(capdir), pc.Capture(CAPS["aux"])
    x = np.arange(48)
    inside = ((x + 0.5) * 1.25 - 6 >= 0) & ((x + 0.5) * 1.25 - 6 <= 48)
    for r, f in zip(runs, cap.frames):
        have = [c for c in cap.camera_ids if f in cap.image_members(c)]
        check(r["init"] == "known_poses" and r["niter"] == 300 and r["shapes"] == [[80, 48]] * len(have), str(r))
        for i, cid in enumerate(have):
            c = cap.cameras[cid]
            K = c.K_image(48, 64)
            check(np.allclose(r["poses"][i], c.cam2world_m(), atol=1e-6), f"preset pose of {cid}")
            check(abs(r["focals"][i] - 1.25 * (K[0, 0] + K[1, 1]) / 2) < 1e-6, f"preset focal of {cid}")
            check(np.allclose(r["pps"][i], [1.25 * K[0, 2] - 6.5, 1.25 * K[1, 2] - 0.5], atol=1e-4), f"pp of {cid}")
            m = npy(members(cap.aux_zip("dust3r", cid))[pc.member_npy(f)][1])
            Xc = m[..., :3].astype(np.float64) @ c.R.T + c.t
            check(np.abs(Xc[..., 2] - 1000 * (1 + 0.1 * i)).max() < 0.05, f"{cid}/{f}: depth")
            uv = Xc[..., :2] / Xc[..., 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
            check(np.abs(uv - np.stack(np.meshgrid(x + 0.5, np.arange(64) + 0.5), -1)).max() < 1e-3, "pixels")
            check(np.allclose(m[..., 3], np.where(inside, 1 - 1 / (2 + i), 0)[None, :], atol=1e-6), "confidence")
    for cid in cap.camera_ids:
        check_zip(cap.aux_zip("dust3r", cid), members(ref.aux_zip("dust3r", cid)).keys())
    check(not [p for p in os.listdir(os.path.join(cap.dir, "aux", "dust3r")) if not p.endswith(".zip")],
          "temporary, journal or lock files left")
    snap = {c: open(cap.aux_zip("dust3r", c), "rb").read() for c in cap.camera_ids}
    rc, out, err = run("precompute_dust3r.py", args, stub)  # resumed: nothing left to do
    check(rc == 0 and len(open(log).readlines()) == 3, f"rerun recomputed frames: {rc} {err}")
    check(all(open(cap.aux_zip("dust3r", c), "rb").read() == snap[c] for c in cap.camera_ids), "rerun changed zips")


def test_sapiens_entry_point_torchscript():
    if not have_torch():
        raise Skip("no torch (python3-torch)")
    import torch

    class Tiny(torch.nn.Module):  # a "ViT" stand-in: patch-16 conv, output wrapped in a tuple like the lite models
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 16, 16)

        def forward(self, x):
            return (self.conv(x) * 1.0,)
    torch.manual_seed(0)
    net = Tiny().eval()
    weights = os.path.join(TMP, "tiny_torchscript.pt2")
    torch.jit.trace(net, torch.zeros(1, 3, 64, 64)).save(weights)
    for pool in (1, 2):
        capdir = fresh(f"sapiens_ts{pool}")
        rc, out, err = run("precompute_sapiens.py", ["--capture", capdir, "--weights", weights, "--device", "cpu",
                                                     "--input-size", "64x64", "--batch-size", "2",
                                                     "--flush-every", "1", "--pool", str(pool)], "")
        check(rc == 0, f"exit {rc}: {err}")
        cap, ref = pc.Capture(capdir), pc.Capture(CAPS["aux"])
        check(open(os.path.join(cap.dir, "aux", "sapiens", "channels.txt")).read().split() ==
              [f"feat_{i}" for i in range(8)], "channels.txt")
        for cid in cap.camera_ids:
            check_zip(cap.aux_zip("sapiens", cid), members(ref.aux_zip("sapiens", cid)).keys())
            for name, (_, b) in members(cap.aux_zip("sapiens", cid)).items():
                img = torch.from_numpy(np.array(cap.read_image(cid, int(name[:6])))).permute(2, 0, 1)[None].float()
                img = torch.nn.functional.interpolate(img, size=(64, 64), mode="bilinear", align_corners=False)
                img = (img - torch.tensor([123.5, 116.5, 103.5]).view(1, 3, 1, 1)) / torch.tensor(
                    [58.5, 57.0, 57.5]).view(1, 3, 1, 1)
                with torch.no_grad():
                    want = torch.nn.functional.avg_pool2d(net(img)[0], pool)[0].permute(1, 2, 0).numpy()
                got = npy(b)
                check(got.shape == (4 // pool, 4 // pool, 8) and np.allclose(got, want, atol=1e-4),
                      f"{cid}/{name}: features differ (max {np.abs(got - want).max() if got.shape == want.shape else got.shape})")


TESTS = [(n[5:], f) for n, f in list(globals().items()) if n.startswith("test_") and callable(f)]


def main():
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    setup()
    npass = nfail = nskip = 0
    for name, fn in TESTS:
        if only and only not in name:
            continue
        try:
            fn()
            print(f"PASS {name}", flush=True)
            npass += 1
        except Skip as e:
            print(f"SKIP {name}: {e}", flush=True)
            nskip += 1
        except Exception:
            print(f"FAIL {name}\n" + "".join("    " + ln for ln in traceback.format_exc().splitlines(True)), flush=True)
            nfail += 1
    if "--keep" in sys.argv:
        print(f"kept {TMP}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"{npass} passed, {nfail} failed" + (f", {nskip} skipped" if nskip else ""))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
