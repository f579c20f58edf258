# One task runner for people and CI. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
UV := .tools/venv/bin/uv
INFRA := deploy/local/infra.sh
# Use an external Kafka/PostgreSQL when both variables are set; else start the local ones.
EXTERNAL_INFRA := $(if $(and $(KAFKA_BOOTSTRAP_SERVERS),$(DATABASE_URL)),1,)
WITH_INFRA_ENV := $(if $(EXTERNAL_INFRA),true,eval "$$($(INFRA) env)")
# The dashboard page: built from web/dashboard into the metrics package, rebuilt only when a source changed.
DASHBOARD_OUT := services/metrics/src/koalr_metrics/dashboard
DASHBOARD_STAMP := $(DASHBOARD_OUT)/.built
DASHBOARD_INPUTS := $(shell find web/dashboard/src -type f) $(addprefix web/dashboard/,package.json package-lock.json tsconfig.json build.mjs)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(UV):
	@echo "[make] installing uv $(UV_VERSION) into .tools/venv"
	@python3 -m venv .tools/venv
	@.tools/venv/bin/pip install --quiet "uv==$(UV_VERSION)"

.PHONY: sync
sync: $(UV) ## install the workspace (all packages, locked versions) into .venv
	@$(UV) sync --all-packages --locked --quiet

.PHONY: dashboard
dashboard: $(DASHBOARD_STAMP) ## build the dashboard page (npm ci, type check, esbuild) served by metrics at /dashboard/

$(DASHBOARD_STAMP): $(DASHBOARD_INPUTS)
	@echo "[make] building the dashboard page into $(DASHBOARD_OUT)"
	@cd web/dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build
	@touch $@

.PHONY: browser
browser: ## install Debian's chromium if missing (the dashboard tests drive it headless)
	@deploy/local/browser.sh

.PHONY: services-up
services-up: sync ## install if needed and start Kafka and PostgreSQL; prints the env vars
ifeq ($(EXTERNAL_INFRA),1)
	@echo "[make] using KAFKA_BOOTSTRAP_SERVERS=$(KAFKA_BOOTSTRAP_SERVERS) and DATABASE_URL from the environment"
else
	@$(INFRA) start
endif

.PHONY: services-down
services-down: ## stop the local Kafka and PostgreSQL started by services-up
	@$(INFRA) stop

.PHONY: services-status
services-status: ## show whether the local Kafka and PostgreSQL are ready
	@$(INFRA) status

.PHONY: lint
lint: sync ## ruff (lint and format check) and mypy --strict
	@echo "[make] ruff"
	@$(UV) run --no-sync ruff check .
	@$(UV) run --no-sync ruff format --check .
	@echo "[make] mypy --strict"
	@$(UV) run --no-sync mypy

.PHONY: check-deps
check-deps: $(UV) ## sync each package alone and import all its modules (catches undeclared imports)
	@deploy/ci/check_package_deps.sh

.PHONY: format
format: sync ## apply ruff's fixes and formatting
	@$(UV) run --no-sync ruff check --fix .
	@$(UV) run --no-sync ruff format .

.PHONY: docs
docs: sync ## regenerate docs/schemas (event JSON Schemas), docs/asyncapi.yaml and docs/configuration.md from the code
	@$(UV) run --no-sync python -m koalr_contracts.schema docs/schemas
	@$(UV) run --no-sync python -m koalr_cli.asyncapi docs/asyncapi.yaml
	@$(UV) run --no-sync python -m tests.deploy.config_reference

.PHONY: test
test: services-up lint check-deps dashboard browser ## everything: infrastructure, lint, types, unit, integration and e2e tests
	@echo "[make] pytest (unit, integration, e2e) against the real Kafka and PostgreSQL"
	@$(WITH_INFRA_ENV) && KOALR_FORBID_SKIPS=1 $(UV) run --no-sync pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: sync ## only the tests that need no Kafka or PostgreSQL
	@$(UV) run --no-sync pytest -m "not integration and not e2e" $(PYTEST_ARGS)

.PHONY: demo
demo: services-up dashboard ## the whole pipeline end to end: connect, backfill, then the dashboard numbers
	@$(WITH_INFRA_ENV) && $(UV) run --no-sync python -m koalr_devstack.demo

.PHONY: up
up: services-up dashboard ## run connector, syncer workers and metrics in the background for real use (see docs/configuration.md)
	@$(WITH_INFRA_ENV) && $(UV) run --no-sync python -m koalr_devstack.up start

