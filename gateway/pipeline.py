"""One conversation turn as a streaming pipeline: ASR -> LLM -> TTS -> animator.

Every stage runs as its own task and starts on the first output of the one
before it: the LLM's tokens are cut into sentences, each sentence goes to TTS
as soon as it is complete, and each audio chunk goes to the animator as soon
as it arrives. Queues between the tasks are bounded, so a slow stage slows the
ones before it instead of growing memory. Cancelling the turn cancels every
call in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from gateway.metrics import STAGES, GatewayMetrics
from gateway.sentences import SentenceSplitter, speakable_piece
from gateway.stages import StageClients
from services.common import tracing
from services.common.errors import InvalidArgument, StageError
from talker.v1 import animator_pb2, asr_pb2, common_pb2, gateway_pb2, llm_pb2, tts_pb2

ASR_CHUNK_BYTES = 32000  # 1 s of 16 kHz PCM16 per message


class StageFailure(StageError):
    """A stage call failed; the message names the stage."""

    def __init__(self, stage: str, code: grpc.StatusCode, details: str):
        super().__init__(f"{stage}: {code.name}: {details}", code)
        self.stage = stage


@dataclasses.dataclass
class Session:
    config: gateway_pb2.SessionConfig
    history: list[llm_pb2.ChatMessage] = dataclasses.field(default_factory=list)
    turns: int = 0
    current: Turn | None = None


@dataclasses.dataclass
class TurnInput:
    """A typed turn, or a spoken one whose PCM16 chunks arrive on ``audio`` (None ends it)."""

    text: str = ""
    sample_rate: int = 16000
    audio: asyncio.Queue | None = None

    @classmethod
    def from_pcm(cls, pcm: bytes, sample_rate: int) -> TurnInput:
        queue: asyncio.Queue = asyncio.Queue()
        for i in range(0, len(pcm), ASR_CHUNK_BYTES):
            queue.put_nowait(pcm[i:i + ASR_CHUNK_BYTES])
        queue.put_nowait(None)
        return cls(sample_rate=sample_rate, audio=queue)


@dataclasses.dataclass
class StageClock:
    first_output: float = 0.0
    busy: float = 0.0
    calls: int = 0
    first_input_at: float = 0.0  # monotonic time the stage got its first input
    first_call: float = 0.0      # first input -> first useful output

    def input(self) -> None:
        if not self.first_input_at:
            self.first_input_at = time.monotonic()

    def output(self) -> None:
        if self.first_input_at and not self.first_call:
            self.first_call = time.monotonic() - self.first_input_at


_DONE = object()


class Turn:
    def __init__(self, clients: StageClients, metrics: GatewayMetrics, session: Session, number: int,
                 turn_input: TurnInput, turn_timeout: float, client_deadline: float | None = None,
                 own_trace: bool = False):
        self.clients = clients
        self.metrics = metrics
        self.session = session
        self.number = number
        self.input = turn_input
        self.turn_timeout = turn_timeout
        self.client_deadline = client_deadline
        self._timer: asyncio.Timeout | None = None
        self._start_clock()
        self.span = self._start_span(own_trace)
        self.clocks = {s: StageClock() for s in STAGES}
        self.transcript = ""
        self.reply = ""
        self.marks: dict[str, float] = {}
        self.audio_samples = 0
        self.sample_rate = 0
        self.frames = 0
        self.fps = 0
        self.out: asyncio.Queue = asyncio.Queue(maxsize=64)

    # -- helpers ---------------------------------------------------------------

    def _start_clock(self) -> None:
        """The turn's clock starts when the user's turn ends (now, for typed turns and
        again when the last audio chunk has arrived); its deadline counts from then."""
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.turn_timeout  # time.monotonic() by which the turn must end
        if self.client_deadline is not None:
            self.deadline = min(self.deadline, self.client_deadline)
        if self._timer is not None:
            self._timer.reschedule(asyncio.get_running_loop().time() + self.deadline - time.monotonic())

    def _start_span(self, own_trace: bool):
        """The turn's span: a child of the Ask call, or (in a Converse session, where one
        stream carries many turns) the root of its own trace, linked to the session."""
        attributes = {"talker.turn.number": self.number,
                      "talker.turn.input": "text" if self.input.audio is None else "audio"}
        tracer = tracing.tracer("talker.gateway")
        if not own_trace:
            return tracer.start_span("talker.turn", attributes=attributes)
        session = trace.get_current_span().get_span_context()
        return tracer.start_span("talker.turn", context=otel_context.Context(), attributes=attributes,
                                 links=[trace.Link(session)] if session.is_valid else [])

    def _mark(self, name: str) -> None:
        self.marks.setdefault(name, time.monotonic() - self.t0)

    def _timeout(self, stage: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StageFailure(stage, grpc.StatusCode.DEADLINE_EXCEEDED, "no time left in the turn's deadline")
        return left

    async def _emit(self, **event) -> None:
        await self.out.put(gateway_pb2.ConverseResponse(turn=self.number, **event))

    @contextlib.asynccontextmanager
    async def _call(self, stage: str, call):
        """Time a stage call, name the stage in its errors, cancel it if we leave early."""
        clock = self.clocks[stage]
        clock.calls += 1
        start = time.monotonic()
        try:
            yield call
        except grpc.aio.AioRpcError as exc:
            self.metrics.stage_errors.labels(stage, exc.code().name).inc()
            raise StageFailure(stage, exc.code(), exc.details() or exc.code().name) from None
        finally:
            if not call.done():
                call.cancel()
            spent = time.monotonic() - start
            clock.busy += spent
            self.metrics.stage_seconds.labels(stage).observe(spent, tracing.exemplar())

    def _first(self, stage: str) -> None:
        if not self.clocks[stage].first_output:
            self.clocks[stage].first_output = time.monotonic() - self.t0

    # -- stages ----------------------------------------------------------------

    async def _transcribe(self) -> None:
        if self.input.audio is None:
            self.transcript = self.input.text.strip()
        else:
            audio, rate = self.input.audio, self.input.sample_rate

            async def requests():
                # Audio streams to ASR while the user is still speaking.
                yield asr_pb2.TranscribeRequest(config=asr_pb2.TranscribeConfig(sample_rate=rate))
                while (chunk := await audio.get()) is not None:
                    yield asr_pb2.TranscribeRequest(audio=chunk)
                self._start_clock()

            call = self.clients.asr.Transcribe(requests(), timeout=self._timeout("asr"))
            async with self._call("asr", call):
                async for resp in call:
                    if resp.is_final:
                        self.transcript = resp.text.strip()
            self._first("asr")
            # Whisper decodes once the audio has ended: its latency counts from there.
            self.clocks["asr"].first_input_at = self.t0
            self.clocks["asr"].output()
            if not speakable_piece(self.transcript):
                raise InvalidArgument("audio: no speech was recognised in the turn's audio")
        self._mark("transcript")
        await self._emit(transcript=gateway_pb2.Transcript(text=self.transcript))

    async def _generate(self, sentences: asyncio.Queue) -> None:
        cfg = self.session.config
        messages = []
        if cfg.system_prompt:
            messages.append(llm_pb2.ChatMessage(role=llm_pb2.ROLE_SYSTEM, content=cfg.system_prompt))
        messages += self.session.history
        messages.append(llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=self.transcript))
        self.clocks["llm"].input()
        call = self.clients.llm.Generate(
            llm_pb2.GenerateRequest(messages=messages, max_tokens=cfg.max_reply_tokens),
            timeout=self._timeout("llm"))
        splitter = SentenceSplitter()
        async with self._call("llm", call):
            async for resp in call:
                if not resp.text:
                    continue
                self._first("llm")
                self._mark("first_token")
                self.reply += resp.text
                await self._emit(reply_text=gateway_pb2.ReplyText(delta=resp.text))
                for sentence in splitter.feed(resp.text):
                    self.clocks["llm"].output()
                    await sentences.put(sentence)
        for sentence in splitter.flush():
            self.clocks["llm"].output()
            await sentences.put(sentence)
        await sentences.put(None)

    async def _speak(self, sentences: asyncio.Queue, segments: asyncio.Queue) -> None:
        cfg = self.session.config
        while (sentence := await sentences.get()) is not None:
            if not speakable_piece(sentence):
                continue
            self.clocks["tts"].input()
            call = self.clients.tts.Synthesize(tts_pb2.SynthesizeRequest(text=sentence, voice=cfg.voice),
                                               timeout=self._timeout("tts"))
            async with self._call("tts", call):
                async for resp in call:
                    chunk = resp.audio
                    n = len(chunk.pcm) // 2
                    if not n:
                        continue
                    self._first("tts")
                    self.clocks["tts"].output()
                    self._mark("first_audio")
                    self.sample_rate = chunk.sample_rate
                    pts = self.audio_samples / chunk.sample_rate
                    self.audio_samples += n
                    await self._emit(audio=common_pb2.AudioChunk(pcm=chunk.pcm, sample_rate=chunk.sample_rate,
                                                                 pts=pts))
                    await segments.put((chunk.pcm, chunk.sample_rate, sentence, resp.phonemes))
        await segments.put(None)

    async def _animate(self, segments: asyncio.Queue) -> None:
        first = await segments.get()
        if first is None:
            return
        cfg = self.session.config
        config = animator_pb2.AnimateConfig(avatar_id=cfg.avatar_id, avatar_image=cfg.avatar_image, fps=cfg.fps,
                                            sample_rate=first[1], format=cfg.frame_format)

        async def requests():
            yield animator_pb2.AnimateRequest(config=config)
            self.clocks["animator"].input()
            item = first
            while item is not None:
                # The voice's phoneme timing (when it has one) is relative to the chunk, as the animator takes it.
                yield animator_pb2.AnimateRequest(audio=animator_pb2.AudioSegment(pcm=item[0], text=item[2],
                                                                                  phonemes=item[3]))
                item = await segments.get()

        call = self.clients.animator.Animate(requests(), timeout=self._timeout("animator"))
        async with self._call("animator", call):
            async for resp in call:
                self._first("animator")
                self.clocks["animator"].output()
                self._mark("first_frame")
                self.frames += 1
                if self.frames == 2 and resp.frame.pts > 0:
                    self.fps = round(1.0 / resp.frame.pts)
                await self._emit(frame=resp.frame)

    async def _produce(self) -> None:
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + self.deadline - time.monotonic()) \
                    as self._timer:
                await self._transcribe()
                sentences: asyncio.Queue = asyncio.Queue(maxsize=8)
                segments: asyncio.Queue = asyncio.Queue(maxsize=32)
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._generate(sentences))
                    tg.create_task(self._speak(sentences, segments))
                    tg.create_task(self._animate(segments))
            await self.out.put(_DONE)
        except TimeoutError:
            await self.out.put(StageFailure(self._slowest(), grpc.StatusCode.DEADLINE_EXCEEDED,
                                            "the turn's deadline passed while waiting for it"))
        except BaseExceptionGroup as group:
            await self.out.put(_first_failure(group))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            await self.out.put(exc)

    def _slowest(self) -> str:
        """The stage the turn was waiting on when its deadline passed."""
        for stage, mark in (("asr", "transcript"), ("llm", "first_token"), ("tts", "first_audio"),
                            ("animator", "first_frame")):
            if mark not in self.marks:
                return stage
        return "animator"

    async def events(self) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        """The turn's events for the client, ending with a summary."""
        # Stage calls run in the producer task; it inherits the turn span as its current span.
        token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            producer = asyncio.create_task(self._produce())
        finally:
            otel_context.detach(token)
        try:
            while True:
                item = await self.out.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        except BaseException as exc:
            if not isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
                self.span.record_exception(exc)
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
            raise
        finally:
            if not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
            self.span.set_attributes({"talker.turn.audio_seconds": self.audio_samples / (self.sample_rate or 1),
                                      "talker.turn.frames": self.frames})
            self.span.end()
        yield gateway_pb2.ConverseResponse(turn=self.number, summary=self.summary())

    def summary(self, cancelled: bool = False) -> gateway_pb2.TurnSummary:
        return gateway_pb2.TurnSummary(
            transcript=self.transcript, reply=self.reply.strip(),
            time_to_transcript_seconds=self.marks.get("transcript", 0.0),
            time_to_first_token_seconds=self.marks.get("first_token", 0.0),
            time_to_first_audio_seconds=self.marks.get("first_audio", 0.0),
            time_to_first_frame_seconds=self.marks.get("first_frame", 0.0),
            turn_seconds=time.monotonic() - self.t0,
            stages=[gateway_pb2.StageTiming(stage=s, first_output_seconds=c.first_output, busy_seconds=c.busy,
                                            calls=c.calls, first_call_seconds=c.first_call)
                    for s, c in self.clocks.items() if c.calls],
            audio_seconds=self.audio_samples / self.sample_rate if self.sample_rate else 0.0,
            frames=self.frames, fps=self.fps, cancelled=cancelled)

    def record(self, status: str) -> None:
        m = self.metrics
        m.turns.labels(status).inc()
        if status != "ok":
            return
        example = tracing.exemplar(self.span)  # the turn's trace, for drilling down from a slow bucket
        m.turn_seconds.observe(time.monotonic() - self.t0, example)
        for mark, hist in (("transcript", m.first_transcript), ("first_token", m.first_token),
                           ("first_audio", m.first_audio), ("first_frame", m.first_frame)):
            if mark in self.marks:
                hist.observe(self.marks[mark], example)


def _first_failure(group: BaseExceptionGroup) -> BaseException:
    flat = []

    def walk(g):
        for e in g.exceptions:
            walk(e) if isinstance(e, BaseExceptionGroup) else flat.append(e)

    walk(group)
    for e in flat:
        if isinstance(e, StageError):
            return e
    return flat[0]
