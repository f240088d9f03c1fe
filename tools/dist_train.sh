#! /bin/bash
# The original DGVFM repository's tools/dist_train.sh: tools/dist_train.sh CONFIG GPUS [options]
# trains on GPUS processes per machine; NNODES, NODE_RANK, PORT and MASTER_ADDR as in the
# original. Our launcher (train_net.py) checks the config, data, weights and GPUs once, then
# starts the processes itself, so a mistake is one line before anything is spawned.
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

python "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --num-gpus "$GPUS" \
    --num-machines "$NNODES" \
    --machine-rank "$NODE_RANK" \
    --dist-url "tcp://$MASTER_ADDR:$PORT" \
    --launcher pytorch "${@:3}"
