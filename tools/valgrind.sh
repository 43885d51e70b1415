#!/usr/bin/env bash
# valgrind.sh — the CPU test suite (or the tests whose names contain the given substrings) under valgrind
# memcheck, from a plain debug build (no sanitizers: valgrind and ASan do not mix). Run before a release;
# it is slow (20–50× the normal run), so CI runs ASan + UBSan instead. Exits non-zero on any memcheck
# error or definite leak in the test processes. OpenMP and OpenBLAS keep thread pools alive at exit:
# their "still reachable" blocks are not counted.
#
#   bash tools/valgrind.sh [TEST_SUBSTRING ...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
BUILD=${AVAT3R_VG_BUILD:-build-valgrind}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" -Dbuildtype=debugoptimized -Dcuda=disabled > /dev/null
ninja -C "$BUILD" > /dev/null
export AVAT3R_SOURCE_ROOT="$PWD" OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# memcheck runs 20-100x slower: the runner's per-test alarm (900 s by default) would kill the long finite-
# difference tests (lpips/fd_vgg_f64 needs over an hour)
export AVAT3R_TEST_TIMEOUT=${AVAT3R_TEST_TIMEOUT:-20000}
# every child the runner forks is followed; the PyTorch reference scripts it starts are not ours
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --trace-children=yes --trace-children-skip='*python*,*/sh,*/bash,*/node,*chromium*,*mpirun*' \
    --child-silent-after-fork=no -q "$BUILD/avat3r_tests" "$@"