.PHONY: down
down: ## stop the services started by `make up` (Kafka and PostgreSQL keep running; see services-down)
	@$(UV) run --no-sync python -m koalr_devstack.up stop

.PHONY: status
status: ## show the services started by `make up`
	@$(UV) run --no-sync python -m koalr_devstack.up status

.PHONY: bench
bench: services-up ## benchmarks: prints a table and appends to bench/results.csv
	@$(WITH_INFRA_ENV) && $(UV) run --no-sync python -m bench

# Three seeds by default; each starts its own Kafka and PostgreSQL on free ports (never the shared pair).
SEEDS ?= 1 2 3
CHAOS_DURATION ?= 60
.PHONY: chaos
chaos: sync ## chaos run: every service, Kafka and PostgreSQL killed and restarted while orgs backfill; totals checked to the cent (SEEDS, CHAOS_DURATION)
	@for seed in $(SEEDS); do \
		echo "[make] chaos run, seed $$seed"; \
		$(UV) run --no-sync python -m koalr_devstack.chaos --seed $$seed --duration $(CHAOS_DURATION) || exit 1; \
	done

.PHONY: sandbox
sandbox: sync ## run the provider sandbox: Cursor and GitHub Copilot APIs (port SANDBOX_PORT, default 8010)
	@$(UV) run --no-sync koalr-sandbox

# Deployment checks: pinned tools in .tools (a second run reuses them).
HELM_VERSION := v3.20.2
KUBERNETES_VALIDATE_VERSION := 1.37.0
KUBE_VERSION := 1.35.0
HELM := .tools/bin/helm
CHART := deploy/helm/koalr
RENDERED := .tools/rendered.yaml
DEPLOY_VARIANT := --set kafka.topicNamespace=staging,autoscaling.authenticationRef=kafka-sasl,image.registry=registry.example.com/koalr,imagePullSecrets[0].name=pull,syncer.env.SYNCER_CHUNK_DAYS=3

$(HELM):
	@echo "[make] building helm $(HELM_VERSION) from its Go module into .tools/bin" >&2
	@mkdir -p .tools/bin
	@GOBIN="$(CURDIR)/.tools/bin" GOFLAGS=-buildvcs=false go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.tools/kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION): | $(UV)
	@echo "[make] installing kubernetes-validate $(KUBERNETES_VALIDATE_VERSION) into .tools/venv"
	@.tools/venv/bin/pip install --quiet "kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)"
	@touch $@

.PHONY: promtool
promtool:
	@command -v promtool > /dev/null || { echo "[make] installing promtool (Debian package prometheus)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus > /dev/null; }

.PHONY: deploy-render
deploy-render: $(HELM) ## print the Kubernetes manifests the Helm chart renders with its default values
	@$(HELM) template koalr $(CHART) --kube-version $(KUBE_VERSION)

.PHONY: deploy-check
deploy-check: $(HELM) .tools/kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION) promtool ## lint and render the chart, validate every object, check and test the alert rules
	@echo "[make] helm lint --strict"
	@$(HELM) lint --strict $(CHART) --kube-version $(KUBE_VERSION)
	@echo "[make] render and validate against the Kubernetes $(KUBE_VERSION) schemas"
	@$(HELM) template koalr $(CHART) --kube-version $(KUBE_VERSION) > $(RENDERED)
	@.tools/venv/bin/python deploy/ci/validate_manifests.py --kube-version $(KUBE_VERSION) $(RENDERED)
	@echo "[make] again with a topic namespace, Kafka auth and a registry, then without autoscaling"
	@$(HELM) template koalr $(CHART) --kube-version $(KUBE_VERSION) $(DEPLOY_VARIANT) > $(RENDERED)
	@.tools/venv/bin/python deploy/ci/validate_manifests.py --kube-version $(KUBE_VERSION) $(RENDERED)
	@$(HELM) template koalr $(CHART) --kube-version $(KUBE_VERSION) --set autoscaling.enabled=false > $(RENDERED)
	@.tools/venv/bin/python deploy/ci/validate_manifests.py --kube-version $(KUBE_VERSION) $(RENDERED)
	@echo "[make] promtool check config, check rules, test rules"
	@promtool check config deploy/prometheus/prometheus.yml
	@promtool check rules deploy/prometheus/rules.yml
	@promtool test rules deploy/prometheus/rules.test.yml

.PHONY: clean
clean: ## remove caches (keeps .infra data; `make services-down` first to stop the services)
	@rm -rf .mypy_cache .ruff_cache .pytest_cache
