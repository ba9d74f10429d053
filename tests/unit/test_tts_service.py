"""The TTS servicer over real gRPC (in process) with a stand-in backend: statuses, streaming, cancel, metrics."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from services.common.errors import ErrorInterceptor
from services.tts.backend import Spoken, StopFlag, TtsBackend, Voice, chunk_phonemes, phoneme_starts
from services.tts.config import TtsConfig
from services.tts.service import TtsMetrics, TtsServiceServicer
from talker.v1 import tts_pb2, tts_pb2_grpc

RATE = 16000


class ToneBackend(TtsBackend):
    """0.05 s of synthesis per piece, 10 ms of tone per character."""

    name = "tone"

    def __init__(self, config: TtsConfig):
        super().__init__(config)
        self.started: list[str] = []
        self.stopped_at: int | None = None

    def load(self) -> str:
        self._voices = {"a": Voice("a", "en", RATE), "b": Voice("b", "en", RATE)}
        self.default_voice = self.default_voice or "a"
        return "tone"

    def stream_piece(self, text: str, voice: Voice, rate: float, stop: StopFlag):
        self.started.append(text)
        time.sleep(0.05)
        n = int(len(text) * 0.01 * RATE / rate)
        yield 0.3 * np.sin(np.arange(n) * 2 * np.pi * 220 / RATE).astype(np.float32)


def run(coro_fn, config: TtsConfig | None = None):
    config = config or TtsConfig(chunk_seconds=0.1)
    backend = ToneBackend(config)
    backend.load()
    registry = CollectorRegistry()
    servicer = TtsServiceServicer(config, backend, TtsMetrics(registry))

    async def main():
        server = grpc.aio.server(interceptors=[ErrorInterceptor()])
        tts_pb2_grpc.add_TtsServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                return await coro_fn(tts_pb2_grpc.TtsServiceStub(ch), backend)
        finally:
            await server.stop(None)

    result = asyncio.run(main())
    return result, registry, backend


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0.0


async def collect(stub, **kw):
    return [r async for r in stub.Synthesize(tts_pb2.SynthesizeRequest(**kw), timeout=20)]


def test_synthesize_streams_chunks_with_pts_and_counts_metrics():
    text = "Hello there, my friend. How are you today?"
    chunks, reg, backend = run(lambda stub, b: collect(stub, text=text))
    assert backend.started == ["Hello there, my friend.", "How are you today?"]
    total = sum(len(c.audio.pcm) // 2 for c in chunks)
    assert total == pytest.approx((23 + 18) * 0.01 * RATE, abs=2)
    assert all(c.audio.sample_rate == RATE and len(c.audio.pcm) // 2 <= 0.1 * RATE for c in chunks)
    pts = [c.audio.pts for c in chunks]
    assert pts[0] == 0 and all(b > a for a, b in itertools.pairwise(pts))
    assert sample(reg, "talker_tts_requests_total", backend="tone", status="ok") == 1
    assert sample(reg, "talker_tts_characters_total", backend="tone", voice="a") == len(text)
    assert sample(reg, "talker_tts_audio_seconds_total", backend="tone", voice="a") == pytest.approx(total / RATE)
    assert sample(reg, "talker_tts_time_to_first_audio_seconds_count", backend="tone", voice="a") == 1
    assert sample(reg, "talker_tts_real_time_factor_count", backend="tone", voice="a") == 1
    assert sample(reg, "talker_tts_duration_seconds_sum", backend="tone", voice="a") >= 0.1


def test_speaking_rate_and_voice():
    chunks, _, _ = run(lambda stub, b: collect(stub, text="Hello there.", voice="b", speaking_rate=2.0))
    assert sum(len(c.audio.pcm) // 2 for c in chunks) == int(12 * 0.01 * RATE / 2)


def test_list_voices():
    async def go(stub, b):
        return await stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=5)

    resp, _, _ = run(go)
    assert [v.name for v in resp.voices] == ["a", "b"] and resp.default_voice == "a"
    assert all(v.backend == "tone" and v.sample_rate == RATE for v in resp.voices)


BAD = [
    (dict(text=""), grpc.StatusCode.INVALID_ARGUMENT, "text: empty"),
    (dict(text="   \n"), grpc.StatusCode.INVALID_ARGUMENT, "text: empty"),
    (dict(text="x" * 100_000), grpc.StatusCode.INVALID_ARGUMENT, "text: 100000 characters, more than the limit"),
    (dict(text="😀🎉 👍🏽"), grpc.StatusCode.INVALID_ARGUMENT, "nothing speakable"),
    (dict(text="hi", voice="nobody"), grpc.StatusCode.NOT_FOUND, "voice: 'nobody' is not available"),
    (dict(text="hi", speaking_rate=9), grpc.StatusCode.INVALID_ARGUMENT, "speaking_rate: 9 is outside"),
]


@pytest.mark.parametrize("request_,code,needle", BAD)
def test_bad_input_gets_a_clear_status_and_the_next_request_works(request_, code, needle):
    async def go(stub, b):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await collect(stub, **request_)
        return err.value, await collect(stub, text="Fine.")

    (err, after), reg, backend = run(go)
    assert err.code() == code
    assert needle in err.details()
    assert after and backend.started == ["Fine."]
    assert sample(reg, "talker_tts_requests_total", backend="tone", status="invalid") == 1
    assert sample(reg, "talker_tts_requests_total", backend="tone", status="ok") == 1


def test_cancel_mid_stream_stops_the_backend():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))

    async def go(stub, b):
        call = stub.Synthesize(tts_pb2.SynthesizeRequest(text=text), timeout=20)
        first = await call.read()
        call.cancel()
        await asyncio.sleep(0.5)
        return first, len(b.started)

    (first, started_at_cancel), reg, backend = run(go)
    assert first.audio.pcm
    assert started_at_cancel < 10, "the backend ran far ahead of the client"
    assert len(backend.started) == started_at_cancel, "the backend went on after the cancel"
    assert sample(reg, "talker_tts_requests_total", backend="tone", status="cancelled") == 1
    assert sample(reg, "talker_tts_requests_total", backend="tone", status="ok") == 0
    assert sample(reg, "talker_tts_duration_seconds_count", backend="tone", voice="a") == 0


def test_synthesis_cancel_from_the_interface():
    backend = ToneBackend(TtsConfig())
    backend.load()
    text = " ".join(f"Sentence number {i} is here." for i in range(20))

    async def go():
        s = backend.synthesize(text, "", 1.0, 0.1)
        got = [await s.__anext__()]
        s.cancel()
        got.extend([c async for c in s])
        await asyncio.sleep(0.3)
        return got, s.cancelled

    got, cancelled = asyncio.run(go())
    assert cancelled and len(got) <= 4
    assert len(backend.started) <= 4
    assert threading.active_count() < 10


def test_phoneme_timings_go_with_the_chunk_they_start_in():
    """A backend's (phoneme, samples) alignment is cut with the audio: each chunk carries the
    phonemes that start in it, timed from its own first sample."""
    spoken = Spoken(np.zeros(1000, np.float32), (("^", 100), ("m", 250), ("a", 600), ("$", 50)))
    timings = phoneme_starts(spoken.phonemes)
    assert [t[1] for t in timings] == [0, 100, 350, 950]
    chunks = [chunk_phonemes(timings, first, 400, 1000, last=first + 400 >= 1000) for first in (0, 400, 800)]
    assert chunks[0] == (("^", 0.0, 0.1), ("m", 0.1, 0.25), ("a", 0.35, 0.6))
    assert chunks[1] == ()
    assert chunks[2] == (("$", 0.15, 0.05),)
    # Rounding that puts a phoneme past the audio's end: the last chunk still takes it.
    late = phoneme_starts((("a", 1000), ("$", 20)))
    assert chunk_phonemes(late, 800, 200, 1000, last=True) == (("$", 0.2, 0.02),)
    assert chunk_phonemes(late, 800, 200, 1000, last=False) == ()
