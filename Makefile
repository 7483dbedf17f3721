# The README's two commands: `make local` and `make test`. Everything they need is
# installed here from the package registries; nothing relies on what a machine happens to have.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.PHONY: install local test lint bench clean

install: $(PY_STAMP) $(NPM_STAMP)

# pip is upgraded first: the resolver of the pip that ships with Python 3.11 backtracks
# for many minutes over the botocore pins of s3fs and moto.
$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[workloads,dev]'
	touch $@

$(NPM_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The local run needs no Node.js: only the tests use Azurite.
local: $(PY_STAMP)
	$(VENV)/bin/gpuyard local

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Each prints a table that docs/benchmarks.md records with machine and date.
bench: install
	$(PY) -m components.bench_plan
	$(PY) -m workloads.bench_train
	$(PY) -m workloads.bench_serve

clean:
	rm -rf $(VENV) node_modules .gpuyard .pytest_cache .hypothesis
