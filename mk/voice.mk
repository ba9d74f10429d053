# The voice loop's test needs and its benchmark: espeak-ng (Debian) reads the spoken-question set at two rates in
# tests/system/test_spoken_questions.py, next to Piper.
# Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_voice_default_goal := $(.DEFAULT_GOAL)

SETUP_EXTRA += espeak-ng
BENCH_EXTRA += bench-voice

.PHONY: espeak-ng bench-voice

# ASR models on the spoken-question set, hands-free turns, prompt reuse -> out/bench/voice.md.
bench-voice: espeak-ng $(VENV)/asr/.installed $(VENV)/dev/.installed llm-models
	$(VENV)/dev/bin/python -m bench.voice --profiles quality,fast,fast+tiny.en

espeak-ng:
	@command -v espeak-ng >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq espeak-ng >/dev/null; }

.DEFAULT_GOAL := $(_voice_default_goal)
