#!/usr/bin/env bash
# Installs whatever is missing for mmseg_refinenet on a Python 3.11 machine:
# torch 2.13.0 (CPU wheel), full mmcv 2.1.0 built from source, mmengine,
# mmsegmentation 1.2.2, and this package (editable). Already-satisfied parts
# are left alone, so running it twice is cheap.
#
#   PYTHON=/path/to/python bash tools/install.sh [--tests]
#
# --tests also installs what the test suite needs (pytest; onnx, onnxruntime
# and onnxscript for the ONNX export; model-index, the parser of `mim search`; h5py and scipy,
# which the NYUDv2 and SUN RGB-D converters read MATLAB files with).
# A prebuilt mmcv wheel in $MMCV_WHEEL_DIR (default ../shared/wheels) is used
# as a cache when it exists; without it mmcv is compiled (~25 min, 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP=("$PY" -m pip install --disable-pip-version-check --no-input --root-user-action=ignore)
have() { "$PY" -c "$1" >/dev/null 2>&1; }

if ! have 'import torch'; then
  echo '[install] torch 2.13.0'
  "${PIP[@]}" 'torch==2.13.0'
fi
echo '[install] build tools, mmengine and mmseg runtime dependencies'
"${PIP[@]}" -q 'setuptools<81' wheel ninja psutil ftfy regex 'mmengine==0.10.7'

if ! have 'import mmcv, mmcv._ext; assert mmcv.__version__ < "2.2.0"'; then
  echo '[install] full mmcv 2.1.0 (compiled ops; building from source can take ~25 min on 2 cores)'
  cache=${MMCV_WHEEL_DIR:-../shared/wheels}
  links=()
  if [ -d "$cache" ]; then links=(--find-links "$cache"); fi
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "${PIP[@]}" --no-build-isolation "${links[@]}" 'mmcv==2.1.0'
fi
if ! have 'import mmseg; assert mmseg.__version__ == "1.2.2"'; then
  echo '[install] mmsegmentation 1.2.2'
  "${PIP[@]}" 'mmsegmentation==1.2.2'
fi
echo '[install] mmseg_refinenet (editable)'
"${PIP[@]}" -q --no-build-isolation -e .
if [ "${1:-}" = "--tests" ]; then
  echo '[install] test requirements'
  "${PIP[@]}" -q pytest h5py scipy onnx onnxruntime onnxscript model-index
fi
"$PY" -c 'import mmseg.models, mmseg_refinenet; print("[install] ready: mmseg_refinenet", mmseg_refinenet.__version__)'
