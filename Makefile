# Two commands on a fresh machine with Python 3.11 to 3.13 and pip:
#   make demo   - generated sales, nightly runs on the embedded defaults
#   make test   - the test suite (SQLite and the PostgreSQL on 127.0.0.1:5432)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check lint install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $@

demo: install
	$(BIN)/shelfcast demo

# pytest exits 5 when it collects no test: that is a failure here. One pytest-xdist worker
# per core, a module per worker at a time (module fixtures are built once); the 15 slowest
# tests are printed at the end.
PYTEST := $(BIN)/python -m pytest -x -q -n auto --dist loadscope

test: install
	$(PYTEST) --durations=15; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$status

# The inner loop: every test that trains no model, runs no night and needs no PostgreSQL
# (under 2 minutes; `make test` runs them all).
check: install
	$(PYTEST) -m "not slow and not postgres" --durations=5; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
