#!/usr/bin/env bash
# cuda_emu.sh — the CUDA tests on the CPU emulator (dev/cuda/emu.h), for machines without a GPU: gcc/g++
# only, the CUDA toolkit's headers for the runtime's and cuBLAS's types. What the emulator does and does
# not check: dev/cuda/README.md. On a GPU machine run tools/gpu_verify.sh instead.
#   bash tools/cuda_emu.sh [layers|model|ssim|train|lpips|raster|step|loop|lab|all] [OUTDIR]   (default: all, /tmp/avat3r_emu)
#   layers  model/cuda/layers_cuda.cu (LayerNorm, GELU) vs model/layers.c
#   model   model/cuda (kernels, cuBLAS calls, the whole network) vs model/layers.c and model/avat3r.c
#   ssim    train/cuda/ssim_cuda.cu vs train/loss_image.c (bit-identical expected)
#   train   train/cuda/optim_cuda.cu, loss_cuda.cu (AdamW, gradient norm, L1) vs train/optim.c, train/loss_image.c
#   lpips   train/cuda/lpips_cuda.cu (VGG and AlexNet trunks, forward and backward) vs train/lpips.c
#   raster  render/cuda kernels (host code mirrored in dev/cuda/raster_emu.cpp) vs render/raster.c
#   step    train/cuda/step_cuda.cu (the whole training step, a 20-step run) vs train/step.c
#   loop    `avat3r train --device cuda` end to end (an avat3r built with -Dgpu_emu=true in OUTDIR/build-emu):
#           its log against `--device cpu` step by step, each device resuming the other's checkpoint, two
#           data-parallel ranks on either device, and `avat3r eval` / `animate --device cuda` against cpu
#   lab     dev/cuda/attention_forward.cu and raster_forward.cu: every version against its CPU reference
# Every CUDA source goes into one emulator unit (dev/cuda/cuda_emu.cpp) and every CPU oracle into one
# library, compiled once and linked with each test.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
OUT=${2:-/tmp/avat3r_emu}
CUDA_INC=${CUDA_HOME:-/usr/local/cuda}/include
[ -f "$CUDA_INC/cuda_runtime_api.h" ] || { echo "cuda_emu.sh: no CUDA headers in $CUDA_INC (set CUDA_HOME)" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "cuda_emu.sh: the emulator's context switch is x86-64 only" >&2; exit 1; }
CFLAGS="-std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno -I. -Icommon -Imodel -Irender -Itrain -Itools -I$CUDA_INC $(pkg-config --cflags openblas)"
CXXFLAGS="-std=c++17 -O2 -D_GNU_SOURCE -DAVAT3R_EMU -I. -Icommon -Imodel -Irender -Itrain -Itools -I$CUDA_INC"

