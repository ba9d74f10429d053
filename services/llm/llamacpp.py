"""llama.cpp backend (the embedded default): one sequence at a time, a fair queue.

llama.cpp here holds one context, so requests take turns: an ``asyncio.Lock``
wakes its waiters in FIFO order, so concurrent sessions wait their turn instead
of failing (up to ``TALKER_LLM_MAX_WAITING``; beyond that RESOURCE_EXHAUSTED).
Generation is a token loop over ``Llama.generate`` (exact token counts, the KV
cache of the previous turn's shared prefix is reused), detokenized incrementally
with stop sequences applied here. Each conversation's context state is kept per
prompt prefix (services/llm/prefix_cache.py), so interleaved sessions each reuse
their own prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator

from services.common.threads import iterate_in_thread
from services.llm import models
from services.llm.backend import BackendStats, Busy, LlmBackend, Message, Piece, Prompt, Sampling, StopMatcher
from services.llm.prefix_cache import PrefixCache


class LlamaCppBackend(LlmBackend):
    name = "llamacpp"

    def __init__(self, config, threads: int = 1):
        super().__init__(config, threads)
        self.llm = None
        self.formatter = None
        self.template_stops: list[str] = []
        self.lock = asyncio.Lock()
        self.tokenizer_lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.cache: PrefixCache | None = None

    def load(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            path = models.model_path(self.config.model, self.config.models_dir)
        except (KeyError, FileNotFoundError) as exc:
            raise RuntimeError(f"TALKER_LLM_MODEL={self.config.model!r}: {exc.args[0]}") from None
        self.model_name = os.path.basename(path).removesuffix(".gguf")
        self.llm = Llama(model_path=path, n_ctx=self.config.context_length, n_threads=self.threads,
                         n_threads_batch=self.threads, n_batch=256, verbose=False)
        vocab = self.llm._model
        self.formatter = Jinja2ChatFormatter(
            template=self.llm.metadata["tokenizer.chat_template"],
            eos_token=vocab.token_get_text(self.llm.token_eos()),
            bos_token=vocab.token_get_text(self.llm.token_bos()),
            add_generation_prompt=True,
        )
        if self.config.prompt_cache_mib:
            self.cache = PrefixCache(self.config.prompt_cache_mib << 20)
        stop = self.formatter(messages=[{"role": "user", "content": "x"}]).stop or []
        self.template_stops = stop if isinstance(stop, list) else [stop]
        for _ in self._tokens(self.render([{"role": "user", "content": "Hi"}]),
                              Sampling(max_tokens=4, temperature=0.0, top_p=1.0), threading.Event()):
            pass

    def render(self, messages: list[Message]) -> list[int]:
        text = self.formatter(messages=messages).prompt
        with self.tokenizer_lock:
            return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def stats(self) -> BackendStats:
        return BackendStats(running=self.running, waiting=self.waiting)

    async def generate(self, prompt: Prompt, sampling: Sampling) -> AsyncIterator[Piece]:
        if self.lock.locked() and self.waiting >= self.config.max_waiting:
            raise Busy(f"{self.waiting} requests already waiting for the model")
        arrived = time.perf_counter()
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1
        try:
            self.running += 1
            self.on_queue_time(time.perf_counter() - arrived)
            # aclosing: the worker thread has left llama.cpp before the lock passes to the next request.
            pieces = iterate_in_thread(lambda cancelled: self._tokens(prompt, sampling, cancelled))
            async with contextlib.aclosing(pieces):
                async for piece in pieces:
                    yield piece
        finally:
            self.running -= 1
            self.lock.release()

    def _tokens(self, prompt: Prompt | list[int], sampling: Sampling, cancelled: threading.Event) -> Iterator[Piece]:
        """The blocking token loop (a worker thread; one at a time under ``self.lock``)."""
        import llama_cpp

        llm = self.llm
        tokens = prompt.tokens if isinstance(prompt, Prompt) else prompt
        if sampling.seed is not None:
            llm.set_seed(sampling.seed & 0xFFFFFFFF)
        stops = StopMatcher([*self.template_stops, *sampling.stop])
        pending = b""  # bytes of a UTF-8 character split across tokens
        generated, reason = 0, "length"
        temp = sampling.temperature
        if self.cache is not None:
            self.cache.restore(llm, tokens)
        self.on_prefix_cache(len(tokens), type(llm).longest_token_prefix(llm.input_ids[:llm.n_tokens].tolist(), tokens))
        gen = llm.generate(tokens, temp=temp, top_p=sampling.top_p, top_k=40, min_p=0.05,
                           repeat_penalty=sampling.repetition_penalty, reset=True)
        try:
            for token in gen:
                if cancelled.is_set():
                    return
                if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    reason = "stop"
                    break
                generated += 1
                pending += llm.detokenize([token])
                text = _decode_prefix(pending)
                pending = pending[len(text.encode("utf-8")):]
                out = stops.feed(text)
                if stops.stopped:
                    if out:
                        yield Piece(text=out)
                    reason = "stop"
                    break
                if generated >= sampling.max_tokens:
                    yield Piece(text=out + stops.flush())
                    break
                yield Piece(text=out)
        finally:
            gen.close()
            if self.cache is not None:
                self.cache.save(llm)
        tail = stops.flush() + pending.decode("utf-8", "replace")
        yield Piece(text=tail, tokens=0, finish_reason=reason)


def _decode_prefix(data: bytes) -> str:
    """The longest prefix of ``data`` that is complete UTF-8."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace")
