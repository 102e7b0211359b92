# The commands a newcomer runs: `make demo` (install, then the pipeline offline on the recorded data in .demo/,
# then the Dagster UI on it), `make test` (install + the whole test suite), `make dev` (install + Dagster UI on the
# embedded default, against the live API). `make bench` runs every benchmark.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)
PORT ?= 3000

$(BIN)/dagster: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: install demo dev test bench lint
install: $(BIN)/dagster

demo: install
	$(BIN)/python -m f1_assets_tests.demo --port $(PORT)

# `dagster dev -w workspace.yaml` (the layout's workspace file: `dg dev` builds its own and ignores it) warns that
# it is superseded by `dg dev`: that one warning is silenced (f1_assets_tests/demo.py does the same)
dev: install
	PYTHONWARNINGS='ignore:Function `dev_command` is superseded' $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

test: install
	$(BIN)/pytest -q -rs -p no:cacheprovider

lint: install
	$(BIN)/ruff check f1_assets f1_assets_tests bench

bench: install
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done
