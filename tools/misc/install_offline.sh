#!/usr/bin/env bash
# Installs mmseg_refinenet on a machine without internet access from the
# folder that tools/misc/fetch_offline_wheels.sh filled elsewhere
# (docs/offline_install.md). The machine must have Python and torch
# (CPU or CUDA build) already; nothing else is taken from an index.
#
#   bash tools/misc/install_offline.sh [WHEELS]         # WHEELS: wheelhouse
#
# 1. the build tools and the runtime requirements (mmengine,
#    mmsegmentation, ...) from WHEELS, into the active environment;
#    what is installed already and fits is kept;
# 2. mmcv 2.1.0 with its compiled ops, built from the source distribution
#    against this machine's torch (skipped when an mmcv with ops is
#    installed). With a CUDA toolkit (nvcc) and a GPU present mmcv builds
#    its CUDA ops too, which takes much longer; MMCV_CPU_OPS=1 builds the
#    CPU ops only, which is all that the plugin's models and MMSeg's
#    common ones (FCN, DeepLabV3, PSPNet, UPerNet, UNet) need, on a GPU too;
# 3. the plugin's wheel;
# 4. a check: imports mmcv's ops, MMSeg and the plugin, and says whether
#    torch sees a GPU.
#
# Environment: PYTHON (default python3), MAX_JOBS (parallel compiler jobs
# for mmcv, default: the number of cores), MMCV_CPU_OPS (see 2.).
set -euo pipefail
WHEELS=${1:-wheelhouse}
PY=${PYTHON:-python3}
if [ ! -d "$WHEELS" ]; then
    echo "error: no folder $WHEELS: copy the folder that" \
         "tools/misc/fetch_offline_wheels.sh filled, and name it" >&2
    exit 2
fi
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    echo "error: $PY cannot import torch: install torch (the build for" \
         "this machine's CUDA, or the CPU one) first, or set PYTHON" >&2
    exit 2
fi
sdist=$(ls "$WHEELS"/mmcv-2.1.0.tar.gz 2>/dev/null || true)
plugin=$(ls "$WHEELS"/mmseg_refinenet-*.whl 2>/dev/null | tail -n 1 || true)
if [ -z "$plugin" ]; then
    echo "error: no mmseg_refinenet-*.whl in $WHEELS: fill it with" \
         "tools/misc/fetch_offline_wheels.sh" >&2
    exit 2
fi
PIP=("$PY" -m pip install --disable-pip-version-check --no-input
     --no-index --find-links "$WHEELS")

echo "[offline] build tools and runtime requirements from $WHEELS"
"${PIP[@]}" 'setuptools<81' wheel ninja
"${PIP[@]}" 'mmengine==0.10.7' 'mmsegmentation==1.2.2' ftfy regex psutil

if "$PY" -c 'import mmcv._ext' >/dev/null 2>&1; then
    echo "[offline] mmcv with compiled ops: already installed"
else
    if [ -z "$sdist" ]; then
        echo "error: no mmcv-2.1.0.tar.gz in $WHEELS (the mmcv source" \
             "that fetch_offline_wheels.sh downloads)" >&2
        exit 2
    fi
    build_env=(MMCV_WITH_OPS=1 "MAX_JOBS=${MAX_JOBS:-$(nproc)}")
    if [ "${MMCV_CPU_OPS:-0}" = 1 ]; then
        build_env+=(FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=)
        echo "[offline] building mmcv 2.1.0 (CPU ops) against this torch"
    else
        echo "[offline] building mmcv 2.1.0 against this torch (with CUDA" \
             "ops where nvcc and a GPU are found; MMCV_CPU_OPS=1 skips them)"
    fi
    env "${build_env[@]}" "${PIP[@]}" --no-build-isolation "$sdist"
fi

echo "[offline] $(basename "$plugin")"
"${PIP[@]}" --no-deps "$plugin"

"$PY" - <<'EOF'
import mmcv
import mmcv._ext  # noqa: F401  (the compiled ops)
import mmengine
import mmseg
import torch

import mmseg_refinenet

gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else
       'none (CPU only)')
print(f'[offline] ready: mmseg_refinenet {mmseg_refinenet.__version__}, '
      f'torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine '
      f'{mmengine.__version__}, mmseg {mmseg.__version__}; GPU: {gpu}')
EOF
