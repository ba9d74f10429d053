# Talker: one virtual environment per service, mirroring one container per service.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
SERVICES := asr llm tts animator gateway
PIP_FLAGS := -q --disable-pip-version-check
export OMP_WAIT_POLICY := PASSIVE

# Optional parts (extra backends and their environments) add themselves here:
# mk/<part>.mk appends to SETUP_EXTRA, TEST_EXTRA and BENCH_EXTRA.
SETUP_EXTRA :=
TEST_EXTRA :=
BENCH_EXTRA :=
-include mk/*.mk

.PHONY: help setup promtool proto proto-check dashboard slo-rules up down status demo test lint bench clean

help:
	@echo "make demo   install, start the stack, one turn on the default portrait -> out/reply.mp4"
	@echo "make test   install and run the tests (unit + system, real models, real Prometheus tools)"
	@echo "make setup | up | down | status | proto | proto-check | dashboard | slo-rules | lint | bench"
	@echo "extras: test-llm-vllm bench-llm | test-tts-coqui bench-tts | test-animator-lipsync bench-animator"
	@echo "        animator-showcase | k8s-tools helm-lint k8s k8s-check test-k8s"

# --- environments -----------------------------------------------------------
setup: $(foreach s,$(SERVICES) dev,$(VENV)/$(s)/.installed)

$(VENV)/asr/.installed: services/asr/requirements.txt
	rm -rf $(VENV)/asr && $(PY) -m venv $(VENV)/asr
	$(VENV)/asr/bin/pip install $(PIP_FLAGS) -r $<
	touch $@

$(VENV)/tts/.installed: services/tts/requirements.txt
	rm -rf $(VENV)/tts && $(PY) -m venv $(VENV)/tts
	$(VENV)/tts/bin/pip install $(PIP_FLAGS) -r $<
	touch $@

# llama-cpp-python compiles llama.cpp (~5 min on 2 cores; pip caches the wheel afterwards).
$(VENV)/llm/.installed: services/llm/requirements.txt services/llm/requirements-nodeps.txt
	rm -rf $(VENV)/llm && $(PY) -m venv $(VENV)/llm
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(VENV)/llm/bin/pip install $(PIP_FLAGS) -r $<
	$(VENV)/llm/bin/pip install $(PIP_FLAGS) --no-deps -r services/llm/requirements-nodeps.txt
	touch $@

$(VENV)/animator/.installed: services/animator/requirements.txt requirements-test.txt
	rm -rf $(VENV)/animator && $(PY) -m venv $(VENV)/animator
	$(VENV)/animator/bin/pip install $(PIP_FLAGS) -r $<
	$(VENV)/animator/bin/pip install $(PIP_FLAGS) -r requirements-test.txt  # its unit tests run here
	touch $@

$(VENV)/gateway/.installed: gateway/requirements.txt pyproject.toml
	rm -rf $(VENV)/gateway && $(PY) -m venv $(VENV)/gateway
	$(VENV)/gateway/bin/pip install $(PIP_FLAGS) -r $<
	$(VENV)/gateway/bin/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

# Tests and lint run here: the gateway's dependencies plus the test tools.
$(VENV)/dev/.installed: gateway/requirements.txt requirements-dev.txt requirements-test.txt proto/requirements.txt
	rm -rf $(VENV)/dev $(VENV)/proto && $(PY) -m venv $(VENV)/dev && $(PY) -m venv $(VENV)/proto
	$(VENV)/dev/bin/pip install $(PIP_FLAGS) -r gateway/requirements.txt -r requirements-dev.txt
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
test: setup $(SETUP_EXTRA) promtool proto-check
	$(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/observability \
		--ignore-glob='tests/unit/test_animator_*'
	$(VENV)/animator/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_animator_*.py
	$(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider tests/system
	@for t in $(TEST_EXTRA); do $(MAKE) --no-print-directory $$t || exit 1; done

# Benchmarks on the local machine; results land in docs/benchmarks.md.
bench: setup $(SETUP_EXTRA)
	rm -rf out/bench && mkdir -p out/bench
	$(VENV)/dev/bin/python -m bench.pipeline
	@failed=""; for t in $(BENCH_EXTRA); do $(MAKE) --no-print-directory $$t || failed="$$failed $$t"; done; \
	$(VENV)/dev/bin/python -m bench.report; \
	if [ -n "$$failed" ]; then echo "bench: missed its criteria or failed:$$failed (see docs/benchmarks.md)"; exit 1; fi

lint: $(VENV)/dev/.installed
	$(VENV)/dev/bin/ruff check .
	$(MAKE) --no-print-directory audit

clean:
	rm -rf $(VENV) out

# The parts in mk/ must not change what a bare `make` does.
.DEFAULT_GOAL := help
