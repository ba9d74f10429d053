# The web service (the browser edge): its environment, the browser tests in headless Chromium, and its
# benchmark. Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_web_default_goal := $(.DEFAULT_GOAL)

SETUP_EXTRA += $(VENV)/web/.installed
TEST_EXTRA += test-web
BENCH_EXTRA += bench-web

.PHONY: chromium test-web bench-web

# aiohttp + aiortc, the gateway's gRPC runtime; selenium and pytest for the browser tests.
$(VENV)/web/.installed: web/requirements.txt web/requirements-test.txt requirements-test.txt
	rm -rf $(VENV)/web && $(PY) -m venv $(VENV)/web
	$(VENV)/web/bin/pip install $(PIP_FLAGS) -r web/requirements.txt
	$(VENV)/web/bin/pip install $(PIP_FLAGS) -r web/requirements-test.txt -r requirements-test.txt
	touch $@

# `make up` / `make demo` start the page too (talker up includes it when .venv/web exists).
up: $(VENV)/web/.installed

# Debian's Chromium and its WebDriver (the browser tests drive /usr/bin/chromium).
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# The page over WebSocket and WebRTC against the real stack (started by the tests, from .venv/<service>).
test-web: $(VENV)/web/.installed chromium
	PYTHONPATH=. $(VENV)/web/bin/python -m pytest -q -p no:cacheprovider tests/web

# End of the spoken question to the first avatar frame painted in the browser, per transport.
bench-web: $(VENV)/web/.installed chromium
	mkdir -p out/bench
	PYTHONPATH=. $(VENV)/web/bin/python -m bench.web

.DEFAULT_GOAL := $(_web_default_goal)
