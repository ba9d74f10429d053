# Observability extras: the capacity benchmark (docs/capacity.md), run by `make bench`.
# Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_observability_default_goal := $(.DEFAULT_GOAL)

BENCH_EXTRA += bench-capacity

.PHONY: bench-capacity

# Each stage's CPU-seconds per turn and per audio second -> out/bench/capacity.md and docs/capacity.md.
bench-capacity: $(VENV)/dev/.installed
	$(VENV)/dev/bin/python -m bench.capacity

.DEFAULT_GOAL := $(_observability_default_goal)
