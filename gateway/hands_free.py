"""The hands-free input mode of a Converse session: the client streams its microphone and the ASR
service's Listen call says where turns start and end.

Speech that starts while a reply is in flight stops it (barge-in; the ASR only reports speech that
lasted long enough not to be a cough). When the user pauses, the ASR sends the transcript so far;
the LLM starts on it at once (preemptive generation) and the turn keeps that call when the final
transcript is the same. Echo of the avatar's own voice must be cancelled by the client (browsers do).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time

import grpc

from gateway.pipeline import Heard, StageFailure, TurnInput, chat_messages
from gateway.session import ConverseSession
from services.common.errors import FailedPrecondition, InvalidArgument
from talker.v1 import asr_pb2, gateway_pb2, llm_pb2

REASONS = {asr_pb2.TURN_END_REASON_SEMANTIC: gateway_pb2.END_OF_TURN_REASON_SEMANTIC,
           asr_pb2.TURN_END_REASON_SILENCE_CAP: gateway_pb2.END_OF_TURN_REASON_SILENCE_CAP,
           asr_pb2.TURN_END_REASON_STREAM_END: gateway_pb2.END_OF_TURN_REASON_STREAM_END}


class Preemptive:
    """An LLM call started on the transcript at a pause, before the end of the turn is certain."""

    def __init__(self, session: ConverseSession, text: str):
        self.text = text
        self.started_at = time.monotonic()
        cfg = session.conversation.config
        self.call = session.clients.llm.Generate(
            llm_pb2.GenerateRequest(messages=chat_messages(session.conversation, text),
                                    max_tokens=cfg.max_reply_tokens),
            timeout=session.config.turn_timeout_seconds)


class HandsFree:
    def __init__(self, session: ConverseSession, requests, check_text, rate: int):
        self.session = session
        self.metrics = session.metrics
        self.requests = requests
        self.check_text = check_text
        self.rate = rate
        self.audio: asyncio.Queue = asyncio.Queue()
        self.sent = 0  # samples forwarded to the ASR
        # (offset in seconds at the end of a forwarded chunk, monotonic time it was forwarded)
        self.clock: collections.deque[tuple[float, float]] = collections.deque(maxlen=3000)
        self.preemptive: Preemptive | None = None

    async def read(self) -> None:
        async def listen_requests():
            yield asr_pb2.ListenRequest(config=asr_pb2.ListenConfig(sample_rate=self.rate))
            while (chunk := await self.audio.get()) is not None:
                yield asr_pb2.ListenRequest(audio=chunk)

        call = self.session.clients.asr.Listen(listen_requests())
        reader = asyncio.create_task(self._read_client())
        listener = asyncio.create_task(self._listen(call))
        try:
            done, _ = await asyncio.wait({reader, listener}, return_when=asyncio.FIRST_COMPLETED)
            if listener in done:
                listener.result()  # the ASR failed (raises), or ended the stream early
                raise StageFailure("asr", grpc.StatusCode.UNAVAILABLE, "the Listen stream ended early")
            reader.result()
            self.audio.put_nowait(None)  # the client is done: the ASR closes a turn in progress
            await listener
        finally:
            for task in (reader, listener):
                task.cancel()
            call.cancel()
            self._drop_preemptive()

    # -- the client's messages ---------------------------------------------------

    async def _read_client(self) -> None:
        async for req in self.requests:
            kind = req.WhichOneof("msg")
            if kind == "audio":
                if len(req.audio) % 2:
                    raise InvalidArgument("audio: PCM16 chunks need an even number of bytes")
                self.sent += len(req.audio) // 2
                self.clock.append((self.sent / self.rate, time.monotonic()))
                self.audio.put_nowait(req.audio)
            elif kind == "text":
                await self.session.start_turn(TurnInput(text=self.check_text(req.text, "text")))
            elif kind == "cancel":
                await self.session.stop_turn()
            elif kind == "end_of_turn":
                raise InvalidArgument("end_of_turn: this session detects the end of turns itself "
                                      "(turn_detection is TURN_DETECTION_SERVER)")
            elif kind == "config":
                raise FailedPrecondition("config: sent twice; it must be the first message only")
            else:
                raise InvalidArgument("request: no field of the msg oneof is set")

    def _time_of(self, offset: float) -> float:
        """When the audio at `offset` seconds reached the gateway (monotonic)."""
        for end, at in self.clock:
            if end >= offset:
                return at
        return time.monotonic()

    # -- the ASR's events ---------------------------------------------------------

    async def _listen(self, call) -> None:
        try:
            async for resp in call:
                kind = resp.WhichOneof("event")
                if kind == "speech_started":
                    await self._speech_started(resp.speech_started)
                elif kind == "partial":
                    await self._partial(resp.partial)
                elif kind == "turn_end":
                    await self._turn_end(resp.turn_end)
        except grpc.aio.AioRpcError as exc:
            self.metrics.stage_errors.labels("asr", exc.code().name).inc()
            raise StageFailure("asr", exc.code(), exc.details() or exc.code().name) from None

    def _next_turn(self) -> int:
        return self.session.conversation.turns + 1

    async def _speech_started(self, event) -> None:
        barge_in = self.session.turn_in_flight
        if barge_in:
            self.metrics.barge_ins.inc()
            await self.session.stop_turn()
        await self.session.emit(gateway_pb2.ConverseResponse(turn=self._next_turn(), speech_started=(
            gateway_pb2.SpeechStarted(audio_offset_seconds=event.audio_offset_seconds, barge_in=barge_in))))

    async def _partial(self, event) -> None:
        await self.session.emit(gateway_pb2.ConverseResponse(
            turn=self._next_turn(), partial_transcript=gateway_pb2.PartialTranscript(text=event.text)))
        text = event.text.strip()
        if event.at_pause and text and (self.preemptive is None or self.preemptive.text != text):
            self._drop_preemptive()
            self.preemptive = Preemptive(self.session, text)

    def _drop_preemptive(self) -> None:
        if self.preemptive is not None:
            self.preemptive.call.cancel()
            self.metrics.preemptive.labels("miss").inc()
            self.preemptive = None

    async def _turn_end(self, event) -> None:
        speech_end_at = self._time_of(event.speech_end_offset_seconds)
        # The decision came before the transcript this message waited for.
        delay = max(0.0, time.monotonic() - speech_end_at - event.transcript_wait_seconds)
        self.metrics.end_of_turn_delay.observe(delay)
        await self.session.emit(gateway_pb2.ConverseResponse(turn=self._next_turn(), end_of_turn=(
            gateway_pb2.EndOfTurnDetected(reason=REASONS.get(event.reason, 0),
                                          speech_end_offset_seconds=event.speech_end_offset_seconds,
                                          delay_seconds=delay,
                                          completion_probability=event.completion_probability))))
        text = event.text.strip()
        preemptive, self.preemptive = self.preemptive, None
        if preemptive is not None and preemptive.text != text:
            preemptive.call.cancel()
            self.metrics.preemptive.labels("miss").inc()
            preemptive = None
        elif preemptive is not None:
            self.metrics.preemptive.labels("hit").inc()
        if not text:
            return  # speech without words (a noise the VAD took for speech): no turn
        heard = Heard(speech_end_at=speech_end_at, end_of_turn_delay=delay,
                      llm_call=preemptive.call if preemptive else None,
                      llm_started_at=preemptive.started_at if preemptive else 0.0)
        with contextlib.suppress(InvalidArgument):
            await self.session.start_turn(TurnInput(text=self.check_text(text, "transcript"), heard=heard))
