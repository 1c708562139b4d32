# Runnable database examples. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
COMPOSE := docker compose
TOPIC ?= all
SERVICES ?=
EX ?= relational/normalization.py
PYTEST_ARGS ?=
JOBS ?= 4
SKIP ?=

.DEFAULT_GOAL := help

help: ## Show this list
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## Create .venv with the project and its tools

up: ## Start the compose stack (SERVICES="postgres redis" or TOPIC=graph for a subset); waits until healthy
	$(COMPOSE) --profile $(TOPIC) up -d --wait $(SERVICES)

down: ## Stop the compose stack, every profile (volumes kept; `docker compose --profile "*" down -v` drops them)
	$(COMPOSE) --profile '*' down

local-install: ## Install the local servers, no Docker needed (root on Debian/Ubuntu)
	bash servers/install-local.sh $(SERVICES)

local-up: install ## Start the local servers on the compose ports (installed on first use), with the compose credentials
	EXAMPLES_SERVERS=local $(PY) -m common.demo --install-missing $(SERVICES)
	$(PY) -m servers up $(SERVICES)

local-down: ## Stop the local servers
	$(PY) -m servers down

demo: install ## Start servers (Docker if it answers, else local ones, installed on first use), run every lesson
	@if docker info >/dev/null 2>&1; then $(COMPOSE) --profile $(TOPIC) up -d --wait $(SERVICES); \
	else $(PY) -m common.demo --install-missing && { $(PY) -m servers up || echo "some local servers did not start (above)"; }; fi
	$(PY) -m common.demo

run: install ## Run one lesson: make run EX=relational/normalization.py
	$(PY) $(EX)

run-all: install ## Run every lesson against running servers (a lesson whose server is down is skipped)
	@failed=""; for lesson in $$($(PY) -c 'from common.catalog import lessons; print(" ".join(l.relative for l in lessons()))'); do \
		echo "== $$lesson"; $(PY) $$lesson; status=$$?; \
		if [ $$status -eq 2 ]; then echo "(not available: skipped)"; elif [ $$status -ne 0 ]; then failed="$$failed $$lesson"; fi; \
	done; if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi

run-parallel: install ## Every lesson, JOBS (4) at once, against the running servers (make up or local-up); fails if one fails; SKIP=recovery leaves a topic out
	EXAMPLES_SCALE=$${EXAMPLES_SCALE:-0.1} $(PY) -m common.demo --jobs $(JOBS) --strict $(foreach topic,$(SKIP),--skip $(topic))

test: install ## Run the whole suite (servers from env, Docker, or local binaries installed on first use)
	$(PY) -m common.demo --install-missing
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install ## Performance lessons at full size: a table, benchmarks/results.json and ratios.png
	$(PY) -m common.bench

lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## ruff format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

catalog: install ## Regenerate the README catalog from the lessons' docstrings
	$(PY) -m common.catalog --write

figures: install ## Regenerate recovery/README.md's measured table (needs the servers running)
	$(PY) -m common.recovery_figures --write

compose-check: install ## Validate docker-compose.yml without a Docker engine
	$(PY) -m servers.compose_check

clean: local-down ## Stop local servers and remove local state
	rm -rf .local

.PHONY: help install up down local-install local-up local-down demo run run-all run-parallel test bench lint format catalog figures compose-check clean
