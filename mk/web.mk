# The web service (the browser edge): its environment, the browser tests in headless Chromium, and its
# benchmark. Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_web_default_goal := $(.DEFAULT_GOAL)

TEST_EXTRA += test-web
BENCH_EXTRA += bench-web

.PHONY: chromium test-web bench-web

# .venv/web is built by the Makefile's rule for every service (the registry lists web): web/requirements.txt,
# then selenium and pytest for the browser tests.
EXTRA_REQS_web := web/requirements-test.txt requirements-test.txt
AFTER_web = $(VENV)/web/bin/pip install $(PIP_FLAGS) -r web/requirements-test.txt -r requirements-test.txt

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
