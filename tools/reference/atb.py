"""File formats of avat3r.c (docs/formats.md), written independently of the C sources.

- tensor bundles (.atb): read_atb / write_atb
- model config text (`key = value` lines): parse_config_text / parse_config_file / config_text
- checkpoints (.ckpt v1): read_ckpt / write_ckpt
- the parameter table of docs/model.md (param_table), needed here because the checkpoint reader
  must check that n_params matches what the config implies.
"""
import math
import os
import struct
import zlib

import numpy as np

# ----------------------------------------------------------------------------- tensor bundles

ATB_MAGIC = b"AVT3TENS"
_DT_CODE = {np.dtype("<f4"): 0, np.dtype("<f8"): 1, np.dtype("<i4"): 2}
_CODE_DT = {v: k for k, v in _DT_CODE.items()}


def _atomic_write(path, data):
    # formats.md: write NAME.tmp.<pid>, then rename, so a final name is never half-written
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_atb(path, tensors):
    """tensors: iterable of (name, array) or a dict (insertion order is kept)."""
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    out = [ATB_MAGIC, struct.pack("<II", 1, len(items))]
    for name, arr in items:
        a = np.asarray(arr)
        dt = a.dtype.newbyteorder("<")
        if dt not in _DT_CODE:
            raise ValueError("atb: tensor '%s' has unsupported dtype %s" % (name, a.dtype))
        if a.ndim > 8:
            raise ValueError("atb: tensor '%s' has %d dims (max 8)" % (name, a.ndim))
        nb = name.encode("ascii")
        out.append(struct.pack("<I", len(nb)) + nb + struct.pack("<II", _DT_CODE[dt], a.ndim))
        out.append(struct.pack("<%dQ" % a.ndim, *a.shape))
        out.append(np.ascontiguousarray(a, dtype=dt).tobytes())
    _atomic_write(path, b"".join(out))


def read_atb(path):
    """Returns a dict name -> numpy array (in file order). Refuses malformed/truncated files."""
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0

    def take(n, what):
        nonlocal pos
        if pos + n > len(buf):
            raise ValueError("%s: truncated tensor bundle (reading %s)" % (path, what))
        b = buf[pos:pos + n]
        pos += n
        return b

    if take(8, "magic") != ATB_MAGIC:
        raise ValueError("%s: not an avat3r tensor bundle (bad magic)" % path)
    version, count = struct.unpack("<II", take(8, "header"))
    if version != 1:
        raise ValueError("%s: unsupported tensor bundle version %d" % (path, version))
    out = {}
    for _ in range(count):
        (nlen,) = struct.unpack("<I", take(4, "name length"))
        name = take(nlen, "name").decode("ascii")
        code, ndim = struct.unpack("<II", take(8, "dtype/ndim of " + name))
        if code not in _CODE_DT:
            raise ValueError("%s: tensor '%s' has unknown dtype code %d" % (path, name, code))
        if ndim > 8:
            raise ValueError("%s: tensor '%s' has ndim %d > 8" % (path, name, ndim))
        dims = struct.unpack("<%dQ" % ndim, take(8 * ndim, "dims of " + name))
        dt = _CODE_DT[code]
        n = int(np.prod(dims, dtype=np.int64)) if ndim else 1
        data = take(n * dt.itemsize, "data of " + name)
        out[name] = np.frombuffer(data, dtype=dt).reshape(dims).copy()
    if pos != len(buf):
        raise ValueError("%s: %d trailing bytes after the last tensor" % (path, len(buf) - pos))
    return out


# ----------------------------------------------------------------------------- model config

# (key, type, lo, hi, default) in table order of docs/model.md; the canonical text uses this order.
CONFIG_KEYS = [
    ("views_in", int, 1, 64, 4), ("views_target", int, 1, 64, 4),
    ("img_h", int, 1, 4096, 64), ("img_w", int, 1, 4096, 64),
    ("patch", int, 1, 64, 8), ("width", int, 1, 8192, 128), ("heads", int, 1, 256, 4),
    ("layers", int, 0, 128, 4), ("mlp_ratio", int, 1, 16, 4),
    ("expr_dim", int, 1, 4096, 256), ("expr_tokens", int, 1, 256, 4),
    ("expr_hidden", int, 1, 8192, 256), ("expr_norm", bool, None, None, False),
    ("sapiens_ch", int, 1, 4096, 16), ("sapiens_h", int, 1, 1024, 16),
    ("sapiens_w", int, 1, 1024, 16),
    ("use_sapiens", bool, None, None, True), ("use_dust3r", bool, None, None, True),
    ("random_timesteps", bool, None, None, True),
    ("ln_eps", float, 1e-12, 1e-2, 1e-5), ("init_std", float, 0.0, 1.0, 0.02),
    ("pos_offset_max", float, 0.0, 10.0, 0.05),
    ("depth_near", float, 0.0, 100.0, 0.5), ("depth_far", float, 0.0, 100.0, 1.5),
    ("scale_bias", float, -20.0, 5.0, -5.0),
    ("scale_min", float, 1e-8, 10.0, 1e-4), ("scale_max", float, 1e-8, 10.0, 0.05),
    ("conf_threshold", float, 0.0, 1.0, 0.5),
]
_KEY = {k[0]: k for k in CONFIG_KEYS}


