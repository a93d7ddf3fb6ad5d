#!/usr/bin/env bash
# Downloads what the lent GPU machine lacks to run mmseg_refinenet, for it to
# be carried there (it has no network): pure-Python wheels for CPython 3.12
# on manylinux x86_64, every version pinned, and mmcv 2.1.0 as a source
# distribution (compiled there against its torch 2.11 + CUDA).
#
#   bash tools/device/fetch_wheels.sh [DEST]      # DEST: .carry/wheels
#
# Files already in DEST are not downloaded again. Check the result with
# `python tools/device/check_wheels.py DEST`.
#
# The list: mmengine 0.10.7 and mmsegmentation 1.2.2, and the requirements
# (Requires-Dist of their METADATA, without extras; markers evaluated for
# Python 3.12 on Linux) that the device image lacks, followed recursively:
#   mmengine       -> addict, termcolor, yapf (matplotlib, numpy, pyyaml,
#                     rich: on the device; opencv-python: the device has
#                     opencv-python-headless, the same cv2 module)
#   yapf           -> platformdirs (tomli only on Python < 3.11)
#   mmsegmentation -> prettytable (matplotlib, numpy, packaging, scipy: on
#                     the device)
#   prettytable    -> wcwidth
#   ftfy (mmseg's text encoders; install.sh installs it) -> wcwidth
#   mmcv 2.1.0 sdist (requirements/runtime.txt) -> addict, mmengine,
#                     numpy, packaging, Pillow, pyyaml, yapf
# and setuptools < 81 (the device's may be newer; mmengine and mmcv's build
# import pkg_resources, removed in setuptools 81). The versions are those
# this repository is tested with.
#
# On the device, install without the index and without dependency
# resolution (mmengine's wheel asks for opencv-python, which is not carried):
#   pip install --no-index --no-deps DEST/*.whl
#   MMCV_WITH_OPS=1 pip install --no-index --no-deps --no-build-isolation \
#       DEST/mmcv-2.1.0.tar.gz
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.carry/wheels}
PY=${PYTHON:-python3}

WHEELS=(
  addict==2.4.0
  ftfy==6.3.1
  mmengine==0.10.7
  mmsegmentation==1.2.2
  platformdirs==4.14.7
  prettytable==3.18.0
  setuptools==80.10.2
  termcolor==3.3.0
  wcwidth==0.7.0
  yapf==0.43.0
)
SDISTS=(
  mmcv==2.1.0
)

PIP=("$PY" -m pip download --disable-pip-version-check --no-input --no-deps
     --quiet --dest "$DEST")
BINARY=(--only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform any)

# a file of the pinned name and version already in DEST
have() {
  local name=${1%%==*} version=${1##*==} f
  name=${name//-/_}
  for f in "$DEST"/*; do
    [ -e "$f" ] || continue
    f=$(basename "$f")
    f=${f//-/_}
    case "${f,,}" in
      "${name,,}_${version}_"*.whl | "${name,,}_${version}.tar.gz") return 0 ;;
    esac
  done
  return 1
}

mkdir -p "$DEST"
for req in "${WHEELS[@]}"; do
  if have "$req"; then
    echo "[wheels] $req: present"
  else
    echo "[wheels] $req: downloading"
    "${PIP[@]}" "${BINARY[@]}" "$req"
  fi
done
for req in "${SDISTS[@]}"; do
  if have "$req"; then
    echo "[wheels] $req (sdist): present"
  else
    echo "[wheels] $req (sdist): downloading"
    "${PIP[@]}" --no-binary :all: "$req"
  fi
done
echo "[wheels] $(ls "$DEST" | wc -l) files in $DEST, $(du -sb "$DEST" |
  awk '{printf "%.2f", $1 / 1048576}') MiB"
