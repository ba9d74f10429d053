"""Hands-free turn detection in the ASR service (AsrService.Listen), on its real models (Silero VAD,
smart-turn, whisper), with speech made by Piper at test time and streamed in real time."""

from __future__ import annotations

import grpc
import pytest

from talker.v1 import asr_pb2, asr_pb2_grpc
from tests.spoken import RATE, concat, noise, realtime_chunks, silence, trimmed, wav_to_16k
from tests.wer import wer

pytestmark = pytest.mark.system


def listen(channel, samples, rate: int = RATE):
    def requests():
        yield asr_pb2.ListenRequest(config=asr_pb2.ListenConfig(sample_rate=rate))
        for pcm in realtime_chunks(samples, rate):
            yield asr_pb2.ListenRequest(audio=pcm)

    return list(asr_pb2_grpc.AsrServiceStub(channel).Listen(requests(), timeout=180))


def turn_ends(events):
    return [e.turn_end for e in events if e.WhichOneof("event") == "turn_end"]


@pytest.fixture(scope="module")
def piper(stack):
    return lambda text: trimmed(wav_to_16k(stack.speak(text)))


def test_two_questions_make_two_turns(channel_to, piper):
    audio = concat(silence(0.5), piper("What is the capital of France?"), silence(1.5),
                   piper("How many legs does a spider have?"), silence(1.5))
    events = listen(channel_to("asr"), audio)
    ends = turn_ends(events)
    # Piper's voice varies per run: each question heard right within one misheard word.
    assert all(wer(ref, e.text) <= 0.2 for ref, e in zip(
        ("What is the capital of France?", "How many legs does a spider have?"), ends, strict=True)), ends
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.count("speech_started") == 2
    assert kinds.index("speech_started") < kinds.index("turn_end")
    for end in ends:
        assert end.reason in (asr_pb2.TURN_END_REASON_SEMANTIC, asr_pb2.TURN_END_REASON_SILENCE_CAP)
        assert 0 < end.delay_seconds <= 1.05
        assert end.speech_start_offset_seconds < end.speech_end_offset_seconds
    # Captions came while the user spoke, and the one at the pause is the final transcript.
    partials = [e.partial for e in events if e.WhichOneof("event") == "partial"]
    assert any(p.at_pause and p.text == ends[0].text for p in partials)


def test_a_pause_in_mid_sentence_stays_one_turn(channel_to, piper):
    audio = concat(silence(0.5), piper("I would like to know the capital of"), silence(0.4),
                   piper("France."), silence(1.5))
    ends = turn_ends(listen(channel_to("asr"), audio))
    assert len(ends) == 1, [e.text for e in ends]
    assert wer("I would like to know the capital of France", ends[0].text) <= 0.15, ends[0].text


def test_background_noise_starts_no_turn(channel_to):
    events = listen(channel_to("asr"), noise(3.0))
    assert events == []


def test_any_input_rate_and_the_stream_end_closes_a_turn(channel_to, piper):
    from services.common.audio import resample

    speech = piper("Where do penguins live?")
    audio = resample(concat(silence(0.3), speech), RATE, 48000)
    ends = turn_ends(listen(channel_to("asr"), audio, rate=48000))
    assert len(ends) == 1 and ends[0].reason == asr_pb2.TURN_END_REASON_STREAM_END
    assert wer("Where do penguins live?", ends[0].text) <= 0.25, ends[0].text  # one word of four at most


def test_bad_listen_input_gets_a_clear_status(channel_to):
    stub = asr_pb2_grpc.AsrServiceStub(channel_to("asr"))
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Listen(iter([asr_pb2.ListenRequest(audio=b"\0\0")]), timeout=30))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "ListenConfig" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Listen(iter([asr_pb2.ListenRequest(config=asr_pb2.ListenConfig(sample_rate=4000))]), timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "4000" in err.value.details()


def transcribe_streamed(channel, samples) -> asr_pb2.TranscribeResponse:
    """Push-to-talk: Transcribe with the audio streamed in real time, as a microphone client sends it."""
    def requests():
        yield asr_pb2.TranscribeRequest(config=asr_pb2.TranscribeConfig(sample_rate=RATE))
        for pcm in realtime_chunks(samples, RATE):
            yield asr_pb2.TranscribeRequest(audio=pcm)

    return list(asr_pb2_grpc.AsrServiceStub(channel).Transcribe(requests(), timeout=180))[-1]


def transcribe_results(stack) -> dict[str, float]:
    import urllib.request

    from stack.process import metric_sum

    with urllib.request.urlopen(stack.services["asr"].metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    return {r: metric_sum(text, "talker_asr_transcribe_results_total", result=r) for r in ("reused", "decoded_at_end")}


def test_push_to_talk_reuses_the_decode_made_at_the_pause(stack, channel_to, piper):
    question = "How many legs does a spider have?"
    before = transcribe_results(stack)
    # Silence after the question, then the client ends the turn: the decode made at the pause is it.
    quiet = transcribe_streamed(channel_to("asr"), concat(piper(question), silence(2.0)))
    middle = transcribe_results(stack)
    # Speech up to the end of the stream: nothing decoded before the end covers it.
    cut = transcribe_streamed(channel_to("asr"), concat(piper("Tell me a story."), silence(0.6), piper(question)))
    after = transcribe_results(stack)
    assert wer(question, quiet.text) <= 0.15, quiet.text
    assert wer("Tell me a story. " + question, cut.text) <= 0.2, cut.text
    assert (middle["reused"] - before["reused"], middle["decoded_at_end"] - before["decoded_at_end"]) == (1, 0)
    assert (after["reused"] - middle["reused"], after["decoded_at_end"] - middle["decoded_at_end"]) == (0, 1)
