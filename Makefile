# ml_assets: `make demo` runs the pipeline on the embedded data, `make test` runs the tests,
# `make dev` opens the Dagster UI, `make serve` starts the prediction service. Each installs what
# is missing first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo dev serve test bench lock clean

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

# The champion behind the online service on 127.0.0.1:8000, its store warmed from the lake's last
# day (run `make demo` first). HOST/PORT override the address.
serve: install
	$(BIN)/ml-assets serve --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8000) --warm-from-lake

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/ml-assets bench pipeline

# Re-resolve the dependency set from pyproject.toml into requirements.lock.
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet --upgrade pip
	build/lock-venv/bin/python -m pip install --quiet -e ".[dev]"
	build/lock-venv/bin/python -m pip freeze --exclude-editable > requirements.lock
	rm -rf build/lock-venv

clean:
	rm -rf $(VENV) build .pytest_cache
