# Reliability and security extras: the dependency vulnerability audit (run by `make lint`)
# and the bounded soak (run by `make bench`).
# Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_reliability_default_goal := $(.DEFAULT_GOAL)

BENCH_EXTRA += bench-soak

# strict: fail on a known vulnerability AND on any pinned package that could not be audited
#         (pip-audit otherwise passes while having checked nothing);
# warn:   report, never fail; off: skip (e.g. with no route to the vulnerability service).
PIP_AUDIT ?= strict
AUDIT_LOCKS := gateway/requirements.txt requirements-dev.txt requirements-test.txt $(wildcard services/*/requirements*.txt)
SOAK_MINUTES ?= 10
SOAK_SESSIONS ?= 4

.PHONY: audit bench-soak

audit: $(VENV)/dev/.installed
ifeq ($(PIP_AUDIT),off)
	@echo "pip-audit skipped (PIP_AUDIT=off)"
else
	@status=0; for lock in $(AUDIT_LOCKS); do \
		echo "pip-audit $$lock"; \
		$(VENV)/dev/bin/pip-audit -r $$lock --no-deps --disable-pip --progress-spinner off \
			$(if $(filter strict,$(PIP_AUDIT)),--strict) || status=1; \
	done; \
	if [ $$status -ne 0 ] && [ "$(PIP_AUDIT)" = warn ]; then echo "pip-audit: problems above (PIP_AUDIT=warn)"; \
	else exit $$status; fi
endif

# 4 sessions for 10 minutes: zero failed turns, RSS growth <= 10 % after warm-up, constant series
# count -> out/bench/soak.md (collected into docs/benchmarks.md by bench.report).
bench-soak: $(VENV)/dev/.installed
	$(VENV)/dev/bin/python -m bench.soak --minutes $(SOAK_MINUTES) --sessions $(SOAK_SESSIONS) --out out/bench/soak.md

.DEFAULT_GOAL := $(_reliability_default_goal)
