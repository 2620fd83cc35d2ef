# The two commands: `make demo` and `make test`. Everything else is a step they share.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

export LICENSING_HOME ?= $(CURDIR)/.licensing
export LICENSING_DATA_DIR ?= $(LICENSING_HOME)/data
# DAGSTER_HOME: the CLI picks LICENSING_HOME/dagster (or dagster-postgres on the postgres
# profile) and writes its dagster.yaml on first use; set it to use another instance.
# `make demo-postgres`: the local PostgreSQL server, database licensing (created if missing).
PG_SERVER ?= postgresql://postgres@127.0.0.1:5432
PG_DATABASE ?= licensing
export DO_NOT_TRACK := 1
export DAGSTER_DISABLE_TELEMETRY := 1

DBT_SOURCES := $(shell find dbt_project -name '*.sql' -o -name '*.yml' | grep -v -e target/ -e logs/)

.PHONY: setup demo demo-postgres test lint dev run bench bench-postgres backtest clean

setup: $(VENV)/.installed dbt_project/target/manifest.json

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# The dbt manifest is built here (offline), not at import time.
dbt_project/target/manifest.json: $(VENV)/.installed $(DBT_SOURCES)
	$(BIN)/python -m licensing_pipeline.warehouse.manifest

demo: setup
	$(BIN)/licensing-pipeline demo
	$(BIN)/licensing-pipeline run

# The same demo with the repository, the warehouse and Dagster's storage on PostgreSQL.
# The demo's shipped bundle has no approved policy_version change: the demo turns the
# production profile's approval gate off (docs/governance.md, policy versions).
demo-postgres: setup
	@psql "$(PG_SERVER)/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$(PG_DATABASE)'" | grep -q 1 \
	  || psql "$(PG_SERVER)/postgres" -c 'CREATE DATABASE "$(PG_DATABASE)"'
	LICENSING_PROFILE=postgres LICENSING_DATABASE_URL=$(PG_SERVER)/$(PG_DATABASE) $(BIN)/licensing-pipeline db upgrade
	$(BIN)/licensing-pipeline demo
	LICENSING_PROFILE=postgres LICENSING_REQUIRE_APPROVED_POLICY=off LICENSING_DATABASE_URL=$(PG_SERVER)/$(PG_DATABASE) $(BIN)/licensing-pipeline run

run: setup
	$(BIN)/licensing-pipeline run

lint: setup
	$(BIN)/ruff check licensing_pipeline licensing_pipeline_tests scripts
	$(BIN)/ruff format --check licensing_pipeline licensing_pipeline_tests scripts
	$(BIN)/mypy licensing_pipeline

# Two workers, each taking whole test files, so a file's module fixtures (such as one demo run
# shared by its tests) still run once. Timings: docs/performance.md.
PYTEST_WORKERS ?= 2
test: lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

# The Dagster UI on the demo data (http://127.0.0.1:3000).
dev: setup
	@test -f $(LICENSING_DATA_DIR)/catalog.yaml || $(BIN)/licensing-pipeline demo
	$(BIN)/licensing-pipeline dev

# One fresh run at 1M and 5M events, then the nights scenario: 30 nights of 1M events each,
# the next night over that history, the same night alone, and a full refresh of all of it;
# then the usage ledger: verify over 10M events, ingest at 1M with and without it.
bench: setup
	$(BIN)/python scripts/benchmark.py
	$(BIN)/python scripts/benchmark_nights.py
	$(BIN)/python scripts/benchmark_ledger.py

# The anomaly rule's labelled backtest (docs/data-quality.md, "The anomaly rule"), then the
# usage forecast's backtest on the demo's six months (docs/statements-and-dashboard.md).
backtest: setup
	$(BIN)/python scripts/anomaly_backtest.py
	$(BIN)/python scripts/backtest_forecast.py

bench-postgres: setup
	$(BIN)/python scripts/benchmark_postgres.py

clean:
	rm -rf $(LICENSING_HOME) dbt_project/target dbt_project/logs
