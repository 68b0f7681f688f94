# Thin targets: each creates/uses .venv and calls the Python CLI.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

BINDIR ?= $(HOME)/.local/bin

.PHONY: run test bench setup lint clean install

# torch first, pinned to the CPU build on disk (pyproject's `train` extra pins the same):
# left to resolve through the extra, pip could pick a newer, CUDA build of several GB.
# The CPU wheel is looked for in TORCH_WHEELS (these machines keep it in /opt/wheels, also
# when pip's own settings do not point there); without it, PyPI's 2.13.0 (with CUDA).
TORCH_WHEELS ?= $(wildcard /opt/wheels)
TORCH_FROM := $(if $(TORCH_WHEELS),--find-links $(TORCH_WHEELS))
$(STAMP): pyproject.toml
	@echo "installing coder and its dependencies into $(VENV) (once; a minute or two)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@{ { $(PY) -m pip install --disable-pip-version-check $(TORCH_FROM) 'torch==2.13.0+cpu' 2>&1 \
		|| $(PY) -m pip install --disable-pip-version-check torch==2.13.0 2>&1; } \
		&& $(PY) -m pip install --disable-pip-version-check -e '.[dev,train]' 2>&1; \
		echo $$? > $(VENV)/.pip-rc; } \
		| grep --line-buffered -E '^(Collecting|Installing|Successfully|ERROR|error)' || true
	@exit $$(cat $(VENV)/.pip-rc)
	@touch $(STAMP)

# `coder` on your PATH, for any directory: a link to this checkout's console script
install: $(STAMP)
	@mkdir -p $(BINDIR)
	@ln -sf $(abspath $(VENV))/bin/coder $(BINDIR)/coder
	@echo "installed $(BINDIR)/coder -> $(abspath $(VENV))/bin/coder"
	@case ":$$PATH:" in *":$(BINDIR):"*) ;; \
	  *) echo "$(BINDIR) is not on your PATH: add  export PATH=\"$(BINDIR):\$$PATH\"  to your shell's rc file";; esac

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
