#!/usr/bin/env bash
# fuzz.sh — the libFuzzer harnesses of every parser of outside bytes (tests/fuzz/, docs/robustness.md).
#
#   bash tools/fuzz.sh [SECONDS] [HARNESS...]   fuzz each harness (default: all) for SECONDS (default 60),
#                                               one after another, niced, over a copy of its seed corpus;
#                                               new crash/timeout/oom/leak inputs go to tests/fuzz/crashes/<h>/
#   bash tools/fuzz.sh --smoke                  every harness over its seed corpus and its checked-in
#                                               regression inputs (tests/fuzz/regress/<h>/) once: seconds
#   bash tools/fuzz.sh --list                   the harness names
#
# Builds build-fuzz (clang, -Dfuzz=true) when needed. Without clang or libFuzzer it says so and exits 0.
# Environment: FUZZ_BUILD (default build-fuzz), FUZZ_WORK (working corpora, default build-fuzz/fuzz-work),
# FUZZ_TIMEOUT (seconds per input, default 10), FUZZ_RSS_MB (default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESSES=(zip avif calib csv headpose expr npy shard ply atb config checkpoint lpips landmarks)
BUILD=${FUZZ_BUILD:-build-fuzz}
WORK=${FUZZ_WORK:-$BUILD/fuzz-work}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS=${FUZZ_RSS_MB:-2048}

if [ "${1:-}" = "--list" ]; then printf '%s\n' "${HARNESSES[@]}"; exit 0; fi
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
secs=60
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then secs=$1; shift; fi
[ $# -gt 0 ] && HARNESSES=("$@")

CC_FUZZ=${CC_FUZZ:-clang}
if ! command -v "$CC_FUZZ" > /dev/null; then
  echo "fuzz: skipped ($CC_FUZZ not found; Debian: apt-get install clang libclang-rt-14-dev)"; exit 0
fi
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
     "$CC_FUZZ" -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2> /dev/null; then
  echo "fuzz: skipped ($CC_FUZZ cannot link -fsanitize=fuzzer; Debian: apt-get install libclang-rt-14-dev)"; exit 0
fi
t0=$(date +%s)
if [ ! -f "$BUILD/build.ninja" ]; then
  CC="$CC_FUZZ" meson setup "$BUILD" -Dfuzz=true -Dcuda=disabled -Db_lundef=false > "$BUILD.setup.log" 2>&1 ||
    { cat "$BUILD.setup.log"; exit 1; }
  rm -f "$BUILD.setup.log"
fi
targets=()
for h in "${HARNESSES[@]}"; do targets+=("fuzz_$h"); done
ninja -C "$BUILD" "${targets[@]}" > /dev/null
t1=$(date +%s)

status=0
if [ $smoke = 1 ]; then
  echo "== fuzz smoke: ${#HARNESSES[@]} harnesses over their seeds and regression inputs (build $((t1 - t0)) s)"
  for h in "${HARNESSES[@]}"; do
    dirs=(tests/fuzz/corpus/$h)
    [ -d tests/fuzz/regress/$h ] && dirs+=(tests/fuzz/regress/$h)
    n=$(find "${dirs[@]}" -type f | wc -l)
    if log=$("$BUILD/fuzz_$h" -runs=0 -timeout="$TIMEOUT" -rss_limit_mb="$RSS" "${dirs[@]}" 2>&1); then
      echo "  ok    fuzz_$h ($n inputs)"
    else
      echo "  FAIL  fuzz_$h ($n inputs):"; echo "$log" | tail -40 | sed 's/^/    /'; status=1
    fi
  done
  echo "fuzz smoke: $([ $status = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - t0 )) s"
  exit $status
fi

for h in "${HARNESSES[@]}"; do
  w=$WORK/$h
  mkdir -p "$w" tests/fuzz/crashes/$h
  cp -n tests/fuzz/corpus/$h/* "$w/" 2> /dev/null || true
  echo "== fuzz_$h: $secs s"
  extra=()
  # libhdf5 keeps caches between inputs that libFuzzer's per-input leak check takes for leaks (a replay of
  # such an input reports none at exit): no leak check while fuzzing the shard reader
  [ "$h" = shard ] && extra+=(-detect_leaks=0)
  set +e
  nice -n 19 "$BUILD/fuzz_$h" "$w" "${extra[@]}" -max_total_time="$secs" -timeout="$TIMEOUT" -rss_limit_mb="$RSS" \
    -artifact_prefix=tests/fuzz/crashes/$h/ -print_final_stats=1 > "$w.log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$w.log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$w.log" | tail -1)
  if [ $rc = 0 ]; then
    echo "   fuzz_$h: ${execs:-?} executions, ${rate:-?} exec/s, ${cov:-cov: ?}, no crash"
  else
    status=1
    echo "   fuzz_$h: FOUND A PROBLEM after ${execs:-?} executions (log: $w.log):"
    grep -E 'ERROR|SUMMARY|Test unit written|FATAL' "$w.log" | head -8 | sed 's/^/     /'
  fi
done
# a harness that crashed skipped its atexit cleanup: remove scratch folders of processes that are gone
for d in /dev/shm/avat3r-fuzz-* "${TMPDIR:-/tmp}"/avat3r-fuzz-*; do
  [ -d "$d" ] && [ -O "$d" ] && ! kill -0 "${d##*-}" 2> /dev/null && rm -rf "$d"
done
ls tests/fuzz/crashes/*/* > /dev/null 2>&1 && echo "inputs kept under tests/fuzz/crashes/ (minimise: $BUILD/fuzz_H -minimize_crash=1 -runs=10000 FILE)"
exit $status
