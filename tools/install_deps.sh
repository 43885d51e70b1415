#!/usr/bin/env bash
# install_deps.sh — installs every Debian package the build and the tests need. Works as root or
# through sudo. Safe to run again. The CUDA toolkit is not installed here (CI images carry it at
# /usr/local/cuda; the build uses it when nvcc is found).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps.sh: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi
PKGS=(
  meson ninja-build gcc g++ pkg-config           # build
  libopenblas-openmp-dev                          # CPU matmuls (OpenMP variant: nests inside our parallel loops)
  zlib1g-dev libcjson-dev                         # checkpoint CRCs, JSON output
  libzstd-dev libturbojpeg0-dev libhdf5-dev libavif-dev libpng-dev libzip-dev   # data pipeline
  libavif-bin                                     # avifenc: the Python ava256 fixture writer
  libopenmpi-dev openmpi-bin                      # CPU data-parallel tests (issue #8)
  python3 python3-torch python3-numpy             # the independent PyTorch reference (tools/reference)
  python3-matplotlib                              # tools/plot_log.py (training curves)
  g++ libdlib-dev libdlib-data                    # AKD: dlib's shape predictor model, and dlib itself as the test oracle
  ffmpeg                                          # avat3r animate: assembles the video (PNGs without it)
  chromium                                        # the web viewer's end-to-end test (playwright-core drives it)
)
# Node.js and npm for tools/viewer: the machine's own when present, else Debian's.
command -v npm >/dev/null || PKGS+=(nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Prefer the OpenMP OpenBLAS at run time too (the build also sets an rpath to it).
alt=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0
if [ -e "$alt" ] && command -v update-alternatives >/dev/null; then
  $SUDO update-alternatives --set libopenblas.so.0-x86_64-linux-gnu "$alt" >/dev/null 2>&1 || true
fi
echo "install_deps.sh: all dependencies present"
