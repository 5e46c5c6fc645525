# The commands a newcomer runs: `make demo`, `make test` (CI: everything) and
# `make check` (the fast loop: lint, types and the tests marked neither e2e nor slow).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Written once the project is installed into $(VENV); a changed pyproject.toml
# installs it again. `make install` always installs.
INSTALLED := $(VENV)/.installed

.PHONY: demo test check install lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(INSTALLED)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

demo: install
	$(BIN)/meltano install
	$(BIN)/python scripts/demo.py

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every test: the end-to-end ones (Meltano, PostgreSQL, PyAirbyte, a wheel in a
# fresh venv) and the slow ones included.
test: lint
	$(BIN)/python -m pytest

# Under a minute: no Meltano, PostgreSQL, PyAirbyte or package index, no large
# account or long waits (markers in pyproject.toml). `make test` before pushing.
check: lint
	$(BIN)/python -m pytest -m "not e2e and not slow"

clean:
	rm -rf $(VENV) .demo .meltano output dist build .pytest_cache .ruff_cache
