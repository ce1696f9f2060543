#!/usr/bin/env bash
# Install everything muscle_mm needs into the current Python, idempotently.
#
#   bash tools/setup_env.sh          # runtime + tests
#
# mmcv 2.1.0 (needed by mmdet 3.3 / mmseg 1.2) has no wheel for torch 2.14 on PyPI,
# so tools/misc/build_mmcv_wheel.sh builds it from the PyPI source once and the wheel
# is cached under ${MUSCLE_CACHE:-~/.cache/muscle_mm}/wheels/<python>-<torch>-<cpu|cuXY>-opt/;
# later runs install the cached wheel in seconds. On a CUDA machine (torch built with
# CUDA and a GPU visible, or FORCE_CUDA=1) the CUDA ops are compiled too.
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

# 2. mmcv with compiled ops, built optimised once per (python, torch, device) and
# cached. The key's "-opt" marks builds that keep -O3 (0.1 built at -O0, see
# tools/misc/build_mmcv_wheel.sh); the installed copy records its key in
# mmcv/.muscle_build, so an older or unoptimised mmcv is replaced, not trusted.
KEY=$($PY -c "import os, sys, torch; cuda = torch.version.cuda and (torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1'); print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__.split(\"+\")[0]}-' + ('cu' + torch.version.cuda.replace('.', '') if cuda else 'cpu') + '-opt')")
# Located without importing mmcv: on a fresh machine its own dependencies
# (opencv, mmengine) arrive only in step 3.
MMCV_DIR="import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('mmcv').origin))"
MARK="import glob, importlib.metadata as m, importlib.util, os; d = os.path.dirname(importlib.util.find_spec('mmcv').origin); assert m.version('mmcv') == '$MMCV_VERSION'; assert glob.glob(os.path.join(d, '_ext*.so')); assert open(os.path.join(d, '.muscle_build')).read().strip() == '$KEY'"
if ! have "$MARK"; then
  WHEELS="$CACHE/wheels/$KEY"
  WHEEL=$(ls "$WHEELS"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$WHEEL" ]; then
    echo "[setup_env] building mmcv $MMCV_VERSION with ops for $KEY (about 7-8 min on 2 cores, once)"
    if [[ "$KEY" == *-cu* ]]; then export FORCE_CUDA=1; else export FORCE_CUDA=0; fi
    WHEEL=$(bash tools/misc/build_mmcv_wheel.sh "$WHEELS" | tail -n1)
  fi
  echo "[setup_env] installing $WHEEL"
  $PIP --force-reinstall --no-deps "$WHEEL"
  echo "$KEY" > "$($PY -c "$MMCV_DIR")/.muscle_build"
fi

# 3. the OpenMMLab packages, the runtime deps, the test deps, and muscle_mm itself.
if ! have "import mmdet, mmseg, mmpretrain, pytest, sklearn, pycocotools, pydicom, ftfy, regex, timm, safetensors, tensorboard"; then
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
