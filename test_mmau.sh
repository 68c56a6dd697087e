#!/usr/bin/env bash
# Score every checkpoint-N of a training run (or one model) on each benchmark asked for (MMAU test-mini, MMAR),
# then one summary table and one plot.
#   bash test_mmau.sh                                   # every checkpoint of exp/model on MMAU, data in data/MMAU
#   BENCHMARKS="mmau mmar" bash test_mmau.sh            # and on MMAR, data in data/MMAR (MMAR-meta.json, audio/)
#   RUN_DIR=exp/mine MMAU_DIR=/data/MMAU MMAR_DIR=/data/MMAR bash test_mmau.sh
#   MODEL_PATH=Qwen/Qwen2-Audio-7B-Instruct RUN_DIR=exp/model bash test_mmau.sh   # a baseline, in the same table
#   bash test_mmau.sh --batch_size 8 --max_new_tokens 64                          # any evaluation key
#   BASE_MODEL_PATH=/models/Qwen2-Audio-7B-Instruct bash test_mmau.sh             # LoRA run, its base moved
# Hardware: one GPU per process (a 7B model in bf16 needs ~17 GB); runs on CPU for tiny models.
# Per benchmark NAME (a name of r1_aqa.benchmarks' registry), in upper case: NAME_DIR (default data/NAME), NAME_JSON
# (the metadata file as published, in NAME_DIR), NAME_EVAL_FILE (the prepared file; EVAL_FILE is MMAU's, as before).
# LoRA checkpoints (adapter only) are merged into the base their adapter_config.json names before scoring.
# The prompt style is the checkpoint's own (its resolved_config.yaml); --prompt_style overrides it.
# An evaluation finished with the same settings is kept, one killed halfway resumes from its partial file, and
# one scored with other settings (decoding, prompt, file, ...) is done again (r1_aqa.evaluate decides).
# Outputs: RUN_DIR/<benchmark>/<model>/{predictions.json,predictions_silence.json,metrics.json},
#          RUN_DIR/mmau_summary.{md,csv}, RUN_DIR/mmau_accuracy.png (every benchmark)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

RUN_DIR=${RUN_DIR:-${OUT_DIR:-exp/model}}
MODEL_PATH=${MODEL_PATH:-}
BASE_MODEL_PATH=${BASE_MODEL_PATH:-}
BENCHMARKS=${BENCHMARKS:-mmau}
MMAU_DIR=${MMAU_DIR:-data/MMAU}
MMAR_DIR=${MMAR_DIR:-data/MMAR}
MMAU_EVAL_FILE=${MMAU_EVAL_FILE:-${EVAL_FILE:-}}  # EVAL_FILE: the name this knob had when MMAU was the only one
SKIP_MISSING=${SKIP_MISSING:-0}
FIX_DEFECTS=${FIX_DEFECTS:-0}  # 1: apply each benchmark's upstream fixes by id (MMAR's six answers off its choices)
CONFIG=${CONFIG:-$HERE/configs/mmau_eval.yaml}
BATCH_SIZE=${BATCH_SIZE:-}
PYTHON=${PYTHON:-python}

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
for benchmark in $BENCHMARKS; do
  upper=$(printf '%s' "$benchmark" | tr '[:lower:]' '[:upper:]')
  dir_name=${upper}_DIR json_name=${upper}_JSON eval_name=${upper}_EVAL_FILE
  dir=${!dir_name:-data/$upper}
  published=$("$PYTHON" -m r1_aqa.benchmarks source-name "$benchmark")  # also refuses an unknown benchmark
  metadata=${!json_name:-$dir/$published}
  fixed=; [[ $FIX_DEFECTS == 1 ]] && fixed=.fixed  # its own prepared file: a file prepared without fixes is not reused
  eval_file=${!eval_name:-$dir/${published%.json}$fixed.prepared.json}
  if [[ ! -f $eval_file ]]; then
    prepare=(--source "$metadata" --audio-dir "$dir" --output "$eval_file")
    [[ $SKIP_MISSING == 1 ]] && prepare+=(--skip-missing)
    [[ $FIX_DEFECTS == 1 ]] && prepare+=(--fix-defects)
    "$PYTHON" -m r1_aqa.benchmarks prepare "$benchmark" ${prepare[@]+"${prepare[@]}"}
  fi
  for model in ${models[@]+"${models[@]}"}; do
    "$PYTHON" -m r1_aqa.evaluate --config "$CONFIG" --model_name_or_path "$model" --benchmark_file "$eval_file" \
      --output_dir "$RUN_DIR/$benchmark/$(basename "$model")" ${extra[@]+"${extra[@]}"} "$@"
  done
done

"$PYTHON" -m r1_aqa.summary "$RUN_DIR"
