# The two set-up commands of the README. Both create .venv if it is missing and
# reuse it otherwise (the install step is a no-op when nothing changed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

DEMO   := analyses/dimuon/config.yaml

.PHONY: demo test test-fast lint install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The dimuon template end to end: generate its samples (reused when up to date),
# optimise its three cuts, evaluate with hard cuts and pyhf, write work/results/.
demo: $(STAMP)
	$(BIN)/diffhep generate --config $(DEMO)
	$(BIN)/diffhep optimize $(DEMO) --output work/results

# The whole suite, lint first (what CI runs).
test: lint
	$(BIN)/python -m pytest

# The inner loop: everything but the end-to-end tests marked slow (templates, notebooks,
# wheel, benchmarks, Dask clusters); stops at the first failure.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -x

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_step.py

clean:
	rm -rf work .pytest_cache
