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
from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from gateway.metrics import GatewayMetrics
from gateway.stage_status import StageStatus
from gateway.stages import StageClients
from gateway.timing import TurnTiming
from services.common import tracing
from services.common.errors import InvalidArgument, StageError, status_for
from services.common.segments import SentenceSplitter, has_words
from talker.v1 import animator_pb2, asr_pb2, common_pb2, gateway_pb2, llm_pb2, tts_pb2

ASR_CHUNK_BYTES = 32000  # 1 s of 16 kHz PCM16 per message


class StageFailure(StageError):
    """A stage call failed; the message names the stage."""

    def __init__(self, stage: str, code: grpc.StatusCode, details: str):
        super().__init__(f"{stage}: {code.name}: {details}", code)
        self.stage = stage


@dataclasses.dataclass
class Conversation:
    """What a session's turns share: its config and the history the LLM sees."""

    config: gateway_pb2.SessionConfig
    history: list[llm_pb2.ChatMessage] = dataclasses.field(default_factory=list)
    turns: int = 0
    # The clock and seed of the avatar's motion, shared by its idle and speech frames (gateway.idle).
    started: float = dataclasses.field(default_factory=time.monotonic)
    motion_seed: int = 0
    idle_next_pts: float | None = None   # where the idle stream's next frame would fall

    def clock(self) -> float:
        """Seconds since the session started: idle frames' pts, and where each turn's video begins."""
        return time.monotonic() - self.started

    def video_start(self) -> float:
        """Where a reply's frame 0 falls on the motion clock: in the idle stream's next frame slot, so
        that speech continues its motion frame for frame, or now when no idle stream is running."""
        return self.clock() if self.idle_next_pts is None else self.idle_next_pts

    def animate_config(self, **kw) -> animator_pb2.AnimateConfig:
        """The animator settings of the session's frames, idle or speech."""
        cfg = self.config
        return animator_pb2.AnimateConfig(avatar_id=cfg.avatar_id, avatar_image=cfg.avatar_image, fps=cfg.fps,
                                          format=cfg.frame_format, motion_seed=self.motion_seed, **kw)

    def remember(self, turn: Turn, keep: int) -> None:
        """Adds a turn that has a question and an answer to the history, keeping the last ``keep`` messages."""
        reply = turn.reply.strip()
        if not turn.transcript or not reply:
            return
        self.history += [llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=turn.transcript),
                         llm_pb2.ChatMessage(role=llm_pb2.ROLE_ASSISTANT, content=reply)]
        self.history = self.history[-keep:] if keep else []


def chat_messages(session: Conversation, text: str) -> list[llm_pb2.ChatMessage]:
    """What the LLM sees for a user turn: the system prompt, the history, the turn's text."""
    messages = []
    if session.config.system_prompt:
        messages.append(llm_pb2.ChatMessage(role=llm_pb2.ROLE_SYSTEM, content=session.config.system_prompt))
    messages += session.history
    messages.append(llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=text))
    return messages


@dataclasses.dataclass
class Heard:
    """A hands-free turn whose transcript the ASR has already given (TurnInput.text)."""

    speech_end_at: float            # monotonic time the user's speech ended: the turn's start
    end_of_turn_delay: float        # from then to the end-of-turn decision, seconds
    llm_call: object | None = None  # the LLM call started on the same text at the pause (preemptive)
    llm_started_at: float = 0.0


@dataclasses.dataclass
class TurnInput:
    """A typed turn, or a spoken one whose PCM16 chunks arrive on ``audio`` (None ends it), or a
    hands-free one (``heard``), already transcribed."""

    text: str = ""
    sample_rate: int = 16000
    audio: asyncio.Queue | None = None
    heard: Heard | None = None

    @classmethod
    def from_pcm(cls, pcm: bytes, sample_rate: int) -> TurnInput:
        queue: asyncio.Queue = asyncio.Queue()
        for i in range(0, len(pcm), ASR_CHUNK_BYTES):
            queue.put_nowait(pcm[i:i + ASR_CHUNK_BYTES])
        queue.put_nowait(None)
        return cls(sample_rate=sample_rate, audio=queue)


class Segment(NamedTuple):
    """One chunk of the reply's audio for the animator, with the sentence it speaks and the
    voice's timing of the phonemes that start in it (seconds from the chunk's first sample)."""

    pcm: bytes
    sample_rate: int
    text: str
    phonemes: Sequence[common_pb2.PhonemeTiming] = ()


_DONE = object()


