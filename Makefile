# The one entry point: make demo | test | lint | images | bench
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: venv demo test test-fast lint images docker-ready bench clean

venv: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

demo: venv
	$(BIN)/cloud-ai quickstart

# The suite includes real containers: docker-ready installs and starts the engine when needed.
test: venv docker-ready
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -m "not slow and not docker"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy infra workload policy benchmarks
	$(BIN)/hadolint workload/Dockerfile

docker-ready:
	scripts/ensure-docker.sh

# Every container target, offline: local debootstrap base + host wheelhouse (TRAIN_VARIANT=cpu for CPU).
images: venv docker-ready
	scripts/build-images.sh

bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache quickstart
