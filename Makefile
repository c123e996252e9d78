# Two commands set everything up on a fresh machine:
#   make up     PostgreSQL + Kafka (installed and started locally), migrations, the four
#               services with their relays and consumers, the small district scenario
#   make test   the whole test suite against real PostgreSQL and Kafka, with the quick chaos
#               faults (tests/chaos, marker chaos_quick) on a private PostgreSQL + Kafka
#   make test-chaos  every chaos fault (tests/chaos); figures in tests/chaos/results/latest.json
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
UV := python3 -m uv
INFRA := deploy/local/infra.sh
SERVICES := deploy/local/services.sh
# Everything started from here runs on the built-in development secrets, which the services
# refuse unless development mode is on (docs/security.md, "Secrets and keys").
export GRID_DEV_MODE ?= 1

.PHONY: help deps infra up down test test-chaos lint bench token contracts

help:
	@echo "make up | down | test | test-chaos | lint | bench | token | contracts"

deps:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

infra:
	@bash $(INFRA) up

up: deps infra
	@bash $(SERVICES) start
	@.venv/bin/python -m scenario --scale small --seed 2020
	@bash $(SERVICES) status
	@echo
	@echo "Token:    export TOKEN=\$$(.venv/bin/python -m shared.devtoken --role admin)"
	@echo "Try:      curl -s -H \"Authorization: Bearer \$$TOKEN\" http://127.0.0.1:8004/v1/nodes/3572c53c-93a3-5a01-a93c-e6e059a651a7/summary  (the district)"
	@echo "OpenAPI:  http://127.0.0.1:8001/docs (registry) ... :8004/docs (reporting)"
	@echo "Stop:     make down"

down:
	@bash $(SERVICES) stop
	@bash $(INFRA) down

# everything but the chaos faults outside the quick set (those start their own servers)
test: deps infra
	@eval "$$(bash $(INFRA) env)" && TEST_PG_DSN="$$GRID_PG_DSN" \
		TEST_KAFKA_BOOTSTRAP="$$GRID_KAFKA_BOOTSTRAP" .venv/bin/python -m pytest -q \
		-m "not chaos or chaos_quick"

# every fault, on the suite's own PostgreSQL and Kafka (started and removed by the tests);
# docs/reliability.md explains the figures in tests/chaos/results/latest.json
test-chaos: deps
	@.venv/bin/python -m pytest -q tests/chaos -m chaos

lint: deps
	@$(UV) run ruff check shared services tests bench deploy scenario
	@$(UV) run mypy shared services/registry/domain

# B1-B4 (B2's 1M-event data set is built on the first run and kept for later ones), then
# docs/benchmarks.md from bench/results.json
bench: deps infra
	@eval "$$(bash $(INFRA) env)" && export TEST_PG_DSN="$$GRID_PG_DSN" \
		TEST_KAFKA_BOOTSTRAP="$$GRID_KAFKA_BOOTSTRAP" && \
		.venv/bin/python -m bench.ingest && \
		.venv/bin/python -m bench.query && \
		.venv/bin/python -m bench.rebuild && \
		.venv/bin/python -m bench.append && \
		.venv/bin/python -m bench.report

token: deps
	@.venv/bin/python -m shared.devtoken --role admin

# docs/contracts (JSON Schemas of every payload and record version), docs/asyncapi.yaml and
# docs/openapi/<service>.json; unit tests fail while any committed one is stale
contracts: deps
	@.venv/bin/python -m shared.contracts.export docs/contracts
	@.venv/bin/python -m services.openapi docs/openapi
