# The two commands of the README. Both install what is missing first.

CARGO ?= cargo

.PHONY: up demo test deps

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

## playwright-core, which drives Debian's Chromium in the web UI's browser test (tests/ui).
tests/ui/node_modules/.ok: tests/ui/package.json tests/ui/package-lock.json
	cd tests/ui && npm ci --no-audit --no-fund
	touch $@

## Build and start the platform with embedded defaults (SQLite and ./caravan-data).
up: deps
	$(CARGO) run --release -p caravan -- server

## Build and start the demo: server, agents, tenants, a service, logs (UI on http://127.0.0.1:9200/ui/).
demo: deps
	$(CARGO) run --release -p caravan -- demo

## Run every check and test: formatting, lints, unit, integration and end-to-end tests.
test: deps .venv/ok tests/node/node_modules/.ok tests/ui/node_modules/.ok
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace
