#!/usr/bin/env bash
# Set up a bare GPU machine of the `device` tool for this project, from the
# files carried with the call (docs/gpu_runbook.md):
#   .carry/wheels/   pure-Python wheels for Python 3.12 + the mmcv sdist
#                    (tools/device/fetch_wheels.sh, run on the dev machine)
#
#   .carry/mmcv/     optional: mmcv 2.1.0 already built for the device's
#                    Python and torch (tools/device/build_mmcv_wheel.sh)
#
# The machine has Python 3.12 with torch + CUDA and no network. This
# installs the carried wheels into $MMSEG_RN_STATE/site (no-deps: the image
# has numpy, opencv, scipy, matplotlib...), then mmcv 2.1.0 with its CPU ops
# only (our models and MMSeg's need mmcv._ext to import, not its CUDA
# kernels; a CUDA build takes far longer):
#   * from the prebuilt wheel in .carry/mmcv when its built-with.txt names
#     this machine's Python (major.minor) and torch version exactly and its
#     mmcv._ext then loads (seconds);
#   * otherwise compiled from the sdist, CUDA hidden during the build
#     (minutes: MAX_JOBS, default 16).
# It then checks that the plugin imports and sees the GPU.
#
# Idempotent: once it has passed on a machine it returns at once (the marker
# $MMSEG_RN_STATE/.ready; a lost machine comes back bare, without it), so
# every call can start with
#   bash tools/device/setup.sh && source tools/device/env.sh
# without spending device time on importing torch and MMSeg again.
# Prints the time each step took.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=env.sh
source tools/device/env.sh
WHEELS=${1:-.carry/wheels}
PREBUILT=${MMCV_PREBUILT:-.carry/mmcv}
PY=${PYTHON:-python3}
if [ -f "$MMSEG_RN_STATE/.ready" ]; then
    echo "[setup] ready (set up earlier on this machine: $(cat "$MMSEG_RN_STATE/.ready"))"
    exit 0
fi
mkdir -p "$MMSEG_RN_STATE/site"
t0=$(date +%s)

if [ ! -f "$MMSEG_RN_STATE/site/.wheels-installed" ]; then
    if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "error: no wheels in $WHEELS: carry .carry/wheels (made by" \
             "tools/device/fetch_wheels.sh on the development machine)" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$MMSEG_RN_STATE/site" \
        "$WHEELS"/*.whl
    touch "$MMSEG_RN_STATE/site/.wheels-installed"
    echo "[setup] wheels installed ($(( $(date +%s) - t0 )) s)"
fi

# the prebuilt mmcv wheel, if it was built for this Python and torch
# (prints why not, and returns 1, otherwise)
install_prebuilt_mmcv() {
    local whl t1
    if ! whl=$("$PY" tools/device/prebuilt_mmcv.py check "$PREBUILT"); then
        echo "[setup] $whl: building mmcv here"
        return 1
    fi
    t1=$(date +%s)
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$MMSEG_RN_STATE/site" "$whl"
    if ! "$PY" -c 'import mmcv._ext' 2>"$MMSEG_RN_STATE/prebuilt.err"; then
        tail -5 "$MMSEG_RN_STATE/prebuilt.err" >&2
        rm -rf "$MMSEG_RN_STATE/site/mmcv" \
            "$MMSEG_RN_STATE"/site/mmcv-2.1.0.dist-info
        echo "[setup] the prebuilt mmcv wheel does not load here (above):" \
             "building mmcv instead"
        return 1
    fi
    echo "[setup] mmcv: prebuilt $(basename "$whl")" \
         "($(cat "$PREBUILT/built-with.txt")) installed" \
         "($(( $(date +%s) - t1 )) s)"
}

if ! "$PY" -c 'import mmcv._ext' 2>/dev/null && ! install_prebuilt_mmcv; then
    sdist=$(ls "$WHEELS"/mmcv-2.1.0.tar.gz 2>/dev/null || true)
    if [ -z "$sdist" ]; then
        echo "error: $WHEELS/mmcv-2.1.0.tar.gz missing (fetch_wheels.sh" \
             "downloads it)" >&2
        exit 2
    fi
    # torch compiles in parallel (MAX_JOBS) only with ninja on the PATH; the
    # image's ninja may sit beside its python, outside the PATH
    if ! command -v ninja >/dev/null; then
        nbin=$("$PY" -c 'import ninja; print(ninja.BIN_DIR)' 2>/dev/null ||
               true)
        if [ -n "$nbin" ] && [ -x "$nbin/ninja" ]; then
            export PATH="$nbin:$PATH"
        else
            echo "[setup] warning: no ninja: mmcv compiles one file at a" \
                 "time, which takes far longer" >&2
        fi
    fi
    t1=$(date +%s)
    build="$MMSEG_RN_STATE/build"
    rm -rf "$build" && mkdir -p "$build"
    tar xzf "$sdist" -C "$build"
    (cd "$build/mmcv-2.1.0" &&
        CUDA_VISIBLE_DEVICES='' FORCE_CUDA=0 MMCV_WITH_OPS=1 \
        MAX_JOBS=${MAX_JOBS:-16} \
        "$PY" -m pip wheel -q --no-build-isolation --no-deps --no-index \
            . -w "$build/dist" > "$build/build.log" 2>&1) || {
        tail -40 "$build/build.log" >&2
        echo "error: the mmcv build failed; log $build/build.log" >&2
        exit 1
    }
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$MMSEG_RN_STATE/site" \
        "$build"/dist/mmcv-*.whl
    echo "[setup] mmcv built with MAX_JOBS=${MAX_JOBS:-16}" \
         "($(( $(date +%s) - t1 )) s)"
fi

"$PY" - <<'EOF'
import warnings
warnings.filterwarnings('ignore')
import mmcv
import mmcv._ext  # noqa: F401
import mmengine
import mmseg
import torch

import mmseg_refinenet  # noqa: F401
cuda = torch.cuda.is_available()
print(f'[setup] python ok: torch {torch.__version__}, mmcv {mmcv.__version__}'
      f', mmengine {mmengine.__version__}, mmseg {mmseg.__version__}, '
      f'device {torch.cuda.get_device_name(0) if cuda else "cpu (no CUDA)"}')
EOF
echo "[setup] ready ($(( $(date +%s) - t0 )) s)"
date -u +%H:%M:%S > "$MMSEG_RN_STATE/.ready"
