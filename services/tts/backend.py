"""The TTS backend interface, and the choice of backend from the configuration.

A backend loads its model, lists its voices and synthesizes text as an async
stream of PCM16 chunks (each with its sample rate) that can be cancelled. The
model code blocks, so it runs in a worker thread (``iterate_in_thread``) that
checks a stop flag between steps: between the pieces a long text is cut into,
and between the chunks a streaming model produces.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np

from services.common.audio import float_to_pcm16
from services.common.backends import backend_class
from services.common.errors import NotFound
from services.common.segments import split_pieces
from services.common.threads import iterate_in_thread
from services.tts.config import BACKENDS, TtsConfig

log = logging.getLogger("talker.tts")


@dataclasses.dataclass(frozen=True)
class Voice:
    name: str
    language: str
    sample_rate: int


@dataclasses.dataclass(frozen=True)
class Spoken:
    """One array of a piece's audio with the voice's alignment of it, when the model gives one:
    (IPA phoneme, samples) in the order they are spoken, covering the audio from its start."""

    audio: np.ndarray
    phonemes: tuple[tuple[str, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Mono PCM16 little-endian audio, and the phonemes that start in it:
    (IPA phoneme, start, duration) in seconds from the chunk's first sample."""

    pcm: bytes
    sample_rate: int
    phonemes: tuple[tuple[str, float, float], ...] = ()

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2


class StopFlag:
    """Set when the consumer went away or the synthesis was cancelled."""

    def __init__(self, *events: threading.Event):
        self._events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


class Synthesis:
    """One request's audio: an async iterator of :class:`Chunk` that can be cancelled.

    ``cancel()`` stops the model at its next step; ``aclose()`` also releases the
    worker thread. Leaving the iteration early (an exception, a cancelled task)
    stops the worker too.
    """

    def __init__(self, produce: Callable[[StopFlag], Iterator[Chunk]], max_buffered: int = 2):
        self._cancel = threading.Event()
        self.pieces_done = 0
        # A small buffer: the model stays at most a few chunks ahead of the client,
        # so a cancelled request stops costing compute at once.
        self._gen: AsyncIterator[Chunk] = iterate_in_thread(
            lambda gone: produce(StopFlag(gone, self._cancel)), max_buffered=max_buffered)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def __aiter__(self) -> Synthesis:
        return self

    async def __anext__(self) -> Chunk:
        if self._cancel.is_set():
            await self.aclose()
            raise StopAsyncIteration
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        self._cancel.set()
        await self._gen.aclose()


def phoneme_starts(phonemes: tuple[tuple[str, int], ...]) -> list[tuple[str, int, int]]:
    """(phoneme, first sample, samples) from consecutive (phoneme, samples)."""
    out, at = [], 0
    for phoneme, samples in phonemes:
        out.append((phoneme, at, int(samples)))
        at += int(samples)
    return out


def chunk_phonemes(timings: list[tuple[str, int, int]], first: int, size: int, rate: int,
                   last: bool) -> tuple[tuple[str, float, float], ...]:
    """The phonemes starting in samples [first, first + size), timed in seconds from ``first``;
    the ``last`` chunk of an array also takes any the alignment's rounding put past its end."""
    stop = first + size
    return tuple((p, (at - first) / rate, n / rate) for p, at, n in timings
                 if first <= at and (at < stop or last))


class TtsBackend(abc.ABC):
    """What the servicer needs from a speech synthesizer."""

    #: short, bounded name for metrics and ListVoices: piper, coqui
    name: str

    def __init__(self, config: TtsConfig, threads: int = 1):
        self.config = config
        self.threads = threads
        self.default_voice = config.voice
        self.device = "cpu"
        self._voices: dict[str, Voice] = {}

    @abc.abstractmethod
    def load(self) -> str:
        """Load the model (blocking; runs while health says NOT_SERVING). Returns the model's name."""

    def list_voices(self) -> list[Voice]:
        return list(self._voices.values())

    def voice(self, name: str) -> Voice:
        """The voice called ``name`` (empty: the default), or NOT_FOUND."""
        name = name or self.default_voice
        if name not in self._voices:
            raise NotFound(f"voice: {name!r} is not available; ListVoices names {sorted(self._voices)}")
        return self._voices[name]

    @abc.abstractmethod
    def stream_piece(self, text: str, voice: Voice, rate: float,
                     stop: StopFlag) -> Iterator[np.ndarray | Spoken]:
        """Blocking: float32 audio for one piece of text, in as many arrays as the model yields;
        a backend that knows when each phoneme is spoken yields :class:`Spoken` instead."""

    def pieces(self, text: str) -> list[str]:
        return split_pieces(text, self.config.piece_chars, self.config.first_piece_chars)

    def produce(self, text: str, voice: Voice, rate: float, stop: StopFlag,
                chunk_seconds: float) -> Iterator[Chunk]:
        """Blocking: the PCM16 chunks for ``text``, each sent as soon as its piece is synthesized."""
        size = max(1, int(chunk_seconds * voice.sample_rate))
        for piece in self.pieces(text):
            if stop.is_set():
                return
            for out in self.stream_piece(piece, voice, rate, stop):
                if stop.is_set():
                    return
                spoken = out if isinstance(out, Spoken) else Spoken(out)
                pcm = float_to_pcm16(np.asarray(spoken.audio, dtype=np.float32).reshape(-1))
                timings = phoneme_starts(spoken.phonemes)
                for start in range(0, len(pcm), 2 * size):
                    yield Chunk(pcm[start:start + 2 * size], voice.sample_rate,
                                chunk_phonemes(timings, start // 2, size, voice.sample_rate,
                                               last=start + 2 * size >= len(pcm)))

    def synthesize(self, text: str, voice: str = "", rate: float = 1.0,
                   chunk_seconds: float | None = None) -> Synthesis:
        """``text`` spoken by ``voice`` at ``rate`` as an async, cancellable stream of chunks."""
        v = self.voice(voice)
        seconds = chunk_seconds or self.config.chunk_seconds
        return Synthesis(lambda stop: self.produce(text, v, rate, stop, seconds))


def make_backend(config: TtsConfig, threads: int = 1) -> TtsBackend:
    """The backend ``TALKER_TTS_BACKEND`` names; its libraries are imported only when it loads."""
    return backend_class(BACKENDS, config.backend)(config, threads)
