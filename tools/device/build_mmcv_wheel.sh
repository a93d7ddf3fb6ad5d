#!/usr/bin/env bash
# Optional, on the development machine: build mmcv 2.1.0 (CPU ops) once,
# here, for the lent GPU machine's Python and torch, so that
# tools/device/setup.sh there installs it in seconds instead of compiling it
# for minutes of device time.
#
#   bash tools/device/build_mmcv_wheel.sh [DEST]     # DEST: .carry/mmcv
#
# It makes a virtual environment of CPython 3.12 with the device's torch
# (DEVICE_TORCH, default 2.11.0: the PyPI build, CUDA 13.0, as KINDS.md of
# the device tool lists it; about 5 GB with its NVIDIA libraries) and runs
# setup.sh in it: the same carried wheels, the same sdist, the same build
# command as on the device, which makes this a rehearsal of setup.sh too.
# The wheel it built goes to DEST with built-with.txt
# ("python 3.12 torch 2.11.0+cu130"); setup.sh takes the wheel only when
# that line matches the machine it runs on, and compiles mmcv otherwise.
#
# Environment:
#   PY312         a CPython 3.12 (default python3.12)
#   DEVICE_TORCH  torch version of the device (default 2.11.0)
#   VENV          the environment (default ~/.cache/mmseg_refinenet/
#                 venv-py312-torch$DEVICE_TORCH; kept and reused)
#   WHEELS        the carried wheels and mmcv sdist (default .carry/wheels)
#   MAX_JOBS      parallel compiler jobs (default: the cores here); on 2
#                 cores, with a new environment, the whole script took 6.8
#                 minutes, 5.6 compiling (an earlier run: 23, 20.5)
# Needs the carried wheels first: bash tools/device/fetch_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.carry/mmcv}
PY312=${PY312:-python3.12}
TORCH=${DEVICE_TORCH:-2.11.0}
VENV=${VENV:-$HOME/.cache/mmseg_refinenet/venv-py312-torch$TORCH}
WHEELS=${WHEELS:-.carry/wheels}

if [ ! -f "$WHEELS/mmcv-2.1.0.tar.gz" ]; then
    echo "error: $WHEELS/mmcv-2.1.0.tar.gz missing: run" \
         "bash tools/device/fetch_wheels.sh first" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    # run it, not only find it: a pyenv shim is found but exits 127 when
    # the active pyenv version is another Python
    if ! "$PY312" -c 'import sys; assert sys.version_info[:2] == (3, 12)' \
            >/dev/null 2>&1; then
        echo "error: $PY312 does not run a CPython 3.12: set PY312 to" \
             "one (e.g. PY312=\$(pyenv root)/versions/3.12.1/bin/python3.12)" >&2
        exit 2
    fi
    echo "[mmcv-wheel] environment $VENV (torch $TORCH from PyPI)"
    "$PY312" -m venv "$VENV"
fi
# besides torch, the device image's other packages (check_wheels.py's
# DEVICE_PACKAGES): setup.sh installs the carried wheels with --no-deps and
# ends by importing mmcv, mmengine, mmseg and the plugin, which need some of
# them (`import mmcv` needs cv2, from opencv-python-headless)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check packaging
image=$("$VENV/bin/python" tools/device/check_wheels.py --list-device-packages)
mapfile -t IMAGE <<< "$image"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "torch==$TORCH" "${IMAGE[@]}"

# setup.sh as on the device, with its state in the environment's folder;
# MMCV_PREBUILT names no folder, so that it compiles
state="$VENV/mmseg_refinenet_state"
export PATH="$VENV/bin:$PATH"
rm -f "$state/.ready"
t0=$(date +%s)
MMSEG_RN_STATE=$state MMCV_PREBUILT=/nonexistent PYTHON="$VENV/bin/python" \
    MAX_JOBS=${MAX_JOBS:-$(nproc)} bash tools/device/setup.sh "$WHEELS"

whl=$(ls "$state"/build/dist/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$whl" ]; then
    echo "error: setup.sh built no wheel under $state/build/dist" >&2
    exit 1
fi
# the compiler's debug information is 81 of the 83 MB of mmcv._ext: the
# wheel goes without it (the same code): 1.3 instead of 31 MiB to carry
mkdir -p "$DEST"
rm -f "$DEST"/mmcv-*.whl "$DEST/built-with.txt"
unpacked=$(mktemp -d)
probe=$(mktemp -d)
trap 'rm -rf "$unpacked" "$probe"' EXIT
"$VENV/bin/python" -m wheel unpack -d "$unpacked" "$whl" >/dev/null
find "$unpacked" -name '*.so' -exec strip --strip-debug {} +
"$VENV/bin/python" -m wheel pack -d "$DEST" "$unpacked"/mmcv-2.1.0 >/dev/null
whl=$(ls "$DEST"/mmcv-2.1.0-*.whl)
# the stripped wheel loads, and one of its ops runs (a CPU kernel)
"$VENV/bin/python" -m pip install -q --no-index --no-deps --target "$probe" \
    "$whl"
PYTHONPATH="$probe:$state/site" "$VENV/bin/python" - <<'EOF'
import torch
from mmcv.ops import nms

boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                      [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
assert keep.tolist() == [0, 2], keep
EOF
"$VENV/bin/python" tools/device/prebuilt_mmcv.py stamp "$DEST" >/dev/null
# what setup.sh will ask on the device, asked of this environment
"$VENV/bin/python" tools/device/prebuilt_mmcv.py check "$DEST" >/dev/null
echo "[mmcv-wheel] $whl" \
     "($(du -b "$whl" | awk '{printf "%.1f", $1 / 1048576}') MiB, built with" \
     "$(cat "$DEST/built-with.txt"), $(( $(date +%s) - t0 )) s)"
