# Slipway: `make run` builds the environment and runs the whole graph on the embedded default
# data; `make test` runs the test suite; `make ui` opens the Dagster web UI on the same definitions.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
export DAGSTER_HOME := $(CURDIR)/.dagster
export PYSPARK_PYTHON := $(CURDIR)/.venv/bin/python
export DAGSTER_DISABLE_TELEMETRY := 1
export MLFLOW_DISABLE_TELEMETRY := true
UI_PORT ?= 3000
MLFLOW_PORT ?= 5000
PYTEST_ARGS ?=
# `make test` runs the suite in this many pytest-xdist worker processes, each test file on one
# worker (its module fixtures built once). The suite is bound by one core in Python (user time ~=
# wall time run serially), so two workers on two cores take about half the time (docs: README).
# PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
# `make run USECASE=name` runs another registered use case (default: SLIPWAY_USECASE, else fraud).
USECASE ?=
# e.g. `make run RUN_ARGS=--verbose` (Dagster's whole event log) or `RUN_ARGS="--days 20"`
RUN_ARGS ?=

.PHONY: help env run test test-fast lint check-defs format ui mlflow serve prod-up prod-down bench bench-ingest bench-features bench-pit bench-training bench-serving bench-monitoring bench-streaming bench-windows bench-shadow bench-flights clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --quiet --user uv

# --compile-bytecode: every process imports Dagster, Feast, pandas, Spark Connect and LightGBM; where
# PYTHONDONTWRITEBYTECODE is set (this machine kind, CI) nothing else ever writes their .pyc files,
# and each import of them compiled 35k files from source again: 28 s -> 16 s per process here, for
# every run worker, code server, CLI and test subprocess (once, ~70 s, at install).
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

env: .venv/.synced ## create or update the virtual environment from uv.lock

run: env ## land the use case's sample data (if none) and run its whole graph (USECASE=name: another)
	SLIPWAY_USECASE=$(USECASE) $(PY) -m orchestration.main run $(RUN_ARGS)

test: env ## run the test suite (PYTEST_WORKERS processes, default 2)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: env ## ruff check and format check
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

check-defs: env ## load and validate the code location `make ui` serves (dg check defs)
	$(UV) run --frozen dg check defs

format: env
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

# The Dagster UI has no authentication of its own: loopback only (docs/operations.md, Security).
ui: env ## open the Dagster web UI (sensors and schedules running) on http://127.0.0.1:$(UI_PORT)
	$(UV) run --frozen dagster dev -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

mlflow: env ## open the MLflow UI (runs, registered models, champion alias) on http://127.0.0.1:$(MLFLOW_PORT) (USECASE=name: another's)
	SLIPWAY_USECASE=$(USECASE) $(PY) -m slipway.registry.ui --host 127.0.0.1 --port $(MLFLOW_PORT)

serve: env ## the online scorer on http://127.0.0.1:8000 (keys: SLIPWAY_API_KEYS) and, beside it, the stream consumer
	$(PY) -m slipway.streaming.consumer & consumer=$$!; \
	trap 'kill $$consumer 2>/dev/null; wait $$consumer' EXIT; \
	$(PY) -m slipway.serving

prod-up: env ## start dagster-webserver and dagster-daemon against Postgres (SLIPWAY_ENV=prod)
	./deploy/prod/slipwayctl up

prod-down: ## stop the production-mode processes started by prod-up
	./deploy/prod/slipwayctl down

bench: env ## run every benchmark and rewrite docs/benchmarks.md
	$(PY) -m benchmarks all

bench-ingest: env ## landing -> silver throughput and peak memory at 1M and 10M transactions
	$(PY) -m benchmarks ingest

bench-features: env ## feature build, point-in-time join and online lookup latency
	$(PY) -m benchmarks features

bench-pit: env ## the point-in-time training-set part of bench-features alone (1M, then 10M)
	BENCH_FEATURES_PIT_ONLY=1 $(PY) -m benchmarks features

bench-training: env ## LightGBM training time (CPU; GPU when present)
	$(PY) -m benchmarks training

bench-serving: env ## online scoring latency under a bounded load on loopback
	$(PY) -m benchmarks serving

bench-monitoring: env ## drift computation time and detect-to-retrain time
	$(PY) -m benchmarks monitoring

bench-windows: env ## window aggregator per event (embedded, Redis) and the 1M-row window backfill
	$(PY) -m benchmarks windows

bench-streaming: env ## live path end to end at 1,000 events/s; daily-materialized vs fresh features
	$(PY) -m benchmarks streaming

bench-shadow: env ## shadow scoring overhead per decision; time for a rollback to reach the live path
	$(PY) -m benchmarks shadow

bench-flights: env ## flights: plain LightGBM on raw columns vs the champion of make run USECASE=flights
	$(PY) -m benchmarks flights_baseline

clean: ## remove generated data, the Dagster instance history and dbt artefacts
	rm -rf data dbt_project/target dbt_project/logs
	find .dagster -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
