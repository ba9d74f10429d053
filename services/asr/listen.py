"""One Listen stream: continuous audio in; speech starts, partial transcripts and turn ends out.

Voice activity runs on every 32 ms frame, inline (Silero is ~0.2 ms a frame); the semantic check
runs at each pause, in a thread, while the stream waits for it (so decisions do not depend on how
fast the client sends); transcripts are decoded in the background while the user speaks (greedy
captions, never queued ahead of the pause's decode) and again, with the final beam, as soon as
they pause, so that when the turn ends its transcript is usually ready already.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from services.asr.detectors import FRAME, RATE, StreamingVad
from services.asr.endpointing import Check, Ended, Endpointer, Started, unfinished
from services.common.audio import pcm16_to_float, resample
from services.common.errors import FailedPrecondition, InvalidArgument
from talker.v1 import asr_pb2

REASONS = {"semantic": asr_pb2.TURN_END_REASON_SEMANTIC, "silence_cap": asr_pb2.TURN_END_REASON_SILENCE_CAP,
           "stream_end": asr_pb2.TURN_END_REASON_STREAM_END}


class TurnDecoder:
    """Background decodes of one turn's audio, at most one at a time, each of all the audio so far:
    greedy captions while the user speaks (`partial_beam_size`), the final beam at each pause."""

    def __init__(self, stream: ListenStream, start: int):
        self.stream = stream
        self.start = start           # sample where the turn's audio begins (pre-roll included)
        self.target, self.at_pause = start, False
        self.done, self.text = start, ""
        self.final_done, self.final_text = start, ""  # the last decode with the final beam
        self.task: asyncio.Task | None = None

    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    def want(self, end: int, at_pause: bool) -> None:
        self.target, self.at_pause = end, at_pause
        if not self.busy():
            self.task = asyncio.create_task(self._run())

    def pending(self) -> int:
        return max(self.target, self.done)

    async def _run(self) -> None:
        config = self.stream.config
        while self.target > self.done:
            end, at_pause = self.target, self.at_pause
            beam = config.listen_beam_size if at_pause else config.partial_beam_size
            self.text, _ = await self.stream.decode(self.start, end, beam)
            self.done = end
            if at_pause:
                self.final_done, self.final_text = end, self.text
            self.stream.emit(asr_pb2.ListenResponse(partial=asr_pb2.ListenPartial(
                text=self.text, audio_offset_seconds=end / RATE, at_pause=at_pause)))
            self.stream.metrics.partials.inc()

    def ready(self, speech_end: int) -> str | None:
        """The final-beam transcript of all the speech up to `speech_end`, if already decoded (only
        silence came after it, so it is the transcript of the turn)."""
        return self.final_text if self.final_done >= speech_end else None

    async def final(self, end: int, speech_end: int) -> tuple[str, float]:
        """The transcript of [start, end): the last pause's decode when it covered all the speech."""
        if not (self.at_pause and self.target >= speech_end):
            self.target = self.done  # a caption of other audio is not worth waiting for
        if self.task is not None:
            await self.task
        if (text := self.ready(speech_end)) is not None:
            return text, 0.0
        return await self.stream.decode(self.start, end, self.stream.config.listen_beam_size)


