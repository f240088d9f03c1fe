#! /bin/bash
# The original DGVFM repository's train.sh: train one config on one GPU with tools/train.py.
# Its config by default (Rein on EVA02-L with the Mask2Former head); override with
# CONFIG=... GPU_ID=... ./train.sh [tools/train.py options], e.g. the README's
# CONFIG=configs/dg/gta2citys/dg_lora_dinov2_ms_masked.py.
config=${CONFIG:-configs/dg/gta2citys/dg_rein_eva02_mask2former_512x512_bs1x4.py}
gpu_id=${GPU_ID:-0}

cd "$(dirname "$0")" || exit 1
CUDA_VISIBLE_DEVICES=$gpu_id python3 tools/train.py "$config" "$@"
