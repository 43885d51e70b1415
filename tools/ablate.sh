#!/usr/bin/env bash
# ablate.sh — the paper's ablation table (avat3r_paper.md §7) on our data: every tiny ablation config
# trained on the same shards with the same budget and seed, then `avat3r eval` on the held-out subjects
# with inconsistent input expressions; writes OUT/results.md (and each run's folder).
#
#   bash tools/ablate.sh SHARDS_DIR OUT [STEPS]      (held out: the last 4 shards, as in tools/demo.sh)
#   ABLATE_LPIPS=lpips_alex.bin adds the LPIPS column; ABLATE_SAMPLES (default 8) samples per subject.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDS=${1:?usage: ablate.sh SHARDS_DIR OUT [STEPS]}
OUT=${2:?usage: ablate.sh SHARDS_DIR OUT [STEPS]}
STEPS=${3:-10000}
BIN=${AVAT3R:-build/avat3r}
SAMPLES=${ABLATE_SAMPLES:-8}
HELD=$(ls "$SHARDS" | grep '\.h5$' | sed 's/\.h5$//' | tail -n "${ABLATE_HELD_OUT:-4}" | paste -sd, -)
LP=()
[ -n "${ABLATE_LPIPS:-}" ] && LP=(--lpips "$ABLATE_LPIPS")
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
        "${LP[@]}" --out "$OUT/$row/eval" > "$OUT/$row.eval.log"
    tail -n 1 "$OUT/$row.eval.log"
done
PY=${AVAT3R_PYTHON:-/usr/bin/python3}
"$PY" - "$OUT" "$STEPS" $ROWS <<'PYEOF'
import json, sys
out, steps, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
flags = {"just_cross_attention": "✗ ✗ ✓", "no_sapiens": "✗ ✓ ✓", "no_dust3r": "✓ ✗ ✓",
         "no_random_timesteps": "✓ ✓ ✗", "full": "✓ ✓ ✓"}
lines = ["| variant | S | D | T | PSNR ↑ | SSIM ↑ | LPIPS ↓ | AKD ↓ |", "|---|---|---|---|---|---|---|---|"]
for r in rows:
    m = json.load(open("%s/%s/eval/metrics.json" % (out, r)))["mean"]
    s, d, t = flags[r].split()
    lp = "%.4f" % m["lpips"] if m["lpips"] is not None else "–"
    lines.append("| %s | %s | %s | %s | %.2f | %.4f | %s | – |" % (r.replace("_", " "), s, d, t, m["psnr"], m["ssim"], lp))
text = "\n".join(lines) + "\n"
open("%s/results.md" % out, "w").write(text)
print(text)
PYEOF
