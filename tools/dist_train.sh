#! /bin/bash
# The original DGVFM repository's tools/dist_train.sh: tools/dist_train.sh CONFIG GPUS [options]
# starts GPUS processes of tools/train.py on this machine (torchrun); NNODES, NODE_RANK, PORT and
# MASTER_ADDR as in the original.
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

python -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
