"""The TTS stage: text in, PCM16 audio chunks out as the voice produces them."""

from __future__ import annotations

import time

import grpc
from prometheus_client import Counter, Histogram

from services.common import buckets
from services.common.audio import float_to_pcm16
from services.common.config import ServerConfig, from_env
from services.common.errors import InvalidArgument
from services.common.server import LoadedModel, Stage, run
from services.common.threads import iterate_in_thread
from services.tts.backend import PiperBackend
from services.tts.config import TtsConfig
from services.tts.speakable import has_words, speakable
from talker.v1 import common_pb2, tts_pb2, tts_pb2_grpc


class TtsMetrics:
    def __init__(self):
        labels = ["backend", "voice"]
        self.first_audio = Histogram("talker_tts_time_to_first_audio_seconds",
                                     "From the request to its first audio chunk.", labels,
                                     buckets=buckets.FIRST_OUTPUT)
        self.duration = Histogram("talker_tts_duration_seconds", "Synthesis time per request.", labels,
                                  buckets=buckets.STAGE)
        self.rtf = Histogram("talker_tts_real_time_factor", "Synthesis seconds per audio second.", labels,
                             buckets=buckets.RTF)
        self.characters = Counter("talker_tts_characters_total", "Characters synthesized.", labels)
        self.audio_seconds = Counter("talker_tts_audio_seconds_total", "Seconds of audio produced.", labels)


class TtsServicer(tts_pb2_grpc.TtsServicer):
    def __init__(self, config: TtsConfig, backend: PiperBackend, metrics: TtsMetrics):
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
        if not 0.25 <= rate <= 4.0:
            raise InvalidArgument(f"speaking_rate: {rate:g} is outside 0.25..4")
        voice = request.voice or self.backend.default_voice
        self.backend._voice(voice)  # NotFound for an unknown voice, before any audio is sent
        return text, voice, rate

    async def Synthesize(self, request, context):
        text, voice, rate = self._request(request)
        sr = self.backend.sample_rate(voice)
        labels = (self.backend.name, voice)
        t0 = time.perf_counter()
        slice_len = max(1, int(self.config.chunk_seconds * sr))
        produced = 0
        async for audio in iterate_in_thread(
                lambda cancelled: self.backend.synthesize(text, voice, rate, cancelled)):
            if produced == 0:
                self.metrics.first_audio.labels(*labels).observe(time.perf_counter() - t0)
            for start in range(0, audio.size, slice_len):
                part = audio[start:start + slice_len]
                yield tts_pb2.SynthesizeResponse(audio=common_pb2.AudioChunk(
                    pcm=float_to_pcm16(part), sample_rate=sr, pts=produced / sr))
                produced += part.size
        seconds = time.perf_counter() - t0
        audio_seconds = produced / sr
        self.metrics.duration.labels(*labels).observe(seconds)
        self.metrics.characters.labels(*labels).inc(len(text))
        self.metrics.audio_seconds.labels(*labels).inc(audio_seconds)
        if audio_seconds > 0:
            self.metrics.rtf.labels(*labels).observe(seconds / audio_seconds)

    async def ListVoices(self, request, context):
        return tts_pb2.ListVoicesResponse(
            voices=[tts_pb2.Voice(name=v.name, language=v.language, sample_rate=v.sample_rate,
                                  backend=self.backend.name) for v in self.backend.voices.values()],
            default_voice=self.backend.default_voice)


class TtsStage(Stage):
    name = "tts"
    service_names = (tts_pb2.DESCRIPTOR.services_by_name["Tts"].full_name,)

    def __init__(self, server_config: ServerConfig, config: TtsConfig | None = None):
        self.config = config or from_env(TtsConfig, "TALKER_TTS_")
        self.backend = PiperBackend(self.config.voice_dir, self.config.voice, server_config.threads)
        self.servicer = TtsServicer(self.config, self.backend, TtsMetrics())

    def add_to_server(self, server: grpc.aio.Server) -> None:
        tts_pb2_grpc.add_TtsServicer_to_server(self.servicer, server)

    def load(self) -> LoadedModel:
        voice = self.backend.load()
        return LoadedModel(backend=self.backend.name, model=voice, device="cpu")


def main() -> None:
    run(TtsStage, "tts", grpc_port=50054, metrics_port=9104)
