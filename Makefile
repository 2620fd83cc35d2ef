# The two commands: `make demo` and `make test`. Everything else is a step they share.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

export LICENSING_HOME ?= $(CURDIR)/.licensing
export DAGSTER_HOME ?= $(LICENSING_HOME)/dagster
export LICENSING_DATA_DIR ?= $(LICENSING_HOME)/data
export DO_NOT_TRACK := 1
export DAGSTER_DISABLE_TELEMETRY := 1

DBT_SOURCES := $(shell find dbt_project -name '*.sql' -o -name '*.yml' | grep -v -e target/ -e logs/)

.PHONY: setup demo test lint dev run bench clean

setup: $(VENV)/.installed dbt_project/target/manifest.json $(DAGSTER_HOME)/dagster.yaml

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# The dbt manifest is built here (offline), not at import time.
dbt_project/target/manifest.json: $(VENV)/.installed $(DBT_SOURCES)
	$(BIN)/python -m licensing_pipeline.warehouse.manifest

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: setup
	$(BIN)/licensing-pipeline demo
	$(BIN)/licensing-pipeline run

run: setup
	$(BIN)/licensing-pipeline run

lint: setup
	$(BIN)/ruff check licensing_pipeline licensing_pipeline_tests scripts
	$(BIN)/ruff format --check licensing_pipeline licensing_pipeline_tests scripts
	$(BIN)/mypy licensing_pipeline

test: lint
	$(BIN)/pytest

# The Dagster UI on the demo data (http://127.0.0.1:3000).
dev: setup
	@test -f $(LICENSING_DATA_DIR)/catalog.yaml || $(BIN)/licensing-pipeline demo
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: setup
	$(BIN)/python scripts/benchmark.py

clean:
	rm -rf $(LICENSING_HOME) dbt_project/target dbt_project/logs
