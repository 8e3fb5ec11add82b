# `make run` serves Centinela, `make test` runs the tests, `make lint` runs ruff and mypy.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The pinned requirements, then the package itself (editable: the checkout is the code), so
# `import monitoring` and its version work from any folder.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

# ruff, mypy and the type stubs mypy needs, pinned; mypy reads the runtime packages' own types,
# so it comes on top of requirements.txt.
$(VENV)/.installed-lint: requirements.txt requirements-lint.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-lint.txt
	touch $@

run: $(VENV)/.installed
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# One pytest worker per core (pytest-xdist): the suite spends most of its time waiting on real
# gunicorn, PostgreSQL and browser processes; those that start real processes (marker slow) share
# one worker (tests/conftest.py), so two of them never compete for the cores. PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= auto
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# What each checks, and where: [tool.ruff] and [tool.mypy] in pyproject.toml.
lint: $(VENV)/.installed-lint
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed-test
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
