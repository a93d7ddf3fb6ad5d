#!/usr/bin/env bash
# Multi-process testing with torchrun (one process per GPU, or per CPU
# worker on a machine without CUDA, which then uses gloo):
#     bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [ARGS of tools/test.py ...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node
# (the same PORT and MASTER_ADDR, node 0's address, everywhere).
set -e
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NUM_PROCS [ARGS ...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
if [ "$NNODES" != 1 ]; then
    # on another node, the defaults would make a second node 0 on itself
    for VAR in NODE_RANK MASTER_ADDR; do
        if [ -z "${!VAR}" ]; then
            echo "error: NNODES=$NNODES needs $VAR on every node" \
                "(NODE_RANK: 0 to NNODES-1; MASTER_ADDR: node 0's address)" >&2
            exit 2
        fi
    done
fi
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH \
exec ${PYTHON:-python} -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$TOOLS_DIR/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch \
    "${@:4}"
