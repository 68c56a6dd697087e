#!/usr/bin/env bash
# The real Qwen2-Audio-7B architecture (random weights, bf16) on one H100/H200: MMAU-style inference clips/s with a
# fixed number of new tokens, then one GRPO step (LoRA, so policy and reference fit one GPU) with peak memory.
#   bash bench/gpu.sh            # about 5-7 minutes on one H100; its table is printed last
# The device machines have torch and transformers but not trl, soundfile or soxr: carry them as wheels in .whl/
# (see BENCHMARKS.md for the download command); this script installs them to /tmp/site when present.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
inference=$(timeout 240 "$PYTHON" bench/inference.py --model 7b --batch-sizes 1 8 32 --clips 32 --new-tokens 32 \
  --clip-seconds 10 | tail -n 7)
grpo=$(timeout 240 "$PYTHON" bench/grpo_step.py --model 7b --lora --steps 2 --new-tokens 64 | tail -n 14)
echo "$inference"
echo "$grpo"
