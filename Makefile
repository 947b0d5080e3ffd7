# compose-secrets: the targets seed 004's users know, plus the developer loop.
# `make help` lists them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO        ?= cargo
CS           := ./target/debug/compose-secrets
EMULATOR     := ./target/debug/kv-emulator
# The demo runs as you: compose.yaml gives the container `user: ${DEMO_UID}:${DEMO_GID}` and the
# secret files the same owner, so a non-root user can load files the container reads (giving
# them to another uid would need root). Under sudo, "you" is the user who ran sudo; root itself
# gets 1000:1000, the image's own user, rather than a container running as root.
INVOKING_UID := $(or $(SUDO_UID),$(shell id -u))
INVOKING_GID := $(or $(SUDO_GID),$(shell id -g))
export DEMO_UID ?= $(if $(filter 0,$(INVOKING_UID)),1000,$(INVOKING_UID))
export DEMO_GID ?= $(if $(filter 0,$(INVOKING_UID)),1000,$(INVOKING_GID))
# Compose v2 plugin when present, else the v1 `docker-compose` tool.
COMPOSE      ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# Compose 2.36+ runs compose.yaml's `secrets` provider service (compose-secrets from PATH: the
# one just built goes first). Older Compose and v1 cannot read `provider:`: they get
# compose.legacy.yaml, the same stack without it, after compose-secrets ensure and load.
PROVIDER_OK  := $(shell scripts/compose-has-providers.sh $(COMPOSE) && echo yes)
DEMO_COMPOSE := PATH="$(CURDIR)/target/debug:$$PATH" $(COMPOSE) $(if $(PROVIDER_OK),-f compose.yaml,-p compose-secrets-demo -f compose.legacy.yaml)
SECRET       ?=
# What scripts/bootstrap.sh installs (cargo-nextest, docker-compose v2, python with the Azure
# SDK) goes first on PATH for the targets that test: `make bootstrap` puts it there.
TOOLS        := $(CURDIR)/target/tools
WITH_TOOLS   := PATH="$(TOOLS)/bin:$$PATH"
# COMPOSE_SECRETS_SKIP_DOCKER=1 skips the Docker tests, and so building their image too.
TEST_IMAGE   := $(if $(filter 1,$(COMPOSE_SECRETS_SKIP_DOCKER)),skip-demo-image,demo-image image)

.PHONY: help bootstrap build ensure-secrets load-secrets verify-secrets rotate-secret \
        rotate-secret-dry quickstart down demo-image skip-demo-image emulator test test-fast \
        stress bench fmt lint ci clean sync-secrets image quickstart-sidecar test-nonroot mutants mutants-diff \
        dist dist-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

bootstrap: ## Install the test tools into target/tools: cargo-nextest, Python SDK, Compose v2
	scripts/bootstrap.sh

build: ## Build compose-secrets, the Key Vault emulator and the demo app
	$(CARGO) build --workspace --bins

ensure-secrets: build ## Create .env from .env.demo and fill empty secrets (demo mode)
	$(CS) ensure

load-secrets: build ## Write secrets to .runtime/secrets (from .env, or Key Vault when AZURE_USE_KEYVAULT=true)
	$(CS) load

verify-secrets: build ## Check files, drift, containers, leaks, health, vault access, audit log
	$(CS) verify

rotate-secret: build ## Rotate one secret: make rotate-secret SECRET=flask-secret-key
	@test -n "$(SECRET)" || { echo "usage: make rotate-secret SECRET=<name>" >&2; exit 2; }
	$(CS) rotate $(SECRET)

rotate-secret-dry: build ## Show the rotation plan without changing anything (SECRET=<name>, default all)
	$(CS) rotate $(if $(SECRET),$(SECRET),--all) --dry-run

sync-secrets: build ## Apply versions set elsewhere (another host, the portal), restarting their users
	$(CS) sync

image: ## Build the FROM-scratch image of compose-secrets itself (compose-secrets:latest)
	scripts/build-image.sh

dist: ## Release files in target/dist: x86_64 and aarch64 tarballs, .debs, SBOMs, SHA256SUMS (DIST_AARCH64=0: x86_64 only)
	scripts/dist.sh

dist-check: ## Check target/dist: checksums, .debs, x86_64 in FROM scratch, aarch64 under qemu-user, SBOMs
	scripts/dist-check.sh

demo-image: ## Build the FROM-scratch demo image (compose-secrets-demo:latest)
	scripts/build-demo-image.sh

skip-demo-image:
	@echo "SKIPPED (COMPOSE_SECRETS_SKIP_DOCKER=1): the demo image (make demo-image)"

