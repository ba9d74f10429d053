"""The TTS service on its embedded Piper voice, as a real process in the system-test stack."""

from __future__ import annotations

import re
import time
import urllib.request

import grpc
import numpy as np
import pytest

from services.common.audio import rms
from stack.local import Stack
from stack.process import metric_sum
from talker.v1 import asr_pb2, asr_pb2_grpc, tts_pb2, tts_pb2_grpc
from tests.system.conftest import PORT_OFFSET
from tests.wer import wer, words

SENTENCES = [
    "The weather is lovely today, so we will walk to the park.",
    "Please send me the report before the meeting on Friday.",
    "She bought fresh bread and a bottle of milk at the market.",
    "Could you turn off the lights when you leave the room?",
    "My brother plays the guitar in a small band downtown.",
]
LONG = ("When the morning fog finally lifted over the harbour, the fishermen, who had waited since dawn, "
        "pushed their boats into the water, and for the first time in weeks the whole village seemed to "
        "breathe again; children ran along the pier, shouting the names of the boats as they passed by.")


@pytest.fixture(scope="module")
def tts(channel_to):
    return tts_pb2_grpc.TtsServiceStub(channel_to("tts"))


def scrape(stack) -> str:
    with urllib.request.urlopen(stack.services["tts"].metrics_url, timeout=10) as resp:
        return resp.read().decode()


def synthesize(tts, text: str, **kw):
    """(float32 audio, rate, arrival time of each chunk from the request)."""
    t0 = time.perf_counter()
    pcm, times, rate = [], [], 0
    for r in tts.Synthesize(tts_pb2.SynthesizeRequest(text=text, **kw), timeout=120):
        times.append(time.perf_counter() - t0)
        pcm.append(r.audio.pcm)
        rate = r.audio.sample_rate
    audio = np.frombuffer(b"".join(pcm), "<i2").astype(np.float32) / 32768
    return audio, rate, times


def transcribe(channel_to, audio: np.ndarray, rate: int) -> str:
    asr = asr_pb2_grpc.AsrServiceStub(channel_to("asr"))
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()

    def requests():
        yield asr_pb2.TranscribeRequest(config=asr_pb2.TranscribeConfig(sample_rate=rate))
        for i in range(0, len(pcm), 16000):
            yield asr_pb2.TranscribeRequest(audio=pcm[i:i + 16000])

    finals = [r.text for r in asr.Transcribe(requests(), timeout=120) if r.is_final]
    assert finals, "the ASR service sent no final transcript"
    return finals[-1]


def test_list_voices(tts):
    resp = tts.ListVoices(tts_pb2.ListVoicesRequest(), timeout=10)
    assert resp.default_voice == "en_US-joe-medium"
    joe = next(v for v in resp.voices if v.name == "en_US-joe-medium")
    assert (joe.backend, joe.sample_rate, joe.language) == ("piper", 22050, "en_US")


def test_a_sentence_is_non_silent_audio_of_plausible_length(tts):
    audio, rate, times = synthesize(tts, SENTENCES[0])
    assert rate == 22050
    seconds = audio.size / rate
    # ~12 words: a speaker takes 2.5..6 s.
    assert 2.5 <= seconds <= 6.0, seconds
    assert rms(audio) > 0.03, "the audio is (nearly) silent"
    assert np.abs(audio).max() > 0.2
    # and it is sent in slices, not one blob
    assert len(times) >= seconds / 0.2 - 1


def test_round_trip_through_asr_word_error_rate(tts, channel_to):
    errors = ref_words = 0
    report = []
    for sentence in SENTENCES:
        audio, rate, _ = synthesize(tts, sentence)
        heard = transcribe(channel_to, audio, rate)
        n = len(words(sentence))
        errors += wer(sentence, heard) * n
        ref_words += n
        report.append(f"{wer(sentence, heard):.2f}  {sentence!r} -> {heard!r}")
    total = errors / ref_words
    print("\n".join(report), f"\nWER over {ref_words} words: {total:.3f}")
    assert total <= 0.15, "\n".join(report)


def test_phoneme_timings_cover_the_audio_and_name_its_sounds(tts):
    """Piper's alignment comes with the audio: every chunk carries the phonemes that start in
    it, they tile the audio end to end, and they are the sounds of the text (IPA)."""
    chunks = list(tts.Synthesize(tts_pb2.SynthesizeRequest(text="Bob made my map."), timeout=60))
    rate = chunks[0].audio.sample_rate
    spoken, at = [], 0.0
    for c in chunks:
        n = len(c.audio.pcm) // 2
        for p in c.phonemes:
            assert 0.0 <= p.start_seconds < n / rate + 1e-6 or c is chunks[-1]
            assert p.duration_seconds >= 0.0
            spoken.append((p.phoneme, at + p.start_seconds, p.duration_seconds))
        at += n / rate
    starts = np.array([s for _, s, _ in spoken])
    ends = starts + np.array([d for _, _, d in spoken])
    assert abs(starts[0]) < 1e-6 and abs(ends[-1] - at) < 0.02          # from the first sample to the last
    assert np.allclose(starts[1:], ends[:-1], atol=1e-4)                   # end to end, no gaps
    symbols = "".join(p for p, _, _ in spoken)
    assert symbols[0] == "^" and symbols[-1] == "$"
    assert symbols.count("b") == 2 and symbols.count("m") == 3 and "p" in symbols, symbols


def test_speaking_rate_changes_the_length(tts):
    normal, _, _ = synthesize(tts, SENTENCES[1])
    fast, _, _ = synthesize(tts, SENTENCES[1], speaking_rate=1.5)
    assert 0.55 < fast.size / normal.size < 0.8


