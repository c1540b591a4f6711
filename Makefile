# The one entry point for people and CI: `make dev` runs the local stack, `make test` the checks.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Extra arguments for pytest, e.g. make test PYTEST_ARGS='-k signal -x'
PYTEST_ARGS ?=

# Stamps make a second `make dev` skip pip entirely until pyproject.toml changes.
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test

.PHONY: dev test test-postgres suite bench lint format clean distclean install install-test

dev: $(RUNTIME_STAMP)
	$(BIN)/python scripts/dev.py

test: $(TEST_STAMP)
	scripts/ensure-system-deps chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django makemigrations --check --dry-run
	$(MAKE) --no-print-directory suite

# The same suites on a throwaway Postgres cluster (DATABASE_URL), stopped afterwards.
test-postgres: $(TEST_STAMP)
	scripts/ensure-system-deps chromium postgresql
	scripts/with-postgres $(MAKE) --no-print-directory suite

# The example project's own tests (its workflows on a real server), then the library's.
suite: $(TEST_STAMP)
	$(BIN)/python example/manage.py test shop --noinput
	$(BIN)/pytest $(PYTEST_ARGS)

# Library vs raw temporalio (3-step runs), the HTTP action round trip, model events, then agents
# (BENCH_QUICK=1 for a smaller agents run).
bench: $(TEST_STAMP)
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_actions.py
	$(BIN)/python scripts/bench_events.py
	$(BIN)/python scripts/bench_agents.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

format: $(TEST_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

install: $(RUNTIME_STAMP)
install-test: $(TEST_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

# The test extras include the runtime, so this stamp satisfies `make dev` too.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@ $(RUNTIME_STAMP)

clean:
	rm -rf .temporal example/db.sqlite3 example/db.sqlite3-* test-results \
		.pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Also drops the virtualenv: the next make target recreates it.
distclean: clean
	rm -rf $(VENV)
