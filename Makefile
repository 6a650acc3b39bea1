# ml_assets: `make demo` runs the pipeline on the embedded data, `make test` runs the tests,
# `make dev` opens the Dagster UI, `make serve` starts the prediction service. Each installs what
# is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo dev live replay serve test test-tools mutation bench lock clean checkov gpu-smoke-bundle

# The live loop runs on its own data folder, landing zone and Dagster instance.
LIVE_DIR := $(CURDIR)/data/live
LIVE_ENV := ML_ASSETS_DATA_DIR=$(LIVE_DIR) ML_ASSETS_LANDING_DIR=$(LIVE_DIR)/landing DAGSTER_HOME=$(LIVE_DIR)/dagster_home ML_ASSETS_FEED_CLOCK=replay
REPLAY ?= --days 21 --shift schedule+180 --shift-from 2013-10-10

install: $(VENV)/.installed

# The exact resolved set is requirements.lock; the project itself goes in editable, without deps.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

demo: install
	$(BIN)/ml-assets demo

dev: install
	$(BIN)/python -c "from ml_assets.runs import ensure_dagster_home; ensure_dagster_home()"
	$(BIN)/dagster dev -w workspace.yaml

# The live loop in the UI: prepared once up to 2013-09-30 (data, first champion), then `make replay`.
live: install
	$(LIVE_ENV) $(BIN)/ml-assets live-setup
	$(LIVE_ENV) $(BIN)/dagster dev -w workspace.yaml

# Feed the running `make live` one day of 2013 after another (REPLAY="--days 21 ...").
replay: install
	$(LIVE_ENV) $(BIN)/ml-assets replay $(REPLAY)

# The champion behind the online service on 127.0.0.1:8000, its store warmed from the lake's last
# day (run `make demo` first). HOST/PORT override the address.
serve: install
	ML_ASSETS_FEED_CLOCK=replay $(BIN)/ml-assets serve --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8000) --warm-from-lake

# The suite on TEST_WORKERS processes (pytest-xdist), each test file whole on one of them (its
# module fixtures built once); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: install checkov test-tools
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Mutation testing of the modules that guard data and models: mutmut's mutants, each judged by the
# tests mapped to its module (ml_assets_tests/mutation/driver.py); too slow for `make test`.
# MUTATION="--module ml_assets/sensors.py --survivors" narrows a pass.
MUTATION ?= --jobs 2
mutation: install
	$(BIN)/python -m ml_assets_tests.mutation.driver $(MUTATION)

# Debian's prometheus (promtool checks and unit-tests the alert rules) and chromium (renders the
# service's /docs page), installed when missing; without root, the command to run is printed.
MISSING_TEST_TOOLS := $(if $(shell command -v promtool),,prometheus) $(if $(wildcard /usr/bin/chromium),,chromium)
test-tools:
ifneq ($(strip $(MISSING_TEST_TOOLS)),)
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's $(strip $(MISSING_TEST_TOOLS)) for the tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(MISSING_TEST_TOOLS) > /dev/null; \
	else \
	  echo "the tests need Debian's $(strip $(MISSING_TEST_TOOLS)): sudo apt-get install -y $(MISSING_TEST_TOOLS)" >&2; exit 1; \
	fi
else
	@true
endif

# checkov (the Kubernetes manifests' checks) in a venv of its own, exactly as .ci/checkov.lock pins
# it: it cannot share the project's venv (pip backtracks to an ancient 2.x against our lock).
CHECKOV := build/checkov-venv/bin/checkov
checkov: $(CHECKOV)

$(CHECKOV): .ci/checkov.lock
	rm -rf build/checkov-venv
	$(PYTHON) -m venv build/checkov-venv
	build/checkov-venv/bin/python -m pip install --quiet --no-deps -r .ci/checkov.lock
	touch $@

bench: install
	$(BIN)/ml-assets bench pipeline

# What deploy/gpu-smoke.sh needs on a bare GPU machine that reaches no package index: a week's
# features from the lake (run `make demo` first) and the locked polars as wheels for its Python.
gpu-smoke-bundle: install
	$(BIN)/python -m ml_assets.bench.gpu_step --export build/gpu/week.parquet
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
	  $$(grep -E '^polars(-runtime-32)?==' requirements.lock)

# Re-resolve the dependency set from pyproject.toml into requirements.lock.
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet --upgrade pip
	build/lock-venv/bin/python -m pip install --quiet -e ".[dev]"
	# --all keeps setuptools (torch needs it at run time); pip itself is not pinned
	build/lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip==' > requirements.lock
	rm -rf build/lock-venv

clean:
	rm -rf $(VENV) build .pytest_cache
