# Animator extras: the lip-sync check on real output frames, and the animator benchmark.
# Both run in the animator environment (MediaPipe).

.PHONY: test-animator-lipsync bench-animator animator-showcase

TEST_EXTRA += test-animator-lipsync
BENCH_EXTRA += bench-animator

test-animator-lipsync: $(VENV)/animator/.installed
	PYTHONPATH=. $(VENV)/animator/bin/python -m pytest -q -p no:cacheprovider tests/system/test_animator_lipsync.py

bench-animator: $(VENV)/animator/.installed
	mkdir -p out/bench
	PYTHONPATH=. $(VENV)/animator/bin/python -m bench.animator

# Regenerates docs/animator/contact_sheet.png and docs/animator/talking.mp4 from the renderer.
animator-showcase: $(VENV)/animator/.installed
	PYTHONPATH=. $(VENV)/animator/bin/python -m services.animator.showcase
