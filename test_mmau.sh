#!/usr/bin/env bash
# Score every checkpoint-N of a training run (or one model) on MMAU test-mini, then one table and one plot.
#   bash test_mmau.sh                                   # every checkpoint of exp/model, data in data/MMAU
#   RUN_DIR=exp/mine MMAU_DIR=/data/MMAU bash test_mmau.sh
#   MODEL_PATH=Qwen/Qwen2-Audio-7B-Instruct RUN_DIR=exp/model bash test_mmau.sh   # a baseline, in the same table
#   bash test_mmau.sh --batch_size 8 --max_new_tokens 64                          # any evaluation key
#   BASE_MODEL_PATH=/models/Qwen2-Audio-7B-Instruct bash test_mmau.sh             # LoRA run, its base moved
# Hardware: one GPU per process (a 7B model in bf16 needs ~17 GB); runs on CPU for tiny models.
# LoRA checkpoints (adapter only) are merged into the base their adapter_config.json names before scoring.
# The prompt style is the checkpoint's own (its resolved_config.yaml); --prompt_style overrides it.
# An evaluation finished with the same settings is kept, one killed halfway resumes from its partial file, and
# one scored with other settings (decoding, prompt, file, ...) is done again (r1_aqa.evaluate decides).
# Outputs: RUN_DIR/mmau/<model>/{predictions.json,predictions_silence.json,metrics.json},
#          RUN_DIR/mmau_summary.{md,csv}, RUN_DIR/mmau_accuracy.png
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

RUN_DIR=${RUN_DIR:-${OUT_DIR:-exp/model}}
MODEL_PATH=${MODEL_PATH:-}
BASE_MODEL_PATH=${BASE_MODEL_PATH:-}
MMAU_DIR=${MMAU_DIR:-data/MMAU}
MMAU_JSON=${MMAU_JSON:-$MMAU_DIR/mmau-test-mini.json}
EVAL_FILE=${EVAL_FILE:-$MMAU_DIR/mmau-test-mini.prepared.json}
SKIP_MISSING=${SKIP_MISSING:-0}
CONFIG=${CONFIG:-$HERE/configs/mmau_eval.yaml}
BATCH_SIZE=${BATCH_SIZE:-}
PYTHON=${PYTHON:-python}

if [[ ! -f $EVAL_FILE ]]; then
  prepare=(--mmau-json "$MMAU_JSON" --audio-dir "$MMAU_DIR" --output "$EVAL_FILE")
  [[ $SKIP_MISSING == 1 ]] && prepare+=(--skip-missing)
  "$PYTHON" -m r1_aqa.mmau prepare ${prepare[@]+"${prepare[@]}"}
fi

models=()
if [[ -n $MODEL_PATH ]]; then
  models=("$MODEL_PATH")
else
  while IFS= read -r folder; do models+=("$folder"); done < <(
    find "$RUN_DIR" -maxdepth 1 -type d -name 'checkpoint-*' | awk -F'checkpoint-' '{print $NF "\t" $0}' |
      sort -n | cut -f2-)  # by step, whatever dashes RUN_DIR's own name holds
fi
((${#models[@]})) || { echo "error: no checkpoint-* in $RUN_DIR (set MODEL_PATH to score one model)" >&2; exit 2; }

# Arrays that can be empty expand as ${a[@]+"${a[@]}"}: bash < 4.4 under `set -u` aborts on a bare "${a[@]}".
extra=()
[[ -n $BATCH_SIZE ]] && extra+=(--batch_size "$BATCH_SIZE")
[[ -n $BASE_MODEL_PATH ]] && extra+=(--base_model_name_or_path "$BASE_MODEL_PATH")
for model in ${models[@]+"${models[@]}"}; do
  "$PYTHON" -m r1_aqa.evaluate --config "$CONFIG" --model_name_or_path "$model" --mmau_file "$EVAL_FILE" \
    --output_dir "$RUN_DIR/mmau/$(basename "$model")" ${extra[@]+"${extra[@]}"} "$@"
done

"$PYTHON" -m r1_aqa.summary "$RUN_DIR"