# every .cu file must be in the emulator unit, and the emulator has no static __shared__ arrays
for f in model/cuda/*.cu train/cuda/*.cu; do
  grep -q "#include \"../../$f\"" dev/cuda/cuda_emu.cpp ||
    { echo "cuda_emu.sh: $f is not included in dev/cuda/cuda_emu.cpp" >&2; exit 1; }
done
if grep -n "^[^/]*__shared__" model/cuda/*.cu model/cuda/*.h train/cuda/*.cu train/cuda/*.h render/cuda/*.cuh |
   grep -v "extern __shared__ float smem\[\]"; then
  echo "cuda_emu.sh: only 'extern __shared__ float smem[];' runs on the emulator (model/cuda/launch.h)" >&2; exit 1
fi

CPU_SRC="model/layers.c model/avat3r.c model/params.c model/model_config.c model/checkpoint.c render/raster.c train/loss_image.c
  train/optim.c train/step.c train/lpips.c train/lpips_weights.c train/train_config.c tools/batch_random.c
  tools/scene_random.c common/rng.c common/util.c common/log.c common/timer.c common/config.c common/atb.c"
LIB=$OUT/lib
BUILT=0
build_lib() {
  [ $BUILT = 1 ] && return 0
  rm -rf "$LIB" && mkdir -p "$LIB"
  for f in $CPU_SRC; do gcc $CFLAGS -c "$f" -o "$LIB/$(echo "$f" | tr / _).o"; done
  g++ $CXXFLAGS -c dev/cuda/cuda_emu.cpp -o "$LIB/cuda_emu.o"
  BUILT=1
}
# run TEST_C [ARGS...]: that test linked with the library, run with one OpenMP thread (the CPU oracles'
# threads would only compete with the emulator for the cores)
run() {
  build_lib
  local t=$1 bin=$OUT/$(basename "$1" .c)
  shift
  gcc $CFLAGS -c "$t" -o "$bin.o"
  g++ "$LIB"/*.o "$bin.o" -fopenmp $(pkg-config --libs openblas) -lz -lm -o "$bin"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$bin" "$@"
}
run_layers() { echo "== layers (model/cuda/layers_cuda.cu kernels on the emulator)"; run tests/cuda/test_layers_cuda.c; }
run_model() { echo "== model (model/cuda on the emulator)"; run tests/cuda/test_model_cuda.c; }
run_ssim() { echo "== ssim (train/cuda/ssim_cuda.cu on the emulator)"; run tests/cuda/test_ssim_cuda.c; }
run_train() { echo "== train (train/cuda/optim_cuda.cu, loss_cuda.cu on the emulator)"; run tests/cuda/test_train_cuda.c; }
run_lpips() { echo "== lpips (train/cuda/lpips_cuda.cu on the emulator)"; run tests/cuda/test_lpips_cuda.c; }
run_raster() { echo "== raster (render/cuda kernels on the emulator; about 90 s on 2 cores)"; run tests/cuda/test_raster_cuda.c; }
run_step() { echo "== step (train/cuda/step_cuda.cu on the emulator: the training step vs train/step.c)"; run tests/cuda/test_step_cuda.c; }
# the kernel lab (dev/cuda/attention_forward.cu and raster_forward.cu, every version against its CPU
# reference): shapes with partial tiles and idle rows; the emulator's times mean nothing
run_lab() {
  echo "== lab (dev/cuda/attention_forward.cu versions on the emulator)"
  build_lib
  local bin=$OUT/attention_forward shape v n=0
  g++ $CXXFLAGS -x c++ -include dev/cuda/emu.h -c dev/cuda/attention_forward.cu -o "$bin.o"
  g++ "$LIB"/common_*.o "$bin.o" -fopenmp -lm -o "$bin"
  for shape in "1 2 70 32" "2 1 45 64" "1 3 33 16" "1 1 20 128"; do
    for v in 1 2; do "$bin" $v $shape 0 || return 1; n=$((n + 1)); done
  done
  bin=$OUT/raster_forward # the rasterizer's compositing lab: a 40x24 image (partial tiles), 300 Gaussians
  g++ $CXXFLAGS -x c++ -include dev/cuda/emu.h -c dev/cuda/raster_forward.cu -o "$bin.o"
  g++ "$LIB"/common_*.o "$bin.o" -fopenmp -lm -o "$bin"
  for v in 1 2; do "$bin" $v 40 24 300 1 || return 1; n=$((n + 1)); done
  echo "kernel lab versions: $n of $n checks passed"
}
# the training run on the emulator: a micro model (tests/test.h's TEST_MICRO_MODEL) on 2 synthetic
# identities, 4 steps, validation and checkpoints every 2. Losses and validation PSNRs must agree within
# TOL_CURVE (tests/cuda/test_step_cuda.c) relatively; the resumed runs continue the other device's run.
run_loop() {
  echo "== loop (avat3r train --device cuda on the emulator vs --device cpu)"
  local B=$OUT/build-emu L=$OUT/loop
  [ -f "$B/build.ninja" ] || meson setup "$B" -Dcuda=disabled -Dgpu_emu=true -Dbuildtype=release > "$OUT/loop_setup.log" 2>&1 ||
    { tail -20 "$OUT/loop_setup.log"; return 1; }
  ninja -C "$B" avat3r > "$OUT/loop_build.log" 2>&1 || { tail -20 "$OUT/loop_build.log"; return 1; }
  rm -rf "$L" && mkdir -p "$L"
  local A=$B/avat3r
  "$A" synth --out "$L/caps" --subjects 2 --cameras 8 --frames 4 --size 48x72 --sapiens-size 8x8 --no-drop --threads 2 \
    > "$L/data.log" 2>&1 && "$A" pack --ava256 "$L/caps" --out "$L/shards" --size 32 --sapiens-size 8x8 --quiet \
    --threads 2 >> "$L/data.log" 2>&1 || { tail -20 "$L/data.log"; return 1; }
  local S=(--config configs/tiny.cfg --data "$L/shards" --set img_h=32 --set img_w=32 --set patch=4 --set width=32
           --set heads=2 --set layers=2 --set expr_hidden=32 --set expr_tokens=2 --set sapiens_h=8 --set sapiens_w=8
           --set sapiens_ch=16 --set views_target=2 --set loader_threads=1 --set threads=1 --set val_samples=2
           --set val_every=2 --set warmup_steps=2 --set lr=1e-3 --set ckpt_every=2 --set log_every=1)
  t() { "$A" train "${S[@]}" "$@" >> "$L/train.log" 2>&1 || { tail -20 "$L/train.log"; return 1; }; }
  t --out "$L/cpu" --steps 4 --device cpu && t --out "$L/cuda" --steps 4 --device cuda &&
    t --out "$L/cuda_cpu" --steps 2 --device cuda && t --out "$L/cuda_cpu" --steps 4 --resume --device cpu &&
    t --out "$L/cpu_cuda" --steps 2 --device cpu && t --out "$L/cpu_cuda" --steps 4 --resume --device cuda || return 1
  for d in cpu cuda; do # two data-parallel ranks, each on its (emulated) GPU, gradients through the host
    "$A" launch --procs 2 -- train "${S[@]}" --steps 4 --device $d --out "$L/${d}2" >> "$L/train.log" 2>&1 ||
      { tail -20 "$L/train.log"; return 1; }
  done
  for d in cpu cuda; do # two micro-batches per step: the GPU's look-ahead stages within a step and across steps
    t --out "$L/acc_$d" --steps 3 --device $d --set grad_accum=2 || return 1
  done
  for d in cpu cuda; do # the non-finite-output hook, the NaN-input hook (applied when a micro-batch is fetched,
    # one ahead on the GPU) and the NaN-gradient hook: steps 3 and 4 skipped, parameters kept (docs/robustness.md)
    AVAT3R_FAULT_INF_ACT_FROM_STEP=3 "$A" train "${S[@]}" --steps 4 --device $d --out "$L/inf_$d" \
      >> "$L/train.log" 2>&1 || { tail -20 "$L/train.log"; return 1; }
    AVAT3R_FAULT_NAN_INPUT_FROM_STEP=3 "$A" train "${S[@]}" --steps 4 --device $d --out "$L/nan_$d" \
      >> "$L/train.log" 2>&1 || { tail -20 "$L/train.log"; return 1; }
    AVAT3R_FAULT_NAN_FROM_STEP=3 "$A" train "${S[@]}" --steps 4 --device $d --out "$L/nangrad_$d" \
      >> "$L/train.log" 2>&1 || { tail -20 "$L/train.log"; return 1; }
  done
  local subj
  subj=$(ls "$L/shards" | grep '\.h5$' | head -n 1 | sed 's/\.h5$//')
  for d in cpu cuda; do # eval renders on the device too; animate runs its network there
    "$A" eval --checkpoint "$L/cpu/final.ckpt" --data "$L/shards" --subjects all --samples 2 --no-akd --device $d \
      --out "$L/eval_$d" >> "$L/train.log" 2>&1 || { tail -20 "$L/train.log"; return 1; }
    "$A" animate --checkpoint "$L/cpu/final.ckpt" --data "$L/shards" --subject "$subj" --frames 0:2 --device $d \
      --out "$L/anim_$d" >> "$L/train.log" 2>&1 || { tail -20 "$L/train.log"; return 1; }
  done
  /usr/bin/python3 - "$L" <<'PY'
import json, sys
L, tol = sys.argv[1], 1e-3
def rows(run):
    return [json.loads(x) for x in open(f"{L}/{run}/log.jsonl")]
bad = n = 0
for run, base in (("cuda", "cpu"), ("cuda_cpu", "cpu"), ("cpu_cuda", "cpu"), ("cuda2", "cpu2"), ("acc_cuda", "acc_cpu")):
    ref, got = rows(base), rows(run)
    for kind, key in (("train", "loss"), ("val", "psnr")):
        a = {r["step"]: r[key] for r in ref if r["kind"] == kind}
        b = {r["step"]: r[key] for r in got if r["kind"] == kind}
        worst = max(abs(b[s] - a[s]) / abs(a[s]) for s in a) if a.keys() == b.keys() else float("inf")
        ok = worst <= tol and len(a) > 0
        bad, n = bad + (not ok), n + 1
        print(f"{'PASS' if ok else 'FAIL'} {run} vs {base}: {kind} {key} at steps {sorted(b)}: worst rel {worst:.2e} (tol {tol:.0e})")
for hook, what in (("inf", "non-finite Gaussians (AVAT3R_FAULT_INF_ACT_FROM_STEP)"),
                   ("nan", "a NaN input pixel (AVAT3R_FAULT_NAN_INPUT_FROM_STEP)"),
                   ("nangrad", "a NaN gradient (AVAT3R_FAULT_NAN_FROM_STEP)")):
    skips = [[r["skipped"] for r in rows(f"{hook}_{d}") if r["kind"] == "train"] for d in ("cpu", "cuda")]
    ok = skips[0] == skips[1] == [0, 0, 1, 1]
    bad, n = bad + (not ok), n + 1
    print(f"{'PASS' if ok else 'FAIL'} {what} from step 3: skipped steps cpu {skips[0]}, cuda {skips[1]}")
ev = [json.load(open(f"{L}/eval_{d}/metrics.json"))["images"] for d in ("cpu", "cuda")]
for key in ("psnr", "ssim"):
    worst = max(abs(g[key] - c[key]) / abs(c[key]) for c, g in zip(*ev)) if len(ev[0]) == len(ev[1]) else float("inf")
    ok = worst <= tol and len(ev[0]) > 0
    bad, n = bad + (not ok), n + 1
    print(f"{'PASS' if ok else 'FAIL'} eval --device cuda vs cpu: {key} of {len(ev[0])} images: worst rel {worst:.2e} (tol {tol:.0e})")
import struct
def ply(path):  # the header's vertex count, then every float of the binary payload
    raw = open(path, "rb").read()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    n = int([l for l in raw[:end].decode().split("\n") if l.startswith("element vertex")][0].split()[2])
    return n, struct.unpack(f"<{(len(raw) - end) // 4}f", raw[end:])
for f in ("frame_0000.ply", "frame_0001.ply"):  # the exported Gaussians: the network's tolerance (TOL_MODEL)
    (na, a), (nb, b) = ply(f"{L}/anim_cpu/{f}"), ply(f"{L}/anim_cuda/{f}")
    big = max(abs(x) for x in a)
    worst = max(abs(x - y) for x, y in zip(a, b)) / big if na == nb and len(a) == len(b) else float("inf")
    ok = worst <= 1e-4 and na > 0
    bad, n = bad + (not ok), n + 1
    print(f"{'PASS' if ok else 'FAIL'} animate --device cuda vs cpu: {f}, {na} Gaussians: worst {worst:.2e} of the max (tol 1e-04)")
print(f"avat3r train, eval and animate --device cuda (emulated): {n - bad} of {n} checks passed")
sys.exit(1 if bad else 0)
PY
}
case $WHAT in
  layers) run_layers ;;
  model) run_model ;;
  ssim) run_ssim ;;
  train) run_train ;;
  lpips) run_lpips ;;
  raster) run_raster ;;
  step) run_step ;;
  loop) run_loop ;;
  lab) run_lab ;;
  all) run_layers; run_model; run_ssim; run_train; run_lpips; run_step; run_loop; run_lab; run_raster ;;
  *) echo "usage: bash tools/cuda_emu.sh [layers|model|ssim|train|lpips|raster|step|loop|lab|all] [OUTDIR]" >&2; exit 2 ;;
esac
