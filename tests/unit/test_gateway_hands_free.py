"""The hands-free input mode (gateway/hands_free.py) over the fake stages: the fake ASR's Listen sends
scripted turn events when it receives marked audio chunks."""

from __future__ import annotations

import pytest

from talker.v1 import asr_pb2, gateway_pb2
from tests.fake_stages import Script
from tests.unit.test_gateway_turn import HOUR, Client, gateway, is_summary, kinds, metric, run

pytestmark = pytest.mark.timeout(10)

HANDS_FREE = gateway_pb2.SessionConfig(turn_detection=gateway_pb2.TURN_DETECTION_SERVER)
SPEECH, PAUSE, END = b"\x01\x00" * 4, b"\x02\x00" * 4, b"\x03\x00" * 4


def started(offset: float = 1.0):
    return asr_pb2.ListenResponse(speech_started=asr_pb2.ListenSpeechStarted(audio_offset_seconds=offset))


def partial(text: str, at_pause: bool):
    return asr_pb2.ListenResponse(partial=asr_pb2.ListenPartial(text=text, at_pause=at_pause))


def turn_end(text: str):
    return asr_pb2.ListenResponse(turn_end=asr_pb2.ListenTurnEnd(
        reason=asr_pb2.TURN_END_REASON_SEMANTIC, text=text, speech_end_offset_seconds=0.0, delay_seconds=0.2,
        completion_probability=0.9))


def script(pause_text: str, final_text: str, **kw) -> Script:
    return Script(listen={SPEECH: [started(), partial("What is", False)], PAUSE: [partial(pause_text, True)],
                          END: [turn_end(final_text)]}, **kw)


async def spoken_turn(stub) -> list[gateway_pb2.ConverseResponse]:
    """A hands-free session in which the user speaks, pauses and ends one turn; its events."""
    client = Client(stub, HANDS_FREE)
    for chunk in (SPEECH, PAUSE, END):
        client.send(audio=chunk)
    events = await client.until(is_summary(1))
    client.close()
    return events


def test_a_turn_found_by_the_asr_keeps_the_llm_call_started_at_the_pause():
    async def main():
        async with gateway(script("What is the weather like?", "What is the weather like?")) as (stub, record, reg):
            events = await spoken_turn(stub)
            assert kinds(events)[:3] == ["speech_started", "partial_transcript", "partial_transcript"]
            assert kinds(events).index("end_of_turn") < kinds(events).index("transcript")
            end = next(e.end_of_turn for e in events if e.WhichOneof("event") == "end_of_turn")
            assert end.reason == gateway_pb2.END_OF_TURN_REASON_SEMANTIC and end.completion_probability > 0.8
            summary = events[-1].summary
            assert summary.transcript == "What is the weather like?" and summary.reply == "It is sunny. Take a hat."
            assert summary.end_of_turn_delay_seconds > 0
            assert record.calls["llm"] == 1  # the preemptive call was the turn's
            assert metric(reg, "talker_gateway_preemptive_generations_total", result="hit") == 1
            assert metric(reg, "talker_gateway_preemptive_generations_total", result="miss") == 0

    run(main())


def test_a_final_transcript_unlike_the_pause_discards_the_early_llm_call():
    async def main():
        async with gateway(script("What is the", "What is the weather like?")) as (stub, record, reg):
            events = await spoken_turn(stub)
            assert events[-1].summary.transcript == "What is the weather like?"
            # The turn asked the LLM again, on the final transcript (the early call may have been cancelled
            # before the fake saw it).
            assert record.llm_requests[-1].messages[-1].content == "What is the weather like?"
            assert events[-1].summary.reply == "It is sunny. Take a hat."
            assert metric(reg, "talker_gateway_preemptive_generations_total", result="miss") == 1
            assert metric(reg, "talker_gateway_preemptive_generations_total", result="hit") == 0

    run(main())


def test_speech_while_a_reply_plays_stops_it():
    async def main():
        async with gateway(script("Stop.", "Stop.", delay={"llm": HOUR})) as (stub, record, reg):
            client = Client(stub, HANDS_FREE)
            client.send(text="Tell me a story.")
            await client.until(lambda e: e.WhichOneof("event") == "transcript")
            client.send(audio=SPEECH)
            events = await client.until(is_summary(1))
            assert events[-1].summary.cancelled
            barge = await client.until(lambda e: e.WhichOneof("event") == "speech_started")
            assert barge[-1].speech_started.barge_in and barge[-1].turn == 2
            assert metric(reg, "talker_gateway_barge_ins_total") == 1
            assert "llm" in record.cancelled
            client.close()

    run(main())


def test_end_of_turn_is_refused_in_a_hands_free_session():
    async def main():
        async with gateway(Script()) as (stub, _, _):
            client = Client(stub, HANDS_FREE)
            client.send(end_of_turn=gateway_pb2.EndOfTurn())
            with pytest.raises(Exception) as err:
                await client.until(lambda e: False)
            assert "end_of_turn" in str(err.value) and "INVALID_ARGUMENT" in str(err.value)

    run(main())
