# make test: create .venv (if missing or requirements changed) and run the whole CPU suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: env test test-fast quality clean

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

clean:
	rm -rf $(VENV) exp .pytest_cache