def test_first_chunk_of_a_long_sentence_arrives_before_the_synthesis_ends(tts, stack):
    audio, rate, times = synthesize(tts, LONG)
    seconds = audio.size / rate
    assert seconds > 12, seconds
    # Piper does a whole utterance per call: without cutting the sentence into clauses the first
    # chunk would leave only when the whole sentence is done, right before the last one.
    assert times[0] < 0.5 * times[-1], (times[0], times[-1])
    assert rms(audio) > 0.03


def test_markdown_and_emoji_are_not_spoken(tts):
    plain, rate, _ = synthesize(tts, "The answer is simple.")
    marked, _, _ = synthesize(tts, "**The answer** is simple. 😀 https://example.com/x")
    assert abs(marked.size - plain.size) / rate < 0.3


def test_cancel_mid_stream_stops_the_synthesis(tts, stack):
    text = " ".join(f"This is sentence number {i} of a long answer that nobody will hear." for i in range(25))
    assert len(text) < 2000
    before = scrape(stack)
    call = tts.Synthesize(tts_pb2.SynthesizeRequest(text=text), timeout=120)
    first = next(call)
    assert first.audio.pcm
    call.cancel()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = scrape(stack)
        if metric_sum(after, "talker_tts_requests_total", status="cancelled") > \
                metric_sum(before, "talker_tts_requests_total", status="cancelled"):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the service did not report the cancellation")
    time.sleep(1.0)  # had it not stopped, it would go on producing audio now
    after = scrape(stack)
    sent = metric_sum(after, "talker_tts_audio_seconds_total") - metric_sum(before, "talker_tts_audio_seconds_total")
    # The whole text is ~25 x 4 s = 100 s of audio; a stopped synthesis sent a few seconds at most.
    assert sent < 20, sent
    assert metric_sum(after, "talker_tts_requests_total", status="ok") == \
        metric_sum(before, "talker_tts_requests_total", status="ok")
    log = stack.services["tts"].log_file.read_text(errors="replace")
    assert re.search(r"Synthesize cancelled after .* synthesis stopped", log)
    # and the service serves the next request
    audio, _, _ = synthesize(tts, "Still here.")
    assert audio.size > 0


@pytest.mark.parametrize("request_,code,needle", [
    (dict(text=""), grpc.StatusCode.INVALID_ARGUMENT, "text: empty"),
    (dict(text="a" * 100_000), grpc.StatusCode.INVALID_ARGUMENT, "text: 100000 characters, more than the limit"),
    (dict(text="😀🎉👍🏽 ❤️"), grpc.StatusCode.INVALID_ARGUMENT, "nothing speakable"),
    (dict(text="Hello.", voice="no-such-voice"), grpc.StatusCode.NOT_FOUND, "voice: 'no-such-voice' is not"),
])
def test_bad_input_gets_the_right_status_and_the_next_request_succeeds(tts, stack, request_, code, needle):
    before = scrape(stack)
    with pytest.raises(grpc.RpcError) as err:
        list(tts.Synthesize(tts_pb2.SynthesizeRequest(**request_), timeout=30))
    assert err.value.code() == code
    assert needle in err.value.details()
    audio, _, _ = synthesize(tts, "Next request.")
    assert audio.size > 0
    after = scrape(stack)
    assert metric_sum(after, "talker_tts_requests_total", status="invalid") == \
        metric_sum(before, "talker_tts_requests_total", status="invalid") + 1


def test_tts_metrics_are_exported(stack, tts):
    synthesize(tts, "Counting the metrics.")
    text = scrape(stack)
    labels = dict(backend="piper", voice="en_US-joe-medium")
    for name in ("talker_tts_time_to_first_audio_seconds_count", "talker_tts_duration_seconds_count",
                 "talker_tts_real_time_factor_count", "talker_tts_characters_total",
                 "talker_tts_audio_seconds_total"):
        assert metric_sum(text, name, **labels) > 0, name
    assert 'talker_model_info{backend="piper",device="cpu",model="en_US-joe-medium",stage="tts"} 1.0' in text


@pytest.mark.parametrize("shrink", [True, False], ids=["shrink", "control-without"])
def test_a_long_piece_leaves_no_resident_buffers(tmp_path, shrink):
    """onnxruntime's CPU arena keeps the buffers of the longest piece it ever synthesized; the
    service hands them back after each run (TALKER_TTS_ARENA_SHRINK), so resident memory follows
    the current request, not the history of requests. The control without it shows the test
    measures that (about +270 MiB stay)."""
    s = Stack(run_dir=tmp_path, port_offset=PORT_OFFSET + 90, service_env={"tts": {
        "TALKER_TTS_PIECE_CHARS": "2000", "TALKER_TTS_FIRST_PIECE_CHARS": "2000",
        "TALKER_TTS_ARENA_SHRINK": str(shrink).lower()}})
    s.stop(("tts",))
    s.start(("tts",))
    try:
        s.wait_serving(timeout=120, names=("tts",))
        tts = tts_pb2_grpc.TtsServiceStub(s.channel("tts"))
        synthesize(tts, "Hello there, how are you today?")
        before = metric_sum(scrape(s), "process_resident_memory_bytes")
        audio, rate, times = synthesize(tts, LONG)                      # one piece of 290 characters
        assert len(times) > 1 and len(audio) / rate > 10
        after = metric_sum(scrape(s), "process_resident_memory_bytes")
        grown = (after - before) / 2**20
        print(f"resident memory {before / 2**20:.0f} -> {after / 2**20:.0f} MiB after one long piece")
        if shrink:
            assert grown < 120, f"+{grown:.0f} MiB stayed resident after one long piece"
        else:
            assert grown > 150, f"the control kept only +{grown:.0f} MiB: the test no longer measures the arena"
    finally:
        s.stop(("tts",))

