"""The streaming pipeline: stages overlap, barge-in stops a reply, deadlines name the slow stage."""

from __future__ import annotations

import itertools
import queue
import re
import time
import urllib.request

import grpc
import numpy as np
import pytest

from services.common.registry import STAGES
from stack.local import Stack
from talker.v1 import gateway_pb2, gateway_pb2_grpc
from tests.system.conftest import PORT_OFFSET

STORYTELLER = gateway_pb2.SessionConfig(
    system_prompt="You are a storyteller. Always answer with a story of at least five sentences.",
    max_reply_tokens=160)


def metric(url: str, name: str, **labels) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        if all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
            total += float(m.group(3))
    return total


def wait_for(predicate, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_audio_and_frames_arrive_before_the_llm_finishes(gateway):
    events = list(gateway.Ask(gateway_pb2.AskRequest(text="Tell me a story about a brave little cat.",
                                                     config=STORYTELLER), timeout=240))
    kinds = [e.WhichOneof("event") for e in events]
    last_token = max(i for i, k in enumerate(kinds) if k == "reply_text")
    summary = events[-1].summary
    tts_calls = next(st.calls for st in summary.stages if st.stage == "tts")
    assert tts_calls >= 3, f"expected several sentences, got {summary.reply!r}"
    assert kinds.index("audio") < last_token, "the first audio waited for the whole reply"
    assert kinds.index("frame") < last_token, "the first frame waited for the whole reply"
    assert summary.time_to_first_frame_seconds < summary.turn_seconds * 0.8


def test_frames_cover_the_audio_with_no_gaps(gateway):
    events = list(gateway.Ask(gateway_pb2.AskRequest(text="Say something cheerful."), timeout=240))
    audio = [e.audio for e in events if e.WhichOneof("event") == "audio"]
    frames = [e.frame for e in events if e.WhichOneof("event") == "frame"]
    fps = events[-1].summary.fps
    # audio chunks are contiguous on the turn's clock
    for a, b in itertools.pairwise(audio):
        assert b.pts == pytest.approx(a.pts + len(a.pcm) / 2 / a.sample_rate, abs=1e-6)
    duration = audio[-1].pts + len(audio[-1].pcm) / 2 / audio[-1].sample_rate
    pts = np.array([f.pts for f in frames])
    assert pts[0] == 0.0
    assert np.max(np.diff(pts)) <= 2 / fps + 1e-6, "a gap of more than two frames"
    assert pts[-1] + 1 / fps >= duration - 1 / fps, "the frames stop before the audio"
    assert pts[-1] < duration + 1 / fps, "frames run past the audio"


def test_barge_in_stops_the_first_reply_and_answers_the_second(stack, gateway):
    llm_metrics = stack.services["llm"].metrics_url
    cancelled_before = metric(llm_metrics, "talker_llm_request_success_total", finished_reason="cancelled")
    first_audio = queue.Queue()

    def requests():
        yield gateway_pb2.ConverseRequest(config=gateway_pb2.SessionConfig(max_reply_tokens=200))
        yield gateway_pb2.ConverseRequest(text="Tell me a long story about a dragon who learns to sing.")
        first_audio.get(timeout=120)  # speak over the reply as soon as it starts playing
        yield gateway_pb2.ConverseRequest(text="What colour is the sky?")

    events = []
    for ev in gateway.Converse(requests(), timeout=240):
        events.append(ev)
        if ev.turn == 1 and ev.WhichOneof("event") == "audio" and first_audio.empty():
            first_audio.put(True)
    summaries = {e.turn: e.summary for e in events if e.WhichOneof("event") == "summary"}
    assert summaries[1].cancelled, "the first turn was not reported as stopped"
    assert not summaries[2].cancelled and summaries[2].reply
    # nothing of turn 1 arrives after turn 2 has begun
    first_of_2 = next(i for i, e in enumerate(events) if e.turn == 2)
    assert all(e.turn == 2 for e in events[first_of_2:])
    # The stages saw the cancellation and nothing keeps running.
    assert wait_for(lambda: metric(llm_metrics, "talker_llm_request_success_total",
                                   finished_reason="cancelled") > cancelled_before)
    assert wait_for(lambda: metric(llm_metrics, "talker_llm_num_requests_running") == 0)
    assert wait_for(lambda: metric(stack.services["animator"].metrics_url, "talker_animator_active_streams") == 0)


def test_cancel_message_stops_the_turn_and_the_session_goes_on(gateway):
    started = queue.Queue()

    def requests():
        yield gateway_pb2.ConverseRequest(config=gateway_pb2.SessionConfig(max_reply_tokens=200))
        yield gateway_pb2.ConverseRequest(text="Tell me everything you know about volcanoes.")
        started.get(timeout=120)
        yield gateway_pb2.ConverseRequest(cancel=gateway_pb2.Cancel())
        yield gateway_pb2.ConverseRequest(text="Thanks, bye!")

    events = []
    for ev in gateway.Converse(requests(), timeout=240):
        events.append(ev)
        if ev.WhichOneof("event") == "reply_text" and started.empty():
            started.put(True)
    summaries = {e.turn: e.summary for e in events if e.WhichOneof("event") == "summary"}
    assert summaries[1].cancelled and not summaries[2].cancelled


@pytest.fixture(scope="module")
def slow_tts_gateway(stack, tmp_path_factory):
    """A second gateway whose TTS stage answers only after 5 s (fault injection)."""
    offset = PORT_OFFSET + 100
    targets = {f"TALKER_GATEWAY_{s.upper()}_TARGET": stack.services[s].target for s in STAGES if s != "tts"}
    slow = Stack(run_dir=tmp_path_factory.mktemp("slow"), port_offset=offset,
                 service_env={"tts": {"TALKER_FAULT_DELAY_SECONDS": "5"}, "gateway": targets})
    slow.start(("tts", "gateway"))
    try:
        slow.wait_serving(120, names=("tts", "gateway"))
        with grpc.insecure_channel(slow.services["gateway"].target) as ch:
            yield gateway_pb2_grpc.GatewayServiceStub(ch)
    finally:
        slow.stop(("gateway", "tts"))


def test_a_slow_stage_fails_the_turn_with_deadline_exceeded_naming_it(slow_tts_gateway):
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        list(slow_tts_gateway.Ask(gateway_pb2.AskRequest(text="Hello there."), timeout=3))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert err.value.details().startswith("tts:"), err.value.details()
    assert time.monotonic() - t0 < 4, "the turn did not end at its deadline"
