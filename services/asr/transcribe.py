"""One Transcribe stream (push-to-talk): audio in while the user speaks, one transcript at the end.

The audio arrives in real time from a microphone client, so the stream decodes what it has at each
pause in the speech (Silero VAD, `pause_seconds` of silence) instead of waiting for its end. When
the stream ends and nothing but silence came after the last such decode, that decode is the
transcript (waited for if still running); otherwise the whole audio is decoded then. Whisper gains
nothing from trailing silence, so the reused transcript is the one a decode at the end would give.
"""

from __future__ import annotations

import asyncio

import numpy as np

from services.asr.detectors import FRAME, RATE, StreamingVad
from services.asr.endpointing import Pauses


class EarlyDecoder:
    def __init__(self, servicer, language: str):
        self.servicer = servicer
        self.language = language
        self.enabled = servicer.config.early_decode and servicer.vad is not None
        self.vad = StreamingVad(servicer.vad) if self.enabled else None
        self.pauses = Pauses(servicer.config, FRAME / RATE)
        self.chunks: list[np.ndarray] = []
        self.size = 0
        self.task: asyncio.Task | None = None
        self.wanted = 0   # samples up to the latest pause
        self.covered = 0  # samples the latest early decode (done or running) covers
        self.result = ("", 0.0)

    def feed(self, samples: np.ndarray) -> None:
        """16 kHz float32 audio as it arrives."""
        self.chunks.append(samples)
        self.size += samples.size
        if not self.enabled:
            return
        for probability in self.vad.probabilities(samples):
            if self.pauses.feed(probability):
                self.wanted = self.pauses.pos * FRAME
                if self.task is None or self.task.done():
                    self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        # One decode at a time; a pause reached meanwhile is decoded next (the latest one only).
        while self.wanted > self.covered:
            self.covered = self.wanted
            self.result = await self.servicer.decode(self.audio(self.covered), self.language)

    def audio(self, end: int | None = None) -> np.ndarray:
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0][:end] if self.chunks else np.zeros(0, dtype=np.float32)

    async def final(self) -> tuple[str, float, bool]:
        """(text, model seconds, whether an early decode was reused) once the stream has ended."""
        speech_end = self.pauses.speech_end
        if self.task is not None and speech_end is not None and speech_end * FRAME <= self.wanted:
            await self.task  # its last decode covers self.wanted
            return *self.result, True
        # Speech came after the last pause: no pending early decode is worth starting. One still
        # running is left to finish (cancelling the wait would not stop the model thread, only let
        # the next decode run beside it).
        self.wanted = self.covered
        text, seconds = await self.servicer.decode(self.audio(), self.language)
        return text, seconds, False
