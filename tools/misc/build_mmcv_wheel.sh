#!/usr/bin/env bash
# Build an mmcv 2.1.0 wheel with its compiled ops from the PyPI source.
#
#   bash tools/misc/build_mmcv_wheel.sh OUT_DIR [EXTRA_FLAGS]
#   bash tools/misc/build_mmcv_wheel.sh --print-flags [EXTRA_FLAGS]
#
# mmcv 2.1.0 (needed by mmdet 3.3 / mmseg 1.2) has no wheel for torch 2.14, and its
# setup.py asks for -std=c++17 where torch >= 2.10 headers need C++20.
#
# Optimisation: setuptools *replaces* Python's compile flags (-O3 among them) with
# $CFLAGS / $CXXFLAGS when they are set, so we start from Python's own flags and add
# EXTRA_FLAGS (default: -O3 -g0, i.e. optimised and without debug info). Passing
# EXTRA_FLAGS='-g0 -O0' reproduces the unoptimised build muscle_mm 0.1 shipped, as a
# baseline for tools/analysis_tools/benchmark_mmcv_ops.py.
#
# CUDA ops are built where torch has CUDA and a GPU is visible, or FORCE_CUDA=1.
set -euo pipefail
OUT=${1:?usage: build_mmcv_wheel.sh OUT_DIR|--print-flags [EXTRA_FLAGS]}
EXTRA=${2:--O3 -g0}
PY=${PYTHON:-python}
MMCV_VERSION=2.1.0
PYFLAGS=$($PY -c "import sysconfig; print(sysconfig.get_config_var('CFLAGS') or '')")
FLAGS="$PYFLAGS $EXTRA"
if [ "$OUT" = "--print-flags" ]; then
  echo "$FLAGS"
  exit 0
fi

BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
$PY -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
  --no-build-isolation "mmcv==$MMCV_VERSION" -d "$BUILD"
tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
SRC="$BUILD/mmcv-$MMCV_VERSION"
sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"

if [ -z "${FORCE_CUDA:-}" ]; then
  FORCE_CUDA=$($PY -c "import torch; print(int(bool(torch.version.cuda) and torch.cuda.is_available()))")
fi
echo "[build_mmcv_wheel] mmcv $MMCV_VERSION, FORCE_CUDA=$FORCE_CUDA, flags: $FLAGS" >&2
if ! (cd "$SRC" && FORCE_CUDA=$FORCE_CUDA MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
  CFLAGS="$FLAGS" CXXFLAGS="$FLAGS" \
  $PY -m pip wheel -v --disable-pip-version-check --no-deps --no-build-isolation . \
  -w "$BUILD/dist" > "$BUILD/build.log" 2>&1); then
  tail -n 60 "$BUILD/build.log"
  cp "$BUILD/build.log" "${TMPDIR:-/tmp}/mmcv-build.log"
  echo "[build_mmcv_wheel] mmcv build failed; full log: ${TMPDIR:-/tmp}/mmcv-build.log" >&2
  exit 1
fi
# The compile lines must carry the optimisation level asked for (the bug this script
# fixes was invisible without looking at them).
OPT=$(grep -oE -- '-O[0-3s]' <<<"$FLAGS" | tail -n1)
if ! grep -E '(c\+\+|g\+\+).* -c .*\.cpp' "$BUILD/build.log" | grep -q -- "$OPT"; then
  echo "[build_mmcv_wheel] warning: no compile line with $OPT found in the build log" >&2
fi
mkdir -p "$OUT"
W=$(ls "$BUILD"/dist/mmcv-*.whl)
# copy then rename, so an interrupted build never leaves a half-written wheel behind
cp "$W" "$OUT/.$(basename "$W").part" && mv "$OUT/.$(basename "$W").part" "$OUT/$(basename "$W")"
echo "$OUT/$(basename "$W")"
