"""The ASR stage: a stream of PCM16 audio in, a transcript out (Transcribe), or continuous audio in
and hands-free turns out (Listen, in services/asr/listen.py)."""

from __future__ import annotations

import asyncio
import time

import grpc
from prometheus_client import Counter, Histogram

from services.asr.backend import MODEL_RATE, WhisperBackend
from services.asr.config import BACKENDS, AsrConfig
from services.asr.detectors import SmartTurn, silero_path
from services.asr.listen import ListenStream
from services.asr.transcribe import EarlyDecoder
from services.common import buckets, tracing
from services.common.audio import pcm16_to_float, resample
from services.common.backends import backend_class
from services.common.config import ServerConfig, from_env
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.limits import SAMPLE_RATE
from services.common.server import LoadedModel, Stage, run
from talker.v1 import asr_pb2, asr_pb2_grpc


class AsrMetrics:
    def __init__(self):
        self.audio_seconds = Counter("talker_asr_audio_seconds_total", "Seconds of audio transcribed.",
                                     ["model"])
        self.processing = Histogram("talker_asr_processing_seconds", "Model time per utterance.",
                                    ["model"], buckets=buckets.STAGE)
        self.rtf = Histogram("talker_asr_real_time_factor", "Processing seconds per audio second.",
                             ["model"], buckets=buckets.RTF)
        # Hands-free turn detection (Listen).
        self.speech_starts = Counter("talker_asr_speech_starts_total",
                                     "Turns started by voice activity (speech longer than the start minimum).")
        self.checks = Counter("talker_asr_turn_checks_total",
                              "Semantic end-of-turn checks at a pause, by verdict (complete, incomplete, "
                              "unfinished_text: smart-turn said complete, the transcript reads cut off).", ["verdict"])
        self.check_seconds = Histogram("talker_asr_turn_check_seconds", "Time of one semantic end-of-turn check.",
                                       buckets=buckets.FIRST_OUTPUT)
        self.turn_ends = Counter("talker_asr_end_of_turn_total", "End-of-turn decisions, by reason.", ["reason"])
        self.end_of_turn_delay = Histogram(
            "talker_asr_end_of_turn_delay_seconds",
            "From the end of speech to the end-of-turn decision, seconds of audio.", buckets=buckets.ENDPOINTING)
        self.early_decodes = Counter(
            "talker_asr_transcribe_results_total",
            "Transcribe (push-to-talk) transcripts: reused (decoded at a pause while the audio streamed, only "
            "silence after it) or decoded_at_end.", ["result"])
        self.partials = Counter("talker_asr_partial_transcripts_total",
                                "Partial transcripts sent while the user spoke or paused.")


class AsrServiceServicer(asr_pb2_grpc.AsrServiceServicer):
    def __init__(self, config: AsrConfig, backend: WhisperBackend, metrics: AsrMetrics):
        self.config = config
        self.backend = backend
        self.metrics = metrics
        # One decode at a time per process: CTranslate2 already uses the configured threads.
        self.lock = asyncio.Lock()
        self.vad = None         # faster-whisper's SileroVADModel, shared; each stream has its own state
        self.smart_turn = None  # SmartTurn, shared

    async def decode(self, samples, language: str = "", beam_size: int = 0) -> tuple[str, float]:
        """(text, model seconds) of 16 kHz float32 audio, one decode at a time."""
        async with self.lock:
            t0 = time.perf_counter()
            text = await asyncio.to_thread(self.backend.transcribe, samples, language, beam_size)
            return text, time.perf_counter() - t0

    async def Listen(self, request_iterator, context):
        out: asyncio.Queue = asyncio.Queue()
        stream = ListenStream(self, out)

        async def run():
            try:
                await stream.run(request_iterator)
            except Exception as exc:  # noqa: BLE001 - raised again on the response side, where it is mapped
                out.put_nowait(exc)
            finally:
                out.put_nowait(None)

        task = asyncio.create_task(run())
        try:
            while (item := await out.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            task.cancel()

    async def Transcribe(self, request_iterator, context):
        rate, n_bytes, req_language, decoder = 0, 0, "", None
        max_bytes = int(self.config.max_audio_seconds * 48000 * 2)
        async for req in request_iterator:
            kind = req.WhichOneof("msg")
            if kind == "config":
                if rate:
                    raise InvalidArgument("config: sent twice; it must be the first message only")
                rate = req.config.sample_rate
                SAMPLE_RATE.check("config.sample_rate", rate, " Hz")
                max_bytes = int(self.config.max_audio_seconds * rate * 2)
                req_language = req.config.language
                decoder = EarlyDecoder(self, req_language)
            elif kind == "audio":
                if not rate:
                    raise FailedPrecondition("audio: sent before config; send TranscribeConfig first")
                if len(req.audio) % 2:
                    raise InvalidArgument(f"audio: {len(req.audio)} bytes; PCM16 needs an even number")
                n_bytes += len(req.audio)
                if n_bytes > max_bytes:
                    raise InvalidArgument(f"audio: longer than {self.config.max_audio_seconds:g} s")
                decoder.feed(resample(pcm16_to_float(req.audio), rate, MODEL_RATE))
            else:
                raise InvalidArgument("request: neither config nor audio is set")
        if not rate:
            raise InvalidArgument("config: missing; the stream must start with TranscribeConfig")
        if n_bytes == 0:
            raise InvalidArgument("audio: no audio was received")
        audio_seconds = decoder.size / MODEL_RATE
        with tracing.tracer("talker.asr").start_as_current_span("asr.transcribe", attributes={
                "talker.asr.model": self.backend.model_name, "talker.asr.audio_seconds": audio_seconds}) as span:
            text, seconds, reused = await decoder.final()
            span.set_attribute("talker.asr.words", len(text.split()))
            span.set_attribute("talker.asr.early_decode_reused", reused)
        model = self.backend.model_name
        self.metrics.early_decodes.labels("reused" if reused else "decoded_at_end").inc()
        self.metrics.audio_seconds.labels(model).inc(audio_seconds)
        self.metrics.processing.labels(model).observe(seconds, tracing.exemplar())
        self.metrics.rtf.labels(model).observe(seconds / max(audio_seconds, 1e-3))
        yield asr_pb2.TranscribeResponse(text=text, is_final=True, audio_seconds=audio_seconds,
                                         processing_seconds=seconds)


class AsrStage(Stage):
    name = "asr"
    service_names = (asr_pb2.DESCRIPTOR.services_by_name["AsrService"].full_name,)

    def __init__(self, server_config: ServerConfig, config: AsrConfig | None = None):
        self.config = config or from_env(AsrConfig, "TALKER_ASR_")
        self.backend = backend_class(BACKENDS, self.config.backend)(self.config, server_config.threads)
        self.servicer = AsrServiceServicer(self.config, self.backend, AsrMetrics())

    def add_to_server(self, server: grpc.aio.Server) -> None:
        asr_pb2_grpc.add_AsrServiceServicer_to_server(self.servicer, server)

    def load(self) -> LoadedModel:
        from faster_whisper.vad import SileroVADModel

        self.backend.load()
        self.servicer.vad = SileroVADModel(silero_path())
        self.servicer.smart_turn = SmartTurn()
        return LoadedModel(backend=self.backend.name, model=self.backend.model_name, device="cpu")


def main() -> None:
    run(AsrStage, "asr")


