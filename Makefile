# One-command set-up, run and test. Every target is idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PLOT_STAMP := $(VENV)/.installed-plot
DEV_STAMP := $(VENV)/.installed-dev
# Configuration the engine runs with (make run); tests make their own.
APPLICATION_CONFIG_PATH ?= $(CURDIR)/conf
export APPLICATION_CONFIG_PATH

.PHONY: help clean venv venv-plot venv-dev precompile services migrate run run-engine stop test lint demo

help:
	@echo "make run   - set up everything (venv, MariaDB, RabbitMQ, database) and run the engine"
	@echo "             with the skeleton web app (skeleton_app/README.md) on 127.0.0.1:8080"
	@echo "             and the engine's JSON API on 127.0.0.1:8081 (docs at /docs)"
	@echo "make demo  - make run, then stream a NAB series through the engine, print its anomalies"
	@echo "             with a progress bar, and plot them to a PNG (it says where)"
	@echo "make test  - set up everything and run the test suite"
	@echo "make stop  - stop the engine"
	@echo "make clean - stop what make run started and remove its database, RabbitMQ queues and"
	@echo "             exchange, model checkpoints, logs and demo plots (nothing else; asks nothing)"

# Each target installs what it needs: runtime (make run), + plotting (make demo),
# + development tools (make test, make lint). Every step says what it does and how long it
# usually takes.
$(STAMP): requirements.txt setup.py
	@command -v python3 >/dev/null || { echo "python3 (3.11+) is required"; exit 1; }
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; } || \
	  { echo "python3-venv is missing: install it (apt-get install python3-venv)"; exit 1; }
	@[ -x $(PY) ] || { echo "[install] creating the virtual environment $(VENV)"; python3 -m venv $(VENV); }
	@echo "[install] 1/3 upgrading pip (a few seconds)"
	@$(PY) -m pip install -q --upgrade pip
	@echo "[install] 2/3 installing the $$(grep -c '==' requirements.txt) pinned runtime packages of requirements.txt (first time: 1-3 minutes, mostly numpy, numba and llvmlite)"
	@start=$$(date +%s); $(PY) -m pip install -q -r requirements.txt && echo "[install]     done in $$(( $$(date +%s) - start )) s"
	@echo "[install] 3/3 installing htmengine itself in development mode (a few seconds)"
	@$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

$(PLOT_STAMP): $(STAMP) requirements-plot.txt
	@echo "[install] installing the plotting extra (requirements-plot.txt: matplotlib; about 30 s the first time)"
	@$(PY) -m pip install -q -r requirements-plot.txt
	@touch $(PLOT_STAMP)

$(DEV_STAMP): $(PLOT_STAMP) requirements-dev.txt
	@echo "[install] installing the development tools (requirements-dev.txt: pytest, ruff, mypy; about 20 s the first time)"
	@$(PY) -m pip install -q -r requirements-dev.txt
	@touch $(DEV_STAMP)

venv: $(STAMP)

venv-plot: $(PLOT_STAMP)

venv-dev: $(DEV_STAMP)

# Compile the HTM model's numba kernels into their on-disk cache (about a second when warm).
precompile: venv
	@echo "[compile] compiling the HTM model's numba kernels into their disk cache (first time after an install or a change of htmengine/algorithms: about 15-30 s on an idle 2-core machine, a few minutes on a loaded one; then about a second)"
	@$(PY) -m htmengine.algorithms.precompile

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

# Everything `make run` made for the skeleton application, and nothing else: its services,
# then (htmengine clean) its database, queues, results exchange and checkpoints, then its logs.
SKELETON_RUN_DIR ?= $(CURDIR)/skeleton_app/logs
clean:
	@skeleton_app/run.sh stop
	@if [ -x $(VENV)/bin/htmengine ]; then \
	  echo "[clean] removing the skeleton application's database, queues, exchange and checkpoints"; \
	  APPLICATION_CONFIG_PATH=$(CURDIR)/skeleton_app/conf $(VENV)/bin/htmengine clean --yes; \
	else echo "[clean] no $(VENV): nothing was installed, so no database or queue to remove"; fi
	@echo "[clean] removing the logs in $(SKELETON_RUN_DIR)"
	@rm -f "$(SKELETON_RUN_DIR)"/*.log "$(SKELETON_RUN_DIR)"/*.log.[0-9]* "$(SKELETON_RUN_DIR)"/supervisord.pid \
	  "$(SKELETON_RUN_DIR)"/demo.*.png
	@rmdir "$(SKELETON_RUN_DIR)" 2>/dev/null || true

demo: run venv-plot
	APPLICATION_CONFIG_PATH=$(CURDIR)/skeleton_app/conf $(PY) skeleton_app/demo.py

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Servers this target starts (InfluxDB usually) are stopped when the tests end; servers that
# were already running keep running (scripts/stop-services.sh).
test: precompile venv-dev
	@started="$$(mktemp)"; trap 'scripts/stop-services.sh "$$started"' EXIT; \
	  ENSURE_SERVICES_STARTED="$$started" scripts/ensure-services.sh mariadb rabbitmq influxdb chromium && \
	  echo "$(VENV)/bin/ruff check ." && $(VENV)/bin/ruff check . && \
	  echo "$(VENV)/bin/mypy" && $(VENV)/bin/mypy && \
	  echo "$(VENV)/bin/pytest $(PYTEST_ARGS)" && $(VENV)/bin/pytest $(PYTEST_ARGS)
