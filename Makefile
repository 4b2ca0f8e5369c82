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

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_step.py

clean:
	rm -rf work .pytest_cache
