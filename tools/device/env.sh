# Source this at the start of every command on the GPU machine (after
# tools/device/setup.sh has run once on it): the carried packages and the
# repository on the Python path, unbuffered output, the state folder.
#   source tools/device/env.sh
export MMSEG_RN_STATE=${MMSEG_RN_STATE:-/tmp/mmseg_refinenet}
export PYTHONPATH="$MMSEG_RN_STATE/site:$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# the copy of the tree on that machine has no .git: the commit it was made
# from travels in .carry/meta/commit.txt ("<sha> clean|dirty", written by
# tools/device/prepare.sh) and reaches the result records through these
if [ -f .carry/meta/commit.txt ]; then
    read -r MMSEG_RN_COMMIT _rn_state < .carry/meta/commit.txt
    export MMSEG_RN_COMMIT
    export MMSEG_RN_DIRTY=$([ "$_rn_state" = dirty ] && echo 1 || echo 0)
    unset _rn_state
fi
