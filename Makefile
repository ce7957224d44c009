# Quick start: `make demo` runs the main job, `make test` the tests.
# Both create (or reuse) the virtual environment .venv with the pinned
# dependencies of requirements.lock; nothing needs installing by hand.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nsvae-installed

.PHONY: demo test test-slow test-all test-sdist lint bench clean-venv

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	NSVAE=$(BIN)/nsvae scripts/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

# The sdist installed (not editable) in a fresh environment, tested from its own unpacked tree.
test-sdist: $(STAMP)
	VENV_PY=$(BIN)/python scripts/test-sdist.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_info.py

clean-venv:
	rm -rf $(VENV)
