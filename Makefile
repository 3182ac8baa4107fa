# Credit risk scoring service. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A queue prefix per test run, so tests never take messages of a running service on the same broker.
TEST_ENV := CELERY_QUEUE_PREFIX=test-$$$$-

.DEFAULT_GOAL := help
.PHONY: help install run demo worker web test test-fast test-full fault-tests lint typecheck bench up down clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the service with its dev tools

demo: install ## migrate, load the demo portfolios, train their models, create demo users
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py collectstatic --no-input -v0
	$(BIN)/python manage.py setup_demo

run: demo ## set everything up, then serve on http://127.0.0.1:8000 with a Celery worker (Ctrl-C stops both)
	bash docker/start/dev

worker: install ## a Celery worker on all queues
	$(BIN)/celery -A riskapp worker -l info -Q "$${CELERY_QUEUE_PREFIX}default,$${CELERY_QUEUE_PREFIX}score,$${CELERY_QUEUE_PREFIX}train"

test: install ## the test suite (slow tests included) on whatever DATABASE_URL / CELERY_BROKER_URL say
	$(TEST_ENV) $(BIN)/pytest -q

test-fast: install ## the test suite without slow tests
	$(TEST_ENV) $(BIN)/pytest -q -m "not slow"

test-full: test ## alias kept for habit

fault-tests: install ## real workers on a private PostgreSQL + Redis (ports FAULT_PG_PORT/FAULT_REDIS_PORT, 15701/15702) that the tests kill and restart
	$(TEST_ENV) $(BIN)/python -m tests.faults.servers $(BIN)/pytest -q -s -p no:cacheprovider tests/faults

lint: install ## ruff lint and format check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy riskapp scoring models

bench: install ## benchmarks (results in bench/results/); see bench/README.md
	$(BIN)/python bench/run_all.py

# Variables come from .env (see .env.example); the train worker runs on the GPU image where
# nvidia-smi answers, else on the CPU image (compose profiles gpu / cpu).
COMPOSE = docker compose -f docker/compose.yml $(if $(wildcard .env),--env-file .env) \
	--profile $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)

up: ## the production-like stack with Docker compose (docs/scaling.md)
	$(COMPOSE) up --build

down: ## stop the compose stack (volumes are kept)
	$(COMPOSE) down

clean: ## remove the virtualenv and local state (database, broker folder, artifacts)
	rm -rf $(VENV) var
