"""Idle video between turns (gateway/idle.py) over the fake stages: when idle frames flow, when they stop
and resume, and that idle and speech frames are asked for on one motion clock and seed."""

from __future__ import annotations

import asyncio

import pytest

from talker.v1 import gateway_pb2
from tests.fake_stages import FPS, Script
from tests.unit.test_gateway_turn import HOUR, Client, gateway, is_summary, kinds, metric, run

pytestmark = pytest.mark.timeout(10)

IDLE = gateway_pb2.SessionConfig(idle_video=True)


def is_idle(e) -> bool:
    return e.WhichOneof("event") == "idle_frame"


def test_idle_frames_flow_between_turns_and_hand_over_to_speech_and_back():
    async def main():
        async with gateway(Script()) as (stub, record, reg):
            client = Client(stub, IDLE)
            before = await client.until(lambda e: is_idle(e) and e.idle_frame.index == 4)
            assert [e.turn for e in before] == [0] * 5
            client.send(text="What is the weather like?")
            turn = await client.until(is_summary(1))
            after = await client.until(is_idle)
            client.close()

            frames = [e for e in turn if e.WhichOneof("event") == "frame"]
            first_audio = kinds(turn).index("audio")
            # No idle frame once the reply's audio (and with it frame 0) has gone out.
            assert "idle_frame" not in kinds(turn)[first_audio:]
            # One clock and one seed for both streams; the reply's video starts where the idle stream was.
            animate, (idle_1, idle_2) = record.animator_configs[-1], record.idle_requests
            assert animate.motion_seed == idle_1.config.motion_seed == idle_2.config.motion_seed != 0
            last_idle = [e for e in before + turn if is_idle(e)][-1].idle_frame
            assert last_idle.pts <= animate.clock_offset_seconds < last_idle.pts + 0.5
            # The idle stream resumes where the reply's video ends (the fake's reply is 0.4 s long).
            video_end = animate.clock_offset_seconds + turn[-1].summary.audio_seconds
            assert frames and turn[-1].summary.audio_seconds == pytest.approx(0.4)
            assert idle_2.start_seconds == pytest.approx(video_end, abs=1.5 / FPS)
            assert after[-1].idle_frame.pts == idle_2.start_seconds and after[-1].turn == 1
            assert idle_2.after_speech and not idle_1.after_speech
            assert metric(reg, "talker_gateway_idle_frames_total", outcome="sent") >= 6
            await asyncio.sleep(0.1)
            assert metric(reg, "talker_gateway_idle_streams") == 0, "the idle stream outlived the session"
            assert "animator" in record.cancelled

    run(main())


def test_a_stopped_reply_hands_back_to_idle_at_once():
    async def main():
        async with gateway(Script(delay={"llm": HOUR})) as (stub, _, _):
            client = Client(stub, IDLE)
            await client.until(is_idle)
            client.send(text="Tell me a story.")
            await client.until(lambda e: e.WhichOneof("event") == "transcript")
            client.send(cancel=gateway_pb2.Cancel())
            await client.until(is_summary(1))
            events = await client.until(is_idle)
            assert events[-1].turn == 1
            client.close()

    run(main())


def test_no_idle_frames_unless_asked():
    async def main():
        async with gateway(Script()) as (stub, record, _):
            client = Client(stub)
            client.send(text="What is the weather like?")
            events = await client.until(is_summary(1))
            client.close()
            assert "idle_frame" not in kinds(events) and not record.idle_requests
            assert record.animator_configs[-1].motion_seed == 0

    run(main())