class Turn:
    def __init__(self, clients: StageClients, metrics: GatewayMetrics, session: Conversation, number: int,
                 turn_input: TurnInput, turn_timeout: float, client_deadline: float | None = None,
                 own_trace: bool = False, trace_parent: otel_context.Context | None = None):
        self.clients = clients
        self.metrics = metrics
        self.session = session
        self.number = number
        self.input = turn_input
        self.turn_timeout = turn_timeout
        self.client_deadline = client_deadline
        self._timer: asyncio.Timeout | None = None
        self.timing = TurnTiming(metrics)
        self._start_clock()
        self.span = self._start_span(own_trace, trace_parent)
        # A hands-free turn's transcript is known from the start (a turn stopped before it began has it too).
        self.transcript = turn_input.text.strip() if turn_input.heard else ""
        self.reply = ""
        self.audio_samples = 0
        self.sample_rate = 0
        self.frames = 0
        self.fps = 0
        self.video_offset: float | None = None  # where the reply's frame 0 falls on the motion clock
        self.video_sent_at = 0.0                 # the session clock when it went out
        self.out: asyncio.Queue = asyncio.Queue(maxsize=64)

    # -- helpers ---------------------------------------------------------------

    def _start_clock(self) -> None:
        """The turn's clock starts when the user's turn ends (now, for typed turns and
        again when the last audio chunk has arrived); its deadline counts from then."""
        self.timing.restart(at=self.input.heard.speech_end_at if self.input.heard else None)
        self.deadline = self.timing.t0 + self.turn_timeout  # time.monotonic() by which the turn must end
        if self.client_deadline is not None:
            self.deadline = min(self.deadline, self.client_deadline)
        if self._timer is not None:
            self._timer.reschedule(asyncio.get_running_loop().time() + self.deadline - time.monotonic())

    def _start_span(self, own_trace: bool, parent: otel_context.Context | None):
        """The turn's span: a child of the Ask call, or (in a Converse session, where one
        stream carries many turns) linked to the session and the root of its own trace, or a
        child of the span whose context the session's caller sent (``parent``)."""
        attributes = {"talker.turn.number": self.number,
                      "talker.turn.input": "hands-free" if self.input.heard else
                      "text" if self.input.audio is None else "audio"}
        tracer = tracing.tracer("talker.gateway")
        if not own_trace:
            return tracer.start_span("talker.turn", attributes=attributes)
        session = trace.get_current_span().get_span_context()
        heard = self.input.heard
        # A hands-free turn's trace starts at the end of speech and shows the endpointing wait.
        start = _epoch_ns(heard.speech_end_at) if heard else None
        span = tracer.start_span("talker.turn", context=parent or otel_context.Context(), attributes=attributes,
                                 links=[trace.Link(session)] if session.is_valid else [], start_time=start)
        if heard:
            tracer.start_span("talker.endpointing", context=trace.set_span_in_context(span), start_time=start,
                              attributes={"talker.end_of_turn.delay_seconds": heard.end_of_turn_delay}
                              ).end(end_time=_epoch_ns(heard.speech_end_at + heard.end_of_turn_delay))
        return span

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
        status = StageStatus(call)
        with self.timing.call(stage):
            try:
                yield call
            except grpc.aio.AioRpcError as exc:
                code, details = await status.final(exc)
                self.metrics.stage_errors.labels(stage, code.name).inc()
                raise StageFailure(stage, code, details or code.name) from None
            finally:
                if not call.done():
                    call.cancel()

    # -- stages ----------------------------------------------------------------

    async def _transcribe(self) -> None:
        if self.input.audio is None:
            self.transcript = self.input.text.strip()
            if self.input.heard:
                # Transcribed while the user spoke and paused; what is left counts from the end of speech.
                self.timing.input("asr", at=self.timing.t0)
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
            # Whisper decodes once the audio has ended: its latency counts from there.
            self.timing.input("asr", at=self.timing.t0)
            if not has_words(self.transcript):
                raise InvalidArgument("audio: no speech was recognised in the turn's audio")
        self.timing.reached("asr", useful=True)
        await self._emit(transcript=gateway_pb2.Transcript(text=self.transcript))

    async def _generate(self, sentences: asyncio.Queue) -> None:
        heard = self.input.heard
        if heard and heard.llm_call is not None:
            # Started at the user's pause on this same transcript (preemptive generation).
            self.timing.input("llm", at=heard.llm_started_at)
            call = heard.llm_call
        else:
            self.timing.input("llm")
            call = self.clients.llm.Generate(
                llm_pb2.GenerateRequest(messages=chat_messages(self.session, self.transcript),
                                        max_tokens=self.session.config.max_reply_tokens),
                timeout=self._timeout("llm"))
        splitter = SentenceSplitter()
        async with self._call("llm", call):
            async for resp in call:
                if not resp.text:
                    continue
                self.timing.reached("llm")
                self.reply += resp.text
                await self._emit(reply_text=gateway_pb2.ReplyText(delta=resp.text))
                for sentence in splitter.feed(resp.text):
                    self.timing.useful("llm")
                    await sentences.put(sentence)
        for sentence in splitter.flush():
            self.timing.useful("llm")
            await sentences.put(sentence)
        await sentences.put(None)

    async def _speak(self, sentences: asyncio.Queue, segments: asyncio.Queue) -> None:
        cfg = self.session.config
        while (sentence := await sentences.get()) is not None:
            if not has_words(sentence):
                continue
            self.timing.input("tts")
            call = self.clients.tts.Synthesize(tts_pb2.SynthesizeRequest(text=sentence, voice=cfg.voice),
                                               timeout=self._timeout("tts"))
            async with self._call("tts", call):
                async for resp in call:
                    chunk = resp.audio
                    n = len(chunk.pcm) // 2
                    if not n:
                        continue
                    self.timing.reached("tts", useful=True)
                    self.sample_rate = chunk.sample_rate
                    if self.video_offset is None:
                        self.video_offset = self.session.video_start()
                        self.video_sent_at = self.session.clock()
                    pts = self.audio_samples / chunk.sample_rate
                    self.audio_samples += n
                    await self._emit(audio=common_pb2.AudioChunk(pcm=chunk.pcm, sample_rate=chunk.sample_rate,
                                                                 pts=pts))
                    await segments.put(Segment(chunk.pcm, chunk.sample_rate, sentence, resp.phonemes))
        await segments.put(None)

    async def _animate(self, segments: asyncio.Queue) -> None:
        first = await segments.get()
        if first is None:
            return
        config = self.session.animate_config(sample_rate=first.sample_rate,
                                             clock_offset_seconds=self.video_offset or 0.0)

        async def requests():
            yield animator_pb2.AnimateRequest(config=config)
            self.timing.input("animator")
            segment = first
            while segment is not None:
                yield animator_pb2.AnimateRequest(audio=animator_pb2.AudioSegment(
                    pcm=segment.pcm, text=segment.text, phonemes=segment.phonemes))
                segment = await segments.get()

        call = self.clients.animator.Animate(requests(), timeout=self._timeout("animator"))
        async with self._call("animator", call):
            async for resp in call:
                self.timing.reached("animator", useful=True)
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
            await self.out.put(StageFailure(self.timing.waiting_on(), grpc.StatusCode.DEADLINE_EXCEEDED,
                                            "the turn's deadline passed while waiting for it"))
        except BaseExceptionGroup as group:
            await self.out.put(_first_failure(group))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            await self.out.put(exc)

    async def events(self) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        """The turn's events for the client, ending with a summary."""
        # Stage calls run in the producer task; it inherits the turn span as its current span.
        token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            producer = asyncio.create_task(self._produce())
        finally:
            otel_context.detach(token)
        try:
            async for item in drain(self.out, _DONE):
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

    @property
    def video_end(self) -> tuple[float, float] | None:
        """Where the reply's video ends on the motion clock, and when on the session clock a client
        playing it from its first audio has shown it (None: the turn sent no audio)."""
        if self.video_offset is None or not self.sample_rate:
            return None
        seconds = self.audio_samples / self.sample_rate
        return self.video_offset + seconds, self.video_sent_at + seconds

    def summary(self, cancelled: bool = False) -> gateway_pb2.TurnSummary:
        return gateway_pb2.TurnSummary(
            transcript=self.transcript, reply=self.reply.strip(), **self.timing.summary_fields(),
            audio_seconds=self.audio_samples / self.sample_rate if self.sample_rate else 0.0,
            frames=self.frames, fps=self.fps, cancelled=cancelled,
            end_of_turn_delay_seconds=self.input.heard.end_of_turn_delay if self.input.heard else 0.0)

    def record(self, status: str, error: BaseException | None = None) -> None:
        self.metrics.turns.labels(status).inc()
        if error is not None:
            # Failed turns by the stage that failed them (the gateway's own: bad input, its deadline).
            code, _ = status_for(error)
            self.metrics.turn_errors.labels(getattr(error, "stage", "gateway"), code.name).inc()
        if status == "ok":
            # The turn's trace as the exemplar, for drilling down from a slow bucket.
            self.timing.observe(tracing.exemplar(self.span))


def _epoch_ns(monotonic: float) -> int:
    """A time.monotonic() instant on the epoch clock spans use."""
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


async def drain(queue: asyncio.Queue, end: object) -> AsyncIterator:
    """The items put on ``queue`` until ``end``; an exception put on it is raised here."""
    while (item := await queue.get()) is not end:
        if isinstance(item, BaseException):
            raise item
        yield item


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
