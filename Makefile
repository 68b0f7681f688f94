# Thin targets: each creates/uses .venv and calls the Python CLI.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench setup lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build on disk (pyproject's `train` extra pins the same):
	# left to resolve through the extra, pip could pick a newer, CUDA build of several GB
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,train]'
	@touch $(STAMP)

setup: $(STAMP)
	$(VENV)/bin/coder setup

run: $(STAMP)
	$(VENV)/bin/coder $(ARGS)

test: $(STAMP)
	$(VENV)/bin/coder setup --quiet
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/coder setup --quiet
	$(PY) -m bench

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache build dist
