"""The LLM stage: a conversation in, the reply out as a token stream."""

from __future__ import annotations

import asyncio
import time

import grpc
from prometheus_client import Counter, Gauge, Histogram

from services.common import buckets
from services.common.config import ServerConfig, from_env
from services.common.errors import InvalidArgument, ResourceExhausted
from services.common.server import LoadedModel, Stage, run
from services.common.threads import iterate_in_thread
from services.llm.backend import LlamaCppBackend, PromptTooLong
from services.llm.config import LlmConfig
from talker.v1 import llm_pb2, llm_pb2_grpc

_ROLES = {llm_pb2.ROLE_SYSTEM: "system", llm_pb2.ROLE_USER: "user", llm_pb2.ROLE_ASSISTANT: "assistant"}
_FINISH = {"stop": llm_pb2.FINISH_REASON_STOP, "length": llm_pb2.FINISH_REASON_LENGTH}


class LlmMetrics:
    """vLLM's metric semantics under our prefix."""

    def __init__(self):
        m = ["model"]
        self.ttft = Histogram("talker_llm_time_to_first_token_seconds", "From the request to its first token.",
                              m, buckets=buckets.FIRST_OUTPUT)
        self.itl = Histogram("talker_llm_inter_token_latency_seconds", "Between two generated tokens.",
                             m, buckets=buckets.INTER_TOKEN)
        self.e2e = Histogram("talker_llm_e2e_request_latency_seconds", "A request from arrival to its last token.",
                             m, buckets=buckets.STAGE)
        self.queue = Histogram("talker_llm_request_queue_time_seconds", "Time a request waited for the model.",
                               m, buckets=buckets.FIRST_OUTPUT)
        self.prompt_tokens = Counter("talker_llm_prompt_tokens_total", "Prompt tokens processed.", m)
        self.generation_tokens = Counter("talker_llm_generation_tokens_total", "Tokens generated.", m)
        self.running = Gauge("talker_llm_num_requests_running", "Requests generating now.", m)
        self.waiting = Gauge("talker_llm_num_requests_waiting", "Requests waiting for the model.", m)
        self.finished = Counter("talker_llm_request_success_total", "Finished requests by reason.",
                                [*m, "finished_reason"])
        self.history_dropped = Counter("talker_llm_history_messages_dropped_total",
                                       "Oldest messages dropped to fit the context window.", m)


