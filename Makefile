# One command per habit. Every target builds the virtual environment from the
# lock file first if it is missing or stale: nothing needs installing by hand.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null)
export UV_PYTHON_DOWNLOADS := never
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: help setup browser demo test bench evaluate-policy soak lint format docs clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-16s %s\n", $$1, $$2}'

# --compile-bytecode: every installed module's bytecode is written once, here. Without it, a machine
# or image that sets PYTHONDONTWRITEBYTECODE (this project's CI does; many Docker images do)
# compiles Great Expectations, dbt, Airflow and XGBoost from source in every process: 2.5 s more for
# each Great Expectations import, 1.2 s for each dbt start (see docs/data-engineers.md, Performance).
$(VENV)/.synced: pyproject.toml uv.lock
	@if [ -z "$(UV)" ] && ! $(PYTHON) -m uv --version >/dev/null 2>&1; then \
		echo "Installing uv $(UV_VERSION) (the lock-file installer)"; \
		$(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"; \
	fi
	@echo "Building $(VENV) from uv.lock"
	@$(if $(UV),$(UV),$(PYTHON) -m uv) sync --frozen --python $(PYTHON) --quiet --compile-bytecode
	@touch $@

setup: $(VENV)/.synced ## build the virtual environment from the lock file

demo: setup ## simulate a world and run boomerang_daily through Airflow, then summarise
	$(BIN)/python -m devtools.demo $(DEMO_ARGS)

# The campaign report's test renders the page in headless Chromium (Debian's package).
browser: ## install headless Chromium for the report test, if missing (apt-get, as root)
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "Installing headless Chromium (apt-get install chromium) for the report's render test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "Headless Chromium not found and cannot be installed here: the report's render test is skipped"; \
		fi; \
	fi

# On every core (pytest-xdist): each test module runs whole on one worker, the tests of the trained
# world all on one (tests/conftest.py). TEST_WORKERS=0 runs them in this one process.
TEST_WORKERS ?= auto
test: setup browser ## run the test suite (what CI runs)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(TEST_ARGS)

# Not part of `make test`: it simulates and builds worlds of 10k, 20k, 100k and 1M customers with two years
# of history (about 25 GB under bench/, the worlds cached for the next run). A quick look at one size:
#   make bench BENCH_ARGS="--sizes 10000 --history-size 0"
bench: setup ## time each stage of a daily run at 10k, 20k, 100k and 1M customers (1-2 hours; see README)
	$(BIN)/python -m devtools.bench $(BENCH_ARGS)

# Not part of `make test`: a world of its own under state/evaluate/ (50k customers by default), a year of
# history, ten weekly cohorts for the uplift model to learn from, then random, risk, uplift and an
# oracle spending the same budget, scored on twin futures. Smaller: EVALUATE_ARGS="--customers 20000"
evaluate-policy: setup ## score the rewards policy against an oracle in the simulated world (see README)
	$(BIN)/python -m devtools.evaluate_policy $(EVALUATE_ARGS)

# Not part of `make test`: throwaway homes under state/soak/ (a 500-customer world, a churn champion trained
# once on a 3,000-customer sibling world, both cached in state/soak/cache/): the ledger state machine for
# 10,000 steps, a 30-date backfill with every date run 5 times, 50 SIGKILLs at random points of daily runs,
# and a restore after losing the warehouse; every diff must be 0. It prints its ETA when it starts.
# Smaller: SOAK_ARGS="--kills 4 --dates 3 --runs-per-date 2 --restore-after 2 --restore-days 1"
soak: setup ## kill, re-run, backfill and restore daily runs; compare each with a clean run (hours; see README)
	$(BIN)/python -m devtools.soak $(SOAK_ARGS)

lint: setup ## ruff + sqlfluff
	$(BIN)/ruff check boomerang ml dags devtools tests
	$(BIN)/ruff format --check boomerang ml dags devtools tests
	@# sqlfluff's dbt templater compiles the project against a throwaway warehouse in state/lint/, with the
	@# settings' dbt vars (dbt_project.yml does not default them: boomerang.config owns them)
	mkdir -p state/lint
	$(BIN)/python -m boomerang.warehouse.dbt sqlfluff-config > state/lint/sqlfluff.cfg
	cd dbt_project && BOOMERANG_AS_OF=2026-01-01 BOOMERANG_WAREHOUSE=$(CURDIR)/state/lint/lint.duckdb DBT_TARGET_PATH=$(CURDIR)/state/lint/dbt_target \
		../$(BIN)/sqlfluff lint --config $(CURDIR)/state/lint/sqlfluff.cfg models

format: setup ## apply ruff's formatting and fixes
	$(BIN)/ruff format boomerang ml dags devtools tests
	$(BIN)/ruff check --fix boomerang ml dags devtools tests

# `dbt docs generate --static`: one self-contained page (catalog, lineage, descriptions) that a browser
# opens from disk, no server and no network; it prints the page's path. (`dbt docs serve` is not needed.)
docs: setup ## dbt docs (catalog + lineage) of the demo warehouse as one page; prints where it is
	$(BIN)/boomerang dbt docs --as-of $$($(BIN)/python -c "from boomerang.config import Settings; from datetime import timedelta; s = Settings.from_env(); print(s.world_start + timedelta(days=s.world_days))")

clean: ## remove local state (state/: warehouse, landing, world, quarantine, reports, outbox, Airflow home) and trained models (not the venv)
	rm -rf state models/churn models/mileage models/uplift
	@echo "(bench/ keeps the benchmark's cached worlds; remove it by hand to free the space)"