quickstart: build demo-image ## Demo end to end: image, then docker compose up -d (its provider loads the secrets), health
	$(if $(PROVIDER_OK),,@echo "$(COMPOSE) is older than 2.36: compose-secrets ensure and load first, then compose.legacy.yaml")
	$(if $(PROVIDER_OK),,$(CS) ensure && $(CS) load)
	$(DEMO_COMPOSE) up -d
	@port="$$(scripts/demo-port.sh)" && \
	  scripts/wait-for-health.sh "http://127.0.0.1:$$port/health" 60 && \
	  echo "Demo is up (as $(DEMO_UID):$(DEMO_GID)): curl -s http://127.0.0.1:$$port/health"

.PHONY: man
man: build ## The man page: target/man/compose-secrets.1 (read it with man -l)
	@mkdir -p target/man
	$(CS) debug man > target/man/compose-secrets.1.tmp
	@mv target/man/compose-secrets.1.tmp target/man/compose-secrets.1
	@echo "man -l target/man/compose-secrets.1"

quickstart-sidecar: export PWD := $(CURDIR)
quickstart-sidecar: image demo-image ## Demo with `sync --watch` as a Compose service beside the provider (Compose 2.36+)
	@test -n "$(PROVIDER_OK)" || { echo "quickstart-sidecar needs Compose 2.36+ (provider services); $(COMPOSE) is older" >&2; exit 2; }
	PATH="$(CURDIR)/target/debug:$$PATH" $(COMPOSE) -f compose.yaml -f compose.sidecar.yaml up -d
	@port="$$(scripts/demo-port.sh)" && \
	  scripts/wait-for-health.sh "http://127.0.0.1:$$port/health" 60 && \
	  echo "Demo is up (secrets loaded by the provider, followed by secrets-sync): curl -s http://127.0.0.1:$$port/health"

down: ## Stop the demo stack (the secret files stay)
	$(DEMO_COMPOSE) down --remove-orphans

emulator: build ## Run the HTTPS Key Vault emulator in the foreground (state in .runtime/emulator)
	$(EMULATOR) --persist $(EMULATOR_ARGS)

test: bootstrap build $(TEST_IMAGE) ## The full test suite: unit, integration, emulator and Docker tests
	$(WITH_TOOLS) $(CARGO) nextest run --workspace --no-fail-fast

test-fast: bootstrap build ## Tests without Docker (prints which were skipped)
	COMPOSE_SECRETS_SKIP_DOCKER=1 $(WITH_TOOLS) $(CARGO) nextest run --workspace --no-fail-fast

test-nonroot: bootstrap build ## The owner-related tests again as an unprivileged user (run as root; uses setpriv)
	$(WITH_TOOLS) scripts/test-nonroot.sh

stress: bootstrap build $(TEST_IMAGE) ## Long reliability runs: crash consistency, faults, fuzzing, a mutation shard
	$(WITH_TOOLS) scripts/stress.sh

mutants: bootstrap ## Mutation testing (MODULES="sync rotation ..."; MUTANTS_SHARD=k/N or next/N; hours)
	$(WITH_TOOLS) MUTANTS_SHARD="$(MUTANTS_SHARD)" scripts/mutants.sh $(MODULES)

mutants-diff: bootstrap ## Mutation testing of only the lines of src/ a change touched, against main (BASE=main)
	$(WITH_TOOLS) scripts/mutants.sh --diff $(or $(BASE),main)

bench: bootstrap ## Benchmarks side by side with the peers; writes target/bench/*.md
	$(WITH_TOOLS) scripts/bench.sh

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Clippy with warnings as errors (no dead code: modules are pub(crate)); no import cycle; no function over 80 lines; one TLS crypto provider (ring) in the product's tree
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@# The library alone, without the `testing` feature: with every module pub(crate), the
	@# dead_code lint reports what the product does not use.
	$(CARGO) clippy -p compose-secrets --lib -- -D warnings
	python3 scripts/import-cycles.py src
	python3 scripts/function-lengths.py src
	@if $(CARGO) tree -e normal -p compose-secrets -i aws-lc-sys >/dev/null 2>&1; then \
	  echo "lint: aws-lc-sys is in the product's dependency tree beside ring (cargo tree -e normal -i aws-lc-sys)" >&2; exit 1; \
	else echo "lint: one TLS crypto provider in the product (ring; no aws-lc-sys)"; fi

ci: bootstrap ## What CI runs: fmt --check, clippy -D warnings, the tests
	$(CARGO) fmt --all -- --check
	$(MAKE) lint
	$(MAKE) test
	$(MAKE) test-nonroot

clean: ## Remove build output and runtime state (not .env)
	$(CARGO) clean
	rm -rf .runtime
