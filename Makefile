# The README's two commands: `make run` (the main job) and `make test` (the whole suite).
# Both build .venv on first use, so they work on a fresh machine with python3 and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench diagrams clean redis-server

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## a full assistant dialog over HTTP against the local Kustomer stub: transcript and wire payloads
	$(BIN)/python examples/full_dialog.py

test: lint typecheck unit  ## ruff, mypy --strict, then every test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) redis-server
	$(BIN)/pytest

redis-server:  ## the store tests start a real redis-server; install one where it is missing
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)

bench: $(STAMP)  ## the figures in the README
	$(BIN)/python benchmarks/send_cost.py
	$(BIN)/python benchmarks/store_cost.py

diagrams: $(STAMP)  ## regenerate diagrams/ from the machine (needs Graphviz's dot)
	@command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz)
	$(BIN)/python -c "from assistant_flow._machine import write_diagrams; write_diagrams('diagrams')"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
