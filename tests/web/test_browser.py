"""The page in headless Chromium against the real stack: a spoken question, the avatar's answer."""

from __future__ import annotations

import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from stack.process import metric_sum
from tests.web.chromium import close
from tests.web.conftest import MOUTH, QUESTION, ROOT, picture_change, wait_for
from tests.wer import wer

TRANSPORTS = ["ws", "webrtc"]


def ask_push_to_talk(driver, speech_end: float):
    """Push-to-talk: Send once the fake microphone has played the question."""
    wait_for(driver, "talker.state === 'listening'", 60, "the page listening")
    wait_for(driver, f"performance.now() - talker.micStartedAt > {(speech_end + 0.3) * 1000:.0f}", 30,
             "the question played")
    driver.execute_script("talker.toggleTalk()")


def sample_picture(driver, seconds: float) -> list[list[int]]:
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(driver.execute_script("return talker.sample()"))
        time.sleep(0.08)
    return samples


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_spoken_question_answered_on_the_page(transport, web_service, question_wav, browser, otlp):
    path = question_wav[0]
    page = browser(f"{web_service.url}/?autostart=1&transport={transport}", path)
    # Hands-free: the page only listens; the gateway hears the question end.
    wait_for(page, "talker.state === 'speaking'", 120, "the reply's first frame painted")
    speaking = sample_picture(page, 1.5)
    if transport == "ws":
        (ROOT / "out").mkdir(exist_ok=True)
        page.save_screenshot(str(ROOT / "out" / "web-page.png"))
    turn = wait_for(page, "talker.turns[1] && talker.turns[1].done && talker.turns[1]", 120, "the turn's summary")

    assert page.execute_script("return talker.transport") == transport
    assert wer(QUESTION, turn["transcript"]) <= 0.2, turn["transcript"]
    assert turn["reply"].strip() and not turn["cancelled"]
    assert page.find_element(By.ID, "you").text == turn["transcript"]
    assert page.find_element(By.ID, "reply").text.strip()
    assert 0 < turn["latency"] < 120
    assert page.find_element(By.ID, "latency").text.endswith(" s")
    assert page.execute_script("return talker.replyFramesPainted") >= 10
    assert picture_change(speaking, MOUTH) > 2.0, "the mouth did not move during the reply"
    # Speech from the TTS: WebRTC's totalAudioEnergy (sum of level^2 x seconds) or the page's own sum.
    assert page.execute_script("return talker.audioEnergy") > 1e-3, "the reply audio the page received is silent"
    # The turn's trace continues from the web service's span for this browser session.
    close(page)
    assert turn_under_web_session(otlp, transport), f"no turn span under a {transport} web session's span"


def turn_under_web_session(otlp, transport: str) -> bool:
    """A gateway turn span whose ancestors include the web service's span of a session over ``transport``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        by_id = {s["span_id"]: s for s in otlp.spans}
        for span in by_id.values():
            if span["name"] != "talker.turn" or span["service"] != "talker-gateway":
                continue
            while span["parent_id"] in by_id:
                span = by_id[span["parent_id"]]
                if (span["service"], span["name"]) == ("talker-web", "web session") \
                        and span["attributes"].get("transport") == transport:
                    return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_face_moves_between_turns(transport, web_service, question_wav, browser):
    page = browser(f"{web_service.url}/?autostart=1&transport={transport}", question_wav[0])
    wait_for(page, "talker.state === 'listening'", 60, "the page listening")
    time.sleep(1.0)
    # A frozen picture repeats one bitmap (0.0); the listening face's sway and breathing drift by ~0.6-0.8
    # grey levels in 3 s (measured over both transports), more with a blink.
    assert picture_change(sample_picture(page, 3.0)) > 0.25, "the picture froze while the avatar listens"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_speaking_over_the_avatar_stops_it(transport, web_service, barge_in_wav, browser):
    path, second = barge_in_wav
    # Over WebRTC, headless Chromium's echo canceller mutes the fake microphone while the reply plays
    # (with echo cancellation on, the second question was never heard): the page's headset option.
    options = "&echo_cancellation=0" if transport == "webrtc" else ""
    page = browser(f"{web_service.url}/?autostart=1&transport={transport}{options}", path)
    turn = wait_for(page, "talker.turns[2] && talker.turns[2].done && talker.turns[2]", 180, "the second turn")
    assert wer(second, turn["transcript"]) <= 0.2, turn["transcript"]
    first = page.execute_script("return talker.turns[1]")
    assert first["transcript"]
    # The second question stopped the first reply: on screen (the page cut it off) or, on a slow machine,
    # before its first frame (the gateway cancelled it).
    interrupted = page.execute_script("return talker.interrupted")
    assert 1 in interrupted or first["cancelled"], (interrupted, first)


def test_push_to_talk_barge_in_stops_the_reply(ptt_web_service, question_wav, browser):
    path, speech_end = question_wav
    page = browser(f"{ptt_web_service.url}/?autostart=1&transport=ws", path)
    ask_push_to_talk(page, speech_end)
    wait_for(page, "talker.state === 'speaking'", 120, "the reply's first frame painted")
    page.execute_script("talker.toggleTalk()")  # Talk again while the avatar speaks: a barge-in
    turn = wait_for(page, "talker.turns[1] && talker.turns[1].done && talker.turns[1]", 30, "turn 1 ended")
    wait_for(page, "talker.state !== 'speaking'", 5, "the page stopped speaking")
    # The reply stopped: the gateway cancelled it, or (when the gateway had already made all of a short
    # reply, faster than it plays) the page cut it off and dropped what was still to play.
    interrupted = page.execute_script("return talker.interrupted")
    assert turn["cancelled"] or 1 in interrupted, ("the reply went on after the user spoke", interrupted)


def gateway_sessions(stack) -> float:
    with urllib.request.urlopen(stack.services["gateway"].metrics_url, timeout=5) as resp:
        return metric_sum(resp.read().decode(), "talker_gateway_active_sessions")


def test_busy_at_the_limit_and_closing_releases_the_session(stack, web_service, question_wav, browser):
    before = gateway_sessions(stack)
    pages = [browser(f"{web_service.url}/?autostart=1&transport={t}", question_wav[0]) for t in TRANSPORTS]
    for page in pages:
        wait_for(page, "talker.state === 'listening'", 60, "the page listening")
    assert gateway_sessions(stack) == before + 2
    # The service's limit is two sessions: a third page is told it is busy, over either transport.
    for transport in TRANSPORTS:
        extra = browser(f"{web_service.url}/?autostart=1&transport={transport}", question_wav[0])
        wait_for(extra, "talker.state === 'busy'", 30, f"a busy page over {transport}")
        assert "in use" in extra.find_element(By.ID, "message").text
    assert metric_sum(web_service.metrics(), "talker_web_rejected_sessions_total", reason="limit") >= 2
    # Leaving the pages ends their gateway sessions.
    for page in pages:
        page.get("about:blank")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (gateway_sessions(stack) != before
                                           or metric_sum(web_service.metrics(), "talker_web_active_sessions")):
        time.sleep(0.2)
    assert gateway_sessions(stack) == before
    metrics = web_service.metrics()
    assert metric_sum(metrics, "talker_web_active_sessions") == 0
    assert metric_sum(metrics, "talker_web_sessions_total", transport="webrtc") >= 1
