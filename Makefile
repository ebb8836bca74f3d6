# Revisit: `make dev` runs the whole system locally with a demo; `make test` runs lint, types and tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
SOURCE ?=

.PHONY: help install dev test lint format bench chaos asyncapi schemas models constraints clean

help:
	@echo "make dev      run infrastructure, all services and the demo edge (SOURCE=video|folder|rtsp to feed your own)"
	@echo "make test     install what is missing, then lint, type-check and run every test"
	@echo "make lint     ruff, ruff format --check, mypy, exported contracts up to date"
	@echo "make bench    benchmarks; figures printed and written to docs/BENCHMARKS.md"
	@echo "make chaos    20,000 events through kill -9s, NATS and Postgres restarts and a 10-minute offline edge (slow)"
	@echo "make models   download the published model pack with sha256 checks (needs the internet)"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[embedded,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

dev: install
	$(PY) -m devstack up $(if $(SOURCE),--source "$(SOURCE)")

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy schemas services edge devstack bench tests
	$(PY) -m schemas.export --check
	$(PY) -m devstack.asyncapi --check
	$(PY) -m devstack.configdoc --check

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest

bench: install
	$(PY) -m bench

# CHAOS_EVENTS, CHAOS_OFFLINE_SECONDS, CHAOS_KILLS (per service), CHAOS_RATE (events/s) change the run
chaos: install
	$(PY) -m bench.chaos

schemas: install
	$(PY) -m schemas.export

asyncapi: install
	$(PY) -m devstack.asyncapi

models: install
	$(PY) -m edge.model_pack download --dir $(or $(MODEL_DIR),models)

constraints: install
	(head -1 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^revisit') > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf .dev .mypy_cache .ruff_cache .pytest_cache
