# Everything a fresh machine needs: Python 3.11 with pip.  uv comes from the package registry
# into a private bootstrap venv, then the locked environment is synced into .venv.
PYTHON ?= python3.11
UV_VERSION := 0.13.8
BOOT := .boot
UV := $(BOOT)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
DATASET ?= data/recorded/pm15m_20251226_coinbase1m

.PHONY: setup run test lint typecheck bench bench-analysts bench-feeds bench-dashboard bench-latency soak dev clean

$(UV):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	UV_PYTHON=$(PYTHON) $(UV) sync --locked --quiet
	@touch $@

setup: $(VENV)/.synced

## run: replay the embedded recorded markets through the whole graph (paper mode, no keys)
run: setup
	$(BIN)/updown run --replay $(DATASET)

## test: lint (ruff + layer contracts), type-check, then the whole test suite
test: setup lint typecheck
	$(BIN)/python -m pytest -q

## lint: ruff, then the layer contracts (import-linter, [tool.importlinter] in pyproject.toml)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

## bench: decision latency of the graph, the analysts' per-tick cost, then the eval suite (full-graph replay, forecast-only)
bench: setup
	$(BIN)/updown bench
	$(BIN)/updown bench --suite analysts
	$(BIN)/updown bench --suite eval

## bench-analysts: per-tick cost of the analysts (incremental indicators + fair value)
bench-analysts: setup
	$(BIN)/updown bench --suite analysts

## bench-feeds: 50,000 Binance-format trades/s for 60 s from a loopback server into the feed
bench-feeds: setup
	$(BIN)/updown bench --suite feeds --seconds 60 --rate 50000

## bench-dashboard: decisions page and API p95 on a journal of 100,000 (replicated real) decisions
bench-dashboard: setup
	$(BIN)/updown bench --suite dashboard

## soak: 96 accelerated live windows against loopback fakes with faults (prints figures)
soak: setup
	$(BIN)/python tests/support/soak.py --windows 96

## dev: LangGraph Studio on the local dev server
dev: setup
	$(BIN)/langgraph dev --no-browser

clean:
	rm -rf $(VENV) $(BOOT) .pytest_cache .mypy_cache .ruff_cache

## bench-latency: maker latency on loopback (trade -> cancel, decision -> order on the wire)
bench-latency: setup
	$(BIN)/updown bench --suite latency
