#!/usr/bin/env bash
# GRPO training of an audio-language model (R1-AQA recipe by default) under accelerate + DeepSpeed ZeRO.
#   bash run_grpo.sh                                  # one node, every visible GPU, the paper's recipe
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_grpo.sh     # then NODE_RANK=1 on the second node
#   RESUME=1 bash run_grpo.sh                         # continue from the last checkpoint-N in OUT_DIR
#   bash run_grpo.sh --max_steps 500 --beta 0.0       # any recipe key, overridden after the recipe
# Hardware: the paper used 8 x 80 GB GPUs (ZeRO-3, CPU offload). Every knob below has a default; relative paths
# are read from the current folder; the original's names (MODEL_NP, DATA_FILE, OUT_DIR, GPU_NUM, NODE_NUM) are
# accepted as aliases.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

CONFIG=${CONFIG:-$HERE/configs/r1_aqa_qwen2_audio_7b.yaml}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-$HERE/configs/accelerate/zero3_offload.yaml}
MODEL_NAME_OR_PATH=${MODEL_NAME_OR_PATH:-${MODEL_NP:-}}
DATA_FILE=${DATA_FILE:-}
OUTPUT_DIR=${OUTPUT_DIR:-${OUT_DIR:-}}
NUM_GPUS=${NUM_GPUS:-${GPU_NUM:-}}  # processes per node; counted with nvidia-smi when unset
if [[ -z $NUM_GPUS ]]; then
  NUM_GPUS=$( (nvidia-smi --list-gpus 2>/dev/null || true) | wc -l)
  ((NUM_GPUS > 0)) || NUM_GPUS=1
fi
NNODES=${NNODES:-${NODE_NUM:-1}}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
MIXED_PRECISION=${MIXED_PRECISION:-bf16}
RESUME=${RESUME:-0}
PYTHON=${PYTHON:-python}

overrides=()
[[ -n $MODEL_NAME_OR_PATH ]] && overrides+=(--model_name_or_path "$MODEL_NAME_OR_PATH")
[[ -n $DATA_FILE ]] && overrides+=(--data_file "$DATA_FILE")
[[ -n $OUTPUT_DIR ]] && overrides+=(--output_dir "$OUTPUT_DIR")
[[ $RESUME == 1 ]] && overrides+=(--resume true)

exec "$PYTHON" -m accelerate.commands.launch \
  --config_file "$ACCELERATE_CONFIG" \
  --num_machines "$NNODES" \
  --machine_rank "$NODE_RANK" \
  --num_processes $((NUM_GPUS * NNODES)) \
  --main_process_ip "$MASTER_ADDR" \
  --main_process_port "$MASTER_PORT" \
  --mixed_precision "$MIXED_PRECISION" \
  -m r1_aqa.train --config "$CONFIG" "${overrides[@]}" "$@"
