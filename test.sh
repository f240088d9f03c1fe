#! /bin/bash
# The original DGVFM repository's test.sh: evaluate a checkpoint with tools/test.py.
# Override with CONFIG=... CHECKPOINT=... BACKBONE=... OUT=... GPU_ID=... ./test.sh [options].
backbone=${BACKBONE:-checkpoints/dinov2_converted.pth}
config=${CONFIG:-configs/dg/gta2citys/dg_lora_dinov2_ms_1024x1024.py}
checkpoint=${CHECKPOINT:-ablations/reproduced/mIoU=73.87-loradino-ms-seed=0-maskratio=0.2/iter_40000.pth}
out=${OUT:-out_bdd}
gpu_id=${GPU_ID:-0}

cd "$(dirname "$0")" || exit 1
CUDA_VISIBLE_DEVICES=$gpu_id python3 tools/test.py "$config" "$checkpoint" --backbone "$backbone" \
    --out "$out" "$@"
