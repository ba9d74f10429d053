"""Hands-free Converse sessions (turn_detection SERVER) through the five real services: speech made
by Piper at test time and streamed in real time as a microphone would."""

from __future__ import annotations

import queue
import time

import grpc
import numpy as np
import pytest

from services.common.audio import float_to_pcm16, resample
from talker.v1 import gateway_pb2
from tests.spoken import CHUNK_SECONDS, RATE, concat, noise, realtime_chunks, silence, trimmed, wav_to_16k
from tests.system.test_streaming import metric, wait_for
from tests.wer import wer

pytestmark = pytest.mark.system

HANDS_FREE = gateway_pb2.SessionConfig(turn_detection=gateway_pb2.TURN_DETECTION_SERVER, max_reply_tokens=24)


@pytest.fixture(scope="module")
def piper(stack):
    return lambda text: trimmed(wav_to_16k(stack.speak(text)))


def converse(gateway, chunks, config=HANDS_FREE):
    def requests():
        yield gateway_pb2.ConverseRequest(config=config)
        for pcm in chunks:
            yield gateway_pb2.ConverseRequest(audio=pcm)

    return list(gateway.Converse(requests(), timeout=300))


def of_kind(events, kind):
    return [e for e in events if e.WhichOneof("event") == kind]


def test_two_questions_make_two_turns(gateway, piper):
    questions = ("What is the capital of France?", "How many legs does a spider have?")
    audio = concat(silence(0.5), piper(questions[0]), silence(1.5), piper(questions[1]), silence(2.0))
    events = converse(gateway, realtime_chunks(audio))
    # Every turn ends with a summary (turn 1's may say it was stopped by the second question).
    transcripts = {e.turn: e.summary.transcript for e in of_kind(events, "summary")}
    assert sorted(transcripts) == [1, 2], transcripts
    # each heard right within one misheard word (Piper's voice varies per run)
    assert all(wer(q, transcripts[n]) <= 0.2 for n, q in enumerate(questions, 1)), transcripts
    ends = of_kind(events, "end_of_turn")
    assert [e.turn for e in ends] == [1, 2]
    assert all(e.end_of_turn.reason in (gateway_pb2.END_OF_TURN_REASON_SEMANTIC,
                                        gateway_pb2.END_OF_TURN_REASON_SILENCE_CAP) for e in ends)
    assert [e.turn for e in of_kind(events, "speech_started")] == [1, 2]
    assert of_kind(events, "partial_transcript"), "no live captions"
    # Each turn's events come in order: speech started, end of turn, transcript; its summary counts
    # from the end of speech, the endpointing wait included.
    for n in (1, 2):
        kinds = [e.WhichOneof("event") for e in events if e.turn == n]
        assert kinds.index("speech_started") < kinds.index("end_of_turn") < kinds.index("summary")
    summary = {e.turn: e.summary for e in of_kind(events, "summary")}[2]
    assert not summary.cancelled and summary.reply
    assert 0 < summary.end_of_turn_delay_seconds <= summary.time_to_transcript_seconds < summary.turn_seconds


def test_a_pause_in_mid_sentence_stays_one_turn(gateway, piper):
    audio = concat(silence(0.5), piper("I would like to know the capital of"), silence(0.4),
                   piper("France."), silence(2.5))
    events = converse(gateway, realtime_chunks(audio))
    transcripts = [e.transcript.text for e in of_kind(events, "transcript")]
    assert len(transcripts) == 1, transcripts
    assert wer("I would like to know the capital of France", transcripts[0]) <= 0.15, transcripts


def test_background_noise_starts_no_turn(gateway):
    events = converse(gateway, realtime_chunks(noise(3.0)))
    assert events == []


def test_a_48k_microphone_is_heard(gateway, piper):
    audio = resample(concat(silence(0.3), piper("Where do penguins live?"), silence(2.0)), RATE, 48000)
    config = gateway_pb2.SessionConfig(turn_detection=gateway_pb2.TURN_DETECTION_SERVER, max_reply_tokens=8,
                                       input_sample_rate=48000)
    events = converse(gateway, realtime_chunks(audio, rate=48000), config)
    heard = [e.transcript.text for e in of_kind(events, "transcript")]
    assert len(heard) == 1 and wer("Where do penguins live?", heard[0]) <= 0.25, heard  # one word of four at most


