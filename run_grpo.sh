#!/usr/bin/env bash
# GRPO training of an audio-language model (R1-AQA recipe by default) under accelerate + DeepSpeed ZeRO.
#   bash run_grpo.sh                                  # one node, every visible GPU, the paper's recipe
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash run_grpo.sh     # then NODE_RANK=1 on the second node
#   RESUME=1 bash run_grpo.sh                         # continue from the last checkpoint-N in OUT_DIR
#   bash run_grpo.sh --max_steps 500 --beta 0.0       # any recipe key, overridden after the recipe
#   MIXED_PRECISION=no NUM_GPUS=1 ACCELERATE_CONFIG=configs/accelerate/cpu.yaml bash run_grpo.sh --use_cpu true \
#     --bf16 false                                    # one CPU process, no GPU (a small model: a tiny one, a test)
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
NUM_GPUS=${NUM_GPUS:-${GPU_NUM:-}}  # processes per node; the GPUs visible to this job when unset
NNODES=${NNODES:-${NODE_NUM:-1}}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
MIXED_PRECISION=${MIXED_PRECISION:-bf16}
RESUME=${RESUME:-0}
PYTHON=${PYTHON:-python}

# The GPUs CUDA will show this job: nvidia-smi's "GPU i:" lines (its "  MIG" lines are slices of those, not more
# GPUs), narrowed by CUDA_VISIBLE_DEVICES when set, where CUDA stops at the first entry naming no device.
visible_gpus() {
  local listed count=0 id ids
  listed=$( (nvidia-smi --list-gpus 2>/dev/null || true) | grep -c '^GPU ' || true)
  [[ -n ${CUDA_VISIBLE_DEVICES+set} ]] || { echo "$listed"; return; }
  IFS=, read -ra ids <<<"$CUDA_VISIBLE_DEVICES"
  for id in ${ids[@]+"${ids[@]}"}; do
    [[ $id =~ ^[0-9]+$ && 10#$id -lt $listed || $id == GPU-* || $id == MIG-* ]] || break
    count=$((count + 1))
  done
  echo $((count < listed ? count : listed))
}
if [[ -z $NUM_GPUS ]]; then
  NUM_GPUS=$(visible_gpus)
  # Checked only when counted: a NUM_GPUS given also serves machines whose GPUs nvidia-smi cannot list.
  if ((NUM_GPUS == 0)) && [[ $MIXED_PRECISION != no ]]; then
    cpu=${0%"${0##*/}"}configs/accelerate/cpu.yaml  # as the user typed the script's path
    echo "error: no GPU visible for MIXED_PRECISION=$MIXED_PRECISION (GPUs nvidia-smi cannot list: set NUM_GPUS);" \
      "to train on one CPU process: MIXED_PRECISION=no NUM_GPUS=1 ACCELERATE_CONFIG=$cpu bash $0 --use_cpu true" \
      "--bf16 false" >&2
    exit 2
  fi
  ((NUM_GPUS > 0)) || NUM_GPUS=1
fi

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
  -m r1_aqa.train --config "$CONFIG" ${overrides[@]+"${overrides[@]}"} "$@"  # bash < 4.4: empty array under set -u