class ListenStream:
    def __init__(self, servicer, out: asyncio.Queue):
        self.servicer = servicer
        self.config = servicer.config
        self.metrics = servicer.metrics
        self.out = out
        self.language = ""
        self.vad = StreamingVad(servicer.vad)
        self.endpointer = Endpointer(self.config, FRAME / RATE)
        self.audio = np.zeros(0, dtype=np.float32)
        self.base = 0  # stream sample index of self.audio[0]
        self.turn: TurnDecoder | None = None
        self.pause_samples = self.endpointer.pause_frames * FRAME
        self.keep = int((self.config.preroll_seconds + self.config.speech_start_seconds) * RATE) + FRAME

    def emit(self, response: asr_pb2.ListenResponse) -> None:
        self.out.put_nowait(response)

    async def run(self, request_iterator) -> None:
        rate = 0
        async for req in request_iterator:
            kind = req.WhichOneof("msg")
            if kind == "config":
                if rate:
                    raise InvalidArgument("config: sent twice; it must be the first message only")
                rate = req.config.sample_rate or RATE
                if not 8000 <= rate <= 48000:
                    raise InvalidArgument(f"config.sample_rate: {rate} Hz is outside 8000..48000")
                self.language = req.config.language
            elif kind == "audio":
                if not rate:
                    raise FailedPrecondition("audio: sent before config; send ListenConfig first")
                if len(req.audio) % 2:
                    raise InvalidArgument(f"audio: {len(req.audio)} bytes; PCM16 needs an even number")
                await self.feed(resample(pcm16_to_float(req.audio), rate, RATE))
            else:
                raise InvalidArgument("request: neither config nor audio is set")
        if not rate:
            raise InvalidArgument("config: missing; the stream must start with ListenConfig")
        ended = self.endpointer.close()
        if ended:
            await self.finish(ended)

    async def feed(self, samples: np.ndarray) -> None:
        self.audio = np.concatenate([self.audio, samples])
        ep = self.endpointer
        for probability in self.vad.probabilities(samples):
            event = ep.feed(probability)
            if isinstance(event, Started):
                start = max(self.base, event.start * FRAME - int(self.config.preroll_seconds * RATE))
                self.turn = TurnDecoder(self, start)
                self.metrics.speech_starts.inc()
                self.emit(asr_pb2.ListenResponse(speech_started=asr_pb2.ListenSpeechStarted(
                    audio_offset_seconds=event.start * FRAME / RATE)))
            elif isinstance(event, Check):
                # Decode what was said while the semantic check runs: if the turn ends here, its
                # transcript is (nearly) ready.
                now = ep.pos * FRAME
                self.turn.want(now, at_pause=True)
                event = ep.verdict(await self.check(self.turn.start, now, event.speech_end * FRAME))
            if isinstance(event, Ended):
                await self.finish(event)
        if ep.speaking:
            # Captions while the user speaks, never queued behind a running decode (the decode at the
            # pause must not wait for a stale caption).
            in_speech = ep.pos - ep.speech_end < ep.pause_frames
            if in_speech and not self.turn.busy() and \
                    ep.pos * FRAME - self.turn.pending() >= self.config.partial_interval_seconds * RATE:
                self.turn.want(ep.pos * FRAME, at_pause=False)
        else:
            self.trim(ep.pos * FRAME - self.keep)

    async def check(self, start: int, end: int, speech_end: int) -> float:
        """The semantic check at a pause: smart-turn's probability that the utterance is complete,
        0 when the transcript of the pause reads as cut off. A "complete" verdict waits for that
        transcript (the decode of the pause, started with the check): smart-turn alone once rated
        the pause in "I would like to know the capital of ... France" 0.93, above the sure threshold,
        and the greedy caption from before the pause ("I would like to know that") did not read
        cut off."""
        t0 = time.perf_counter()
        probability = await asyncio.to_thread(self.servicer.smart_turn.probability, self.slice(start, end))
        self.metrics.check_seconds.observe(time.perf_counter() - t0)
        verdict = "complete" if probability >= self.config.completion_threshold else "incomplete"
        if verdict == "complete":
            text, _ = await self.turn.final(end, speech_end)
            if unfinished(text, self.language or self.config.language):
                verdict, probability = "unfinished_text", 0.0
        self.metrics.checks.labels(verdict).inc()
        return probability

    async def finish(self, ended: Ended) -> None:
        turn, self.turn = self.turn, None
        available = self.base + self.audio.size
        end = min(ended.speech_end * FRAME + self.pause_samples, available)
        t0 = time.perf_counter()
        text, seconds = await turn.final(end, min(ended.speech_end * FRAME, end))
        wait = time.perf_counter() - t0
        delay = (ended.decided_at - ended.speech_end) * FRAME / RATE
        self.metrics.turn_ends.labels(ended.reason).inc()
        self.metrics.end_of_turn_delay.observe(delay)
        self.emit(asr_pb2.ListenResponse(turn_end=asr_pb2.ListenTurnEnd(
            reason=REASONS[ended.reason], text=text,
            speech_start_offset_seconds=ended.start * FRAME / RATE,
            speech_end_offset_seconds=ended.speech_end * FRAME / RATE,
            delay_seconds=delay, completion_probability=ended.probability,
            audio_seconds=(end - turn.start) / RATE, processing_seconds=seconds,
            transcript_wait_seconds=wait)))
        self.trim(end)

    def slice(self, start: int, end: int) -> np.ndarray:
        return self.audio[max(0, start - self.base):max(0, end - self.base)]

    def trim(self, before: int) -> None:
        """Forget audio before sample `before` (no turn needs it)."""
        if before > self.base:
            self.audio = self.audio[before - self.base:]
            self.base = before

    async def decode(self, start: int, end: int, beam_size: int) -> tuple[str, float]:
        return await self.servicer.decode(self.slice(start, end), self.language, beam_size)
