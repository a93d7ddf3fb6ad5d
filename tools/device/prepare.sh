#!/usr/bin/env bash
# On the development machine, before the GPU calls of docs/gpu_runbook.md:
# fills .carry/ (git-ignored) with what the calls carry, and checks that
# every call stays under the device tool's 64 MiB per call.
#   .carry/wheels/    Python 3.12 wheels + the mmcv sdist (fetch_wheels.sh)
#   .carry/camvid/    CamVid as lossless WebP chunks (camvid_chunks.py)
#   .carry/meta/      commit.txt: "<sha> clean|dirty" of this tree (the copy
#                     on the GPU machine has no .git; env.sh reads it)
#   .carry/mmcv/      optional, made by build_mmcv_wheel.sh (not run here:
#                     7 to 23 minutes on 2 cores): mmcv built for the
#                     device, which saves setup.sh compiling it there
# Idempotent: present wheels and chunks are kept. Environment:
#   CAMVID_ROOT  SegNet's CamVid (default ../shared/data/camvid)
#   CHUNK_MIB    MiB per chunk (default 54: chunk 1 + the wheels fit call
#                A1, and chunks 1-2 hold all of train and val)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
CAMVID=${CAMVID_ROOT:-../shared/data/camvid}
CHUNK_MIB=${CHUNK_MIB:-54}
LIMIT_MIB=64

bash tools/device/fetch_wheels.sh .carry/wheels
"$PY" tools/device/check_wheels.py .carry/wheels
mmcv=()
if ls .carry/mmcv/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    mmcv=(.carry/mmcv)
    echo "[prepare] prebuilt mmcv for the device: $(ls .carry/mmcv/*.whl)" \
         "($(cat .carry/mmcv/built-with.txt))"
else
    echo "[prepare] warning: no prebuilt mmcv in .carry/mmcv: setup.sh" \
         "will compile it on the device, 3-4 of the session's 15 minutes;" \
         "bash tools/device/build_mmcv_wheel.sh builds it here" >&2
fi

if [ -f .carry/camvid/camvid-01/manifest.json ]; then
    echo "[prepare] CamVid chunks already in .carry/camvid"
elif [ -d "$CAMVID" ]; then
    "$PY" tools/device/camvid_chunks.py pack "$CAMVID" .carry/camvid \
        --max-mib "$CHUNK_MIB"
else
    echo "[prepare] no CamVid at $CAMVID: only the benchmark calls" \
         "(issue 7) can run"
fi

mkdir -p .carry/meta
state=clean
# results and docs are outputs: as NOT_DIRTYING in mmseg_refinenet/utils/benchmark.py
if [ -n "$(git status --porcelain --untracked-files=no -- . \
        ':(exclude)benchmarks/results' ':(exclude)docs')" ]; then
    state=dirty
fi
echo "$(git rev-parse HEAD) $state" > .carry/meta/commit.txt
echo "[prepare] .carry/meta/commit.txt: $(cat .carry/meta/commit.txt)"

# what each call sends: the tracked and untracked-not-ignored files + carry
mib() { du -scb "$@" 2>/dev/null | tail -1 | cut -f1; }
tree=$(git ls-files -co --exclude-standard -z |
       du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
check() {
    local name=$1; shift
    local bytes=$(( tree + $(mib "$@") ))
    local shown
    shown=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
    if [ "$bytes" -gt $(( LIMIT_MIB * 1048576 )) ]; then
        echo "error: $name sends $shown MiB, over $LIMIT_MIB MiB: lower" \
             "CHUNK_MIB and re-pack (rm -r .carry/camvid)" >&2
        exit 1
    fi
    echo "[prepare] $name: $shown MiB (carry: $*)"
}
# A1 carries the set-up and chunk 1; B1 and C1 the set-up alone
check "call A1" .carry/wheels "${mmcv[@]}" .carry/meta \
    $(ls -d .carry/camvid/camvid-01 2>/dev/null)
for chunk in $(ls -d .carry/camvid/camvid-0[2-9] 2>/dev/null); do
    check "call A$((10#${chunk##*-}))" .carry/meta "$chunk"
done
