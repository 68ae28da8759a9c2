# Two entry points: `make demo` and `make test`. Both create .venv with pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip -q --disable-pip-version-check
DEMO_OUT ?= selfdistill-demo

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[dev]"
	@touch $(VENV)/.core $@

demo: $(VENV)/.core
	$(BIN)/selfdistill demo --out $(DEMO_OUT)

test: $(VENV)/.dev
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.core
	$(BIN)/selfdistill bench

clean:
	rm -rf $(VENV) $(DEMO_OUT) build dist src/*.egg-info