class LlmServicer(llm_pb2_grpc.LlmServicer):
    def __init__(self, config: LlmConfig, backend: LlamaCppBackend, metrics: LlmMetrics):
        self.config = config
        self.backend = backend
        self.metrics = metrics
        # llama.cpp runs one sequence at a time; asyncio.Lock wakes waiters in FIFO order.
        self.model_lock = asyncio.Lock()
        self.waiting = 0

    def _messages(self, request) -> list[dict]:
        if not request.messages:
            raise InvalidArgument("messages: empty; send at least one user message")
        if len(request.messages) > self.config.max_messages:
            raise InvalidArgument(f"messages: {len(request.messages)} messages, more than {self.config.max_messages}")
        out = []
        for i, msg in enumerate(request.messages):
            role = _ROLES.get(msg.role)
            if role is None:
                name = llm_pb2.Role.Name(msg.role) if msg.role in llm_pb2.Role.values() else msg.role
                raise InvalidArgument(f"messages[{i}].role: {name} is not system, user or assistant")
            if not msg.content.strip():
                raise InvalidArgument(f"messages[{i}].content: empty")
            if len(msg.content) > self.config.max_message_chars:
                raise InvalidArgument(f"messages[{i}].content: {len(msg.content)} characters, more than "
                                      f"{self.config.max_message_chars}")
            if role == "system" and i != 0:
                raise InvalidArgument(f"messages[{i}].role: a system message may only come first")
            out.append({"role": role, "content": msg.content})
        if out[-1]["role"] != "user":
            raise InvalidArgument(f"messages[{len(out) - 1}].role: the last message must be the user's")
        if out[0]["role"] != "system" and self.config.system_prompt:
            out.insert(0, {"role": "system", "content": self.config.system_prompt})
        return out

    def _sampling(self, request) -> tuple[int, float, float]:
        max_tokens = request.max_tokens or self.config.max_tokens
        if not 1 <= max_tokens < self.config.context_length:
            raise InvalidArgument(f"max_tokens: {request.max_tokens} is outside 1..{self.config.context_length - 1}")
        temperature = request.temperature if request.HasField("temperature") else self.config.temperature
        if not 0.0 <= temperature <= 2.0:
            raise InvalidArgument(f"temperature: {temperature:g} is outside 0..2")
        top_p = request.top_p if request.HasField("top_p") else self.config.top_p
        if not 0.0 < top_p <= 1.0:
            raise InvalidArgument(f"top_p: {top_p:g} is outside (0, 1]")
        if len(request.stop) > 8 or any(not s for s in request.stop):
            raise InvalidArgument("stop: at most 8 non-empty stop sequences")
        return max_tokens, temperature, top_p

    async def Generate(self, request, context):
        messages = self._messages(request)
        max_tokens, temperature, top_p = self._sampling(request)
        seed = request.seed if request.HasField("seed") else None
        model, m = self.backend.model_name, self.metrics
        if self.model_lock.locked() and self.waiting >= self.config.max_waiting:
            raise ResourceExhausted(f"llm: {self.waiting} requests already waiting for the model; retry later")
        arrived = time.perf_counter()
        self.waiting += 1
        m.waiting.labels(model).inc()
        try:
            await self.model_lock.acquire()
        finally:
            self.waiting -= 1
            m.waiting.labels(model).dec()
        reason, generated = "cancelled", 0
        try:
            m.queue.labels(model).observe(time.perf_counter() - arrived)
            m.running.labels(model).inc()
            try:
                prompt = await asyncio.to_thread(self.backend.prompt, messages, max_tokens)
            except PromptTooLong as exc:
                reason = "error"
                raise InvalidArgument(f"messages: {exc}") from None
            m.prompt_tokens.labels(model).inc(len(prompt.tokens))
            m.history_dropped.labels(model).inc(prompt.dropped_messages)
            last = None
            async for piece in iterate_in_thread(lambda cancelled: self.backend.generate(
                    prompt, max_tokens, temperature, top_p, seed, cancelled, list(request.stop))):
                now = time.perf_counter()
                if piece.text:
                    generated += 1
                    if last is None:
                        m.ttft.labels(model).observe(now - arrived)
                    else:
                        m.itl.labels(model).observe(now - last)
                    last = now
                    yield llm_pb2.GenerateResponse(text=piece.text)
                if piece.finish_reason:
                    reason = piece.finish_reason if piece.finish_reason in _FINISH else "stop"
            yield llm_pb2.GenerateResponse(
                finish_reason=_FINISH.get(reason, llm_pb2.FINISH_REASON_STOP),
                usage=llm_pb2.Usage(prompt_tokens=len(prompt.tokens), completion_tokens=generated))
        except BaseException as exc:
            if reason != "error" and not isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
                reason = "error"
            raise
        finally:
            m.running.labels(model).dec()
            m.generation_tokens.labels(model).inc(generated)
            m.finished.labels(model, reason).inc()
            m.e2e.labels(model).observe(time.perf_counter() - arrived)
            self.model_lock.release()


class LlmStage(Stage):
    name = "llm"
    service_names = (llm_pb2.DESCRIPTOR.services_by_name["Llm"].full_name,)

    def __init__(self, server_config: ServerConfig, config: LlmConfig | None = None):
        self.config = config or from_env(LlmConfig, "TALKER_LLM_")
        self.backend = LlamaCppBackend(self.config, server_config.threads)
        self.metrics = LlmMetrics()
        self.servicer = LlmServicer(self.config, self.backend, self.metrics)

    def add_to_server(self, server: grpc.aio.Server) -> None:
        llm_pb2_grpc.add_LlmServicer_to_server(self.servicer, server)

    def load(self) -> LoadedModel:
        self.backend.load()
        for reason in ("stop", "length", "cancelled", "error"):
            self.metrics.finished.labels(self.backend.model_name, reason)
        return LoadedModel(backend=self.backend.name, model=self.backend.model_name, device="cpu")


def main() -> None:
    run(LlmStage, "llm", grpc_port=50053, metrics_port=9103)
