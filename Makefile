# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: install browser run test check bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

## run: the embedded Temporal dev server (Web UI http://localhost:8233), PostgreSQL, the worker and demo cases
run: install
	ABH_METRICS_PORT=$${ABH_METRICS_PORT:-9464} $(PY) worker.py --demo

## browser: Debian's Chromium for the Web UI test (installed once; needs root, as CI has)
browser:
	bash .ci/install-browser

## test: the whole suite on real Temporal servers and a real PostgreSQL
test: install browser
	$(PY) -m pytest

## check: lint and types, as CI runs them
check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