def default_config():
    return {k: d for k, _, _, _, d in CONFIG_KEYS}


def _parse_value(key, typ, lo, hi, s):
    if typ is bool:
        if s in ("true", "1"):
            return True
        if s in ("false", "0"):
            return False
        raise ValueError("expected true/false/1/0")
    try:
        v = typ(s)
    except ValueError:
        raise ValueError("expected %s" % ("an integer" if typ is int else "a number"))
    if typ is float and not math.isfinite(v):
        raise ValueError("expected a finite number")
    if not (lo <= v <= hi):
        raise ValueError("expected a value in [%g, %g]" % (lo, hi))
    return v


def parse_config_text(text, src="<config>", cfg=None, base_dir=None, depth=0, seen=()):
    """Parses `key = value` lines into cfg (defaults first). `include` only works with base_dir."""
    cfg = default_config() if cfg is None else cfg
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise ValueError("%s:%d: expected 'key = value'" % (src, lineno))
        key, val = (s.strip() for s in line.split("=", 1))
        if key == "include" and base_dir is not None:
            if depth >= 8:
                raise ValueError("%s:%d: key 'include': nesting deeper than 8" % (src, lineno))
            parse_config_file(os.path.join(base_dir, val), cfg, depth + 1, seen)
            continue
        if key not in _KEY:
            raise ValueError("%s:%d: key '%s': unknown key" % (src, lineno, key))
        try:
            cfg[key] = _parse_value(*_KEY[key][:4], val)
        except ValueError as e:
            raise ValueError("%s:%d: key '%s': %s" % (src, lineno, key, e))
    return cfg


def parse_config_file(path, cfg=None, depth=0, seen=()):
    real = os.path.realpath(path)
    if real in seen:
        raise ValueError("%s: include cycle" % path)
    with open(path) as f:
        text = f.read()
    return parse_config_text(text, path, cfg, os.path.dirname(path), depth, seen + (real,))


def check_config(cfg):
    """Cross-key constraints of the config table."""
    p = cfg["patch"]
    if p & (p - 1):
        raise ValueError("config: patch %d is not a power of two" % p)
    for k in ("img_h", "img_w"):
        if cfg[k] % p:
            raise ValueError("config: %s = %d is not a multiple of patch %d" % (k, cfg[k], p))
    if cfg["width"] % cfg["heads"] or cfg["width"] % p:
        raise ValueError("config: width must be divisible by heads and by 2^log2(patch)")
    if cfg["scale_min"] > cfg["scale_max"]:
        raise ValueError("config: scale_min > scale_max")
    return cfg


def config_text(cfg):
    """Canonical text: every key, one `key = value` line, table order (%d, %.9g, true/false)."""
    lines = []
    for k, typ, _, _, _ in CONFIG_KEYS:
        v = cfg[k]
        s = ("true" if v else "false") if typ is bool else ("%d" % v if typ is int else "%.9g" % v)
        lines.append("%s = %s\n" % (k, s))
    return "".join(lines)


# ----------------------------------------------------------------------------- parameter table

