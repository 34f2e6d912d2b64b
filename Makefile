# The two commands of the README. Both install what is missing first.

CARGO ?= cargo

.PHONY: up test deps

## Install missing system packages (apt-get, as root or through sudo).
deps:
	./scripts/install-deps.sh

## The official Elasticsearch Python client, for the compatibility tests.
.venv/ok:
	python3 -m venv .venv
	.venv/bin/pip install --quiet 'elasticsearch>=8,<9'
	touch .venv/ok

## The official Elasticsearch JavaScript client, for the compatibility tests (tests/node).
tests/node/node_modules/.ok: tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund
	touch $@

## Build and start the platform with embedded defaults (SQLite and ./caravan-data).
up: deps
	$(CARGO) run --release -p caravan -- server

## Run every check and test: formatting, lints, unit, integration and end-to-end tests.
test: deps .venv/ok tests/node/node_modules/.ok
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace
