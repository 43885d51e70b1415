#!/usr/bin/env bash
# demo.sh — the README's main job after install + build: synthetic captures → shards → a training run of
# configs/tiny.cfg on the CPU → curves. Re-running it resumes: finished stages are skipped and the
# training run continues from its newest checkpoint.
#
#   bash tools/demo.sh [OUT]        (default OUT = demo; knobs below via the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo}
SUBJECTS=${DEMO_SUBJECTS:-28}      # the last DEMO_HELD_OUT are held out: novel identities for validation
HELD=${DEMO_HELD_OUT:-4}
CAMERAS=${DEMO_CAMERAS:-16}
FRAMES=${DEMO_FRAMES:-16}
SIZE=${DEMO_SIZE:-96x144}          # synthetic capture size (W x H)
CROP=${DEMO_CROP:-1}               # pack's square crop around the head, a fraction of the short side
STEPS=${DEMO_STEPS:-}              # empty: the `steps` of the config (sized for ~10 minutes on 2 cores)
THREADS=${DEMO_THREADS:-$(nproc)}
BIN=${AVAT3R:-build/avat3r}
PY=${AVAT3R_PYTHON:-/usr/bin/python3}

[ -x "$BIN" ] || { echo "demo: $BIN not found: build first (meson setup build && ninja -C build)" >&2; exit 1; }
mkdir -p "$OUT"
if [ ! -f "$OUT/captures/.done" ]; then
    echo "== 1/4 synthetic captures: $SUBJECTS identities x $CAMERAS cameras x $FRAMES frames ($OUT/captures)"
    rm -rf "$OUT/captures"
    "$BIN" synth --out "$OUT/captures" --subjects "$SUBJECTS" --cameras "$CAMERAS" --frames "$FRAMES" \
        --size "$SIZE" --sapiens-size 16x16 --threads "$THREADS" > "$OUT/synth.log" 2>&1 ||
        { tail -n 20 "$OUT/synth.log" >&2; exit 1; }
    touch "$OUT/captures/.done"
fi
echo "== 2/4 pack to 64x64 shards ($OUT/shards)"
"$BIN" pack --ava256 "$OUT/captures" --out "$OUT/shards" --size 64 --crop "$CROP" --sapiens-size 16x16 --threads "$THREADS" \
    --quiet > "$OUT/pack.log" 2>&1 || { tail -n 20 "$OUT/pack.log" >&2; exit 1; }
tail -n 1 "$OUT/pack.log" # the totals; per capture in pack.log

# the last HELD identities never enter training
HELD_LIST=$(ls "$OUT/shards" | grep '\.h5$' | sed 's/\.h5$//' | tail -n "$HELD" | paste -sd, -)
echo "== 3/4 train configs/tiny.cfg ($OUT/run); held out: $HELD_LIST"
ARGS=(train --config configs/tiny.cfg --data "$OUT/shards" --out "$OUT/run" --resume
      --set "held_out=$HELD_LIST" --set "threads=$THREADS")
[ -n "$STEPS" ] && ARGS+=(--steps "$STEPS")
"$BIN" "${ARGS[@]}" 2>&1 | tee -a "$OUT/train.log"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || exit "$status"

echo "== 4/4 curves ($OUT/run/curves.png)"
"$PY" tools/plot_log.py "$OUT/run" --out "$OUT/run/curves.png" || echo "demo: plotting failed (python3-matplotlib?)" >&2
last=$(ls "$OUT/run" | grep '^val_[0-9]*\.png$' | tail -n 1)
echo "demo: done. Validation grid (inputs | prediction | ground truth, held-out identities): $OUT/run/$last"
echo "      baseline grid: $OUT/run/val_baseline.png; log: $OUT/run/log.jsonl; model: $OUT/run/final.ckpt"
