# Animator extras: the lip-sync checks on real output frames (audio energy; phoneme timing,
# bilabial closures and identity on the decoded MP4), and the animator benchmark.
# Both run in the animator environment (MediaPipe).

.PHONY: test-animator-lipsync bench-animator animator-showcase

TEST_EXTRA += test-animator-lipsync
BENCH_EXTRA += bench-animator

# The phoneme test runs the TTS service (Piper, .venv/tts) for real speech with its alignment.
test-animator-lipsync: $(VENV)/animator/.installed $(VENV)/tts/.installed
	PYTHONPATH=. $(VENV)/animator/bin/python -m pytest -q -p no:cacheprovider tests/system/test_animator_lipsync.py \
		tests/system/test_animator_face.py

bench-animator: $(VENV)/animator/.installed
	mkdir -p out/bench
	PYTHONPATH=. $(VENV)/animator/bin/python -m bench.animator

# Regenerates docs/animator/contact_sheet.png and docs/animator/talking.mp4 from the renderer.
animator-showcase: $(VENV)/animator/.installed
	PYTHONPATH=. $(VENV)/animator/bin/python -m services.animator.showcase