def test_speech_over_the_reply_stops_it_and_is_answered(stack, gateway, piper):
    first_reply = queue.Queue()
    speech_began = []
    question, interruption = piper("Tell me a long story about a dragon."), piper("Which city is the capital of Italy?")
    llm, animator = stack.services["llm"].metrics_url, stack.services["animator"].metrics_url
    cancelled_before = metric(llm, "talker_llm_request_success_total", finished_reason="cancelled")
    animations_cancelled_before = metric(animator, "grpc_server_handled_total", grpc_code="Canceled")

    def microphone():
        yield from realtime_chunks(concat(silence(0.5), question))
        quiet = float_to_pcm16(silence(CHUNK_SECONDS))
        deadline = time.monotonic() + 120
        while first_reply.empty() and time.monotonic() < deadline:  # the room is quiet until the avatar speaks
            time.sleep(CHUNK_SECONDS)
            yield quiet
        speech_began.append(time.monotonic())
        yield from realtime_chunks(concat(interruption, silence(2.5)))

    def requests():
        yield gateway_pb2.ConverseRequest(config=gateway_pb2.SessionConfig(
            turn_detection=gateway_pb2.TURN_DETECTION_SERVER, max_reply_tokens=200,
            system_prompt="You are a storyteller. Always answer with a story of at least five sentences."))
        for pcm in microphone():
            yield gateway_pb2.ConverseRequest(audio=pcm)

    events, arrived = [], []
    for ev in gateway.Converse(requests(), timeout=300):
        events.append(ev)
        arrived.append(time.monotonic())
        if ev.turn == 1 and ev.WhichOneof("event") == "audio" and first_reply.empty():
            first_reply.put(True)
    barge = [e for e in of_kind(events, "speech_started") if e.speech_started.barge_in]
    assert [e.turn for e in barge] == [2]
    stopped = next(i for i, e in enumerate(events) if e.turn == 1 and e.WhichOneof("event") == "summary")
    assert events[stopped].summary.cancelled
    # Stopped within 0.5 s of the start of the interruption (the speech must last 0.2 s to count).
    assert arrived[stopped] - speech_began[0] <= 0.5, arrived[stopped] - speech_began[0]
    second = {e.turn: e.summary for e in of_kind(events, "summary")}[2]
    assert not second.cancelled and second.reply
    assert wer("Which city is the capital of Italy?", second.transcript) <= 0.2, second.transcript
    assert wait_for(lambda: metric(llm, "talker_llm_request_success_total",
                                   finished_reason="cancelled") > cancelled_before)
    assert wait_for(lambda: metric(animator, "grpc_server_handled_total", grpc_code="Canceled")
                    > animations_cancelled_before)
    assert metric(stack.services["gateway"].metrics_url, "talker_gateway_barge_ins_total") >= 1


def test_end_of_turn_is_refused_in_a_hands_free_session(gateway):
    def requests():
        yield gateway_pb2.ConverseRequest(config=HANDS_FREE)
        yield gateway_pb2.ConverseRequest(audio=float_to_pcm16(np.zeros(320, np.float32)))
        yield gateway_pb2.ConverseRequest(end_of_turn=gateway_pb2.EndOfTurn())

    with pytest.raises(grpc.RpcError) as err:
        list(gateway.Converse(requests(), timeout=60))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "end_of_turn" in err.value.details()


def test_talker_converse_plays_a_recording_as_a_microphone(stack, piper, tmp_path):
    import json
    import subprocess
    import sys

    from services.common.audio import write_wav
    from stack.process import ROOT

    wav = tmp_path / "talk.wav"
    wav.write_bytes(write_wav(concat(silence(0.3), piper("What is the capital of France?"), silence(1.5),
                                     piper("How many legs does a spider have?")), RATE))
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "converse", "--wav", str(wav), "--json",
                          "--max-reply-tokens", "8", "--trailing-silence", "2.5",
                          "--target", stack.services["gateway"].target],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    turns = [json.loads(line) for line in run.stdout.splitlines()]
    # Exactly two turns, each heard right (Piper's voice varies per run: one misheard word of six is allowed).
    errors = [wer(q, t["transcript"]) for q, t in zip(
        ("What is the capital of France?", "How many legs does a spider have?"), turns, strict=True)]
    assert all(e <= 0.2 for e in errors), (errors, [t["transcript"] for t in turns])
    assert all("end_of_turn_delay_seconds" in t and "time_to_first_frame_seconds" in t for t in turns), turns
    assert not turns[-1]["cancelled"] and turns[-1]["end_of_turn_delay_seconds"] > 0
