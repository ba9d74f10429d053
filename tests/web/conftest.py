"""The browser tests: the real stack, the web service as a process, headless Chromium driving the page.

They run in .venv/web (aiohttp, aiortc, selenium); `make test-web` installs Chromium from Debian.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from stack.process import ROOT, free_port, venv_dir
from tests.system.conftest import otlp, stack  # noqa: F401 - the shared stack fixtures
from tests.web.chromium import chromium, close, join_wavs, with_silence

QUESTION = "What is the capital of France?"
LEAD_SECONDS = 1.0  # silence before the question in the fake microphone's WAV
# From the end of the first utterance to the interruption: well before the end of the reply, which the
# three-sentence budget keeps to ~8 s of audio (12 s let a fast machine finish it first). On a slow machine
# the interruption may come before the reply's first frame: the test accepts that cancellation too.
BARGE_IN_GAP = 6.0


class WebService:
    def __init__(self, gateway_target: str, log: Path, **env: str):
        self.port, self.metrics_port = free_port(), free_port()
        full = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", TALKER_WEB_HOST="127.0.0.1",
                    TALKER_WEB_PORT=str(self.port), TALKER_WEB_METRICS_HOST="127.0.0.1",
                    TALKER_WEB_METRICS_PORT=str(self.metrics_port), TALKER_WEB_GATEWAY_TARGET=gateway_target)
        full.update(env)
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([str(venv_dir() / "web" / "bin" / "python"), "-m", "web"], cwd=ROOT, env=full,
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"web did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def web_service(stack, otlp, tmp_path_factory):  # noqa: F811
    """Hands-free (the gateway finds the end of each turn), at most two browser sessions; its spans go to
    the stack's trace receiver."""
    yield from _web_service(stack, tmp_path_factory, "web", TALKER_WEB_MAX_SESSIONS="2",
                            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp.port}",
                            OTEL_EXPORTER_OTLP_INSECURE="true", OTEL_BSP_SCHEDULE_DELAY="200")


@pytest.fixture(scope="session")
def ptt_web_service(stack, tmp_path_factory):  # noqa: F811
    """Push-to-talk: the page's Talk and Send buttons delimit each turn."""
    yield from _web_service(stack, tmp_path_factory, "web-ptt", TALKER_WEB_TURN_DETECTION="client")


def _web_service(stack, tmp_path_factory, name: str, **env: str):  # noqa: F811
    svc = WebService(stack.services["gateway"].target, tmp_path_factory.mktemp(name) / "web.log", **env)
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def question_wav(stack, tmp_path_factory):  # noqa: F811
    """The question spoken by the stack's TTS, after a second of silence: (path, end of speech in seconds)."""
    wav = stack.speak(QUESTION)
    with wave.open(io.BytesIO(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    path = tmp_path_factory.mktemp("wav") / "question.wav"
    path.write_bytes(with_silence(wav, LEAD_SECONDS, 1.0))
    return path, LEAD_SECONDS + seconds


@pytest.fixture(scope="session")
def barge_in_wav(stack, tmp_path_factory):  # noqa: F811
    """A request for a long answer, then, while it plays, a second question: (path, second question)."""
    first = stack.speak("Tell me a long story about a brave knight and a dragon.")
    second = "Which city is the capital of Italy?"
    path = tmp_path_factory.mktemp("wav") / "barge-in.wav"
    path.write_bytes(join_wavs(with_silence(first, LEAD_SECONDS, BARGE_IN_GAP),
                               with_silence(stack.speak(second), 0, 4)))
    return path, second


@pytest.fixture
def browser():
    """Opens headless Chromium pages with a fake microphone playing a WAV; leaves and quits them afterwards."""
    drivers = []

    def open_(url: str, wav: Path):
        drivers.append(chromium(url, wav))
        return drivers[-1]

    yield open_
    for d in drivers:
        close(d)


def wait_for(driver, script: str, timeout: float, what: str):
    """Polls ``return <script>`` in the page until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        if time.monotonic() > deadline:
            state = driver.execute_script("return [talker.state, talker.message, talker.transport]")
            raise AssertionError(f"{what}: not within {timeout:.0f} s (page state {state})")
        time.sleep(0.1)


# The default portrait's mouth in the page's 64x64 grey samples (talker.sample()): rows, columns.
MOUTH = (slice(27, 37), slice(25, 40))


def picture_change(samples: list[list[int]], region=(slice(None), slice(None))) -> float:
    """The largest mean absolute difference, within ``region``, between any two grey samples and the first."""
    arr = np.asarray(samples, np.float32).reshape(len(samples), 64, 64)[:, region[0], region[1]]
    return float(np.abs(arr[1:] - arr[0]).mean(axis=(1, 2)).max())
