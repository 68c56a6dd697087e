# make test: create .venv (if missing or requirements changed) and run the whole CPU suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DEMO := exp/demo
.PHONY: env test test-fast quality demo clean

env: $(STAMP)

# torch first and alone: asked for by another package, pip would pull a multi-GB CUDA build.
# DS_BUILD_OPS=0: DeepSpeed compiles nothing at install time (its CPU ops build on first use).
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==$$(sed -n 's/^torch==//p' requirements.txt)
	DS_BUILD_OPS=0 $(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

test: env
	$(BIN)/python -m pytest -m "not gpu" -q

test-fast: env
	$(BIN)/python -m pytest -m "not gpu and not slow" -q

quality: env
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

# The whole pipeline on a tiny model, on CPU: synthetic audio questions -> SFT -> GRPO -> MMAU-style scoring.
# FAMILY: any model family (python -m r1_aqa.tiny --help lists them); CHUNK_LENGTH: seconds its tiny encoder hears.
FAMILY ?= qwen2_audio
CHUNK_LENGTH ?= 4
demo: env
	rm -rf $(DEMO)
	$(BIN)/python -m r1_aqa.synthetic $(DEMO)/data
	$(BIN)/python -m r1_aqa.tiny $(DEMO)/tiny --family $(FAMILY) --hidden-size 128 --chunk-length $(CHUNK_LENGTH)
	$(BIN)/python -m r1_aqa.sft --config configs/demo_sft.yaml
	PYTHON=$(BIN)/python NUM_GPUS=1 MIXED_PRECISION=no ACCELERATE_CONFIG=configs/accelerate/cpu.yaml \
		CONFIG=configs/demo_grpo.yaml bash run_grpo.sh
	PYTHON=$(BIN)/python MODEL_PATH=$(DEMO)/sft RUN_DIR=$(DEMO)/grpo MMAU_DIR=$(DEMO)/data \
		CONFIG=configs/demo_mmau_eval.yaml bash test_mmau.sh > /dev/null
	PYTHON=$(BIN)/python RUN_DIR=$(DEMO)/grpo MMAU_DIR=$(DEMO)/data CONFIG=configs/demo_mmau_eval.yaml bash test_mmau.sh
	@echo "table: $(DEMO)/grpo/mmau_summary.md  plots: $(DEMO)/grpo/mmau_accuracy.png $(DEMO)/grpo/reward.png"

clean:
	rm -rf $(VENV) exp .pytest_cache
