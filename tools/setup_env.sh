#!/usr/bin/env bash
# Install everything muscle_mm needs into the current Python, idempotently.
#
#   bash tools/setup_env.sh          # runtime + tests
#
# mmcv 2.1.0 (needed by mmdet 3.3 / mmseg 1.2) has no wheel for torch 2.14 on PyPI,
# so it is built from the PyPI source once and the wheel is cached under
# ${MUSCLE_CACHE:-~/.cache/muscle_mm}/wheels/<python>-<torch>-<cpu|cuXY>/; later runs
# install the cached wheel in seconds. On a CUDA machine (nvcc found and torch built
# with CUDA) the CUDA ops are compiled too (FORCE_CUDA=1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PIP="$PY -m pip install --disable-pip-version-check -q"
CACHE=${MUSCLE_CACHE:-$HOME/.cache/muscle_mm}
MMCV_VERSION=2.1.0

have() { $PY -c "$1" >/dev/null 2>&1; }

# 1. torch: the versions this project is tested with.
if ! have "import torch, torchvision; assert torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1')"; then
  echo "[setup_env] installing torch 2.14.1 + torchvision 0.29.1"
  $PIP torch==2.14.1 torchvision==0.29.1
fi
# mmcv's setup.py imports pkg_resources, which setuptools 81 removed.
if ! have "import setuptools, pkg_resources, wheel; assert int(setuptools.__version__.split('.')[0]) < 81"; then
  $PIP 'setuptools<81' wheel ninja
fi

# 2. mmcv with compiled ops, built once per (python, torch, device) and cached.
if ! have "import mmcv, mmcv._ext; assert mmcv.__version__ == '$MMCV_VERSION'"; then
  # CUDA ops are built where a GPU is visible, or when the user sets FORCE_CUDA=1
  # (e.g. building on a GPU-less login node for GPU workers).
  KEY=$($PY -c "import os, sys, torch; cuda = torch.version.cuda and (torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1'); print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__.split(\"+\")[0]}-' + ('cu' + torch.version.cuda.replace('.', '') if cuda else 'cpu'))")
  WHEELS="$CACHE/wheels/$KEY"
  WHEEL=$(ls "$WHEELS"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$WHEEL" ]; then
    echo "[setup_env] building mmcv $MMCV_VERSION with ops for $KEY (about 6-7 min on 2 cores, once)"
    BUILD=$(mktemp -d)
    $PY -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
      --no-build-isolation "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    if [[ "$KEY" == *-cu* ]]; then export FORCE_CUDA=1; else export FORCE_CUDA=0; fi
    if ! (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} CFLAGS=-g0 CXXFLAGS=-g0 \
      $PY -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation . -w "$BUILD/dist" \
      > "$BUILD/build.log" 2>&1); then
      tail -n 60 "$BUILD/build.log"
      echo "[setup_env] mmcv build failed; full log: $BUILD/build.log" >&2
      exit 1
    fi
    mkdir -p "$WHEELS"
    # copy then rename so an interrupted build never leaves a half-written wheel in the cache
    W=$(ls "$BUILD"/dist/mmcv-*.whl)
    cp "$W" "$WHEELS/.$(basename "$W").part" && mv "$WHEELS/.$(basename "$W").part" "$WHEELS/$(basename "$W")"
    WHEEL="$WHEELS/$(basename "$W")"
    rm -rf "$BUILD"
  fi
  echo "[setup_env] installing $WHEEL"
  $PIP "$WHEEL"
fi

# 3. the OpenMMLab packages, the runtime deps, the test deps, and muscle_mm itself.
if ! have "import mmdet, mmseg, mmpretrain, pytest, sklearn, pycocotools, pydicom, ftfy, regex"; then
  echo "[setup_env] installing OpenMMLab packages and their dependencies"
  $PIP -r requirements/runtime.txt -r requirements/mminstall.txt -r requirements/tests.txt
fi
# muscle_mm itself, editable, from THIS checkout (another clone may be installed)
HERE=$(pwd -P)
if ! (cd / && $PY -c "import muscle_mm, os; assert os.path.realpath(muscle_mm.__file__).startswith('$HERE/')") >/dev/null 2>&1; then
  echo "[setup_env] installing muscle_mm (editable) from $HERE"
  $PIP --no-build-isolation --no-deps -e .
fi
echo "[setup_env] ready: $($PY -c 'import torch, mmcv, mmengine, mmpretrain, mmseg, mmdet; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmpretrain {mmpretrain.__version__}, mmseg {mmseg.__version__}, mmdet {mmdet.__version__}")')"
