# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# `make run` installs what the demo needs; `make test` and `make lint` add the development tools.
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(HASH)

# The historian's PostgreSQL tests use this server; they fail, not skip, when it is unreachable.
export CC_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
# The MQTT driver's tests use this broker (the machine's Mosquitto); they fail without it.
export CC_TEST_MQTT_URL ?= mqtt://127.0.0.1:1883
# The transport's tests use this NATS server (with JetStream); they fail, not skip, without it.
export CC_TEST_NATS_URL ?= nats://127.0.0.1:4222

.PHONY: run test lint install clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	rm -f $(VENV)/.installed-run-*
	touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(RUN_STAMP) $(DEV_STAMP)

install: $(DEV_STAMP)

run: $(RUN_STAMP)
	$(BIN)/controlcenter demo

# Two workers (the machine's two cores); a file stays on one worker so that its module-scoped
# fixtures (a browser, a running city) start once.
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
