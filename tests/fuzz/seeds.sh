#!/usr/bin/env bash
# seeds.sh — regenerates the seed corpora tests/fuzz/corpus/<harness>/ (checked in; run this only to
# refresh them). Needs a built avat3r (AVAT3R, default build/avat3r), build-fuzz/seed_shard
# (tools/fuzz.sh builds it), /usr/bin/python3 with numpy (the expression sidecar converter) and python3.
# Every seed comes from our own writers: `avat3r synth` (a 1-subject, 2-camera, 3-frame capture of
# 24x32), `avat3r init` (a 2298-parameter model), seed_shard (data/shard.c), configs/*.cfg, plus
# a few files written here by format (PLY, tensor bundle, LPIPS header, a small dlib model).
set -euo pipefail
cd "$(dirname "$0")/../.."
AVAT3R=${AVAT3R:-build/avat3r}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
C=tests/fuzz/corpus
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
rm -rf "$C"
mkdir -p "$C"/{zip,avif,calib,csv,headpose,expr,npy,shard,ply,atb,config,checkpoint,lpips,landmarks}

"$AVAT3R" synth --out "$T/synth" --subjects 1 --cameras 2 --frames 3 --size 16x24 --sapiens-size 4x4 --threads 1 > /dev/null
D=$(echo "$T"/synth/*/decoder)
/usr/bin/python3 tools/ava256_expr_codes.py "$D" > /dev/null
cp "$D/image/cam400101.zip" "$C/zip/image.zip"
cp "$D/head_pose/head_pose.zip" "$C/zip/head_pose.zip"
cp "$D/foreground_masks/cam400102.zip" "$C/zip/mask.zip"
cp "$D/background_image/background_image.zip" "$C/zip/background.zip"
cp "$D/aux/sapiens/cam400101.zip" "$C/zip/sapiens.zip"
cp "$D/camera_calibration.json" "$C/calib/synth.json"
cp "$D/frame_list.csv" "$C/csv/frame_list.csv"
cp "$T/synth/256_ids.csv" "$C/csv/256_ids.csv"
cp "$D/expression_codes/aeparams_1440000.f32.bin" "$C/expr/synth.f32.bin"
python3 - "$D" "$C" <<'PY'
import sys, zipfile, struct
D, C = sys.argv[1], sys.argv[2]
def members(z):
    with zipfile.ZipFile(z) as f:
        return [(n, f.read(n)) for n in f.namelist() if not n.endswith('/')]
m = members(D + '/image/cam400101.zip')
open(C + '/avif/image.avif', 'wb').write(m[0][1])
open(C + '/avif/mask.avif', 'wb').write(members(D + '/foreground_masks/cam400101.zip')[0][1])
open(C + '/avif/background.avif', 'wb').write(members(D + '/background_image/background_image.zip')[0][1])
poses = members(D + '/head_pose/head_pose.zip')
open(C + '/headpose/one.txt', 'wb').write(poses[0][1])
open(C + '/headpose/two.txt', 'wb').write(poses[0][1] + b'\0' + poses[1][1])
open(C + '/npy/dust3r.npy', 'wb').write(members(D + '/aux/dust3r/cam400101.zip')[0][1])
open(C + '/npy/sapiens.npy', 'wb').write(members(D + '/aux/sapiens/cam400101.zip')[0][1])
# expression sidecar: a 2-record dim-4 variant beside the synthetic one
hdr = b'AVT3EXPR' + struct.pack('<IIQQ', 1, 4, 2, 0)
open(C + '/expr/small.f32.bin', 'wb').write(hdr + struct.pack('<q4f', 20000, 0.1, -0.2, 0.3, 0.4) +
                                            struct.pack('<q4f', 20005, 1, 2, 3, 4))
PY

"$FUZZ_BUILD/seed_shard" "$C/shard/small.h5"
cp configs/tiny.cfg configs/paper.cfg "$C/config/"
for f in configs/ablations/tiny_*.cfg; do cp "$f" "$C/config/"; done
printf 'width = 64\nheads = 2\nuse_sapiens = false\nlr = 3e-4\nlr_schedule = constant\nheld_out = TST001,TST002\n' \
  > "$C/config/small.cfg"

cat > "$T/small.cfg" <<'CFG'
views_in = 1
views_target = 1
img_h = 8
img_w = 8
patch = 4
width = 8
heads = 1
layers = 1
mlp_ratio = 1
expr_dim = 4
expr_tokens = 1
expr_hidden = 4
use_sapiens = false
use_dust3r = false
CFG
"$AVAT3R" init --config "$T/small.cfg" --seed 0 --out "$C/checkpoint/model.ckpt" > /dev/null
python3 - "$C" <<'PY'
import sys, struct, zlib
C = sys.argv[1]
# a training checkpoint from the model one: kind 2, moments m and v, a state text (CRCs recomputed)
b = bytearray(open(C + '/checkpoint/model.ckpt', 'rb').read())
n, clen, off = struct.unpack_from('<QQQ', b, 16)
params = bytes(b[off:off + 4 * n])
state = b'state_step = 3\nstate_data_cursor = 3\nstate_skipped = 0\nstate_bad_in_row = 0\n'
payload = params + bytes(4 * n) + params + state
t = bytearray(b[:off]) + payload
struct.pack_into('<I', t, 12, 2)
struct.pack_into('<I', t, 44, zlib.crc32(payload))
struct.pack_into('<Q', t, 48, len(state))
open(C + '/checkpoint/train.ckpt', 'wb').write(t)
# PLY: two Gaussians, Inria's 17 properties, plus a variant with reordered and extra properties
props = 'x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 opacity scale_0 scale_1 scale_2 rot_0 rot_1 rot_2 rot_3'.split()
def ply(names, rows):
    h = 'ply\nformat binary_little_endian 1.0\ncomment fuzz seed\nelement vertex %d\n' % len(rows)
    h += ''.join('property float %s\n' % p for p in names) + 'end_header\n'
    return h.encode() + b''.join(struct.pack('<%df' % len(r), *r) for r in rows)
rows = [[0.1 * i + j for j in range(17)] for i in range(2)]
open(C + '/ply/two.ply', 'wb').write(ply(props, rows))
open(C + '/ply/extra.ply', 'wb').write(ply(props[::-1] + ['f_rest_0'], [r + [0.0] for r in rows]))
# tensor bundle: float32 [2,3], float64 [4], int32 [] (a scalar)
def tens(name, dt, dims, data):
    return struct.pack('<I', len(name)) + name.encode() + struct.pack('<II', dt, len(dims)) + \
           b''.join(struct.pack('<Q', d) for d in dims) + data
atb = b'AVT3TENS' + struct.pack('<II', 1, 3)
atb += tens('rgb', 0, [2, 3], struct.pack('<6f', *range(6)))
atb += tens('w', 1, [4], struct.pack('<4d', 1, 2, 3, 4))
atb += tens('n', 2, [], struct.pack('<i', 7))
open(C + '/atb/small.atb', 'wb').write(atb)
# LPIPS headers with their shape tables and 16 weights; the length is 2 mod 4, so the harness repeats
# the weights to AlexNet's full length (fuzz_lpips.c)
VGG = [(64,3),(64,64),(128,64),(128,128),(256,128),(256,256),(256,256),(512,256),(512,512),(512,512),(512,512),(512,512),(512,512)]
ALEX = [(64,3,11,4,2),(192,64,5,1,2),(384,192,3,1,1),(256,384,3,1,1),(256,256,3,1,1)]
def lp(net, convs, taps):
    table = b''.join(struct.pack('<6i', *c) for c in convs) + struct.pack('<5i', *taps)
    n = sum(c[0] * c[1] * c[2] * c[3] + c[0] for c in convs) + sum(taps)
    hdr = b'AVT3LPIP' + struct.pack('<IIII', 1, net, len(convs), 0) + struct.pack('<Q', n) + bytes(32)
    return hdr + table + struct.pack('<16f', *[0.01 * (k + 1) for k in range(16)]) + b'\0\0'
open(C + '/lpips/vgg_head.bin', 'wb').write(lp(1, [(o, i, 3, 3, 1, 1) for o, i in VGG], [64, 128, 256, 512, 512]))
open(C + '/lpips/alex.bin', 'wb').write(lp(2, [(o, i, k, k, s, p) for o, i, k, s, p in ALEX], [64, 192, 384, 256, 256]))
# dlib shape predictor: 3 parts, 2 cascade levels of 2 depth-1 trees, 4 feature pixels per level
def di(v, signed=True):
    neg = 0x80 if v < 0 else 0
    v = abs(v)
    b = []
    while True:
        b.append(v & 0xFF); v >>= 8
        if v == 0: break
    return bytes([len(b) | neg] + b)
def df(x):  # dlib float: mantissa * 2^exponent
    m, e = x, 0
    while m != int(m): m *= 2; e -= 1
    return di(int(m)) + di(e)
def col(vals): return di(-len(vals)) + di(-1) + b''.join(df(v) for v in vals)
P = 3; D = 2 * P
out = di(1) + col([0.25, 0.25, 0.75, 0.25, 0.5, 0.75])
out += di(2, False)
for c in range(2):
    out += di(2, False)
    for t in range(2):
        out += di(1, False) + di(t, False) + di(3 - t, False) + df(0.5 * (t + 1))
        out += di(2, False) + col([0.125 * k for k in range(D)]) + col([-0.0625 * k for k in range(D)])
out += di(2, False) + b''.join(di(4, False) + b''.join(di(a, False) for a in (0, 1, 2, 0)) for c in range(2))
out += di(2, False) + b''.join(di(4, False) + b''.join(df(0.125 * k) + df(-0.25) for k in range(4)) for c in range(2))
open(C + '/landmarks/small.dat', 'wb').write(out)
open(C + '/landmarks/prefix.dat', 'wb').write(out[:40])
PY
du -sh "$C"
