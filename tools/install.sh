#!/usr/bin/env bash
# Installs whatever is missing for mmseg_refinenet on a Python 3.11 machine,
# for one of the two tested stacks (README, "Supported versions"):
#
#   newest (default)  torch 2.13.0, numpy 2, opencv-python 5
#   oldest            torch 2.1.2, numpy < 2, opencv-python < 4.11
#
# and on both a full mmcv 2.1.0 (compiled ops) built against that torch,
# mmengine 0.10.7, mmsegmentation 1.2.2, ftfy and regex, and this package
# (editable). Already-satisfied parts are left alone, so running it twice is
# cheap.
#
#   PYTHON=/path/to/python bash tools/install.sh [--stack newest|oldest] [--tests]
#
# --tests also installs what the test suite needs (pytest; build, for the
# packaging test; onnx, onnxruntime and onnxscript for the ONNX export;
# model-index, the parser of `mim search`; h5py and scipy, which the NYUDv2
# and SUN RGB-D converters read MATLAB files with).
# mmcv is compiled from its source distribution (~25 min on 2 cores) unless a
# prebuilt wheel for this stack sits in $MMCV_WHEEL_DIR (default
# ../shared/wheels for the newest stack, ../shared/wheels/torch-2.1.2 for the
# oldest), which is then used as a cache. An mmcv wheel fits only the torch
# it was built against, so pip's own wheel cache is not used for it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STACK=newest
TESTS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) STACK=${2:-}; shift 2 ;;
    --stack=*) STACK=${1#--stack=}; shift ;;
    --tests) TESTS=1; shift ;;
    *) echo "install.sh: unknown argument '$1' (use --stack newest|oldest, --tests)" >&2; exit 2 ;;
  esac
done
case "$STACK" in
  newest)
    TORCH=2.13.0
    cache=${MMCV_WHEEL_DIR:-../shared/wheels} ;;
  oldest)
    TORCH=2.1.2
    cache=${MMCV_WHEEL_DIR:-../shared/wheels/torch-2.1.2} ;;
  *) echo "install.sh: --stack must be newest or oldest, got '$STACK'" >&2; exit 2 ;;
esac
PIP=("$PY" -m pip install --disable-pip-version-check --no-input --root-user-action=ignore)
have() { "$PY" -c "$1" >/dev/null 2>&1; }

if [ "$STACK" = oldest ]; then
  torch_ok="import torch; assert torch.__version__.split('+')[0] == '$TORCH'"
else
  # any torch in the supported range is kept (CPU or CUDA build)
  torch_ok="import re, torch; v = tuple(map(int, re.match(r'(\d+)\.(\d+)\.(\d+)', torch.__version__).groups())); assert (2, 1, 2) <= v < (2, 14)"
fi
if ! have "$torch_ok"; then
  echo "[install] torch $TORCH"
  "${PIP[@]}" "torch==$TORCH"
fi
# torch < 2.3 was built against numpy 1.x (and fails on numpy 2 at the first
# torch.from_numpy); every install below keeps numpy and opencv there
PINS=()
if have 'import re, torch; v = tuple(map(int, re.match(r"(\d+)\.(\d+)", torch.__version__).groups())); assert v < (2, 3)'; then
  PINS=('numpy<2' 'opencv-python<4.11')
fi
echo '[install] build tools, mmengine and mmseg runtime dependencies'
"${PIP[@]}" -q 'setuptools>=77,<81' wheel ninja packaging psutil ftfy regex \
  'mmengine==0.10.7' "${PINS[@]}"

if ! have 'import mmcv, mmcv._ext; assert mmcv.__version__ == "2.1.0"'; then
  echo '[install] full mmcv 2.1.0 (compiled ops; building from source can take ~25 min on 2 cores)'
  # an mmcv built against another torch (its compiled ops fail to load)
  "$PY" -m pip uninstall -y -q mmcv >/dev/null 2>&1 || true
  links=()
  if [ -d "$cache" ]; then links=(--find-links "$cache"); fi
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "${PIP[@]}" --no-cache-dir --no-build-isolation "${links[@]}" \
    'mmcv==2.1.0' "${PINS[@]}"
fi
if ! have 'import mmseg; assert mmseg.__version__ == "1.2.2"'; then
  echo '[install] mmsegmentation 1.2.2'
  "${PIP[@]}" 'mmsegmentation==1.2.2' "${PINS[@]}"
fi
echo '[install] mmseg_refinenet (editable)'
"${PIP[@]}" -q --no-build-isolation -e . "${PINS[@]}"
if [ "$TESTS" = 1 ]; then
  echo '[install] test requirements'
  "${PIP[@]}" -q pytest build h5py scipy onnx onnxruntime onnxscript \
    model-index "${PINS[@]}"
fi
"$PY" -c 'import mmseg.models, mmseg_refinenet, torch; print("[install] ready: mmseg_refinenet", mmseg_refinenet.__version__, "on torch", torch.__version__)'
