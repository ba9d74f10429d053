"""The push-to-talk input mode of a Converse session: the client says where each spoken turn ends.

``audio`` chunks open a spoken turn (stopping the turn in flight: barge-in), ``end_of_turn``
closes it, ``text`` is a typed turn, ``cancel`` stops the turn in flight.
"""

from __future__ import annotations

import asyncio

from gateway.pipeline import TurnInput
from gateway.session import ConverseSession
from services.common.errors import FailedPrecondition, InvalidArgument

DEFAULT_RATE = 16000  # SessionConfig.input_sample_rate 0 means this


class PushToTalk:
    def __init__(self, session: ConverseSession, requests, check_text, max_audio_seconds: float,
                 rate: int = DEFAULT_RATE):
        self.session = session
        self.requests = requests
        self.check_text = check_text  # (text, field) -> text, raising InvalidArgument
        self.max_audio_seconds = max_audio_seconds
        self.rate = rate  # SessionConfig.input_sample_rate: the ASR resamples
        self.speech: asyncio.Queue | None = None  # the open spoken turn's audio, if any
        self.received = 0

    async def read(self) -> None:
        async for req in self.requests:
            kind = req.WhichOneof("msg")
            handler = getattr(self, f"_on_{kind}", None) if kind else None
            if handler is None:
                raise InvalidArgument("request: no field of the msg oneof is set")
            await handler(req)
        if self.speech is not None:
            self.speech.put_nowait(None)  # the stream closed mid-utterance: that ends the turn

    async def _on_audio(self, req) -> None:
        if len(req.audio) % 2:
            raise InvalidArgument("audio: PCM16 chunks need an even number of bytes")
        if self.speech is None:
            # The user starts speaking: that is a new turn (barge-in).
            self.speech, self.received = asyncio.Queue(), 0
            await self.session.start_turn(TurnInput(sample_rate=self.rate, audio=self.speech))
        self.received += len(req.audio)
        if self.received > int(self.max_audio_seconds * self.rate * 2):
            raise InvalidArgument(f"audio: the turn is longer than {self.max_audio_seconds:g} s")
        self.speech.put_nowait(req.audio)

    async def _on_end_of_turn(self, req) -> None:
        if self.speech is None:
            raise InvalidArgument("end_of_turn: no audio was sent in this turn")
        self.speech.put_nowait(None)
        self.speech = None

    async def _on_text(self, req) -> None:
        self.speech = None
        await self.session.start_turn(TurnInput(text=self.check_text(req.text, "text")))

    async def _on_cancel(self, req) -> None:
        self.speech = None
        await self.session.stop_turn()

    async def _on_config(self, req) -> None:
        raise FailedPrecondition("config: sent twice; it must be the first message only")
