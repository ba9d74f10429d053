"""Fake stage servers for unit tests of the gateway: the four stage services in-process, scripted.

Each fake answers at once with canned output (no model), records what it was asked,
and can be told to stall or to fail, so a test can run whole turns through the real
gateway code in milliseconds. Fakes, not stand-ins for the real services: the system
tests run those.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools

import grpc

from talker.v1 import (
    animator_pb2,
    animator_pb2_grpc,
    asr_pb2,
    asr_pb2_grpc,
    common_pb2,
    llm_pb2,
    llm_pb2_grpc,
    tts_pb2,
    tts_pb2_grpc,
)

RATE = 16000
SAMPLES_PER_CHUNK = 1600  # 0.1 s of audio per TTS chunk
FPS = 25


@dataclasses.dataclass
class Script:
    transcript: str = "What is the weather like?"
    reply: tuple[str, ...] = ("It is ", "sunny. ", "Take a ", "hat.")
    # A stage named here waits this long before each output (an hour: it stalls).
    delay: dict[str, float] = dataclasses.field(default_factory=dict)
    # A stage named here fails with (code, message) on its call number n (1-based), given as (n, code, message).
    fail: dict[str, tuple[int, grpc.StatusCode, str]] = dataclasses.field(default_factory=dict)
    # Listen: audio bytes equal to a key make the fake ASR send that key's events.
    listen: dict[bytes, list[asr_pb2.ListenResponse]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Record:
    asr_audio: list[bytes] = dataclasses.field(default_factory=list)
    llm_requests: list[llm_pb2.GenerateRequest] = dataclasses.field(default_factory=list)
    tts_texts: list[str] = dataclasses.field(default_factory=list)
    animator_segments: list[str] = dataclasses.field(default_factory=list)
    animator_configs: list[animator_pb2.AnimateConfig] = dataclasses.field(default_factory=list)
    idle_requests: list[animator_pb2.IdleRequest] = dataclasses.field(default_factory=list)
    calls: dict[str, int] = dataclasses.field(default_factory=dict)
    cancelled: set[str] = dataclasses.field(default_factory=set)


def _noting_cancel(method):
    """Notes in the record when the gateway cancels the call."""

    @functools.wraps(method)
    async def call(self, request, context):
        try:
            async for response in method(self, request, context):
                yield response
        except asyncio.CancelledError:
            self.record.cancelled.add(self.stage)
            raise

    return call


class _FakeStage:
    stage = ""

    def __init__(self, script: Script, record: Record):
        self.script = script
        self.record = record

    async def _enter(self, context) -> None:
        """Counts the call; fails it when the script says so."""
        n = self.record.calls[self.stage] = self.record.calls.get(self.stage, 0) + 1
        failure = self.script.fail.get(self.stage)
        if failure and failure[0] == n:
            await context.abort(failure[1], failure[2])

    async def _pause(self) -> None:
        await asyncio.sleep(self.script.delay.get(self.stage, 0))


class FakeAsr(_FakeStage, asr_pb2_grpc.AsrServiceServicer):
    stage = "asr"

    @_noting_cancel
    async def Transcribe(self, request_iterator, context):
        await self._enter(context)
        async for req in request_iterator:
            if req.WhichOneof("msg") == "audio":
                self.record.asr_audio.append(req.audio)
        await self._pause()
        yield asr_pb2.TranscribeResponse(text=self.script.transcript, is_final=True)

    @_noting_cancel
    async def Listen(self, request_iterator, context):
        await self._enter(context)
        async for req in request_iterator:
            if req.WhichOneof("msg") == "audio":
                self.record.asr_audio.append(req.audio)
                for event in self.script.listen.get(req.audio, []):
                    yield event


class FakeLlm(_FakeStage, llm_pb2_grpc.LlmServiceServicer):
    stage = "llm"

    @_noting_cancel
    async def Generate(self, request, context):
        await self._enter(context)
        self.record.llm_requests.append(request)
        for token in self.script.reply:
            await self._pause()
            yield llm_pb2.GenerateResponse(text=token)
        yield llm_pb2.GenerateResponse(finish_reason=llm_pb2.FINISH_REASON_STOP)


class FakeTts(_FakeStage, tts_pb2_grpc.TtsServiceServicer):
    stage = "tts"

    @_noting_cancel
    async def Synthesize(self, request, context):
        await self._enter(context)
        self.record.tts_texts.append(request.text)
        for i in range(2):
            await self._pause()
            yield tts_pb2.SynthesizeResponse(audio=common_pb2.AudioChunk(
                pcm=b"\x01\x00" * SAMPLES_PER_CHUNK, sample_rate=RATE, pts=i * SAMPLES_PER_CHUNK / RATE))


class FakeAnimator(_FakeStage, animator_pb2_grpc.AnimatorServiceServicer):
    stage = "animator"

    @_noting_cancel
    async def Animate(self, request_iterator, context):
        await self._enter(context)
        index = 0
        async for req in request_iterator:
            if req.WhichOneof("msg") == "config":
                self.record.animator_configs.append(req.config)
            if req.WhichOneof("msg") != "audio":
                continue
            self.record.animator_segments.append(req.audio.text)
            for _ in range(len(req.audio.pcm) // 2 * FPS // RATE):
                await self._pause()
                yield animator_pb2.AnimateResponse(frame=common_pb2.Frame(index=index, pts=index / FPS))
                index += 1

    @_noting_cancel
    async def Idle(self, request, context):
        """Blank frames on the client's clock, one per 1/FPS s, until cancelled."""
        self.record.idle_requests.append(request)
        index = 0
        while True:
            yield animator_pb2.IdleResponse(frame=common_pb2.Frame(
                index=index, pts=request.start_seconds + index / FPS))
            index += 1
            await asyncio.sleep(1 / FPS)


FAKES = {"asr": (FakeAsr, asr_pb2_grpc.add_AsrServiceServicer_to_server),
         "llm": (FakeLlm, llm_pb2_grpc.add_LlmServiceServicer_to_server),
         "tts": (FakeTts, tts_pb2_grpc.add_TtsServiceServicer_to_server),
         "animator": (FakeAnimator, animator_pb2_grpc.add_AnimatorServiceServicer_to_server)}


@contextlib.asynccontextmanager
async def fake_stages(script: Script):
    """Serves the four fakes on one in-process server; yields (target, record)."""
    record = Record()
    server = grpc.aio.server()
    for fake, add in FAKES.values():
        add(fake(script, record), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", record
    finally:
        await server.stop(0)
