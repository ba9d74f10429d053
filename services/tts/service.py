"""The TTS stage: text in, PCM16 audio chunks out as the voice produces them."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from prometheus_client import Counter, Histogram

from services.common import buckets, tracing
from services.common.config import ServerConfig, from_env
from services.common.errors import InvalidArgument, StageError
from services.common.limits import SPEAKING_RATE
from services.common.segments import has_words
from services.common.server import LoadedModel, Stage, run
from services.tts.backend import TtsBackend, make_backend
from services.tts.config import TtsConfig
from services.tts.speakable import speakable
from talker.v1 import common_pb2, tts_pb2, tts_pb2_grpc

log = logging.getLogger("talker.tts")

# talker_tts_requests_total{status}: bounded, one of these.
STATUSES = ("ok", "cancelled", "invalid", "error")


class TtsMetrics:
    def __init__(self, registry=None):
        kw = {} if registry is None else {"registry": registry}
        labels = ["backend", "voice"]
        self.first_audio = Histogram("talker_tts_time_to_first_audio_seconds",
                                     "From the request to its first audio chunk.", labels,
                                     buckets=buckets.FIRST_OUTPUT, **kw)
        self.duration = Histogram("talker_tts_duration_seconds", "Synthesis time per completed request.", labels,
                                  buckets=buckets.STAGE, **kw)
        self.rtf = Histogram("talker_tts_real_time_factor", "Synthesis seconds per audio second.", labels,
                             buckets=buckets.RTF, **kw)
        self.characters = Counter("talker_tts_characters_total", "Characters accepted for synthesis.", labels, **kw)
        self.audio_seconds = Counter("talker_tts_audio_seconds_total", "Seconds of audio sent.", labels, **kw)
        self.requests = Counter("talker_tts_requests_total",
                                "Synthesize requests by outcome: ok, cancelled (client went away or "
                                "deadline), invalid (rejected input), error.", ["backend", "status"], **kw)


class TtsServiceServicer(tts_pb2_grpc.TtsServiceServicer):
    def __init__(self, config: TtsConfig, backend: TtsBackend, metrics: TtsMetrics):
        self.config = config
        self.backend = backend
        self.metrics = metrics

    def _request(self, request) -> tuple[str, str, float]:
        if len(request.text) > self.config.max_chars:
            raise InvalidArgument(f"text: {len(request.text)} characters, more than the limit of "
                                  f"{self.config.max_chars}")
        if not request.text.strip():
            raise InvalidArgument("text: empty (nothing to speak)")
        text = speakable(request.text)
        if not has_words(text):
            raise InvalidArgument("text: nothing speakable once markdown, emoji and URLs are removed")
        rate = request.speaking_rate or self.config.speaking_rate
        SPEAKING_RATE.check("speaking_rate", rate)
        voice = self.backend.voice(request.voice).name  # NOT_FOUND before any audio is sent
        return text, voice, rate

    async def Synthesize(self, request, context):
        backend = self.backend.name
        try:
            text, voice, rate = self._request(request)
        except StageError:
            self.metrics.requests.labels(backend, "invalid").inc()
            raise
        labels = (backend, voice)
        self.metrics.characters.labels(*labels).inc(len(text))
        t0 = time.perf_counter()
        sent = 0
        rate_hz = 0
        status = "error"
        synthesis = self.backend.synthesize(text, voice, rate, self.config.chunk_seconds)
        span = tracing.tracer("talker.tts").start_span("tts.synthesize", attributes={
            "talker.tts.backend": backend, "talker.tts.voice": voice, "talker.tts.characters": len(text)})
        try:
            async for chunk in synthesis:
                if sent == 0:
                    self.metrics.first_audio.labels(*labels).observe(time.perf_counter() - t0,
                                                                     tracing.exemplar(span))
                rate_hz = chunk.sample_rate
                yield tts_pb2.SynthesizeResponse(
                    audio=common_pb2.AudioChunk(pcm=chunk.pcm, sample_rate=chunk.sample_rate,
                                                pts=sent / chunk.sample_rate),
                    phonemes=[common_pb2.PhonemeTiming(phoneme=p, start_seconds=start, duration_seconds=dur)
                              for p, start, dur in chunk.phonemes])
                sent += chunk.samples
            status = "ok"
        except (asyncio.CancelledError, GeneratorExit):
            status = "cancelled"
            raise
        finally:
            await synthesis.aclose()
            seconds = time.perf_counter() - t0
            audio_seconds = sent / rate_hz if rate_hz else 0.0
            span.set_attributes({"talker.tts.audio_seconds": audio_seconds, "talker.tts.status": status})
            span.end()
            self.metrics.requests.labels(backend, status).inc()
            self.metrics.audio_seconds.labels(*labels).inc(audio_seconds)
            if status == "ok":
                self.metrics.duration.labels(*labels).observe(seconds, tracing.exemplar(span))
                if audio_seconds > 0:
                    self.metrics.rtf.labels(*labels).observe(seconds / audio_seconds)
            elif status == "cancelled":
                log.info("Synthesize cancelled after %.2f s: %.2f s of audio sent, synthesis stopped",
                         seconds, audio_seconds)

    async def ListVoices(self, request, context):
        return tts_pb2.ListVoicesResponse(
            voices=[tts_pb2.Voice(name=v.name, language=v.language, sample_rate=v.sample_rate,
                                  backend=self.backend.name) for v in self.backend.list_voices()],
            default_voice=self.backend.default_voice)


class TtsStage(Stage):
    name = "tts"
    service_names = (tts_pb2.DESCRIPTOR.services_by_name["TtsService"].full_name,)

    def __init__(self, server_config: ServerConfig, config: TtsConfig | None = None,
                 backend: TtsBackend | None = None, metrics: TtsMetrics | None = None):
        self.config = config or from_env(TtsConfig, "TALKER_TTS_")
        self.backend = backend or make_backend(self.config, server_config.threads)
        self.servicer = TtsServiceServicer(self.config, self.backend, metrics or TtsMetrics())

    def add_to_server(self, server: grpc.aio.Server) -> None:
        tts_pb2_grpc.add_TtsServiceServicer_to_server(self.servicer, server)

    def load(self) -> LoadedModel:
        model = self.backend.load()
        return LoadedModel(backend=self.backend.name, model=model, device=self.backend.device)


def main() -> None:
    run(TtsStage, "tts")
