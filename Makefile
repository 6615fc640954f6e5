# One-command set-up, run and test. Every target is idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Configuration the engine runs with (make run); tests make their own.
APPLICATION_CONFIG_PATH ?= $(CURDIR)/conf
export APPLICATION_CONFIG_PATH

.PHONY: help venv precompile services migrate run run-engine stop test lint demo

help:
	@echo "make run   - set up everything (venv, MariaDB, RabbitMQ, database) and run the engine"
	@echo "             with the skeleton web app (skeleton_app/README.md) on 127.0.0.1:8080"
	@echo "             and the engine's JSON API on 127.0.0.1:8081 (docs at /docs)"
	@echo "make demo  - make run, then stream a NAB series through the engine and print anomalies"
	@echo "make test  - set up everything and run the test suite"
	@echo "make stop  - stop the engine"

$(STAMP): requirements.txt setup.py
	@command -v python3 >/dev/null || { echo "python3 (3.11+) is required"; exit 1; }
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; } || \
	  { echo "python3-venv is missing: install it (apt-get install python3-venv)"; exit 1; }
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

# Compile the HTM model's numba kernels into their on-disk cache (about a second when warm).
precompile: venv
	$(PY) -m htmengine.algorithms.precompile

services:
	@scripts/ensure-services.sh mariadb rabbitmq

migrate: venv services
	$(PY) repository/migrate.py

# The skeleton application: services, migrations (database "skeleton"), the engine and the
# web app under supervisord, with APPLICATION_CONFIG_PATH=skeleton_app/conf.
run: precompile
	@skeleton_app/run.sh start

# The engine alone, with conf/.
run-engine: migrate precompile
	@scripts/run-engine.sh start

stop:
	@skeleton_app/run.sh stop
	@scripts/run-engine.sh stop

demo: run
	APPLICATION_CONFIG_PATH=$(CURDIR)/skeleton_app/conf $(PY) skeleton_app/demo.py

lint: venv
	$(VENV)/bin/ruff check .

test: precompile
	@scripts/ensure-services.sh mariadb rabbitmq influxdb chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest
