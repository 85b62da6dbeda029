# Kinwell. `make run` and `make test` set up .venv on first use: a fresh machine needs only Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run run-demo test lint bench schemas clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install ## NATS + the five services (embedded mode, SQLite under .kinwell/)
	$(BIN)/kinwell up

run-demo: install ## the same with the demo clock, for `kinwell demo` in another shell (embedded mode only)
	$(BIN)/kinwell up --demo

test: install ## the whole suite; KINWELL_TEST_DATABASE_URL=postgresql://... runs it on PostgreSQL
	$(BIN)/pytest

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services

bench: install ## benchmarks, each reported as a ratio against a baseline measured in the same run
	$(BIN)/python -m bench

schemas: install ## regenerate docs/events/*.json and deploy/nats/auth.conf
	$(BIN)/python -c "from pathlib import Path; from shared.events import export_json_schemas; export_json_schemas(Path('docs/events'))"
	$(BIN)/python -m shared.natsperm > deploy/nats/auth.conf

clean:
	rm -rf $(VENV) .kinwell .pytest_cache .mypy_cache .ruff_cache
