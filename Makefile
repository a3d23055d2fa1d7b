# Kiln workspace. Quickstart: `make up` (install + pipeline + servers), `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kiln-installed

.PHONY: install up pipeline serve test test-fast bench lock clean

# Re-installs only when the dependency list or the lock changes.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

up: install  ## install, run the pipeline, start API + Dagster UI + MLflow UI (Ctrl-C stops all)
	$(BIN)/kiln up

pipeline: install
	$(BIN)/kiln pipeline

serve: install
	$(BIN)/kiln serve

test: install  ## lint, then the whole suite, slow tests included
	$(BIN)/ruff check bentos kiln pipelines tests benchmarks
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not slow"

bench: install
	$(BIN)/python benchmarks/predict_throughput.py

lock:  ## refresh requirements.lock from the current venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^kiln' > requirements.lock

clean:
	rm -rf .kiln mlflow/mlflow.db mlflow/artifacts
