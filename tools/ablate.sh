#!/usr/bin/env bash
# ablate.sh — the paper's ablation table (avat3r_paper.md §7) on our data: every tiny ablation config
# trained on the same shards with the same budget and seed, then `avat3r eval` on the held-out subjects
# with inconsistent input expressions; writes OUT/results.md (and each run's folder).
#
#   bash tools/ablate.sh SHARDS_DIR OUT [STEPS] [--lpips ALEX_WEIGHTS] [--akd DLIB_MODEL | --no-akd]
#   (held out: the last 4 shards, as in tools/demo.sh)
#   LPIPS column: --lpips, or ABLATE_LPIPS, or lpips_alex.bin in the source root when it exists (tools/convert_lpips.py
#   writes it); otherwise "–". AKD column: avat3r eval's default dlib model (docs/akd.md) unless --no-akd; "–"
#   when no image could be scored. ABLATE_SAMPLES (default 8) samples per subject.
set -euo pipefail
cd "$(dirname "$0")/.."
USAGE="usage: ablate.sh SHARDS_DIR OUT [STEPS] [--lpips ALEX_WEIGHTS] [--akd DLIB_MODEL | --no-akd]"
POS=()
LPIPS_FILE=${ABLATE_LPIPS:-}
AKD=()
while [ $# -gt 0 ]; do
    case "$1" in
        --lpips) LPIPS_FILE=${2:?$USAGE}; shift 2 ;;
        --akd) AKD=(--akd "${2:?$USAGE}"); shift 2 ;;
        --no-akd) AKD=(--no-akd); shift ;;
        --*) echo "$USAGE" >&2; exit 2 ;;
        *) POS+=("$1"); shift ;;
    esac
done
SHARDS=${POS[0]:?$USAGE}
OUT=${POS[1]:?$USAGE}
STEPS=${POS[2]:-10000}
BIN=${AVAT3R:-build/avat3r}
SAMPLES=${ABLATE_SAMPLES:-8}
HELD=$(ls "$SHARDS" | grep '\.h5$' | sed 's/\.h5$//' | tail -n "${ABLATE_HELD_OUT:-4}" | paste -sd, -)
[ -z "$LPIPS_FILE" ] && [ -f lpips_alex.bin ] && LPIPS_FILE=lpips_alex.bin
LP=()
[ -n "$LPIPS_FILE" ] && LP=(--lpips "$LPIPS_FILE")
mkdir -p "$OUT"
# rows in the paper's order
ROWS="just_cross_attention no_sapiens no_dust3r no_random_timesteps full"
for row in $ROWS; do
    echo "== $row: train $STEPS steps"
    "$BIN" train --config "configs/ablations/tiny_$row.cfg" --data "$SHARDS" --out "$OUT/$row" --resume \
        --steps "$STEPS" --set "held_out=$HELD" --set val_every=0 --set log_every=1000 > "$OUT/$row.train.log" 2>&1 ||
        { tail -n 5 "$OUT/$row.train.log" >&2; exit 1; }
    ck=$(printf '%s/%s/ckpt_%08d.ckpt' "$OUT" "$row" "$STEPS")
    "$BIN" eval --checkpoint "$ck" --data "$SHARDS" --subjects held-out --inconsistent --samples "$SAMPLES" \
        "${LP[@]}" "${AKD[@]}" --out "$OUT/$row/eval" > "$OUT/$row.eval.log"
    tail -n 1 "$OUT/$row.eval.log"
done
PY=${AVAT3R_PYTHON:-/usr/bin/python3}
"$PY" - "$OUT" "$STEPS" $ROWS <<'PYEOF'
import json, sys
out, steps, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
flags = {"just_cross_attention": "✗ ✗ ✓", "no_sapiens": "✗ ✓ ✓", "no_dust3r": "✓ ✗ ✓",
         "no_random_timesteps": "✓ ✓ ✗", "full": "✓ ✓ ✓"}
lines = ["| variant | S | D | T | PSNR ↑ | SSIM ↑ | LPIPS ↓ | AKD ↓ |", "|---|---|---|---|---|---|---|---|"]
notes = []
for r in rows:
    j = json.load(open("%s/%s/eval/metrics.json" % (out, r)))
    m, a = j["mean"], j.get("akd") or {}
    s, d, t = flags[r].split()
    lp = "%.4f" % m["lpips"] if m.get("lpips") is not None else "–"
    akd = "%.2f" % m["akd"] if m.get("akd") is not None else "–"
    lines.append("| %s | %s | %s | %s | %.2f | %.4f | %s | %s |" % (r.replace("_", " "), s, d, t, m["psnr"], m["ssim"], lp, akd))
    notes.append("%s %d/%d" % (r.replace("_", " "), a.get("images_scored", 0), j["images_scored"]))
text = "\n".join(lines) + "\n"
text += "\nAKD (px of the eval images, dlib 68 landmarks, docs/akd.md) scored on: " + ", ".join(notes) + " images.\n"
open("%s/results.md" % out, "w").write(text)
print(text)
PYEOF
