#!/usr/bin/env bash
# Downloads, on a machine with internet access, everything that
# tools/misc/install_offline.sh needs to install mmseg_refinenet on a
# machine without it (a GPU node of a cluster, an air-gapped server) that
# already has Python and torch (docs/offline_install.md):
#   * wheels of mmengine, mmsegmentation, the plugin's other runtime
#     requirements and all their dependencies, for the target's Python
#     version and platform (torch itself is not downloaded);
#   * mmcv 2.1.0 as a source distribution: its compiled ops must be built
#     against the target's own torch, so install_offline.sh builds it there;
#   * setuptools, wheel and ninja, which that build needs;
#   * a wheel of this repository's plugin.
#
#   bash tools/misc/fetch_offline_wheels.sh [DEST]      # DEST: wheelhouse
#
# Environment:
#   PYTHON            the Python that runs pip here (default python3)
#   TARGET_PYTHON     the target's Python version, e.g. 3.10 (default: the
#                     version of $PYTHON)
#   TARGET_PLATFORMS  pip platform tags of the target (default: manylinux
#                     x86_64 tags, and 'any')
# Copy DEST to the target and run tools/misc/install_offline.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-wheelhouse}
PY=${PYTHON:-python3}
if ! "$PY" -m pip --version >/dev/null 2>&1; then
    echo "error: $PY has no pip: set PYTHON to a Python with pip" >&2
    exit 2
fi
TARGET=${TARGET_PYTHON:-$("$PY" -c \
    'import sys; print("%d.%d" % sys.version_info[:2])')}
if ! [[ $TARGET =~ ^3\.[0-9]+$ ]]; then
    echo "error: TARGET_PYTHON must be a version such as 3.11, got" \
         "'$TARGET'" >&2
    exit 2
fi
read -r -a PLATFORMS <<< "${TARGET_PLATFORMS:-manylinux_2_28_x86_64 \
manylinux_2_17_x86_64 manylinux2014_x86_64 any}"

# the versions the plugin is tested with (README, "Supported versions")
REQUIREMENTS=(
    'mmengine==0.10.7'
    'mmsegmentation==1.2.2'
    ftfy
    regex
    psutil
    'setuptools<81'  # mmcv's build imports pkg_resources
    wheel
    ninja
)
MMCV='mmcv==2.1.0'

PIP=("$PY" -m pip --disable-pip-version-check --no-input)
mkdir -p "$DEST"
platform_args=()
for p in "${PLATFORMS[@]}"; do
    platform_args+=(--platform "$p")
done
echo "[fetch] wheels for CPython $TARGET (${PLATFORMS[*]}) into $DEST"
"${PIP[@]}" download --dest "$DEST" --only-binary=:all: \
    --python-version "$TARGET" --implementation cp "${platform_args[@]}" \
    "${REQUIREMENTS[@]}"
echo "[fetch] $MMCV source distribution"
"${PIP[@]}" download --dest "$DEST" --no-deps --no-binary=:all: "$MMCV"
echo "[fetch] the plugin's wheel"
"${PIP[@]}" wheel --no-deps --wheel-dir "$DEST" .
echo "[fetch] done: $(ls "$DEST" | wc -l) files in $DEST;" \
     "copy it to the target and run" \
     "bash tools/misc/install_offline.sh $DEST there"
