# Two commands on a fresh machine: `make serve` and `make test`. Everything else is here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: serve test lint typecheck unit system-deps node-deps bench-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@ $(VENV)/.run-installed

## serve: install roomcast into .venv and run it (pass flags with ARGS="--insecure --port 9000")
serve: $(VENV)/.run-installed
	$(BIN)/roomcast serve $(ARGS)

## system-deps: Debian packages the tests need (headless Chromium)
system-deps:
	./scripts/install-system-deps.sh

## node-deps: npm packages the tests need (the centrifuge SDK under Node, dclint for compose.yaml)
node-deps:
	@if [ -f tests/e2e/js/package.json ]; then cd tests/e2e/js && npm ci --no-audit --no-fund --loglevel=error; fi

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

## test: install everything the tests need, then lint, type-check and run the whole suite
test: $(VENV)/.dev-installed system-deps node-deps lint typecheck
	$(BIN)/pytest

## bench-deps: npm packages of the Node baselines (ws, Socket.IO)
bench-deps:
	cd bench/node && npm ci --no-audit --no-fund --loglevel=error

## bench: roomcast and its baselines side by side (see bench/README.md)
bench: $(VENV)/.dev-installed bench-deps
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) tests/e2e/js/node_modules bench/node/node_modules .mypy_cache .ruff_cache .pytest_cache
