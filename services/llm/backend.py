"""The backend interface of the LLM stage, and what every backend shares.

A backend loads a model, turns a conversation into prompt tokens with the
model's own chat template (trimming the oldest turns, token-exact, to fit the
context window), and streams a generation as an async iterator of text pieces.
Closing that iterator (the consumer went away) cancels the request and frees
what it held. The servicer in ``service.py`` only talks to this interface.

Implementations: ``llamacpp.py`` (embedded default, one sequence at a time
behind a fair FIFO queue) and ``vllm_backend.py`` (vLLM's async engine,
continuous batching).
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import dataclasses
from collections.abc import AsyncIterator, Callable

from services.common.backends import backend_class
from services.llm.config import BACKENDS, LlmConfig

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


@dataclasses.dataclass
class Prompt:
    tokens: list[int]
    dropped_messages: int = 0


@dataclasses.dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float
    top_p: float
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclasses.dataclass
class Piece:
    """A text delta; ``tokens`` is how many generated tokens it covers (0 for a held-back flush)."""

    text: str
    tokens: int = 1
    finish_reason: str | None = None  # "stop" | "length" on the last piece


@dataclasses.dataclass(frozen=True)
class BackendStats:
    running: int = 0
    waiting: int = 0
    # Fraction (0..1) of the KV cache in use, where the backend exposes it.
    kv_cache_usage: float | None = None


class PromptTooLong(ValueError):
    """Even the system message and the last user message do not fit the context window."""


class Busy(RuntimeError):
    """The backend's queue is full."""


class LlmBackend(abc.ABC):
    """One model behind the LLM contract."""

    #: short name for talker_model_info{backend}
    name: str

    def __init__(self, config: LlmConfig, threads: int = 1):
        self.config = config
        self.threads = threads
        self.model_name = ""
        self.device = "cpu"
        self.loop: asyncio.AbstractEventLoop | None = None
        # Called with the seconds a request waited before the model took it.
        self.on_queue_time: Callable[[float], None] = lambda seconds: None
        # Called with (prompt tokens, of them found in a cached prefix) per request, where the backend knows.
        self.on_prefix_cache: Callable[[int, int], None] = lambda queried, hit: None

    async def start(self) -> None:
        """Runs on the server's event loop before :meth:`load`."""
        self.loop = asyncio.get_running_loop()

    @abc.abstractmethod
    def load(self) -> None:
        """Load the model and warm it up; blocking, runs in a worker thread."""

    @abc.abstractmethod
    def render(self, messages: list[Message]) -> list[int]:
        """The prompt tokens of ``messages`` under the model's chat template,
        ending with the assistant's generation prompt. Blocking; thread-safe."""

    @abc.abstractmethod
    def generate(self, prompt: Prompt, sampling: Sampling) -> AsyncIterator[Piece]:
        """Stream the reply. Closing the iterator early cancels the request.
        Raises :class:`Busy` when the request cannot even be queued."""

    @abc.abstractmethod
    def stats(self) -> BackendStats:
        """Requests running and waiting now (and KV-cache usage where known)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model (stop engine processes)."""

    def prompt(self, messages: list[Message], max_tokens: int) -> Prompt:
        return fit_to_context(messages, max_tokens, self.config.context_length, self.render)


def fit_to_context(messages: list[Message], max_tokens: int, context_length: int,
                   render: Callable[[list[Message]], list[int]]) -> Prompt:
    """Tokenize ``messages``, dropping the oldest turns until prompt + ``max_tokens``
    fits ``context_length``.

    The system message (persona) and the last user message are always kept. Whole
    turns are dropped: the kept history always starts with a user message, so the
    template sees a well-formed conversation. The cut is found by binary search over
    the turn starts, each candidate rendered and counted exactly.
    """
    system = [m for m in messages[:1] if m["role"] == "system"]
    rest = messages[len(system):]
    budget = context_length - max_tokens
    tokens = render(system + rest)
    if len(tokens) <= budget:
        return Prompt(tokens=tokens)
    starts = [i for i, m in enumerate(rest) if m["role"] == "user" and i > 0]
    if not starts or starts[-1] != len(rest) - 1:
        starts.append(len(rest) - 1)  # the last message is the user's: always a valid start

    cache: dict[int, list[int]] = {}

    def fits(k: int) -> bool:
        cache[k] = render(system + rest[starts[k]:])
        return len(cache[k]) <= budget

    k = bisect.bisect_left(range(len(starts)), True, key=fits)
    if k == len(starts):
        last = cache.get(len(starts) - 1) or render(system + rest[-1:])
        raise PromptTooLong(f"the persona and the last message take {len(last)} tokens; with max_tokens "
                            f"{max_tokens} they exceed the context window of {context_length} tokens")
    return Prompt(tokens=cache[k] if k in cache else render(system + rest[starts[k]:]),
                  dropped_messages=starts[k])


class StopMatcher:
    """Cuts a text stream at the first stop sequence, holding back any tail that
    might be the start of one so no part of a stop sequence is ever emitted."""

    def __init__(self, stops: tuple[str, ...] | list[str]):
        self.stops = [s for s in stops if s]
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Returns the text that is safe to emit now; sets ``stopped`` on a match."""
        if self.stopped:
            return ""
        buf = self.held + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self.held = True, ""
            return buf[:cut]
        keep = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        self.held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep]

    def flush(self) -> str:
        held, self.held = self.held, ""
        return "" if self.stopped else held


def make_backend(config: LlmConfig, threads: int) -> LlmBackend:
    """The backend named by ``TALKER_LLM_BACKEND``; imports only what it needs."""
    return backend_class(BACKENDS, config.backend)(config, threads)
