#! /bin/bash
# The original DGVFM repository's train.sh: train one config on one GPU with tools/train.py.
# Override with CONFIG=... GPU_ID=... ./train.sh [tools/train.py options]. (The original's
# script names a Rein config, which this project does not reproduce; this one trains the
# README's configs/dg/gta2citys/dg_lora_dinov2_ms_masked.py.)
config=${CONFIG:-configs/dg/gta2citys/dg_lora_dinov2_ms_masked.py}
gpu_id=${GPU_ID:-0}

cd "$(dirname "$0")" || exit 1
CUDA_VISIBLE_DEVICES=$gpu_id python3 tools/train.py "$config" "$@"
