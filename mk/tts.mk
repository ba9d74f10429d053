# The TTS service's optional parts: the Coqui TTS backend's environment (the service's GPU/production
# image variant), its tests, and the TTS benchmark.
# Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_tts_default_goal := $(.DEFAULT_GOAL)

TTS_COQUI := $(VENV)/tts-coqui

SETUP_EXTRA += $(TTS_COQUI)/.installed
TEST_EXTRA += test-tts-coqui
BENCH_EXTRA += bench-tts

.PHONY: test-tts-coqui bench-tts

# coqui-tts 0.28 on torch 2.9.1 + torchaudio 2.9 (~7.6 GB, several minutes); torchcodec links Debian's
# ffmpeg libraries. The lock is the full environment, the gRPC runtime included.
$(TTS_COQUI)/.installed: services/tts/requirements-coqui.txt
	@command -v ffmpeg >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq ffmpeg >/dev/null; }
	rm -rf $(TTS_COQUI) && $(PY) -m venv $(TTS_COQUI)
	$(TTS_COQUI)/bin/pip install $(PIP_LOCKED) -r $<
	touch $@

# The service on a tiny random Coqui VITS built at test time (pytest from .venv/dev starts the service
# from .venv/tts-coqui on free ports).
test-tts-coqui: $(TTS_COQUI)/.installed $(VENV)/dev/.installed
	TALKER_TEST_TTS_COQUI=1 $(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider tests/system/test_tts_coqui.py

# Piper and Coqui on the same sentences: time to first audio and real-time factor -> out/bench/tts.md.
bench-tts: $(VENV)/tts/.installed $(TTS_COQUI)/.installed $(VENV)/dev/.installed
	$(VENV)/dev/bin/python bench/tts.py --out out/bench/tts.md

.DEFAULT_GOAL := $(_tts_default_goal)