def param_table(cfg):
    """[(name, shape)] in the order of docs/model.md; disabled tensors have a 0 in their shape.
    up_w / up_b are 1-D: the upsampler stages concatenated."""
    D, p, L = cfg["width"], cfg["patch"], cfg["layers"]
    cin = 12 if cfg["use_dust3r"] else 9
    S, E, Hx, CS = cfg["expr_tokens"], cfg["expr_dim"], cfg["expr_hidden"], cfg["sapiens_ch"]
    M = cfg["mlp_ratio"] * D
    ntok = (cfg["img_h"] // p) * (cfg["img_w"] // p)
    sap = 1 if cfg["use_sapiens"] else 0
    en = 1 if cfg["expr_norm"] else 0
    chans = [D >> k for k in range(p.bit_length())]  # C_0 .. C_U, U = log2(p)
    up_w = sum(4 * chans[k + 1] * chans[k] for k in range(len(chans) - 1))
    up_b = sum(4 * chans[k + 1] for k in range(len(chans) - 1))
    return [
        ("patch_w", (D, p * p * cin)), ("patch_b", (D,)),
        ("sap_w", (D * sap, D + CS)), ("sap_b", (D * sap,)),
        ("pos_emb", (ntok, D)),
        ("expr1_w", (Hx, E)), ("expr1_b", (Hx,)), ("expr2_w", (Hx, Hx)), ("expr2_b", (Hx,)),
        ("expr3_w", (S * D, Hx)), ("expr3_b", (S * D,)),
        ("lne_w", (D * en,)), ("lne_b", (D * en,)),
        ("ln1_w", (L, D)), ("ln1_b", (L, D)),
        ("qkv_w", (L, 3 * D, D)), ("qkv_b", (L, 3 * D)),
        ("attproj_w", (L, D, D)), ("attproj_b", (L, D)),
        ("ln2_w", (L, D)), ("ln2_b", (L, D)),
        ("cq_w", (L, D, D)), ("cq_b", (L, D)),
        ("ckv_w", (L, 2 * D, D)), ("ckv_b", (L, 2 * D)),
        ("cproj_w", (L, D, D)), ("cproj_b", (L, D)),
        ("ln3_w", (L, D)), ("ln3_b", (L, D)),
        ("fc_w", (L, M, D)), ("fc_b", (L, M)),
        ("fcproj_w", (L, D, M)), ("fcproj_b", (L, D)),
        ("lnf_w", (D,)), ("lnf_b", (D,)),
        ("up_w", (up_w,)), ("up_b", (up_b,)),
        ("head_w", (14, chans[-1])), ("head_b", (14,)),
    ]


def n_params(cfg):
    return sum(int(np.prod(s)) for _, s in param_table(cfg))


# ----------------------------------------------------------------------------- checkpoints

CKPT_MAGIC = b"AVT3CKPT"
_HDR = struct.Struct("<8sIIQQQII16s")  # 64 bytes, formats.md


def write_ckpt(path, cfg, params):
    """params: flat float32 vector of n_params(cfg) floats."""
    text = config_text(check_config(cfg)).encode("ascii")
    params = np.ascontiguousarray(params, dtype="<f4").reshape(-1)
    if params.size != n_params(cfg):
        raise ValueError("write_ckpt: %d params, config implies %d" % (params.size, n_params(cfg)))
    payload = params.tobytes()
    off = (64 + len(text) + 63) // 64 * 64
    hdr = _HDR.pack(CKPT_MAGIC, 1, 1, params.size, len(text), off,
                    zlib.crc32(text) & 0xFFFFFFFF, zlib.crc32(payload) & 0xFFFFFFFF, bytes(16))
    _atomic_write(path, hdr + text + bytes(off - 64 - len(text)) + payload)


def read_ckpt(path):
    """Returns (cfg dict, flat float32 params) of a model (kind 1) or training (kind 2: params, AdamW m, v,
    state text) checkpoint. Raises ValueError on any inconsistency."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 64 or buf[:8] != CKPT_MAGIC:
        raise ValueError("%s: not an avat3r checkpoint" % path)
    _, ver, kind, npar, clen, off, ccrc, pcrc, tail = _HDR.unpack_from(buf)
    state_len = struct.unpack_from("<Q", tail)[0]
    if ver != 1:
        raise ValueError("%s: unsupported checkpoint version %d" % (path, ver))
    if kind not in (1, 2):
        raise ValueError("%s: unknown checkpoint kind %d" % (path, kind))
    if kind == 1 and state_len:
        raise ValueError("%s: a model checkpoint with state_len %d" % (path, state_len))
    if off != (64 + clen + 63) // 64 * 64:
        raise ValueError("%s: payload_offset %d inconsistent with config_len %d" % (path, off, clen))
    arrays = 1 if kind == 1 else 3
    if len(buf) != off + 4 * npar * arrays + state_len:
        raise ValueError("%s: file size %d, header implies %d (truncated or trailing bytes)"
                         % (path, len(buf), off + 4 * npar * arrays + state_len))
    text, payload = buf[64:64 + clen], buf[off:]
    if zlib.crc32(text) & 0xFFFFFFFF != ccrc:
        raise ValueError("%s: config CRC mismatch" % path)
    if zlib.crc32(payload) & 0xFFFFFFFF != pcrc:
        raise ValueError("%s: payload CRC mismatch" % path)
    try:
        cfg = check_config(parse_config_text(text.decode("ascii"), path + "[config]"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError("%s: config does not parse: %s" % (path, e))
    if npar != n_params(cfg):
        raise ValueError("%s: n_params %d but the config implies %d" % (path, npar, n_params(cfg)))
    return cfg, np.frombuffer(payload[:4 * npar], dtype="<f4").copy()


# ----------------------------------------------------------------------------- safetensors export

_BLOCK_NAMES = {  # docs/formats.md "safetensors": our stacked tensor -> the name inside blocks.<l>.
    "ln1_w": "norm1.weight", "ln1_b": "norm1.bias", "qkv_w": "attn.qkv.weight", "qkv_b": "attn.qkv.bias",
    "attproj_w": "attn.proj.weight", "attproj_b": "attn.proj.bias", "ln2_w": "norm2.weight",
    "ln2_b": "norm2.bias", "cq_w": "cross_attn.q.weight", "cq_b": "cross_attn.q.bias",
    "ckv_w": "cross_attn.kv.weight", "ckv_b": "cross_attn.kv.bias", "cproj_w": "cross_attn.proj.weight",
    "cproj_b": "cross_attn.proj.bias", "ln3_w": "norm3.weight", "ln3_b": "norm3.bias",
    "fc_w": "mlp.fc1.weight", "fc_b": "mlp.fc1.bias", "fcproj_w": "mlp.fc2.weight", "fcproj_b": "mlp.fc2.bias"}
_FLAT_NAMES = {
    "patch_w": "encoder.patch_embed.weight", "patch_b": "encoder.patch_embed.bias",
    "sap_w": "encoder.sapiens_proj.weight", "sap_b": "encoder.sapiens_proj.bias",
    "pos_emb": "encoder.pos_embed", "expr1_w": "expr_mlp.0.weight", "expr1_b": "expr_mlp.0.bias",
    "expr2_w": "expr_mlp.2.weight", "expr2_b": "expr_mlp.2.bias", "expr3_w": "expr_mlp.4.weight",
    "expr3_b": "expr_mlp.4.bias", "lne_w": "expr_norm.weight", "lne_b": "expr_norm.bias", "lnf_w": "norm.weight", "lnf_b": "norm.bias",
    "head_w": "head.weight", "head_b": "head.bias"}


def read_safetensors(path):
    """An `avat3r export` file -> (cfg dict, flat float32 params in param_table order). Written from the
    safetensors format and docs/formats.md, independently of the C exporter."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("%s: too short for safetensors" % path)
    (hl,) = struct.unpack_from("<Q", buf)
    if 8 + hl > len(buf):
        raise ValueError("%s: header length %d beyond the file" % (path, hl))
    import json
    hdr = json.loads(buf[8:8 + hl].decode("utf-8"))
    meta = hdr.pop("__metadata__", {})
    if "avat3r_config" not in meta:
        raise ValueError("%s: no avat3r_config in the metadata" % path)
    cfg = check_config(parse_config_text(meta["avat3r_config"], path + "[metadata]"))
    data = buf[8 + hl:]

    def tensor(name, shape):
        if name not in hdr:
            raise ValueError("%s: tensor %s missing" % (path, name))
        t = hdr[name]
        a, b = t["data_offsets"]
        if t["dtype"] != "F32" or tuple(t["shape"]) != tuple(shape) or b - a != 4 * int(np.prod(shape)):
            raise ValueError("%s: %s is %s %s, expected F32 %s" % (path, name, t["dtype"], t["shape"], shape))
        return np.frombuffer(data[a:b], dtype="<f4")

    parts, used = [], set()
    D, L = cfg["width"], cfg["layers"]
    chans = [D >> k for k in range(cfg["patch"].bit_length())]
    for name, shape in param_table(cfg):
        if int(np.prod(shape)) == 0:
            continue
        if name in _BLOCK_NAMES:
            for l in range(L):
                n = "blocks.%d.%s" % (l, _BLOCK_NAMES[name])
                parts.append(tensor(n, shape[1:]))
                used.add(n)
        elif name in ("up_w", "up_b"):
            for k in range(len(chans) - 1):
                n = "upsampler.%d.%s" % (k, "weight" if name == "up_w" else "bias")
                shp = (4 * chans[k + 1], chans[k]) if name == "up_w" else (4 * chans[k + 1],)
                parts.append(tensor(n, shp))
                used.add(n)
        else:
            parts.append(tensor(_FLAT_NAMES[name], shape))
            used.add(_FLAT_NAMES[name])
    extra = sorted(set(hdr) - used)
    if extra:
        raise ValueError("%s: unexpected tensors %s" % (path, ", ".join(extra[:5])))
    flat = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if flat.size != n_params(cfg):
        raise ValueError("%s: %d parameters, the config implies %d" % (path, flat.size, n_params(cfg)))
    return cfg, flat.copy()


def read_weights(path):
    """A checkpoint or an exported safetensors file, by extension."""
    return read_safetensors(path) if path.endswith(".safetensors") else read_ckpt(path)
